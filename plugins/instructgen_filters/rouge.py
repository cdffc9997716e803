"""ROUGE-L novelty, fast: the same keep/drop decisions as ``rouge_score``'s
``RougeScorer(["rougeL"]).score(a, b).fmeasure > threshold``, without scoring every pair.

How: ROUGE-L F is ``2·lcs/(la+lb)`` and ``lcs ≤ overlap`` (shared tokens, counted as a bag), so
a pair can only pass the threshold if the two token bags overlap by more than ``t·(la+lb)/2``.
Sound bounds on that overlap narrow the pairs down before any LCS:

1. Prefix filtering (Chaudhuri et al., 2006; Xiao et al., 2008), extended: such a pair shares
   ``_SHARED`` elements (or all its shared ones, if fewer) of the rare-first prefixes of the two
   instructions, each ``_SHARED - 1`` elements longer than the classic one-element prefix, so
   an inverted index on those prefixes finds every candidate pair (tokens re-ranked by observed
   frequency at geometric sizes) and a count of the elements found drops most of them.
2. Count: the shared prefix elements found, plus the tokens beyond the prefix of whichever
   instruction's prefix ends first in the common order (computed as the larger of the two).
3. Length: the overlap is at most the shorter length.
4. Bag: token ids hashed into 64 buckets; the sum of the smaller count per bucket.

On instructions with shared phrasing ("Write a ...", "Generate a list of ...") the first two
leave tens of pairs per candidate out of thousands of postings, the fourth a few. The
survivors' LCS is computed in C by rapidfuzz (token ids as code points of a string), all of
them in one call, and compared with ``rouge_score``'s own floating-point formula, so decisions
agree to the last bit. The counting is one ``numpy.bincount`` over the postings (no sort).
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from instructgen import Filter

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["RougeIndex", "RougeNoveltyFilter", "lcs_length", "rouge_l_f", "tokenize"]

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def tokenize(text: str, tokenizer: str = "default") -> list[str]:
    """``default``: rouge_score's tokenizer (lowercase, keep [a-z0-9] runs).
    ``unicode``: words in any script, each CJK character a token."""
    if tokenizer == "default":
        return [t for t in _NON_ALNUM.sub(" ", text.lower()).split() if t]
    if tokenizer == "unicode":
        out: list[str] = []
        for word in _WORD.findall(text.lower()):
            if _CJK.search(word):
                buf = ""
                for ch in word:
                    if _CJK.match(ch):
                        if buf:
                            out.append(buf)
                            buf = ""
                        out.append(ch)
                    else:
                        buf += ch
                if buf:
                    out.append(buf)
            else:
                out.append(word)
        return out
    raise ValueError(f"unknown tokenizer {tokenizer!r}; use 'default' or 'unicode'")


def _fmeasure(lcs: int, la: int, lb: int) -> float:
    # Exactly rouge_score's arithmetic: precision, recall, then 2PR/(P+R).
    if not la or not lb:
        return 0.0
    precision = lcs / la
    recall = lcs / lb
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def _as_sequence(ids: list[int]) -> Sequence[Any]:
    """Token ids as a string of code points (rapidfuzz compares those in C without copying);
    a list of ints in the unlikely case an id is beyond Unicode's range (compared by value)."""
    try:
        return "".join(map(chr, ids))
    except ValueError:
        return ids


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence of two token sequences (any hashable tokens)."""
    if not a or not b:
        return 0
    from rapidfuzz.distance import LCSseq

    ids: dict[Any, int] = {}
    sa = _as_sequence([ids.setdefault(t, len(ids)) for t in a])
    sb = _as_sequence([ids.setdefault(t, len(ids)) for t in b])
    return int(LCSseq.similarity(sa, sb))


def rouge_l_f(a: str, b: str, tokenizer: str = "default") -> float:
    """rouge_score's ROUGE-L F-measure of two texts (symmetric)."""
    ta, tb = tokenize(a, tokenizer), tokenize(b, tokenizer)
    return _fmeasure(lcs_length(ta, tb), len(ta), len(tb))


_MIGRATION_STEP = 256  # items re-indexed per add() while a re-ranking is under way
_BUCKETS = 64  # token-id buckets of the bag bound
_SHARED = 4  # prefix elements a pair that can pass shares (prefixes longer by _SHARED - 1)


class RougeIndex:
    """Items kept so far, indexed for ``max ROUGE-L F > threshold`` queries.

    Tokens get integer ids; each item is stored as a string of those ids (one code point per
    token), which rapidfuzz's C LCS reads in place. A query goes: tokenize, take the rare-first
    prefix, gather the postings of its elements (numpy), count the matches per item and apply
    the count, length and bag bounds, then compute the exact LCS of every survivor in one
    C call (``rapidfuzz.process.cdist``) and rouge_score's F formula on the result. No call
    rebuilds the whole index: a re-ranking is spread over later ``add`` calls.
    """

    def __init__(
        self,
        threshold: float = 0.7,
        tokenizer: str = "default",
        vocabulary_hint: Iterable[str] = (),
    ) -> None:
        self.threshold = threshold
        self.tokenizer = tokenizer
        # Looser bound for pruning; exact check decides.
        self._c = (threshold - 0.01) / 2
        self._min_frac = self._c / (1 - self._c)  # overlap must exceed this fraction of a length
        self._ids: dict[str, int] = {}
        self._df: list[int] = []  # per token id: how many indexed items contain it
        for text in vocabulary_hint:
            for t in set(self._token_ids(text)):
                self._df[t] += 1
        # Token frequencies the active prefix order is built from (rare first; ids beyond the
        # list count as unseen); the hint's until the first re-ranking, then the items' own.
        self._ranked = self._df
        self._df = [0] * len(self._ranked)
        self._seqs: list[Sequence[Any]] = []
        self._lengths = array("q")
        self._rests = array("q")  # per item: its tokens beyond its prefix
        self._shortest = 1 << 30  # tokens in the shortest non-empty item
        self._bags: NDArray[np.uint8] | None = None  # per item: token counts per id bucket
        self._postings: dict[int, array[int]] = {}
        self._next_rebuild = 64
        # A re-ranking in progress: (frequencies, postings, items indexed so far).
        self._migration: tuple[list[int], dict[int, array[int]], list[int]] | None = None
        self.pairs_scored = 0
        # The last text looked up, its token ids and active-order prefix: a candidate that is
        # checked and then kept is tokenized and ranked once.
        self._last: tuple[str, list[int], list[int] | None] = ("", [], None)

    # -- tokens ---------------------------------------------------------------------------------
    def _lookup(self, text: str) -> list[int]:
        if text == self._last[0]:
            return self._last[1]
        tids = self._token_ids(text)
        self._last = (text, tids, None)
        return tids

    def _active_prefix(self, tids: list[int]) -> list[int]:
        text, last_tids, prefix = self._last
        if prefix is not None and tids is last_tids:
            return prefix
        prefix = self._prefix(tids, self._ranked)
        if tids is last_tids:
            self._last = (text, tids, prefix)
        return prefix

    def _token_ids(self, text: str) -> list[int]:
        ids = self._ids
        out = []
        for tok in tokenize(text, self.tokenizer):
            i = ids.get(tok)
            if i is None:
                i = len(self._df)
                if 0xD800 <= i < 0xE000:  # keep the id strings free of surrogate code points
                    self._df.extend([0] * (0xE000 - i))
                    i = 0xE000
                ids[tok] = i
                self._df.append(0)
            out.append(i)
        return out

    def _prefix(self, tids: list[int], ranked: list[int]) -> list[int]:
        """Element keys (token id | occurrence << 32) of the rare-first prefix: any item whose
        token bag overlaps this one enough to pass the threshold shares ``_SHARED`` of them
        (or all its shared elements, if it has fewer)."""
        n = len(ranked)
        seen: dict[int, int] = {}
        elems = []
        for t in tids:
            k = seen.get(t, 0)
            seen[t] = k + 1
            elems.append(((ranked[t] if t < n else 0) << 32 | t, k))
        elems.sort()
        return [(r & 0xFFFFFFFF) | k << 32 for r, k in elems[: len(tids) - self._rest(len(tids))]]

    def _rest(self, length: int) -> int:
        """Tokens of an item of ``length`` tokens beyond its prefix."""
        return max(0, math.floor(self._min_frac * length) + 1 - _SHARED)

    # -- queries --------------------------------------------------------------------------------
    def _survivors(self, tids: list[int]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Items that share enough prefix elements and pass the length and bag bounds, and
        their lengths."""
        import numpy as np

        la = len(tids)
        postings = self._postings
        arrays = [p for p in map(postings.get, self._active_prefix(tids)) if p]
        if not arrays:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        flat = np.frombuffer(arrays[0], dtype=np.int64)
        if len(arrays) > 1:
            flat = np.concatenate([np.frombuffer(p, dtype=np.int64) for p in arrays])
        # Count bound. A shared element at or before the end of the shorter-reaching of the
        # two prefixes (in the common order) is in both, so it was counted; the others lie
        # beyond that prefix: overlap <= counted + max(tokens after either prefix). A pair
        # that can pass also shares min(_SHARED, its overlap) prefix elements, and its overlap
        # exceeds c·(la + lb) >= c·(la + shortest item).
        least = min(_SHARED, math.floor(self._c * (la + self._shortest)) + 1)
        counts = np.bincount(flat)
        idx = np.flatnonzero(counts >= least)
        lb = np.frombuffer(self._lengths, dtype=np.int64)[idx]
        rest = np.maximum(np.frombuffer(self._rests, dtype=np.int64)[idx], self._rest(la))
        need = self._c * (la + lb)  # F > t needs lcs (<= overlap) > t·(la+lb)/2
        keep = (counts[idx] + rest > need) & (np.minimum(la, lb) > need)
        idx, lb, need = idx[keep], lb[keep], need[keep]
        # Bag bound: overlap <= sum over id buckets of the smaller count. Items of more than
        # 255 tokens (counts beyond uint8) always pass it.
        assert self._bags is not None
        shared = np.minimum(self._bags[idx], self._bag(tids)).sum(axis=1, dtype=np.int64)
        keep = (shared > need) | (lb > 255)
        return idx[keep], lb[keep]

    def _best(self, tids: list[int]) -> tuple[float, int | None]:
        la = len(tids)
        if la == 0:
            return 0.0, None
        found, lb = self._survivors(tids)
        n = len(found)
        if not n:
            return 0.0, None
        import numpy as np
        from rapidfuzz import process
        from rapidfuzz.distance import LCSseq

        self.pairs_scored += n
        query = _as_sequence(tids)
        seqs = self._seqs
        if n == 1:
            choices: Sequence[Any] = [seqs[found[0]]]
        else:
            choices = itemgetter(*found.tolist())(seqs)
        lcs = process.cdist([query], choices, scorer=LCSseq.similarity, dtype=np.int64)[0]
        # rouge_score.score(target=kept item, prediction=candidate): precision lcs/la, recall
        # lcs/lb, F = 2PR/(P+R), the same IEEE operations in the same order as its Python.
        # Every survivor shares a token, so lcs >= 1 and P + R > 0.
        precision = lcs / la
        recall = lcs / lb
        f = 2 * precision * recall / (precision + recall)
        k = int(np.argmax(f))
        return _fmeasure(int(lcs[k]), la, int(lb[k])), int(found[k])

    def most_similar(self, text: str) -> tuple[float, int | None]:
        """(best F among kept items whose F could exceed the threshold, its index)."""
        return self._best(self._lookup(text))

    def is_novel(self, text: str) -> tuple[bool, float, int | None]:
        best, idx = self._best(self._lookup(text))
        return best <= self.threshold, best, idx

    def nearest(self, text: str) -> tuple[float, int | None]:
        """Exact (highest F against every kept item, its index), whatever the threshold."""
        tids = self._lookup(text)
        best, idx = self._best(tids)
        if best > self.threshold or not tids or not self._seqs:
            return best, idx
        # Nothing passes the threshold: one pass over every item in C. Indel's normalized
        # similarity is 2·lcs/(la+lb), the same order as ROUGE-L F; the F itself is recomputed.
        from rapidfuzz import process
        from rapidfuzz.distance import Indel, LCSseq

        query = _as_sequence(tids)
        hit = process.extractOne(query, self._seqs, scorer=Indel.normalized_similarity)
        if hit is None:
            return 0.0, None
        i = int(hit[2])
        f = _fmeasure(int(LCSseq.similarity(query, self._seqs[i])), len(tids), self._lengths[i])
        return (f, i) if f > 0 else (0.0, None)

    # -- updates --------------------------------------------------------------------------------
    def add(self, text: str) -> None:
        tids = self._lookup(text)
        idx = len(self._seqs)
        self._seqs.append(_as_sequence(tids))
        self._lengths.append(len(tids))
        self._rests.append(self._rest(len(tids)))
        self._store_bag(idx, tids)
        df = self._df
        for t in set(tids):
            df[t] += 1
        if tids:
            self._shortest = min(self._shortest, len(tids))
        for key in self._active_prefix(tids):
            self._post(self._postings, key, idx)
        if self._migration is None and len(self._seqs) >= self._next_rebuild:
            # Re-rank tokens by how often they occur in what is indexed (rare first), so
            # prefixes stay made of rare tokens and far fewer pairs are looked at. Any fixed
            # order keeps prefix filtering exact. Done at geometric sizes (linear total cost),
            # and in steps of _MIGRATION_STEP items per add(): the old index answers queries
            # until the new one holds every item, so no single call takes long.
            self._migration = (list(df), {}, [0])
        if self._migration is not None:
            self._migrate()

    @staticmethod
    def _bag(tids: list[int]) -> NDArray[np.uint8]:
        import numpy as np

        counts = np.bincount(np.asarray(tids, dtype=np.int64) % _BUCKETS, minlength=_BUCKETS)
        return np.minimum(counts, 255).astype(np.uint8)

    def _store_bag(self, idx: int, tids: list[int]) -> None:
        import numpy as np

        bags = self._bags
        if bags is None or idx >= len(bags):
            grown = np.zeros((max(1024, 2 * idx), _BUCKETS), dtype=np.uint8)
            if bags is not None:
                grown[: len(bags)] = bags
            self._bags = bags = grown
        if tids:
            bags[idx] = self._bag(tids)

    def _index(
        self, idx: int, tids: list[int], ranked: list[int], postings: dict[int, array[int]]
    ) -> None:
        for key in self._prefix(tids, ranked):
            self._post(postings, key, idx)

    @staticmethod
    def _post(postings: dict[int, array[int]], key: int, idx: int) -> None:
        p = postings.get(key)
        if p is None:
            p = postings[key] = array("q")
        p.append(idx)

    def _migrate(self) -> None:
        assert self._migration is not None
        ranked, postings, done = self._migration
        end = min(len(self._seqs), done[0] + _MIGRATION_STEP)
        for idx in range(done[0], end):
            self._index(idx, self._item_ids(idx), ranked, postings)
        done[0] = end
        if end == len(self._seqs):
            self._ranked, self._postings, self._migration = ranked, postings, None
            self._last = (self._last[0], self._last[1], None)  # its prefix was in the old order
            self._next_rebuild = max(64, int(len(self._seqs) * 1.5))

    def _item_ids(self, idx: int) -> list[int]:
        s = self._seqs[idx]
        return [ord(c) for c in s] if isinstance(s, str) else list(s)

    def __len__(self) -> int:
        return len(self._seqs)


class RougeNoveltyFilter(Filter):
    """Drop an instruction whose ROUGE-L F against anything kept so far exceeds ``threshold``.

    Options: ``threshold`` (0.7, as in Self-Instruct), ``tokenizer`` (``default`` =
    rouge_score's, which keeps only [a-z0-9]; ``unicode`` for non-Latin scripts).

    Scoring without filtering (reports, analysis): ``nearest(text)`` returns the kept
    instruction with the highest ROUGE-L F against ``text`` and that F, ``max_score(text)``
    the F alone. Both are exact (rouge_score's value, whatever ``threshold`` is), keep nothing,
    and take a few milliseconds against 50,000 kept instructions.
    """

    name = "rouge"
    stage = "instruction"

    def __init__(self, threshold: float = 0.7, tokenizer: str = "default", **options: Any) -> None:
        super().__init__(threshold=threshold, tokenizer=tokenizer, **options)
        self.threshold = threshold
        self.tokenizer = tokenizer
        tokenize("", tokenizer)  # validate the name early
        # The C parts are imported here, where filters are built (off the event loop in a
        # run), not inside the first check() on the loop.
        import numpy  # noqa: F401
        import rapidfuzz.distance
        import rapidfuzz.process  # noqa: F401

        self.index = RougeIndex(threshold, tokenizer)
        self._kept_texts: list[str] = []

    def prime(self, kept: Sequence[Any]) -> None:
        texts = [str(k) for k in kept]
        self.index = RougeIndex(self.threshold, self.tokenizer, vocabulary_hint=texts)
        self._kept_texts = []
        for t in texts:
            self.keep(t)

    def check(self, item: Any) -> str | None:
        novel, best, idx = self.index.is_novel(str(item))
        if novel:
            return None
        similar = self._kept_texts[idx] if idx is not None else "?"
        return f"ROUGE-L {best:.2f} > {self.threshold} with {similar[:80]!r}"

    def keep(self, item: Any) -> None:
        self.index.add(str(item))
        self._kept_texts.append(str(item))

    def nearest(self, text: str) -> tuple[str | None, float]:
        """(the kept instruction most similar to ``text``, its ROUGE-L F with ``text``), exact
        as rouge_score computes it; ``(None, 0.0)`` when no kept instruction shares a token.
        Kept instructions are those given to ``prime`` and ``keep``; ``text`` is not kept."""
        best, idx = self.index.nearest(str(text))
        return (self._kept_texts[idx], best) if idx is not None else (None, 0.0)

    def max_score(self, text: str) -> float:
        """The highest ROUGE-L F of ``text`` against the kept instructions (0.0 if none)."""
        return self.nearest(text)[1]

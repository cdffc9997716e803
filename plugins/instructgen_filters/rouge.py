"""ROUGE-L novelty, fast: the same keep/drop decisions as ``rouge_score``'s
``RougeScorer(["rougeL"]).score(a, b).fmeasure > threshold``, without scoring every pair.

How: ROUGE-L F is ``2·lcs/(la+lb)`` and ``lcs ≤ overlap`` (shared tokens, counted as a bag), so
a pair can only pass the threshold if the two token bags overlap by more than a fixed fraction
of each length. Prefix filtering (Chaudhuri et al., 2006; Xiao et al., 2008) then finds every such
pair through an inverted index on a short, rare-first prefix of each instruction; only those pairs
get an exact LCS, computed bit-parallel (Allison–Dix / Hyyrö) on Python integers, and compared
with ``rouge_score``'s own floating-point formula so decisions agree to the last bit.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from instructgen.filter import Filter

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


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence, bit-parallel over ``b``."""
    if not a or not b:
        return 0
    masks: dict[Any, int] = {}
    for i, tok in enumerate(b):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for tok in a:
        m = masks.get(tok)
        if m is None:
            continue
        u = v & m
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def _fmeasure(lcs: int, la: int, lb: int) -> float:
    # Exactly rouge_score's arithmetic: precision, recall, then 2PR/(P+R).
    if not la or not lb:
        return 0.0
    precision = lcs / la
    recall = lcs / lb
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l_f(a: str, b: str, tokenizer: str = "default") -> float:
    ta, tb = tokenize(a, tokenizer), tokenize(b, tokenizer)
    return _fmeasure(lcs_length(ta, tb), len(ta), len(tb))


class RougeIndex:
    """Items kept so far, indexed for ``max ROUGE-L F > threshold`` queries."""

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
        self._freq: Counter[str] = Counter()
        for text in vocabulary_hint:
            self._freq.update(set(tokenize(text, tokenizer)))
        self._rank_cache: dict[str, tuple[int, str]] = {}
        self.items: list[list[str]] = []
        self._lengths: list[int] = []
        self._seen_df: Counter[str] = Counter()
        self._next_rebuild = 64
        self._postings: defaultdict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
        self.pairs_scored = 0

    def _rank(self, tok: str) -> tuple[int, str]:
        r = self._rank_cache.get(tok)
        if r is None:
            r = self._rank_cache[tok] = (self._freq.get(tok, 0), tok)
        return r

    def _prefix(self, tokens: list[str]) -> list[tuple[str, int]]:
        seen: Counter[str] = Counter()
        elems = []
        for t in tokens:
            elems.append((t, seen[t]))
            seen[t] += 1
        elems.sort(key=lambda e: (self._rank(e[0]), e[1]))
        need = math.floor(self._min_frac * len(tokens)) + 1
        return elems[: max(0, len(tokens) - need + 1)]

    def most_similar(self, text: str) -> tuple[float, int | None]:
        """(best F among kept items whose F could exceed the threshold, its index)."""
        tokens = tokenize(text, self.tokenizer)
        return self._best(tokens, stop_above=None)

    def _best(self, tokens: list[str], stop_above: float | None) -> tuple[float, int | None]:
        la = len(tokens)
        if la == 0:
            return 0.0, None
        seen: set[int] = set()
        best, best_i = 0.0, None
        c = self._c
        items, lengths = self.items, self._lengths
        for i, elem in enumerate(self._prefix(tokens)):
            for idx, j in self._postings.get(elem, ()):
                if idx in seen:
                    continue
                seen.add(idx)
                lb = lengths[idx]
                need = c * (la + lb)  # F > t needs lcs (<= overlap) > t·(la+lb)/2
                # Positional filter: this is the pair's first shared token in the global
                # order, so at most 1 + min(tokens left after it on either side) are shared.
                if 1 + min(la - i - 1, lb - j - 1) <= need or min(la, lb) <= need:
                    continue
                self.pairs_scored += 1
                # rouge_score.score(target=kept item, prediction=candidate)
                f = _fmeasure(lcs_length(items[idx], tokens), la, lb)
                if f > best:
                    best, best_i = f, idx
                    if stop_above is not None and f > stop_above:
                        return best, best_i
        return best, best_i

    def is_novel(self, text: str) -> tuple[bool, float, int | None]:
        tokens = tokenize(text, self.tokenizer)
        best, idx = self._best(tokens, stop_above=self.threshold)
        return best <= self.threshold, best, idx

    def add(self, text: str) -> None:
        tokens = tokenize(text, self.tokenizer)
        idx = len(self.items)
        self.items.append(tokens)
        self._lengths.append(len(tokens))
        self._seen_df.update(set(tokens))
        if len(self.items) >= self._next_rebuild:
            self._rebuild()
            return
        for j, elem in enumerate(self._prefix(tokens)):
            self._postings[elem].append((idx, j))

    def _rebuild(self) -> None:
        """Re-rank tokens by how often they occur in what is indexed (rare first) and rebuild
        the prefix index. Any fixed order keeps prefix filtering exact; an order matching the
        data keeps prefixes made of rare tokens, so far fewer pairs are ever looked at.
        Done at geometric sizes, so the total cost stays linear."""
        self._freq = Counter(self._seen_df)
        self._rank_cache = {}
        self._postings = defaultdict(list)
        for idx, tokens in enumerate(self.items):
            for j, elem in enumerate(self._prefix(tokens)):
                self._postings[elem].append((idx, j))
        self._next_rebuild = max(64, int(len(self.items) * 1.5))

    def __len__(self) -> int:
        return len(self.items)


class RougeNoveltyFilter(Filter):
    """Drop an instruction whose ROUGE-L F against anything kept so far exceeds ``threshold``.

    Options: ``threshold`` (0.7, as in Self-Instruct), ``tokenizer`` (``default`` =
    rouge_score's, which keeps only [a-z0-9]; ``unicode`` for non-Latin scripts).
    """

    name = "rouge"
    stage = "instruction"

    def __init__(self, threshold: float = 0.7, tokenizer: str = "default", **options: Any) -> None:
        super().__init__(threshold=threshold, tokenizer=tokenizer, **options)
        self.threshold = threshold
        self.tokenizer = tokenizer
        tokenize("", tokenizer)  # validate the name early
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

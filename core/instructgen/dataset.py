"""``InstructionDataset``: rows of instruction / text (input) / target (output) plus provenance.

Saved as a Hugging Face ``datasets`` folder (``DIR/data``) plus ``DIR/metadata.json``;
``load(DIR)`` gives back exactly what was saved. ``datasets`` is imported only when saving,
loading or converting. This module is the row container; its generation class methods
(``generate_dataset``, ``generate_dataset_from_dir`` and their async twins) forward to the front
door ``instructgen.generate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shutil
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import instructgen.plugins as plugins
import instructgen.runs as runs
from instructgen.atomic import write_json_atomic
from instructgen.batching import BatchConfig
from instructgen.diskspace import disk_full, is_disk_full
from instructgen.dispatch import DispatchConfig, with_batch
from instructgen.engine_contract import Engine
from instructgen.errors import DatasetError
from instructgen.filter import Filter
from instructgen.outdir import LOCK_NAME, claim, hold_lock, remove_workdir, replace_folder
from instructgen.progress import ProgressCallback

if TYPE_CHECKING:
    import pandas as pd
    from datasets import Dataset

__all__ = ["COLUMNS", "JUDGE_COLUMN", "InstructionDataset", "quiet_datasets", "run_sync"]

COLUMNS = (
    "instruction",
    "text",
    "target",
    "engine",
    "model",
    "seed_task_ids",
    "is_classification",
    "source",
)
JUDGE_COLUMN = "judge_score"
"""The optional column a row judge (``--filter llm-judge``) adds: each row's score (a float;
missing only in rows merged from an unjudged dataset). A dataset without it has exactly
``COLUMNS``."""
FORMAT_VERSION = 1
T = TypeVar("T")


def _features(judged: bool = False) -> Any:
    from datasets import Features, Sequence, Value

    extra = {JUDGE_COLUMN: Value("float64")} if judged else {}
    return Features(
        {
            "instruction": Value("string"),
            "text": Value("string"),
            "target": Value("string"),
            "engine": Value("string"),
            "model": Value("string"),
            "seed_task_ids": Sequence(Value("string")),
            "is_classification": Value("bool"),
            "source": Value("string"),
            **extra,
        }
    )


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Run ``datasets`` calls without their progress bars (the library never draws on the
    caller's terminal or logs), restoring the caller's setting afterwards."""
    from datasets.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    missing = [c for c in ("instruction", "target") if c not in row]
    if missing:
        raise DatasetError(f"row lacks the column(s) {', '.join(missing)}: {str(row)[:200]}")
    out = {
        "instruction": str(row["instruction"]),
        "text": str(row.get("text", row.get("input", "")) or ""),
        "target": str(row["target"]),
        "engine": str(row.get("engine") or ""),
        "model": str(row.get("model") or ""),
        "seed_task_ids": [str(x) for x in (row.get("seed_task_ids") or [])],
        "is_classification": bool(row.get("is_classification", False)),
        "source": str(row.get("source") or ""),
    }
    if JUDGE_COLUMN in row:
        score = row[JUDGE_COLUMN]
        out[JUDGE_COLUMN] = None if score is None else float(score)
    return out


def _with_judge_column(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of one schema: when any row has a judge score, every row has the column."""
    if any(JUDGE_COLUMN in r for r in rows):
        for r in rows:
            r.setdefault(JUDGE_COLUMN, None)
    return rows


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, also inside a running loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())  # type: ignore[arg-type]
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def _write_arrow(rows: Iterable[dict[str, Any]], path: Path, batch: int = 1000) -> None:
    """``rows`` (already normalised) as an Arrow stream file, the format ``datasets`` maps."""
    import pyarrow as pa

    schema = _features().arrow_schema
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        buffer: list[dict[str, Any]] = []
        for row in rows:
            buffer.append(row)
            if len(buffer) >= batch:
                writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
                buffer.clear()
        if buffer:
            writer.write_table(pa.Table.from_pylist(buffer, schema=schema))


class InstructionDataset:
    """An instruction-tuning dataset. Iterate for row dicts; ``run_report`` describes the run.

    Rows are held in memory, or (``from_arrow_file``, what a directory run returns) read from a
    memory-mapped Arrow file on disk: iterating, ``len``, indexing, columns, ``save`` and
    ``export`` then work without loading the rows; ``rows`` loads them."""

    def __init__(
        self, rows: Iterable[dict[str, Any]] = (), run_report: dict[str, Any] | None = None
    ) -> None:
        self._rows: list[dict[str, Any]] | None = _with_judge_column([_normalise(r) for r in rows])
        self._table: Dataset | None = None  # the rows on disk, when not in memory
        self.run_report: dict[str, Any] = dict(run_report or {})

    @classmethod
    def from_arrow_file(
        cls, path: str | Path, run_report: dict[str, Any] | None = None
    ) -> InstructionDataset:
        """A dataset backed by the Arrow stream file ``path`` (memory-mapped, not loaded)."""
        from datasets import Dataset, DatasetInfo

        ds = cls((), run_report)
        with quiet_datasets():
            ds._table = Dataset.from_file(str(path), info=DatasetInfo(features=_features()))
        ds._rows = None
        return ds

    @classmethod
    def from_row_stream(
        cls,
        rows: Iterable[dict[str, Any]],
        folder: str | Path,
        run_report: dict[str, Any] | None = None,
    ) -> InstructionDataset:
        """Write ``rows`` (row dicts, one at a time) to ``folder/rows.arrow`` and return the
        dataset memory-mapped from it; the folder is removed when the dataset is collected."""
        folder = Path(folder)
        target = folder / "rows.arrow"
        try:
            _write_arrow((_normalise(r) for r in rows), target)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full("the dataset", target, exc) from None
            raise
        ds = cls.from_arrow_file(target, run_report)
        weakref.finalize(ds, remove_workdir, str(folder))
        return ds

    @classmethod
    def from_run(cls, result: runs.RunResult) -> InstructionDataset:
        """The dataset a run produced: its rows and report; a streamed directory run's rows,
        on disk, are written to an Arrow file in the run's folder and memory-mapped from there
        (the folder is removed when the dataset is collected, or at once if this fails)."""
        if result.spill is None or result.workdir is None:
            return cls(result.rows, result.report)
        spill, folder = result.spill, result.workdir
        try:
            ds = cls.from_row_stream(spill, folder, result.report)
        except BaseException:
            remove_workdir(folder)
            raise
        (folder / spill.path.name).unlink(missing_ok=True)
        return ds

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows as a list of dicts (loaded from disk on first use for a disk-backed
        dataset)."""
        if self._rows is None:
            assert self._table is not None
            self._rows = self._table.to_list()
        return self._rows

    @rows.setter
    def rows(self, value: list[dict[str, Any]]) -> None:
        self._rows, self._table = value, None

    @property
    def judged(self) -> bool:
        """Whether the rows carry a ``judge_score`` column."""
        if self._rows is None and self._table is not None:
            return JUDGE_COLUMN in self._table.column_names
        rows = self._rows or []
        return bool(rows) and JUDGE_COLUMN in rows[0]

    @property
    def on_disk(self) -> bool:
        """Whether the rows are read from a memory-mapped file rather than held in memory."""
        return self._rows is None

    # -- container --------------------------------------------------------------------------

    def __len__(self) -> int:
        if self._rows is None and self._table is not None:
            return int(self._table.num_rows)
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._rows is None and self._table is not None:
            return self._iter_table(self._table)
        return iter(self.rows)

    @staticmethod
    def _iter_table(table: Dataset, batch: int = 1000) -> Iterator[dict[str, Any]]:
        for start in range(0, table.num_rows, batch):
            yield from table.select(range(start, min(start + batch, table.num_rows))).to_list()

    @overload
    def __getitem__(self, key: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, key: str) -> list[Any]: ...
    @overload
    def __getitem__(self, key: slice) -> InstructionDataset: ...

    def __getitem__(
        self, key: int | str | slice
    ) -> dict[str, Any] | list[Any] | InstructionDataset:
        """``ds[0]`` a row, ``ds["instruction"]`` a column (a list), ``ds[:10]`` a smaller
        dataset, as with Hugging Face datasets."""
        if isinstance(key, str):
            if key not in self.column_names:
                raise KeyError(f"no column {key!r}; the columns are {', '.join(self.column_names)}")
            if self._rows is None and self._table is not None:
                return list(self._table[key])
            return [row[key] for row in self.rows]
        if self._rows is None and self._table is not None:
            n = int(self._table.num_rows)
            if isinstance(key, slice):
                picked = self._table.select(range(*key.indices(n))).to_list()
                return InstructionDataset(picked, self.run_report)
            index = key + n if key < 0 else key
            if not 0 <= index < n:
                raise IndexError("dataset index out of range")
            row: dict[str, Any] = self._table[index]
            return row
        if isinstance(key, slice):
            return InstructionDataset(self.rows[key], self.run_report)
        return self.rows[key]

    @property
    def column_names(self) -> list[str]:
        return [*COLUMNS, JUDGE_COLUMN] if self.judged else list(COLUMNS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InstructionDataset) or len(self) != len(other):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"InstructionDataset(rows={len(self)})"

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]]) -> InstructionDataset:
        return cls(records)

    @classmethod
    def from_jsonl(cls, path: str | Path) -> InstructionDataset:
        rows = []
        path = Path(path)
        with path.open(encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
        return cls(rows)

    @classmethod
    def from_hf(cls, dataset: Dataset) -> InstructionDataset:
        return cls(dataset.to_list())

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a ``pandas.DataFrame`` with the dataset's columns in order."""
        import pandas

        return pandas.DataFrame.from_records(list(self), columns=self.column_names)

    def to_hf(self) -> Dataset:
        """The rows as a Hugging Face ``datasets.Dataset`` with the dataset's typed features."""
        from datasets import Dataset

        if self._rows is None and self._table is not None:
            return self._table  # memory-mapped from disk
        features = _features(self.judged)
        if not self.rows:  # from_list cannot carry a schema without rows
            return Dataset.from_dict({k: [] for k in features}, features=features)
        return Dataset.from_list(self.rows, features=features)

    # -- persistence ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write ``path/data`` (a ``datasets`` folder) and ``path/metadata.json``.

        ``path`` must be new, empty or instructgen's own (an earlier run or save); any other
        folder raises ``OutputFolderError`` and nothing in it is touched. Other files of a run
        (run.json, the caches) are left alone; the new data folder is written aside and renamed
        into place, so an interrupted save leaves the previous dataset whole."""
        path = claim(path, what="dataset folder")
        with hold_lock(path / LOCK_NAME, what=f"dataset folder {path}"):
            staged = path / f".instructgen-save-{os.getpid()}"
            shutil.rmtree(staged, ignore_errors=True)
            try:
                with quiet_datasets():
                    self.to_hf().save_to_disk(str(staged / "data"))
                meta = {
                    "format": "instructgen-dataset",
                    "version": FORMAT_VERSION,
                    "columns": self.column_names,
                    "rows": len(self),
                    "run_report": self.run_report,
                }
                replace_folder(staged / "data", path / "data")
                write_json_atomic(path / "metadata.json", meta)
            except OSError as exc:
                if is_disk_full(exc):
                    raise disk_full("the dataset", path, exc) from None
                raise
            finally:
                shutil.rmtree(staged, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> InstructionDataset:
        path = Path(path)
        meta_path, data = path / "metadata.json", path / "data"
        if not meta_path.is_file() or not data.is_dir():
            raise DatasetError(
                f"{path}: not a saved instructgen dataset (expected metadata.json and data/)"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{meta_path}: invalid JSON: {exc.msg}") from None
        if meta.get("format") != "instructgen-dataset":
            raise DatasetError(f"{meta_path}: not an instructgen dataset")
        if int(meta.get("version", 0)) > FORMAT_VERSION:
            raise DatasetError(
                f"{path}: saved by a newer instructgen (format "
                f"{meta['version']}); upgrade to load it"
            )
        report = meta.get("run_report") or {}
        if meta.get("rows") == 0:
            return cls([], report)  # datasets cannot reload an empty saved table
        from datasets import load_from_disk

        with quiet_datasets():
            return cls(load_from_disk(str(data)).to_list(), report)

    def export(self, fmt: str, path: str | Path) -> Path:
        """Write the dataset with the exporter plugin registered as ``fmt``."""
        cls = plugins.exporters().get(fmt)
        path = Path(path)
        if path.is_dir():  # replacing a folder by a file would delete what it holds
            raise DatasetError(
                f"{path} is a folder; name the file to write, e.g. {path}/data.{cls.extension}"
            )
        return cls().export(self, path)

    # -- judging ----------------------------------------------------------------------------------

    async def ajudge(
        self,
        engine: str | Engine,
        *,
        threshold: float | None = None,
        judge: str | Filter = "llm-judge",
        judge_options: Mapping[str, Any] | None = None,
        cache: bool | str | Path = True,
        config: DispatchConfig | None = None,
        batch: bool | BatchConfig = False,
        progress: ProgressCallback | None = None,
    ) -> InstructionDataset:
        """A new dataset of the rows ``engine`` rates at least ``threshold`` (default: the
        judge's, 4.5 for ``llm-judge``), each with its ``judge_score``; ``run_report["judge"]``
        holds the counts and the histogram. The requests are those of judging inside a run
        (``filters=[..., "llm-judge"]``), so that run's cache answers them."""
        options = dict(judge_options or {})
        if threshold is not None:
            options["threshold"] = threshold
        name = judge if isinstance(judge, str) else judge.name
        result = await runs.run_judge(
            list(self),
            engine,
            judge=judge,  # type: ignore[arg-type]
            filter_options={name: options},
            cache=cache,
            config=with_batch(config, batch),
            progress=progress,
        )
        return InstructionDataset(result.rows, result.report)

    def judge(self, *args: Any, **kwargs: Any) -> InstructionDataset:
        """``ajudge`` for sync code: the same arguments (its signature is ``ajudge``'s)."""
        return run_sync(lambda: self.ajudge(*args, **kwargs))

    # -- generation (the seed's API): forwards to the front door, instructgen.generate --------

    @classmethod
    async def agenerate_dataset(cls, *args: Any, **kwargs: Any) -> InstructionDataset:
        """Forwards to ``instructgen.generate.agenerate_dataset`` (its signature and
        documentation are this method's)."""
        return await _generate.agenerate_dataset(*args, **kwargs)

    @classmethod
    def generate_dataset(cls, *args: Any, **kwargs: Any) -> InstructionDataset:
        """Forwards to ``instructgen.generate.generate_dataset``."""
        return _generate.generate_dataset(*args, **kwargs)

    @classmethod
    async def agenerate_dataset_from_dir(cls, *args: Any, **kwargs: Any) -> InstructionDataset:
        """Forwards to ``instructgen.generate.agenerate_dataset_from_dir``."""
        return await _generate.agenerate_dataset_from_dir(*args, **kwargs)

    @classmethod
    def generate_dataset_from_dir(cls, *args: Any, **kwargs: Any) -> InstructionDataset:
        """Forwards to ``instructgen.generate.generate_dataset_from_dir``."""
        return _generate.generate_dataset_from_dir(*args, **kwargs)


InstructionDataset.judge.__signature__ = inspect.signature(  # type: ignore[attr-defined]
    InstructionDataset.ajudge
)

# The front door defines the generation functions the class methods above forward to, and
# gives those methods its signatures and documentation (imported last: it imports this module).
import instructgen.generate as _generate  # noqa: E402

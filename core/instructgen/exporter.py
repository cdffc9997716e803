"""The exporter contract: write an ``InstructionDataset`` in one output format."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from instructgen.dataset import InstructionDataset

__all__ = ["Exporter"]


class Exporter(ABC):
    name: ClassVar[str] = ""
    extension: ClassVar[str] = ""
    description: ClassVar[str] = ""

    @abstractmethod
    def export(self, dataset: InstructionDataset, path: Path) -> Path:
        """Write ``dataset`` to ``path`` (a file, or a folder for multi-file formats) atomically
        and return what was written."""

"""Legacy Word .doc through catdoc (Debian package), or antiword / LibreOffice if present."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from instructgen import Extracted, ExtractionError, Extractor, ExtractorRegistry, hookimpl

__all__ = ["DocExtractor"]

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class DocExtractor(Extractor):
    name = "doc"
    extensions = ("doc", "dot")
    mime_types = ("application/msword",)
    priority = 10

    def unavailable_reason(self) -> str | None:
        if not any(shutil.which(t) for t in ("catdoc", "antiword", "soffice")):
            return "no .doc reader installed: apt-get install catdoc"
        return None

    def sniff(self, head: bytes) -> bool:
        return head.startswith(OLE_MAGIC)

    def extract(self, path: Path) -> Extracted:
        errors = []
        for tool, cmd in (
            ("catdoc", ["catdoc", "-w", "-d", "utf-8", str(path)]),
            ("antiword", ["antiword", "-w", "0", str(path)]),
        ):
            if shutil.which(tool) is None:
                continue
            r = subprocess.run(cmd, capture_output=True, timeout=120)
            text = r.stdout.decode("utf-8", "replace")
            if r.returncode == 0 and text.strip():
                return Extracted(text.strip(), {"tool": tool})
            errors.append(f"{tool}: {r.stderr.decode('utf-8', 'replace').strip()[:200]}")
        if shutil.which("soffice"):
            with tempfile.TemporaryDirectory() as tmp:
                r = subprocess.run(
                    [
                        "soffice",
                        "--headless",
                        "--convert-to",
                        "txt:Text",
                        "--outdir",
                        tmp,
                        str(path),
                    ],
                    capture_output=True,
                    timeout=300,
                )
                out = Path(tmp) / (path.stem + ".txt")
                if out.exists() and out.read_text(errors="replace").strip():
                    return Extracted(out.read_text(errors="replace").strip(), {"tool": "soffice"})
            errors.append("soffice: no text")
        raise ExtractionError(str(path), "; ".join(errors) or "no text found")


@hookimpl
def register_extractors(registry: ExtractorRegistry) -> None:
    registry.add(DocExtractor)

"""Spreadsheets: .xlsx through openpyxl, legacy .xls through xlrd; one block per sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from instructgen_office._text import join, row

__all__ = ["read_xls", "read_xlsx"]


def read_xlsx(path: Path) -> tuple[str, dict[str, Any]]:
    import openpyxl

    workbook = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    try:
        sheets = []
        for ws in workbook.worksheets:
            ws.reset_dimensions()  # the stored size is often wrong: read every row there is
            rows = join(row(r) for r in ws.iter_rows(values_only=True))
            if rows:
                sheets.append(f"{ws.title}\n{rows}")
    finally:
        workbook.close()
    return join(sheets, "\n\n"), {"sheets": len(workbook.sheetnames)}


def read_xls(path: Path) -> tuple[str, dict[str, Any]]:
    import xlrd

    book = xlrd.open_workbook(str(path), on_demand=True)
    try:
        sheets = []
        for ws in book.sheets():
            rows = join(row(ws.row_values(i)) for i in range(ws.nrows))
            if rows:
                sheets.append(f"{ws.name}\n{rows}")
        return join(sheets, "\n\n"), {"sheets": book.nsheets}
    finally:
        book.release_resources()

"""The CSV files the CLI writes for staff to open in a spreadsheet.

A cell a spreadsheet would take for a formula (its text starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) is written with a leading apostrophe, so a name or a
description someone typed into the sign-up form is shown as text and never evaluated
(OWASP's advice on CSV injection). The files are UTF-8 with a byte-order mark and ``;``
between cells: what Excel in a Danish locale opens as columns, with æ, ø and å intact.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from enum import Enum
from pathlib import Path

from cli.files import replacing

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DELIMITER = ";"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ja" if value else "nej"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def cell(value: object) -> str:
    """``value`` as a spreadsheet shows it, never as a formula."""
    text = _text(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write the file whole or not at all; the number of rows written."""
    count = 0
    with replacing(path, encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, delimiter=DELIMITER, quoting=csv.QUOTE_MINIMAL)
        writer.writerow([cell(h) for h in header])
        for row in rows:
            writer.writerow([cell(v) for v in row])
            count += 1
    return count

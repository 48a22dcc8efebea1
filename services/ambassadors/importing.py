"""Parsing step of ``samskab ambassadors import FILE.csv``: CSV text in, SignUp fields out.

Pure: no files, no database. Validation against ``SignUp`` is left to the import handler, so
that every bad value is reported with the model's own message, and the parser only reports
what it alone can see (the shape of the file).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

from contracts.ambassadors import IMPORT_ROWS_MAX

REQUIRED_COLUMNS: tuple[str, ...] = ("name", "email", "kind")
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "phone",
    "organisation",
    "website",
    "description",
    "themes",
    "core_areas",
    "skills",
    "public",
    "networks_at_once",
    "paused_until",
)
# consent and staff are deliberately absent: a file cannot claim consent; the import handler
# sets both because an import is a staff sign-up.
KNOWN_COLUMNS: frozenset[str] = frozenset(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
LIST_COLUMNS: frozenset[str] = frozenset({"themes", "core_areas", "skills"})
# Enum values are lower case; staff typing "Association" in Excel should not be rejected.
LOWERCASE_COLUMNS: frozenset[str] = frozenset({"kind", "core_areas"})

# Danish spreadsheets write dates day first (31-01-2027, 31.01.2027); ISO dates pass as they are.
_DANISH_DATE = re.compile(r"^(\d{1,2})[-./](\d{1,2})[-./](\d{4})$")

TRUE_WORDS: frozenset[str] = frozenset({"true", "ja", "yes", "1"})
FALSE_WORDS: frozenset[str] = frozenset({"false", "nej", "no", "0"})


@dataclass(frozen=True)
class CsvRow:
    line: int  # 1-based line number in the file of this data row (header is line 1)
    fields: dict[str, object]  # keys are SignUp field names; values ready for model_validate


@dataclass(frozen=True)
class CsvProblem:
    line: int
    message: str


def parse_ambassador_csv(text: str) -> tuple[list[CsvRow], list[CsvProblem]]:
    """Split ``text`` into rows of SignUp fields and the problems found on the way.

    A bad row is reported and skipped; the good rows around it are still returned.
    """
    text = text.removeprefix("\ufeff")
    delimiter = _sniff_delimiter(text)
    # With ";" as the cell delimiter, a ";" inside a cell cannot separate list items.
    list_separators = ("|",) if delimiter == ";" else (";", "|")

    rows: list[CsvRow] = []
    problems: list[CsvProblem] = []
    records = _records(text, delimiter, problems)

    header = next(records, None)
    if header is None:
        problems.append(CsvProblem(1, "the file has no header row"))
        return rows, problems
    header_line, header_cells = header

    columns: list[str | None] = []
    for cell in header_cells:
        column = cell.strip().lower()
        if not column:
            # Excel leaves a trailing delimiter now and then; an unnamed column carries nothing.
            columns.append(None)
        elif column not in KNOWN_COLUMNS:
            problems.append(CsvProblem(header_line, f"unknown column {cell.strip()!r}"))
            columns.append(None)
        elif column in columns:
            problems.append(CsvProblem(header_line, f"duplicate column {column!r}"))
            columns.append(None)
        else:
            columns.append(column)

    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        # Every row would fail validation the same way; one message says it better than many.
        for column in missing:
            problems.append(CsvProblem(header_line, f"missing required column {column!r}"))
        return rows, problems

    data_rows = 0
    for line, cells in records:
        data_rows += 1
        if data_rows > IMPORT_ROWS_MAX:
            problems.append(
                CsvProblem(
                    line,
                    f"more than {IMPORT_ROWS_MAX} data rows; this row and the rest are ignored",
                )
            )
            break
        if len(cells) != len(columns):
            problems.append(
                CsvProblem(line, f"row has {len(cells)} cells, header has {len(columns)}")
            )
            continue
        fields: dict[str, object] = {}
        for key, cell in zip(columns, cells, strict=True):
            if key is None:
                continue
            value = _convert(key, cell.strip(), list_separators)
            if value is not None:
                fields[key] = value
        rows.append(CsvRow(line=line, fields=fields))
    return rows, problems


def _sniff_delimiter(text: str) -> str:
    # csv.Sniffer guesses from data rows and is easily fooled by commas in descriptions; the
    # header holds only column names, so counting there is reliable.
    for line in text.splitlines():
        if line.strip():
            return ";" if line.count(";") > line.count(",") else ","
    return ","


def _records(
    text: str, delimiter: str, problems: list[CsvProblem]
) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line, cells) per non-blank record; a quoted cell may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    last_line = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            # The reader cannot resynchronise after a malformed record, so stop here but
            # keep what was read before.
            problems.append(CsvProblem(last_line + 1, f"unreadable CSV: {error}"))
            return
        first_line = last_line + 1
        last_line = reader.line_num
        if all(not cell.strip() for cell in cells):
            continue
        yield first_line, cells


def _convert(column: str, cell: str, list_separators: tuple[str, ...]) -> object | None:
    """Turn one trimmed cell into a SignUp value; None means absent, so the default applies."""
    if not cell:
        return None
    if column in LOWERCASE_COLUMNS:
        cell = cell.lower()
    if column == "public":
        word = cell.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        return cell  # the model's validation names the bad value
    if column == "paused_until" and (day_first := _DANISH_DATE.match(cell)):
        day, month, year = day_first.groups()
        return f"{year}-{int(month):02d}-{int(day):02d}"  # a bad day is the model's to name
    if column in LIST_COLUMNS:
        items = _split(cell, list_separators)
        if column == "themes":
            # isascii() too, since "²".isdigit() is true but int("²") fails.
            return [int(item) if item.isascii() and item.isdigit() else item for item in items]
        return items
    return cell


def _split(cell: str, separators: tuple[str, ...]) -> list[str]:
    for separator in separators[1:]:
        cell = cell.replace(separator, separators[0])
    return [item.strip() for item in cell.split(separators[0]) if item.strip()]

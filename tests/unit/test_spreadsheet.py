"""The CSV files staff open in a spreadsheet: nothing typed into a form becomes a formula,
and Excel in a Danish locale opens them as columns with æ, ø and å intact."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import pytest

from cli import spreadsheet


class Colour(StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    "typed",
    [
        '=HYPERLINK("https://evil.example","Klik")',
        "+45 12 34 56 78",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_a_cell_a_spreadsheet_would_evaluate_is_written_as_text(typed: str) -> None:
    assert spreadsheet.cell(typed) == "'" + typed


def test_ordinary_values_are_written_as_they_are() -> None:
    assert spreadsheet.cell("Foreningen Æblegården") == "Foreningen Æblegården"
    assert spreadsheet.cell("a=b") == "a=b"
    assert spreadsheet.cell(None) == ""
    assert spreadsheet.cell(True) == "ja" and spreadsheet.cell(False) == "nej"
    assert spreadsheet.cell(Colour.RED) == "red"
    assert spreadsheet.cell([1, 5, Colour.RED]) == "1, 5, red"
    when = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    assert spreadsheet.cell(when) == "2026-12-03T09:30:00+00:00"
    # A list whose first element would start a formula is neutralised as a whole.
    assert spreadsheet.cell(["=1+1", "x"]) == "'=1+1, x"


def test_the_file_is_utf8_with_a_bom_and_semicolons_and_reads_back(tmp_path: Path) -> None:
    target = tmp_path / "ud" / "ambassadører.csv"
    rows = [("a1", "Søren; Åse", "=cmd|' /C calc'!A0"), ("a2", 'Sagde "hej"', None)]
    assert spreadsheet.write(target, ("id", "navn", "note"), rows) == 2
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with target.open(encoding="utf-8-sig", newline="") as f:
        back = list(csv.reader(f, delimiter=";"))
    assert back == [
        ["id", "navn", "note"],
        ["a1", "Søren; Åse", "'=cmd|' /C calc'!A0"],
        ["a2", 'Sagde "hej"', ""],
    ]


def test_a_failed_export_leaves_no_half_file(tmp_path: Path) -> None:
    target = tmp_path / "ud.csv"
    target.write_text("the previous export", encoding="utf-8")

    def rows() -> object:
        yield ("a1", "ok")
        raise RuntimeError("the service went away")

    with pytest.raises(RuntimeError):
        spreadsheet.write(target, ("id", "navn"), rows())  # type: ignore[arg-type]
    assert target.read_text(encoding="utf-8") == "the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["ud.csv"]

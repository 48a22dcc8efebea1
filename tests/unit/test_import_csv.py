"""Reading a CSV of ambassadors for ``samskab ambassadors import``."""

from __future__ import annotations

import csv
import io
from importlib.resources import files

import pytest
from pydantic import ValidationError

from contracts.ambassadors import IMPORT_ROWS_MAX, Kind, Register
from services.ambassadors.importing import CsvProblem, CsvRow, parse_ambassador_csv

HEADER = "name,email,phone,kind,organisation,website,description,themes,core_areas,skills,public"


def demo_csv() -> str:
    return (
        files("services.ambassadors")
        .joinpath("demo/ambassadors-2022.csv")
        .read_text(encoding="utf-8")
    )


def staff_sign_up(row: CsvRow) -> Register:
    # What the import handler does with a parsed row.
    return Register.model_validate({**row.fields, "consent": True})


def only(rows: list[CsvRow]) -> CsvRow:
    assert len(rows) == 1, rows
    return rows[0]


# ---------------------------------------------------------------- the shipped demo data


def test_the_demo_csv_has_the_exact_header() -> None:
    assert demo_csv().splitlines()[0] == HEADER


def test_the_demo_csv_parses_without_problems_and_every_row_is_a_valid_sign_up() -> None:
    rows, problems = parse_ambassador_csv(demo_csv())

    assert problems == []
    assert len(rows) >= 80
    for row in rows:
        sign_up = staff_sign_up(row)
        assert sign_up.public is True
        assert sign_up.organisation
        assert sign_up.name == "Kontaktperson"


def test_the_demo_csv_uses_unique_reserved_addresses_and_no_phone_numbers() -> None:
    rows, _ = parse_ambassador_csv(demo_csv())
    sign_ups = [staff_sign_up(row) for row in rows]

    emails = [s.email for s in sign_ups]
    assert len(set(emails)) == len(emails)
    assert all(e.isascii() and e.endswith(".example") for e in emails)
    assert all(s.phone is None for s in sign_ups)
    raw = list(csv.DictReader(io.StringIO(demo_csv())))
    assert all(r["phone"] == "" for r in raw)


def test_the_demo_csv_holds_organisations_only_not_named_persons() -> None:
    rows, _ = parse_ambassador_csv(demo_csv())
    organisations = {str(row.fields["organisation"]) for row in rows}

    assert "Kirkens Korshær" in organisations
    assert "Din Indgang" in organisations
    # The 2022 list names one private person; that entry must stay out of demo data.
    assert not any("Munch" in name for name in organisations)
    assert all(staff_sign_up(row).kind is not Kind.CITIZEN for row in rows)


# ---------------------------------------------------------------- file shapes


def test_a_minimal_comma_file_gives_sign_up_fields_with_line_numbers() -> None:
    text = "name,email,kind\nKontakt,a@x.example,association\nAnden,b@x.example,company\n"

    rows, problems = parse_ambassador_csv(text)

    assert problems == []
    assert rows == [
        CsvRow(line=2, fields={"name": "Kontakt", "email": "a@x.example", "kind": "association"}),
        CsvRow(line=3, fields={"name": "Anden", "email": "b@x.example", "kind": "company"}),
    ]


def test_availability_columns_take_danish_and_iso_dates() -> None:
    text = (
        "name;email;kind;networks_at_once;paused_until\n"
        "Anna;a@x.example;citizen;2;31-01-2027\n"
        "Bo;b@x.example;citizen;;2027-03-01\n"
        "Cai;c@x.example;citizen;1;\n"
    )
    rows, problems = parse_ambassador_csv(text)
    assert problems == []
    entered = [staff_sign_up(row) for row in rows]
    assert [(r.networks_at_once, str(r.paused_until)) for r in entered] == [
        (2, "2027-01-31"),
        (None, "2027-03-01"),
        (1, "None"),
    ]
    [bad] = parse_ambassador_csv(
        "name,email,kind,paused_until\nA,a@x.example,citizen,31-02-2027\n"
    )[0]
    with pytest.raises(ValidationError):
        staff_sign_up(bad)


def test_a_danish_excel_export_with_bom_semicolons_and_crlf_parses() -> None:
    text = (
        "\ufeff Name ;EMAIL;Kind;Organisation;Themes;Core_Areas;Skills;Public\r\n"
        + "Kontaktperson, Kirkens Korshær;kontakt@kirkens-korshaer.example;organisation;"
        + "Kirkens Korshær;1|5| 7 ;housing|health;værested|frivillige;Ja\r\n"
    )

    rows, problems = parse_ambassador_csv(text)

    assert problems == []
    row = only(rows)
    assert row.line == 2
    assert row.fields == {
        "name": "Kontaktperson, Kirkens Korshær",
        "email": "kontakt@kirkens-korshaer.example",
        "kind": "organisation",
        "organisation": "Kirkens Korshær",
        "themes": [1, 5, 7],
        "core_areas": ["housing", "health"],
        "skills": ["værested", "frivillige"],
        "public": True,
    }
    assert staff_sign_up(row).themes == [1, 5, 7]


def test_the_demo_csv_resaved_by_danish_excel_reads_the_same() -> None:
    original = list(csv.DictReader(io.StringIO(demo_csv())))
    out = io.StringIO()
    # Excel writes ";" between cells, so list items in a cell are kept apart by "|".
    writer = csv.DictWriter(out, fieldnames=HEADER.split(","), delimiter=";", lineterminator="\r\n")
    writer.writeheader()
    for record in original:
        for column in ("themes", "core_areas", "skills"):
            record[column] = record[column].replace(";", "|")
        writer.writerow(record)

    rows, problems = parse_ambassador_csv("\ufeff" + out.getvalue())

    assert problems == []
    assert rows == parse_ambassador_csv(demo_csv())[0]


def test_in_a_comma_file_lists_split_on_semicolon_or_bar_and_empties_are_dropped() -> None:
    text = "name,email,kind,themes,skills\nK,k@x.example,other,1; 2|3;;,mad | musik;\n"

    row = only(parse_ambassador_csv(text)[0])

    assert row.fields["themes"] == [1, 2, 3]
    assert row.fields["skills"] == ["mad", "musik"]


def test_empty_cells_are_left_out_so_the_model_defaults_apply() -> None:
    text = f"{HEADER}\nK,k@x.example,,company,,,,,,,\n"

    row = only(parse_ambassador_csv(text)[0])

    assert row.fields == {"name": "K", "email": "k@x.example", "kind": "company"}
    sign_up = staff_sign_up(row)
    assert sign_up.public is False
    assert sign_up.themes == []
    assert sign_up.phone is None


def test_quoted_cells_may_hold_the_delimiter_and_line_breaks() -> None:
    text = (
        'name,email,kind,description\n"K, A",k@x.example,other,"to\nlinjer"\nL,l@x.example,other,\n'
    )

    rows, problems = parse_ambassador_csv(text)

    assert problems == []
    assert [r.fields["name"] for r in rows] == ["K, A", "L"]
    assert rows[0].fields["description"] == "to\nlinjer"
    assert [r.line for r in rows] == [2, 4]


def test_blank_lines_are_skipped_and_line_numbers_still_match_the_file() -> None:
    text = "name;email;kind\n\nK;k@x.example;other\n;;\n   \nL;l@x.example;other\n\n"

    rows, problems = parse_ambassador_csv(text)

    assert problems == []
    assert [r.line for r in rows] == [3, 6]


def test_kind_and_core_areas_are_case_insensitive() -> None:
    text = "name,email,kind,core_areas\nK,k@x.example,Municipal_Unit,Housing;EMPLOYMENT\n"

    sign_up = staff_sign_up(only(parse_ambassador_csv(text)[0]))

    assert sign_up.kind is Kind.MUNICIPAL_UNIT
    assert [c.value for c in sign_up.core_areas] == ["housing", "employment"]


# ---------------------------------------------------------------- problems


def test_an_unknown_column_is_reported_once_and_the_rows_are_still_read() -> None:
    text = "name,emial,email,kind\nK,x,k@x.example,other\nL,y,l@x.example,other\n"

    rows, problems = parse_ambassador_csv(text)

    assert problems == [CsvProblem(line=1, message="unknown column 'emial'")]
    assert [r.fields for r in rows] == [
        {"name": "K", "email": "k@x.example", "kind": "other"},
        {"name": "L", "email": "l@x.example", "kind": "other"},
    ]


def test_consent_and_staff_cannot_be_set_from_the_file() -> None:
    text = "name,email,kind,consent,staff\nK,k@x.example,other,true,true\n"

    rows, problems = parse_ambassador_csv(text)

    assert {p.message for p in problems} == {"unknown column 'consent'", "unknown column 'staff'"}
    assert "consent" not in only(rows).fields
    assert "staff" not in only(rows).fields


def test_a_missing_required_column_is_reported_and_no_rows_come_back() -> None:
    rows, problems = parse_ambassador_csv("name,kind\nK,other\n")

    assert rows == []
    assert problems == [CsvProblem(line=1, message="missing required column 'email'")]


def test_a_short_row_is_reported_with_its_line_and_its_neighbours_still_parse() -> None:
    text = "name,email,kind\nK,k@x.example,other\nkort,række\nL,l@x.example,other\n"

    rows, problems = parse_ambassador_csv(text)

    assert problems == [CsvProblem(line=3, message="row has 2 cells, header has 3")]
    assert [(r.line, r.fields["name"]) for r in rows] == [(2, "K"), (4, "L")]


def test_a_long_row_is_reported_too() -> None:
    text = "name,email,kind\nK,k@x.example,other,ekstra\n"

    rows, problems = parse_ambassador_csv(text)

    assert rows == []
    assert problems == [CsvProblem(line=2, message="row has 4 cells, header has 3")]


def test_an_empty_file_is_a_problem_not_a_crash() -> None:
    assert parse_ambassador_csv("\ufeff\n\n") == (
        [],
        [CsvProblem(line=1, message="the file has no header row")],
    )


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("Ja", True),
        ("yes", True),
        ("1", True),
        ("false", False),
        ("NEJ", False),
        ("No", False),
        ("0", False),
    ],
)
def test_public_understands_english_danish_and_digits(cell: str, expected: bool) -> None:
    row = only(parse_ambassador_csv(f"name,email,kind,public\nK,k@x.example,other,{cell}\n")[0])

    assert row.fields["public"] is expected
    assert staff_sign_up(row).public is expected


def test_an_unreadable_public_value_is_left_for_validation_to_report() -> None:
    rows, problems = parse_ambassador_csv("name,email,kind,public\nK,k@x.example,citizen,måske\n")

    assert problems == []
    assert only(rows).fields["public"] == "måske"
    with pytest.raises(ValidationError) as caught:
        staff_sign_up(only(rows))
    assert [e["loc"] for e in caught.value.errors()] == [("public",)]


@pytest.mark.parametrize(("cell", "parsed"), [("13", 13), ("x", "x"), ("0", 0)])
def test_a_theme_out_of_range_or_not_a_number_fails_validation_not_parsing(
    cell: str, parsed: object
) -> None:
    # A citizen needs no organisation, so the theme is the only thing wrong with the row.
    text = f"name,email,kind,themes\nK,k@x.example,citizen,2;{cell}\n"
    rows, problems = parse_ambassador_csv(text)

    assert problems == []
    assert only(rows).fields["themes"] == [2, parsed]
    with pytest.raises(ValidationError) as caught:
        staff_sign_up(only(rows))
    assert [e["loc"] for e in caught.value.errors()] == [("themes", 1)]


def test_an_unknown_kind_fails_validation_with_its_field_named() -> None:
    row = only(parse_ambassador_csv("name,email,kind\nK,k@x.example,forening\n")[0])

    with pytest.raises(ValidationError) as caught:
        staff_sign_up(row)
    assert [e["loc"] for e in caught.value.errors()] == [("kind",)]


def test_rows_beyond_the_limit_are_reported_once_and_ignored() -> None:
    data = [f"K{i},k{i}@x.example,other" for i in range(IMPORT_ROWS_MAX + 5)]
    text = "name,email,kind\n" + "\n".join(data) + "\n"

    rows, problems = parse_ambassador_csv(text)

    assert len(rows) == IMPORT_ROWS_MAX
    assert rows[-1].line == IMPORT_ROWS_MAX + 1
    assert len(problems) == 1
    assert problems[0].line == IMPORT_ROWS_MAX + 2
    assert str(IMPORT_ROWS_MAX) in problems[0].message


def test_exactly_the_limit_is_fine() -> None:
    data = [f"K{i},k{i}@x.example,other" for i in range(IMPORT_ROWS_MAX)]

    rows, problems = parse_ambassador_csv("name,email,kind\n" + "\n".join(data))

    assert problems == []
    assert len(rows) == IMPORT_ROWS_MAX

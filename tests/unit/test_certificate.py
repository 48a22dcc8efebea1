"""The ambassador certificate renders as exactly one dignified, escaped A4 page."""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import replace
from datetime import date

import pytest
from pypdf import PdfReader

from services.ambassadors.certificate import (
    CertificateView,
    danish_date,
    render_certificate_html,
    render_certificate_pdf,
)

VIEW = CertificateView(
    holder_name="Mette Sørensen",
    organisation="Frivilligcenter Fredericia",
    kind_label="Forening",
    issued_on=date(2026, 11, 23),
    number="FRC-2026-000123",
    verification_code="K7QM-2XHD",
    verify_url="http://localhost:8000/verify/K7QM-2XHD",
)


def _pdf_pages(pdf: bytes) -> list[str]:
    assert pdf.startswith(b"%PDF-")
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def _squash(text: str) -> str:
    # pypdf breaks lines wherever the layout wrapped and sometimes drops the space between
    # blocks, so comparisons ignore whitespace entirely; NFC guards against a decomposed "ø".
    return re.sub(r"\s+", "", unicodedata.normalize("NFC", text))


@pytest.fixture(scope="module")
def standard_pages() -> list[str]:
    return _pdf_pages(render_certificate_pdf(VIEW))


def test_pdf_is_one_page_with_the_key_facts(standard_pages: list[str]) -> None:
    assert len(standard_pages) == 1
    text = _squash(standard_pages[0])
    for expected in (
        "Ambassadørbevis",
        "Fredericia",
        "InkluderendeFællesskaberogForebyggelseafUdsathed",
        "Dettebeviserudstedttil",
        VIEW.holder_name,
        VIEW.organisation or "",
        VIEW.number,
        VIEW.verification_code,
        VIEW.verify_url,
        "23.november2026",
    ):
        assert _squash(expected) in text, expected


def test_danish_date_does_not_depend_on_locale() -> None:
    assert danish_date(date(2026, 11, 23)) == "23. november 2026"
    assert danish_date(date(2026, 1, 5)) == "5. januar 2026"
    assert danish_date(date(2027, 5, 17)) == "17. maj 2027"


def test_markup_in_the_name_is_escaped() -> None:
    html = render_certificate_html(
        replace(VIEW, holder_name="<script>alert(1)</script>", organisation="A & B <b>")
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html
    assert "A &amp; B &lt;b&gt;" in html


def test_escaped_name_is_printed_literally_in_the_pdf() -> None:
    pages = _pdf_pages(
        render_certificate_pdf(replace(VIEW, holder_name="<script>alert(1)</script>"))
    )
    assert len(pages) == 1
    assert "<script>alert(1)</script>" in _squash(pages[0])


@pytest.mark.parametrize(
    ("name", "organisation"),
    [
        (
            ("Anne-Kathrine Marie Louise " * 10)[:200],
            ("Foreningen for Fællesskab og Trivsel " * 8)[:200],
        ),
        ("W" * 200, "W" * 200),
    ],
    ids=["long-words", "widest-unbreakable"],
)
def test_200_character_name_and_organisation_still_fit_one_page(
    name: str, organisation: str
) -> None:
    pages = _pdf_pages(
        render_certificate_pdf(replace(VIEW, holder_name=name, organisation=organisation))
    )
    assert len(pages) == 1
    text = _squash(pages[0])
    assert _squash(name) in text
    assert _squash(organisation) in text
    assert VIEW.verification_code in text


@pytest.mark.parametrize("organisation", [None, "", "   "])
def test_citizen_without_organisation_has_no_empty_line(organisation: str | None) -> None:
    citizen = replace(VIEW, organisation=organisation, kind_label="Borger")
    html = render_certificate_html(citizen)
    assert 'class="organisation' not in html
    assert "Borger" in html

    pages = _pdf_pages(render_certificate_pdf(citizen))
    assert len(pages) == 1
    text = pages[0]
    after_name = text.index(VIEW.holder_name) + len(VIEW.holder_name)
    kind_at = text.upper().index("AMBASSADØR · BORGER", after_name)
    # Straight from the name to the kind line: nothing (not even a stray line) in between.
    assert text[after_name:kind_at].strip() == ""

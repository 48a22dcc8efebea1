"""The ambassador certificate ("ambassadørbevis") as HTML and a one-page A4 PDF."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

import jinja2
import weasyprint

from services.runtime.danish import long_date

_TEMPLATE_NAME = "certificate.html.j2"
# Above this many characters of name plus organisation the explanatory text is set smaller
# so that worst-case wide letters (200 × "W" in both fields) still clear the footer.
_DENSE_THRESHOLD = 250


@dataclass(frozen=True)
class CertificateView:
    holder_name: str
    organisation: str | None
    kind_label: str
    issued_on: date
    number: str
    verification_code: str
    verify_url: str


def danish_date(value: date) -> str:
    return long_date(value)


def _size_class(text: str, limits: tuple[int, int, int]) -> str:
    # The page is fixed at one A4 sheet, so long texts get a smaller type size instead of a
    # second page; the limits are tuned by eye against 200-character worst cases.
    medium, small, tiny = limits
    length = len(text)
    if length > tiny:
        return "size-tiny"
    if length > small:
        return "size-small"
    if length > medium:
        return "size-medium"
    return "size-normal"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("services.ambassadors", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["danish_date"] = danish_date
    return env


def render_certificate_html(view: CertificateView) -> str:
    organisation = (view.organisation or "").strip() or None
    return (
        _environment()
        .get_template(_TEMPLATE_NAME)
        .render(
            view=view,
            organisation=organisation,
            name_class=_size_class(view.holder_name, (28, 48, 90)),
            organisation_class=_size_class(organisation or "", (50, 80, 130)),
            dense=len(view.holder_name) + len(organisation or "") > _DENSE_THRESHOLD,
        )
    )


def render_certificate_pdf(view: CertificateView) -> bytes:
    # base_url points at the templates folder so any relative reference stays local; the
    # template itself is self-contained and must never trigger a network fetch.
    base_url = str(Path(__file__).parent / "templates")
    pdf: bytes = weasyprint.HTML(
        string=render_certificate_html(view), base_url=base_url
    ).write_pdf()
    return pdf

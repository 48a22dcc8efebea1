"""A refused form's problems, field by field, in Danish: from the contract's validation
(checked here before anything is sent) or from the service's answer (``validation_failed``
with details). The service's own words are English and meant for the log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contracts.errors import ServiceError

# What each field is called on the pages, for the error summary.
LABELS = {
    "email": "E-mail",
    "name": "Navn",
    "phone": "Telefon",
    "kind": "Hvem er du",
    "organisation": "Organisation",
    "website": "Hjemmeside",
    "description": "Beskrivelse",
    "themes": "Temaer",
    "core_areas": "Kerneområder",
    "skills": "Kompetencer",
    "networks_at_once": "Netværk ad gangen",
    "paused_until": "Pause til og med",
    "consent": "Samtykke",
}

# Per field, what to say whatever the rule it broke (the common cases).
_BY_FIELD = {
    "email": "Skriv en gyldig e-mailadresse, fx navn@eksempel.dk.",
    "website": "Skriv en hjemmeside, der begynder med https:// eller http://.",
    "consent": "Du skal give samtykke, for at vi må gemme dine oplysninger.",
    "kind": "Vælg, hvem du tilmelder dig som.",
    "organisation": "Skriv navnet på din organisation.",
    "consent_version": "Samtykketeksten er blevet ændret. Læs den nye tekst herunder, og sæt "
    "kryds igen, hvis du giver samtykke.",
    "themes": "Vælg blandt temaerne på listen.",
    "core_areas": "Vælg blandt kerneområderne på listen.",
    "networks_at_once": "Vælg et af svarene på listen.",
    "paused_until": "Skriv en dato som 31-01-2027 eller vælg den i kalenderen.",
}

# Problems with a field the page does not show are told at the field they belong to.
_SHOWN_AT = {"consent_version": "consent"}


def message_for(
    field: str, kind: str, context: dict[str, Any], by_field: Mapping[str, str] = _BY_FIELD
) -> str:
    """What to say about ``field`` breaking the rule ``kind`` (pydantic's error type);
    ``by_field``: a form's own words per field (the sign-up's by default)."""
    if kind == "missing":
        return by_field.get(field, "Skal udfyldes.")
    if kind in ("string_too_long", "too_long"):
        return f"Må højst være {context.get('max_length', '')} tegn.".replace("  ", " ")
    if field in by_field:
        return by_field[field]
    if kind in ("string_too_short",):
        return "Skal udfyldes."
    return "Tjek feltet: det kan ikke bruges, som det står."


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str
    # What the summary calls the field when LABELS does not say (a form of its own).
    named: str | None = None

    @property
    def label(self) -> str:
        return self.named or LABELS.get(self.field, self.field)


def from_validation(exc: ValidationError) -> list[FieldProblem]:
    problems: dict[str, FieldProblem] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        message = message_for(field, error["type"], error.get("ctx") or {})
        problems.setdefault(
            _SHOWN_AT.get(field, field), FieldProblem(_SHOWN_AT.get(field, field), message)
        )
    return list(problems.values())


def from_service(exc: ServiceError) -> list[FieldProblem]:
    problems: dict[str, FieldProblem] = {}
    for detail in exc.error.details:
        field = detail.field.split(".", 1)[0]
        shown = _SHOWN_AT.get(field, field)
        problems.setdefault(shown, FieldProblem(shown, message_for(field, "value_error", {})))
    return list(problems.values())

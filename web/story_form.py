"""The form an ambassador writes a story in (a new one, or a revision of one they sent):
what it posts, what it sends the social service, and where each problem is shown.

Pictures are rows numbered 1 to :data:`PICTURES_MAX`: first the pictures the story has
(a revision: each kept with its alt text, or removed), then empty rows for new files. The
rows that hold something are moved to the front when the form is read, so that the
pictures the service numbers (``pictures.2.alt``: the second picture sent) are the rows
with those numbers when the form is shown again. A browser never fills a file field in
again: a form shown again says to choose the pictures once more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from contracts.social import (
    ALT_MAX,
    LINK_MAX,
    PICTURES_MAX,
    TEXT_MAX,
    TITLE_MAX,
    OwnStory,
    PictureView,
)
from web.field_errors import FieldProblem, message_for
from web.forms import iso_date

# What the file fields take (what the social service decodes); the accept attribute.
IMAGE_TYPES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/tiff": ".tif",
}
ACCEPT = ",".join(IMAGE_TYPES)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".tif", ".tiff"})
FORMATS = "JPEG, PNG, WebP, GIF eller TIFF"
# New picture rows shown at once; the others wait behind "Flere billeder".
OPEN_ROWS = 3
# The form's own id: where a problem that belongs to no field is shown.
FORM_ID = "historie"

FIELDS = ("kind", "title", "text", "event_date", "event_public", "link", "people_consent")
EVENT_PUBLIC = {"ja": True, "nej": False}
EVENT_PUBLIC_CHOICES = {
    "ja": "Ja, alle kan komme",
    "nej": "Nej, det er lukket",
    "": "Ikke relevant",
}
LIMITS = {"title": TITLE_MAX, "text": TEXT_MAX, "link": LINK_MAX, "alt": ALT_MAX}

LABELS = {
    "kind": "Slags historie",
    "title": "Overskrift",
    "text": "Historien",
    "event_date": "Dato for arrangementet",
    "event_public": "Offentligt eller lukket arrangement",
    "link": "Link",
    "people_consent": "Personerne på billederne",
    "pictures": "Billeder",
    FORM_ID: "Historien",
}
# The contract's problems per field, in Danish (the guide's own findings come in Danish).
MESSAGES = {
    "kind": "Vælg, hvad slags historie det er.",
    "text": "Skriv selve historien.",
    "event_date": "Skriv datoen som 31-01-2027, eller vælg den i kalenderen.",
    "event_public": "Vælg et af svarene.",
    "link": "Skriv en webadresse, der begynder med https:// eller http://.",
    "alt": "Beskriv billedet med almindelig tekst.",
}
STALE = (
    "Historien er blevet ændret, siden du åbnede siden. Tjek billederne herunder, og send "
    "historien igen."
)
NOT_SENDABLE = "Historien kan ikke sendes, som den er. Tjek felterne, og prøv igen."


@dataclass
class PictureRow:
    number: int
    alt: str = ""
    # A picture the story has (a revision); removed: not to be kept.
    kept: PictureView | None = None
    remove: bool = False
    # A file chosen in this post (gone when the form is shown again).
    file: UploadFile | None = None

    @property
    def file_field(self) -> str:
        return f"picture_{self.number}"

    @property
    def alt_field(self) -> str:
        return f"alt_{self.number}"

    @property
    def sent(self) -> bool:
        return self.file is not None or (self.kept is not None and not self.remove)


@dataclass
class StoryForm:
    values: dict[str, Any]
    rows: list[PictureRow]
    # Files were chosen in the post this form is shown again for.
    had_files: bool = False
    problems: list[FieldProblem] = field(default_factory=list)

    @property
    def kept_rows(self) -> list[PictureRow]:
        return [row for row in self.rows if row.kept is not None]

    @property
    def new_rows(self) -> list[PictureRow]:
        return [row for row in self.rows if row.kept is None]

    @property
    def open_rows(self) -> list[PictureRow]:
        return self.new_rows[:OPEN_ROWS]

    @property
    def more_rows(self) -> list[PictureRow]:
        return self.new_rows[OPEN_ROWS:]

    @property
    def errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        for problem in self.problems:
            errors.setdefault(problem.field, problem.message)
        return errors

    @property
    def more_open(self) -> bool:
        """The rows behind "Flere billeder" are shown open when one holds something."""
        errors = self.errors
        return any(
            row.alt or row.file_field in errors or row.alt_field in errors for row in self.more_rows
        )

    @property
    def field_values(self) -> dict[str, Any]:
        """What the fields show: the values, and each row's alt text under its name."""
        return {**self.values, **{row.alt_field: row.alt for row in self.rows}}

    def positions(self) -> list[int]:
        """The row numbers of the pictures sent, in the order they are sent."""
        return [row.number for row in self.rows if row.sent]

    def content(self, uploads: Mapping[int, str] | None = None) -> dict[str, Any]:
        """The story as the contract takes it; ``uploads``: the object name each row's file
        got (before the files are put anywhere: a stand-in name, for the checks)."""
        pictures: list[dict[str, Any]] = []
        for row in self.rows:
            if row.kept is not None and not row.remove:
                pictures.append({"name": row.kept.name, "alt": row.alt})
            elif row.kept is None and row.file is not None:
                upload = (uploads or {}).get(row.number, f"upload-{row.number}")
                pictures.append({"upload": upload, "alt": row.alt})
        v = self.values
        return {
            "kind": v["kind"] or None,
            "title": v["title"] or None,
            "text": v["text"],
            "pictures": pictures,
            "event_date": iso_date(v["event_date"]),
            "event_public": EVENT_PUBLIC.get(v["event_public"]),
            "link": v["link"] or None,
            "people_consent": v["people_consent"],
        }


def _rows(kept: Sequence[PictureView]) -> list[PictureRow]:
    rows = [PictureRow(n, alt=p.alt or "", kept=p) for n, p in enumerate(kept, start=1)]
    rows += [PictureRow(n) for n in range(len(kept) + 1, PICTURES_MAX + 1)]
    return rows


def empty() -> StoryForm:
    values: dict[str, Any] = {key: "" for key in FIELDS}
    values["people_consent"] = False
    return StoryForm(values, _rows(()))


def of_story(story: OwnStory) -> StoryForm:
    """The form filled in with a story as it is now (to revise it)."""
    public = {True: "ja", False: "nej", None: ""}[story.event_public]
    values: dict[str, Any] = {
        "kind": story.kind.value,
        "title": story.title or "",
        "text": story.text,
        "event_date": story.event_date.isoformat() if story.event_date else "",
        "event_public": public,
        "link": story.link or "",
        "people_consent": story.people_consent,
    }
    return StoryForm(values, _rows(story.pictures))


def _chosen(value: UploadFile | str | None) -> UploadFile | None:
    """A file field's file; an empty field sends a part without a name or bytes."""
    if isinstance(value, UploadFile) and value.filename and (value.size or 0) > 0:
        return value
    return None


def _text(form: FormData, key: str, limit: int = TEXT_MAX * 2) -> str:
    value = form.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def suffix_of(upload: UploadFile) -> str:
    """The object name's suffix: the file's own when it is a picture's, else its type's."""
    suffix = PurePath(upload.filename or "").suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else IMAGE_TYPES.get(upload.content_type or "", "")


def _is_picture(upload: UploadFile) -> bool:
    return (upload.content_type or "") in IMAGE_TYPES or suffix_of(upload) in IMAGE_SUFFIXES


def posted(form: FormData, kept: Sequence[PictureView], *, max_bytes: int) -> StoryForm:
    """The form as posted, with the problems found before anything is sent (a picture
    that is too large or not a picture, a description without its picture). ``kept``: the
    pictures the story has now (a revision)."""
    values: dict[str, Any] = {key: _text(form, key) for key in FIELDS}
    values["kind"] = values["kind"][:40]
    if values["event_public"] not in EVENT_PUBLIC:
        values["event_public"] = ""
    values["people_consent"] = form.get("people_consent") == "ja"
    problems: list[FieldProblem] = []
    rows: list[PictureRow] = []
    named = [_text(form, f"kept_{n}", 200) for n in range(1, len(kept) + 2)]
    if named != [p.name for p in kept] + [""]:
        # The story's pictures changed since the form was opened (another tab).
        problems.append(FieldProblem(FORM_ID, STALE, LABELS[FORM_ID]))
        rows = _rows(kept)[: len(kept)]
    else:
        for n, picture in enumerate(kept, start=1):
            alt = _text(form, f"alt_{n}", ALT_MAX * 2)
            rows.append(PictureRow(n, alt, picture, remove=form.get(f"remove_{n}") == "ja"))
    new: list[tuple[str, UploadFile | None]] = []
    for n in range(len(kept) + 1, PICTURES_MAX + 1):
        alt = _text(form, f"alt_{n}", ALT_MAX * 2)
        upload = _chosen(form.get(f"picture_{n}"))
        if alt or upload is not None:
            new.append((alt, upload))
    for number, (alt, upload) in enumerate(new, start=len(rows) + 1):
        rows.append(PictureRow(number, alt, file=upload))
    rows += [PictureRow(n) for n in range(len(rows) + 1, PICTURES_MAX + 1)]
    for row in rows:
        problem = _file_problem(row, max_bytes)
        if problem is not None:
            problems.append(problem)
    story_form = StoryForm(values, rows, had_files=any(row.file for row in rows))
    story_form.problems = problems
    return story_form


def _file_problem(row: PictureRow, max_bytes: int) -> FieldProblem | None:
    if row.kept is not None:
        return None
    named = f"Billede {row.number}"
    if row.file is None:
        if not row.alt:
            return None
        message = (
            "Vælg billedet (igen): browseren kan ikke huske et valgt billede, når siden vises "
            "igen. Skal billedet ikke med, så slet beskrivelsen."
        )
    elif (row.file.size or 0) > max_bytes:
        message = f"Billedet er for stort: højst {max_bytes // 1_000_000} MB."
    elif not _is_picture(row.file):
        message = f"Vælg et billede i {FORMATS}."
    else:
        return None
    return FieldProblem(row.file_field, message, named)


# ---------------------------------------------------------------- where problems are shown


def _row(story_form: StoryForm, index: int) -> PictureRow | None:
    """The row of the ``index``-th picture sent (from 0)."""
    positions = story_form.positions()
    if not 0 <= index < len(positions):
        return None
    return story_form.rows[positions[index] - 1]


def _alt_problem(row: PictureRow, message: str) -> FieldProblem:
    return FieldProblem(row.alt_field, message, f"Beskrivelse af billede {row.number}")


def _pictures_problem(story_form: StoryForm, message: str) -> FieldProblem:
    """A problem with the pictures as a whole, shown at the first field for a new one."""
    new = story_form.new_rows
    shown = new[0].file_field if new else story_form.rows[0].alt_field
    return FieldProblem(shown, message, LABELS["pictures"])


def from_validation(exc: ValidationError, story_form: StoryForm) -> list[FieldProblem]:
    """The contract's problems (English) in Danish, each at its field."""
    problems: list[FieldProblem] = []
    for error in exc.errors():
        loc, kind, context = error["loc"], error["type"], error.get("ctx") or {}
        name = str(loc[0]) if loc else FORM_ID
        if name == "pictures":
            row = _row(story_form, loc[1]) if len(loc) > 1 and isinstance(loc[1], int) else None
            if row is None:
                problems.append(_pictures_problem(story_form, f"Højst {PICTURES_MAX} billeder."))
            elif "alt" in loc:
                problems.append(_alt_problem(row, message_for("alt", kind, context, MESSAGES)))
            else:
                problems.append(_pictures_problem(story_form, NOT_SENDABLE))
        elif name in FIELDS:
            problems.append(FieldProblem(name, message_for(name, kind, context, MESSAGES)))
        else:
            problems.append(FieldProblem(FORM_ID, NOT_SENDABLE, LABELS[FORM_ID]))
    return problems


def from_findings(
    findings: Iterable[tuple[str, str]],
    story_form: StoryForm,
    *,
    max_bytes: int,
    service: bool,
) -> list[FieldProblem]:
    """The guide's findings (field, Danish message), each at its field. ``service``: they
    come from the service's refusal, where a picture it could not use (``pictures.<n>``)
    is told in its own (English) words: those are said here in Danish instead."""
    problems: list[FieldProblem] = []
    for name, message in findings:
        parts = name.split(".")
        if parts[0] == "pictures" and len(parts) > 1 and parts[1].isdigit():
            row = _row(story_form, int(parts[1]) - 1)
            if row is None:
                problems.append(FieldProblem(FORM_ID, NOT_SENDABLE, LABELS[FORM_ID]))
            elif parts[2:] == ["alt"]:
                problems.append(_alt_problem(row, message))
            elif row.kept is not None:
                gone = "Billedet hører ikke længere til historien. Genindlæs siden."
                problems.append(_alt_problem(row, gone if service else message))
            else:
                unusable = (
                    f"Billedet kan ikke bruges. Vælg et billede i {FORMATS} på højst "
                    f"{max_bytes // 1_000_000} MB."
                )
                said = unusable if service else message
                problems.append(FieldProblem(row.file_field, said, f"Billede {row.number}"))
        elif name == "pictures":
            problems.append(_pictures_problem(story_form, message))
        elif name in FIELDS:
            problems.append(FieldProblem(name, message, LABELS[name]))
        else:
            problems.append(FieldProblem(FORM_ID, NOT_SENDABLE, LABELS[FORM_ID]))
    return problems


def labelled(problems: Iterable[FieldProblem]) -> list[FieldProblem]:
    """One problem per field (the first), each named as this form names its field."""
    seen: dict[str, FieldProblem] = {}
    for p in problems:
        named = p.named or LABELS.get(p.field, p.field)
        seen.setdefault(p.field, FieldProblem(p.field, p.message, named))
    return list(seen.values())

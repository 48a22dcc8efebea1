"""One text hygiene and one address rule for every field of every service.

Text that arrives is shown again: on a certificate, in a mail, on the website, in a post.
Characters a reader cannot see must not change what the text says or who it names:
control characters (Unicode Cc: C0, DEL and C1) and format characters (Cf: zero-width
spaces and joiners, soft hyphens, and the bidi overrides and isolates that print
``Anna \\u202eexe.live\\u202c Hansen`` reversed) are dropped, and text is NFC, so that æ, ø
and å typed either way compare equal.

- :func:`clean_line`: a name, title or organisation: one line, single spaces.
- :func:`normalise_name`: the same, and it must contain a letter (a name of invisible
  characters, digits or punctuation alone names nobody) and no bidi override or isolate.
- :func:`clean_text`: a description or news body: line breaks kept, nothing else unseen.
- :func:`normalise_website`: an http(s) address without markup.
- :func:`normalise_email`: the one address rule (see there).
"""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

__all__ = [
    "ASCII_LOCAL_PART",
    "clean_line",
    "clean_text",
    "has_letter",
    "normalise_email",
    "normalise_name",
    "normalise_website",
]

# Cs (lone surrogates) and Co (private use) print as nothing or as a box: dropped too.
_UNSEEN = frozenset({"Cc", "Cf", "Cs", "Co"})
# Every code point that is not a plain printable ASCII character: only text holding one of
# these needs the per-character pass.
_NOT_PLAIN = re.compile(r"[^\x20-\x7e]")
_SPACES = re.compile(r"\s+")
_LINE_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
# Embeddings, overrides and isolates: they reorder what follows. A name holding one is
# refused rather than cleaned, since it was made to look like something it is not.
_DIRECTION_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# In a website address: what would close an HTML attribute or open a tag.
_MARKUP = frozenset("<>\"'`{}|\\^")

ASCII_LOCAL_PART = (
    "the part before @ must be plain ASCII (no æ, ø, å): such an address cannot be mailed"
)
"""Why an address with æ, ø or å before the @ is refused, wherever one arrives.

Such an address needs SMTPUTF8 on every hop (our sender, the relay, the recipient's
server); the municipality's relay does not offer it, so a confirmation mail to it could
never be sent and the person would be left pending. A domain with æøå is fine: it travels
as punycode."""


def _visible(value: str, keep: str = "") -> str:
    text = unicodedata.normalize("NFC", value)
    if not _NOT_PLAIN.search(text):
        return text
    return "".join(
        ch for ch in text if ch in keep or ch.isspace() or unicodedata.category(ch) not in _UNSEEN
    )


def clean_line(value: str) -> str:
    """One line of text: no control or format characters, single spaces, NFC."""
    # Whitespace controls (tab, line breaks) are spaces here, not dropped: "Anna\nHansen"
    # is two words.
    return _SPACES.sub(" ", _visible(value)).strip()


def clean_text(value: str) -> str:
    """Text of several lines: line breaks kept (they make paragraphs), at most one blank
    line in a row, spaces single; no other control or format character."""
    text = _visible(value.replace("\r\n", "\n").replace("\r", "\n"), keep="\n")
    lines = [_LINE_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def has_letter(value: str) -> bool:
    return any(ch.isalpha() for ch in value)


def normalise_name(value: str) -> str:
    """A name, title or organisation, cleaned; it must hold a letter and no control that
    changes the direction of the text."""
    if _DIRECTION_CONTROLS.search(value):
        raise ValueError("must not hold characters that reverse the direction of the text")
    name = clean_line(value)
    if not name:
        raise ValueError("must not be empty")
    if not has_letter(name):
        raise ValueError("must contain a letter")
    return name


def normalise_email(value: str) -> str:
    """The address as it is stored and mailed; raises ValueError saying what is wrong.

    Deliverability (DNS) is not checked: sign-up must work offline, and the confirmation
    mail proves the address anyway. A local part beyond ASCII is refused (see
    :data:`ASCII_LOCAL_PART`).
    """
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    if not result.local_part.isascii():
        raise ValueError(ASCII_LOCAL_PART)
    return str(result.normalized)


def normalise_website(value: str) -> str:
    """An http(s) address (``https://`` added when none is given), host in lower case."""
    url = value.strip()
    if any(ch in _MARKUP or ch.isspace() or unicodedata.category(ch) in _UNSEEN for ch in url):
        raise ValueError("a website address cannot hold spaces, quotes or markup")
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", url):
        url = "https://" + url
    match = re.match(r"^(https?)://([^/\s?#:@]+)(:\d{1,5})?([/?#]\S*)?$", url, re.IGNORECASE)
    if match is None:
        raise ValueError("a website is an http(s) address such as https://example.dk")
    host = match.group(2).lower()
    if "." not in host or host.startswith(".") or host.endswith("."):
        raise ValueError("the website's host name is not complete")
    return f"{match.group(1).lower()}://{host}{match.group(3) or ''}{match.group(4) or ''}"

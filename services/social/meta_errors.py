"""What to do about an answer from the Graph API, by Meta's error codes (pure rules).

Meta's error body is ``{"error": {"message", "type", "code", "error_subcode",
"error_user_title", "error_user_msg", "fbtrace_id", "is_transient"}}``; the usage headers
(``X-Business-Use-Case-Usage`` for Page tokens, ``X-App-Usage``, ``X-Page-Usage``) say how
close the app is to its limits and, past them, when access comes back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Disposition(StrEnum):
    # Nothing was done (refused before it was processed): try again later.
    RETRY = "retry"
    # It may have been done (a time-out, a 5xx, "unknown error"): find out before any retry.
    LOOK_UP = "look_up"
    # The token is invalid or expired, or a permission is missing: publishing waits for staff.
    PAUSE = "pause"
    # Facebook blocks the Page for now (policy): wait, and tell staff.
    BLOCK = "block"
    # Facebook says the post duplicates the last one: the first went through; adopt it.
    ADOPT = "adopt"
    # Refused for good (a bad picture, a message Facebook will not take): staff see why.
    FAIL = "fail"


RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, *range(80000, 80015)})
UNKNOWN_CODES = frozenset({1, 2})
TOKEN_CODES = frozenset({190, 102})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
POLICY_BLOCK = 368
DUPLICATE_POST = 506


@dataclass(frozen=True)
class Usage:
    """The highest share of any limit used (percent), and when access comes back."""

    percent: float = 0.0
    regain_seconds: float = 0.0


@dataclass(frozen=True)
class GraphFailure:
    """One refusal or unknown outcome of a Graph API call."""

    # ``http``: an answer with Meta's error body; ``timeout``: sent, no answer in time;
    # ``unreachable``: never sent (connection refused); ``broken``: an answer we cannot read.
    kind: str
    status: int | None = None
    code: int | None = None
    subcode: int | None = None
    message: str = ""
    user_message: str | None = None
    fbtrace_id: str | None = None
    is_transient: bool = False
    usage: Usage = Usage()

    def describe(self) -> str:
        if self.kind != "http" or self.code is None:
            return f"{self.kind}: {self.message}".strip(": ")
        sub = f"/{self.subcode}" if self.subcode is not None else ""
        trace = f" (fbtrace_id {self.fbtrace_id})" if self.fbtrace_id else ""
        return f"Facebook error {self.code}{sub}: {self.message}{trace}"


def classify(failure: GraphFailure, *, sent: bool) -> Disposition:
    """What to do; ``sent``: the call creates something (the feed call) and may have done
    so although it failed, so an unknown outcome must be looked up, never retried blindly."""
    if failure.kind == "unreachable":
        return Disposition.RETRY
    if failure.kind in ("timeout", "broken"):
        return Disposition.LOOK_UP if sent else Disposition.RETRY
    code = failure.code
    if code in TOKEN_CODES or code in PERMISSION_CODES:
        return Disposition.PAUSE
    if code == DUPLICATE_POST:
        return Disposition.ADOPT if sent else Disposition.FAIL
    if code == POLICY_BLOCK:
        return Disposition.BLOCK
    if code in RATE_LIMIT_CODES:
        return Disposition.RETRY
    if code in UNKNOWN_CODES or failure.is_transient or (failure.status or 0) >= 500:
        return Disposition.LOOK_UP if sent else Disposition.RETRY
    return Disposition.FAIL


def _percent(values: dict[str, Any]) -> float:
    shares = [
        float(values.get(key) or 0)
        for key in ("call_count", "total_time", "total_cputime", "acc_id_util_pct")
        if isinstance(values.get(key), int | float)
    ]
    return max(shares, default=0.0)


def usage(headers: dict[str, str]) -> Usage:
    """The usage headers of one answer (names compared without case); unreadable ones are
    ignored (they are advice, never a reason to fail)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    percent, regain = 0.0, 0.0
    for name in ("x-app-usage", "x-page-usage", "x-ad-account-usage"):
        try:
            values = json.loads(lowered.get(name, "") or "{}")
        except ValueError:
            continue
        if isinstance(values, dict):
            percent = max(percent, _percent(values))
    try:
        business = json.loads(lowered.get("x-business-use-case-usage", "") or "{}")
    except ValueError:
        business = {}
    if isinstance(business, dict):
        for entries in business.values():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                percent = max(percent, _percent(entry))
                minutes = entry.get("estimated_time_to_regain_access")
                if isinstance(minutes, int | float) and minutes > 0:
                    regain = max(regain, float(minutes) * 60)
    return Usage(percent=percent, regain_seconds=regain)


def failure_from_body(
    status: int, body: Any, headers: dict[str, str], fallback: str
) -> GraphFailure:
    """Meta's error body read into a failure; a body that is not one is ``broken``."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return GraphFailure(kind="broken", status=status, message=fallback, usage=usage(headers))
    subcode = error.get("error_subcode")
    return GraphFailure(
        kind="http",
        status=status,
        code=error["code"],
        subcode=subcode if isinstance(subcode, int) else None,
        message=str(error.get("message") or "")[:1000],
        user_message=str(error["error_user_msg"])[:1000] if error.get("error_user_msg") else None,
        fbtrace_id=str(error["fbtrace_id"])[:100] if error.get("fbtrace_id") else None,
        is_transient=error.get("is_transient") is True,
        usage=usage(headers),
    )


def wait_seconds(failure: GraphFailure, tries: int, *, base: float, cap: float) -> float:
    """How long to wait before trying again: Meta's own estimate when it gives one, else
    exponential from ``base`` (``tries`` failures so far), at most ``cap``."""
    backoff = min(cap, base * 2 ** max(0, tries - 1))
    return float(max(backoff, failure.usage.regain_seconds))

"""What the publisher does about each answer of the Graph API, by Meta's codes, and how it
reads the usage headers."""

from __future__ import annotations

import json

import pytest

from services.social.meta_errors import (
    Disposition,
    GraphFailure,
    classify,
    failure_from_body,
    usage,
    wait_seconds,
)


def meta(
    code: int, *, status: int = 400, subcode: int | None = None, **extra: object
) -> GraphFailure:
    error: dict[str, object] = {
        "message": f"(#{code}) x",
        "code": code,
        "fbtrace_id": "AbC",
        **extra,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return failure_from_body(status, {"error": error}, {}, "fallback")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (4, Disposition.RETRY),
        (17, Disposition.RETRY),
        (32, Disposition.RETRY),
        (341, Disposition.RETRY),
        (613, Disposition.RETRY),
        (80001, Disposition.RETRY),
        (80014, Disposition.RETRY),
        (368, Disposition.BLOCK),
        (190, Disposition.PAUSE),
        (102, Disposition.PAUSE),
        (10, Disposition.PAUSE),
        (200, Disposition.PAUSE),
        (299, Disposition.PAUSE),
        (506, Disposition.ADOPT),
        (1, Disposition.LOOK_UP),
        (2, Disposition.LOOK_UP),
        (100, Disposition.FAIL),
    ],
)
def test_a_feed_call_refused_by_code(code: int, expected: Disposition) -> None:
    assert classify(meta(code), sent=True) == expected


def test_what_may_have_happened_is_looked_up_only_for_the_feed_call() -> None:
    for failure in (
        GraphFailure(kind="timeout"),
        GraphFailure(kind="broken", status=502),
        meta(1, status=500),
        meta(9999, is_transient=True),
        meta(9999, status=503),
    ):
        assert classify(failure, sent=True) == Disposition.LOOK_UP
        # An unpublished photo upload is safe to repeat.
        assert classify(failure, sent=False) == Disposition.RETRY
    # Never sent at all: always safe to try again.
    assert classify(GraphFailure(kind="unreachable"), sent=True) == Disposition.RETRY


def test_an_expired_tokens_subcode_and_the_trace_id_are_kept() -> None:
    failure = meta(190, subcode=463)
    assert (failure.code, failure.subcode, failure.fbtrace_id) == (190, 463, "AbC")
    assert failure.describe() == "Facebook error 190/463: (#190) x (fbtrace_id AbC)"


def test_a_body_that_is_not_metas_error_is_broken() -> None:
    assert failure_from_body(502, "<html>Bad gateway</html>", {}, "HTTP 502").kind == "broken"
    assert failure_from_body(400, {"error": {"code": "x"}}, {}, "HTTP 400").kind == "broken"


def test_the_usage_headers_give_the_highest_share_and_the_time_to_regain_access() -> None:
    headers = {
        "X-App-Usage": json.dumps({"call_count": 12, "total_time": 40, "total_cputime": 8}),
        "x-business-use-case-usage": json.dumps(
            {
                "1040": [
                    {
                        "type": "pages",
                        "call_count": 95,
                        "total_time": 20,
                        "estimated_time_to_regain_access": 7,
                    }
                ]
            }
        ),
    }
    found = usage(headers)
    assert found.percent == 95 and found.regain_seconds == 7 * 60
    assert usage({"X-App-Usage": "not json"}).percent == 0


def test_the_wait_is_metas_estimate_or_an_exponential_back_off() -> None:
    limited = failure_from_body(
        400,
        {"error": {"code": 32, "message": "limit"}},
        {"X-Business-Use-Case-Usage": json.dumps({"1": [{"estimated_time_to_regain_access": 30}]})},
        "",
    )
    assert wait_seconds(limited, 1, base=30, cap=3600) == 1800
    plain = meta(2)
    assert [wait_seconds(plain, n, base=30, cap=200) for n in (1, 2, 3, 4)] == [30, 60, 120, 200]

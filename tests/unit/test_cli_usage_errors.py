"""A usage error (an unknown option, a missing argument) under ``--json`` is the structured
error every other failure gives; without ``--json`` it is click's usage text."""

from __future__ import annotations

import json

import pytest

from cli import main as cli_main


def run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr("sys.argv", ["samskab", *args])
    with pytest.raises(SystemExit) as exited:
        cli_main.main()
    code = exited.value.code
    return code if isinstance(code, int) else 0


def test_a_usage_error_under_json_is_the_structured_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(monkeypatch, "ambassadors", "show", "--json", "--no-such-option")
    out = capsys.readouterr()
    assert code == cli_main.EXIT_USAGE
    answer = json.loads(out.out)
    assert answer["ok"] is False and answer["error"]["code"] == "validation_failed"
    assert "--no-such-option" in answer["error"]["message"]


def test_a_usage_error_without_json_is_the_usage_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(monkeypatch, "ambassadors", "show")
    err = capsys.readouterr().err
    assert code == 2 and "Usage:" in err and "Missing argument" in err


def test_help_still_exits_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, "--help") == 0
    assert "ambassadors" in capsys.readouterr().out

"""The benchmarks still run: each one's ``--quick`` end to end, as a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.stack import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def quick_run(script: str, last_line: str) -> tuple[list[str], str]:
    """Run ``bench/<script> --quick``; its output lines (the last one checked) and the
    whole output for failure messages."""
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / script), "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    output = f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    assert completed.returncode == 0, output
    lines = completed.stdout.strip().splitlines()
    assert lines, output
    assert re.fullmatch(last_line, lines[-1]), output
    return lines, output


def test_signup_benchmark_quick_run() -> None:
    lines, output = quick_run("signup.py", r"signup_throughput_ratio=\d+\.\d{3}")
    assert any(re.fullmatch(r"signup_p99_ms_at_\d+=(\d+\.\d|inf)", line) for line in lines), output


def test_newsletter_benchmark_quick_run() -> None:
    lines, output = quick_run("newsletter.py", r"newsletter_send_ratio=\d+\.\d{3}")
    # Both sizes went through the service and the baseline, every mail reached the sink.
    assert any(line.startswith("ours n=300 ") for line in lines), output
    assert any(line.startswith("baseline n=300 ") for line in lines), output
    assert any(
        re.fullmatch(r"service peak RSS: .* at 60 subscribers, .* at 300 .*", line)
        for line in lines
    ), output


def test_web_benchmark_quick_run() -> None:
    lines, output = quick_run("web.py", r"web_page_ratio=\d+\.\d{3}")
    assert any(re.fullmatch(r"web_p99_ms_at_50=(\d+\.\d|inf)", line) for line in lines), output
    assert any(line.startswith("ours saturation") for line in lines), output
    assert any(line.startswith("bare saturation") for line in lines), output


def test_matching_benchmark_quick_run() -> None:
    lines, output = quick_run("matching.py", r"matching_p99_ms_at_2000=\d+\.\d")
    assert any(re.fullmatch(r"matching_rss_mib_at_2000=\d+", line) for line in lines), output
    assert any(line.startswith("networks.query.suggest ") for line in lines), output
    assert any(line.startswith("floor (bare + scoring) ") for line in lines), output

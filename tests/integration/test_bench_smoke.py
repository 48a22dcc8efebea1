"""The sign-up benchmark still runs: ``bench/signup.py --quick`` end to end, as a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.stack import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LAST_LINE = re.compile(r"signup_throughput_ratio=\d+\.\d{3}")


def test_signup_benchmark_quick_run() -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "signup.py"), "--quick"],
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
    assert LAST_LINE.fullmatch(lines[-1]), output
    assert any(re.fullmatch(r"signup_p99_ms_at_\d+=(\d+\.\d|inf)", line) for line in lines), output

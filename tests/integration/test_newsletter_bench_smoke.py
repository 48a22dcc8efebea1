"""The newsletter benchmark still runs: ``bench/newsletter.py --quick`` end to end, as a
subprocess."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.stack import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LAST_LINE = re.compile(r"newsletter_send_ratio=\d+\.\d{3}")


def test_newsletter_benchmark_quick_run() -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "newsletter.py"), "--quick"],
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
    # Both sizes went through the service and the baseline, every mail reached the sink.
    assert any(line.startswith("ours n=300 ") for line in lines), output
    assert any(line.startswith("baseline n=300 ") for line in lines), output
    assert any(
        re.fullmatch(r"service peak RSS: .* at 60 subscribers, .* at 300 .*", line)
        for line in lines
    ), output

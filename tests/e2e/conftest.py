"""The stack exactly as ``make up`` runs it (``samskab-stack``), and the ``samskab`` CLI.

``make up`` runs ``.venv/bin/samskab-stack`` from the repository root; the fixture does the
same, with ``SAMSKAB_*`` variables pointing at a fresh data directory and free ports, and
talks to it only the way a person would: the ``samskab`` CLI as a subprocess, Ctrl-C to stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from services import registry
from services.runtime.clock import travel
from services.runtime.credentials import read_credentials
from stack.processes import free_port
from stack.settings import SECRETS_FILE
from tests.support.stack import REPO_ROOT, venv_script

# Ctrl-C must bring the whole stack down within this time, exit status 0.
STOP_TIMEOUT = 20.0
# From the launcher's start to `samskab health` showing the ambassadors service ok (the demo
# import of 85 organisations runs before the service answers).
READY_TIMEOUT = 90.0
# A CLI call that takes longer than this is hanging; it is killed and the test fails.
CLI_TIMEOUT = 30.0
# The public web address the stack is told it has (links in mails and on certificates).
PUBLIC_URL = "https://ambassadoer.fredericia.example"
# What `make up` runs; healthy means every one answers `samskab health`.
SERVICES = tuple(registry.built())
# The stack's clock (services/runtime/clock.py), a file under the data directory: absent,
# the services run on real time; a test travels by writing it (``StackRun.travel``).
CLOCK_FILE_NAME = "clock"


class CliHangError(AssertionError):
    """A CLI call did not finish in time (it was killed)."""


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError(f"not JSON:\n{self.describe()}") from exc

    def describe(self) -> str:
        return (
            f"$ samskab {' '.join(self.args)}\n"
            f"exit status {self.returncode} after {self.seconds:.1f} s\n"
            f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
        )

    def ok(self) -> CliResult:
        """Assert exit status 0; returns self so calls chain."""
        assert self.returncode == 0, self.describe()
        return self


def _ours(proc: psutil.Process, marker: str) -> bool:
    """True if ``proc`` belongs to the stack under ``marker`` (its data directory)."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if marker in " ".join(proc.cmdline()):
            return True
        return bool(proc.environ().get("SAMSKAB_DATA_DIR") == marker)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _still_there(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


@dataclass
class StackRun:
    """One ``samskab-stack`` launcher (started and stopped as often as a test likes)."""

    data_dir: Path
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    # Every process seen under the launcher, so a stop can prove each one is gone.
    seen: dict[int, psutil.Process] = field(default_factory=dict)
    stops: list[tuple[int | None, float]] = field(default_factory=list)
    # Seconds from each start to healthy, and of each CLI call: printed at the end.
    readiness: list[float] = field(default_factory=list)
    calls: list[tuple[str, float]] = field(default_factory=list)

    # ---------------------------------------------------------------- the clock

    @property
    def clock_file(self) -> Path:
        """The file every service's clock reads (SAMSKAB_CLOCK_FILE)."""
        return Path(self.env["SAMSKAB_CLOCK_FILE"])

    def travel(self, to: datetime) -> None:
        """Every service of the stack reads ``to`` as the time now, and runs on from it."""
        travel(self.clock_file, to)

    # ---------------------------------------------------------------- the keys

    def token_secret(self, field: str) -> str:
        """A key the stack generated for signing the links in mails (``secrets.json``)."""
        secrets: dict[str, str] = json.loads((self.data_dir / SECRETS_FILE).read_text())
        return secrets[field]

    @property
    def website(self) -> str:
        """Where a browser on this machine reaches the stack's website."""
        return f"http://127.0.0.1:{self.env['SAMSKAB_WEB_PORT']}"

    def local(self, link: str) -> str:
        """A link from a mail (the public address) as this machine reaches it."""
        assert link.startswith(PUBLIC_URL), link
        return self.website + link.removeprefix(PUBLIC_URL)

    def nats_login(self, user: str) -> dict[str, str]:
        """``nats.connect`` keywords for one of the NATS users the stack generated
        (``var/credentials/``): make up's nats-server admits nobody else."""
        found = read_credentials(self.data_dir, user)
        assert found is not None, f"the stack left no credentials for {user}"
        return {"user": found[0], "password": found[1], "inbox_prefix": f"_INBOX_{user}"}

    # ---------------------------------------------------------------- the launcher

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        assert not self.running, "the stack is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== samskab-stack started by the e2e test at {time.ctime()}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                [str(venv_script("samskab-stack"))],
                cwd=REPO_ROOT,  # where `make up` runs it
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, as in a terminal: Ctrl-C reaches this group only.
                start_new_session=True,
            )
        self.started = time.monotonic()

    def launcher_output(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def wait_healthy(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """Poll ``samskab health --json`` until every service is ok; its answer."""
        deadline = time.monotonic() + timeout
        last = "(no answer yet)"
        while True:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"samskab-stack exited with status {self.popen.returncode} while starting:\n"
                    f"{self.launcher_output()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"the services were not all healthy {timeout:.0f} s after the start; "
                    f"last health answer: {last}\n--- launcher\n{self.launcher_output()}"
                )
            try:
                result = self.cli("health", "--json", timeout=min(15.0, max(remaining, 1.0)))
            except CliHangError as exc:
                last = str(exc)
                continue
            if result.returncode == 0:
                answer: dict[str, Any] = json.loads(result.stdout)
                running = answer.get("running", {})
                if all(running.get(name, {}).get("status") == "ok" for name in SERVICES):
                    self._remember_processes()
                    self.readiness.append(time.monotonic() - self.started)
                    return answer
            last = result.describe()
            time.sleep(0.3)

    def interrupt(self, timeout: float = STOP_TIMEOUT) -> tuple[int | None, float]:
        """Ctrl-C: SIGINT to the launcher's process group. Exit status (None: still running
        after ``timeout``, then killed) and the seconds it took."""
        assert self.popen is not None
        self._remember_processes()
        began = time.monotonic()
        os.killpg(self.popen.pid, signal.SIGINT)
        try:
            status: int | None = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            status = None
            self.kill_everything()
        took = time.monotonic() - began
        self.stops.append((status, took))
        return status, took

    def leftovers(self, grace: float = 5.0) -> list[str]:
        """Processes of this stack still alive ``grace`` seconds after the launcher ended."""
        deadline = time.monotonic() + grace
        while True:
            alive = self._alive()
            if not alive or time.monotonic() >= deadline:
                return [self._describe(p) for p in alive]
            time.sleep(0.2)

    def kill_everything(self) -> None:
        """Last resort: SIGKILL each process of this stack, by pid (only ours)."""
        for proc in self._alive():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    # ---------------------------------------------------------------- the CLI

    def cli(
        self, *args: str, timeout: float = CLI_TIMEOUT, env: Mapping[str, str] | None = None
    ) -> CliResult:
        """``samskab ARGS`` with the stack's environment; kills it and fails after ``timeout``."""
        began = time.monotonic()
        proc = subprocess.Popen(
            [str(venv_script("samskab")), *args],
            cwd=REPO_ROOT,
            env=dict(env or self.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise CliHangError(
                f"`samskab {' '.join(args)}` did not finish within {timeout:g} s (killed); "
                f"last stderr:\n{err.decode(errors='replace')[-1500:]}"
            ) from None
        seconds = time.monotonic() - began
        self.calls.append((" ".join(args[:2]), seconds))
        return CliResult(
            args=tuple(args),
            returncode=proc.returncode,
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            seconds=seconds,
        )

    def timings(self) -> str:
        calls = sorted(seconds for _, seconds in self.calls)
        slowest = max(self.calls, key=lambda c: c[1], default=("-", 0.0))
        return (
            f"stack ready after {', '.join(f'{s:.1f}' for s in self.readiness)} s; "
            f"Ctrl-C stops took {', '.join(f'{t:.1f}' for _, t in self.stops)} s; "
            f"{len(calls)} CLI calls, median {calls[len(calls) // 2] if calls else 0:.2f} s, "
            f"slowest {slowest[1]:.2f} s ({slowest[0]})"
        )

    # ---------------------------------------------------------------- processes

    def _remember_processes(self) -> None:
        if self.popen is None:
            return
        try:
            launcher = psutil.Process(self.popen.pid)
            found = [launcher, *launcher.children(recursive=True)]
        except psutil.NoSuchProcess:
            found = []
        for proc in found:
            self.seen.setdefault(proc.pid, proc)

    def _alive(self) -> list[psutil.Process]:
        marker = str(self.data_dir)
        alive = {pid: proc for pid, proc in self.seen.items() if _still_there(proc)}
        # Also anything that was never seen under the launcher (a helper started late and
        # orphaned): every child of the stack carries its data directory in its environment.
        for proc in psutil.process_iter():
            if proc.pid != os.getpid() and proc.pid not in alive and _ours(proc, marker):
                alive[proc.pid] = proc
        return list(alive.values())

    @staticmethod
    def _describe(proc: psutil.Process) -> str:
        try:
            return f"pid {proc.pid} (parent {proc.ppid()}): {' '.join(proc.cmdline())[:200]}"
        except psutil.Error:
            return f"pid {proc.pid}"


def stack_environment(data_dir: Path) -> dict[str, str]:
    """The caller's environment without its SAMSKAB_* settings, plus a fresh stack's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMSKAB_")}
    env.update(
        {
            "SAMSKAB_DATA_DIR": str(data_dir),
            "SAMSKAB_NATS_URL": f"nats://127.0.0.1:{free_port()}",
            "SAMSKAB_NATS_MONITOR_PORT": str(free_port()),
            "SAMSKAB_MONGO_URL": f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
            "SAMSKAB_SMTP_HOST": "127.0.0.1",
            "SAMSKAB_SMTP_PORT": str(free_port()),
            "SAMSKAB_FACEBOOK_PORT": str(free_port()),
            # As in `make up` (the default, stated so a developer's .env cannot turn it off).
            "SAMSKAB_DEMO_IMPORT": "true",
            # As a deployment has it: RFC 8058 one-click unsubscribe links must be https.
            "SAMSKAB_PUBLIC_URL": PUBLIC_URL,
            # The website, reached here without the proxy a deployment puts in front.
            "SAMSKAB_WEB_PORT": str(free_port()),
            # The journeys look at a page right after changing what it shows; the website's
            # few seconds of shared answers are tests/unit/test_web_shared_answers.py's.
            "SAMSKAB_WEB_ANSWER_CACHE_SECONDS": "0",
            # Stacks run side by side (xdist, a developer's make up): the fixed metrics ports
            # from 9460 would clash; tests/integration/test_metrics.py covers the metrics.
            "SAMSKAB_METRICS_BASE_PORT": "0",
            # Not there until a test travels: until then every service runs on real time.
            "SAMSKAB_CLOCK_FILE": str(data_dir / CLOCK_FILE_NAME),
        }
    )
    return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
    """``samskab-stack`` started and healthy; at the end Ctrl-C, and nothing may be left."""
    data_dir = tmp_path_factory.mktemp("e2e-stack")
    run = StackRun(
        data_dir=data_dir,
        env=stack_environment(data_dir),
        log_path=data_dir / "launcher.log",
    )
    run.start()
    try:
        run.wait_healthy()
    except BaseException:
        if run.running:
            run.interrupt()
        run.kill_everything()
        raise
    yield run

    problems: list[str] = []
    if run.running:
        status, took = run.interrupt()
        if status != 0:
            problems.append(f"samskab-stack exited with status {status} after {took:.1f} s")
    left = run.leftovers()
    if left:
        problems.append("processes left behind:\n  " + "\n  ".join(left))
        run.kill_everything()
    print(f"\n[e2e] {run.timings()}")
    if problems:
        pytest.fail("\n".join(problems) + f"\n--- launcher\n{run.launcher_output()}")

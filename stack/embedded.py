"""The whole system on one machine: what ``make up`` (``samskab-stack``) runs.

nats-server, SecantusDB and the SMTP sink start first, then every service in
``settings.services`` as its own process. The launcher supervises: a service that dies is
restarted with backoff; if an infrastructure process dies the stack stops with an error.
Everything lives under ``settings.data_dir``, so a second start resumes where the first ended.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError
from pymongo.uri_parser import parse_uri

from services import registry
from services.runtime.client import inbox_prefix
from stack import nats_accounts
from stack.credentials import nats_passwords
from stack.facebook import FacebookStandIn
from stack.mongo import MongoServer
from stack.nats import NatsServer, service_is_healthy
from stack.processes import ManagedProcess, free_port, port_in_use
from stack.settings import StackSettings, secrets_for
from stack.smtp_sink import SmtpSink
from web.settings import listen_port

__all__ = [
    "DEFAULT_NATS_MONITOR_PORT",
    "EmbeddedStack",
    "InfrastructureDiedError",
    "PortInUseError",
    "ServiceCommand",
    "StackError",
    "default_service_command",
    "main",
    "settings_env",
]

log = logging.getLogger("stack")

DEFAULT_NATS_MONITOR_PORT = 8222
NATS_MONITOR_PORT_ENV = "SAMSKAB_NATS_MONITOR_PORT"

ServiceCommand = Callable[[str], Sequence[str]]
WEB = nats_accounts.WEB_USER


def fresh_settings(data_dir: Path, **overrides: Any) -> StackSettings:
    """Settings for a new stack under ``data_dir`` on free loopback ports, no services.

    ``.env`` is ignored: a developer's local file must not change what tests and
    benchmarks run against.
    """
    values: dict[str, Any] = {
        "nats_url": f"nats://127.0.0.1:{free_port()}",
        "mongo_url": f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
        "smtp_host": "127.0.0.1",
        "smtp_port": free_port(),
        "facebook_port": free_port(),
        "data_dir": Path(data_dir),
        "services": [],
        "web": False,
        # Tests run stacks side by side: fixed metrics ports would clash.
        "metrics_base_port": 0,
    }
    values.update(overrides)
    return StackSettings(_env_file=None, **values)


def default_service_command(name: str) -> list[str]:
    return [sys.executable, "-m", f"services.{name}"]


class StackError(RuntimeError):
    """The stack could not start or cannot go on."""


class PortInUseError(StackError):
    def __init__(self, port: int, what: str, setting: str) -> None:
        self.port = port
        self.what = what
        self.setting = setting
        super().__init__(
            f"port {port} ({what}) is already in use; stop what holds it or change {setting}"
        )


class InfrastructureDiedError(StackError):
    """nats-server, SecantusDB, the SMTP sink or the Graph API stand-in ended while the
    stack was running."""


@dataclass
class _Supervision:
    failures: int = 0
    restart_at: float | None = None


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _host_port(url: str, default_port: int, setting: str) -> tuple[str, int]:
    if url.startswith("mongodb"):
        nodes = parse_uri(url)["nodelist"]
        if len(nodes) != 1:
            raise StackError(f"{setting} must name exactly one host for the embedded stack")
        host, port = nodes[0]
        return str(host), int(port)
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def settings_env(settings: StackSettings) -> dict[str, str]:
    """``settings`` as SAMSKAB_* variables, so a child process sees exactly these settings.

    A settings object built in code (a test overriding one field) would otherwise not reach
    the services, which read only their environment.
    """
    env: dict[str, str] = {}
    for field, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        secret = getattr(settings, field)
        if isinstance(secret, SecretStr):
            value = secret.get_secret_value()
        key = f"SAMSKAB_{field.upper()}"
        # pydantic-settings parses complex fields from JSON and scalars from plain text.
        env[key] = value if isinstance(value, str) else json.dumps(value)
    return env


class EmbeddedStack:
    """nats-server + SecantusDB + SMTP sink + the services, under one data directory.

    ``base_dir`` is the working directory of every child and the anchor of a relative
    ``settings.data_dir``. ``service_command`` maps a service name to its argv; tests pass a
    stand-in service here.
    """

    def __init__(
        self,
        settings: StackSettings,
        base_dir: Path | None = None,
        *,
        nats_monitor_port: int | None = None,
        service_command: ServiceCommand = default_service_command,
        ready_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        restart_backoff: Sequence[float] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
        stable_after: float = 30.0,
        unrestricted_nats_users: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.base_dir = (base_dir or Path.cwd()).resolve()
        self.data_dir = (self.base_dir / settings.data_dir).resolve()
        self.log_dir = self.data_dir / "log"
        self.mail_dir = self.data_dir / "mail"
        self.nats_monitor_port = nats_monitor_port or settings.nats_monitor_port
        self.service_command = service_command
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.restart_backoff = tuple(restart_backoff) or (1.0,)
        self.stable_after = stable_after

        nats_host, nats_port = _host_port(settings.nats_url, 4222, "SAMSKAB_NATS_URL")
        mongo_host, mongo_port = _host_port(settings.mongo_url, 27017, "SAMSKAB_MONGO_URL")
        if mongo_host not in LOOPBACK:
            # SecantusDB runs here without users: reachable from this machine only.
            raise StackError(
                f"SAMSKAB_MONGO_URL names {mongo_host}: the embedded SecantusDB listens on "
                "the loopback interface only (127.0.0.1)"
            )
        # Every user of deploy/nats/accounts.conf, with a password this data directory keeps.
        # (``unrestricted_nats_users``: for a test or a benchmark only; samskab-stack has none.)
        users = (*nats_accounts.USERS, *unrestricted_nats_users)
        self.nats_passwords = nats_passwords(self.data_dir, users)
        self.nats = NatsServer(
            store_dir=self.data_dir / "nats",
            host=nats_host,
            port=nats_port,
            http_port=self.nats_monitor_port,
            log_path=self.log_dir / "nats.log",
            accounts=nats_accounts.render(unrestricted_nats_users),
            passwords=self.nats_passwords,
        )
        self.mongo = MongoServer(
            storage_path=self.data_dir / "mongo",
            host=mongo_host,
            port=mongo_port,
            log_path=self.log_dir / "mongo.log",
        )
        self.smtp = SmtpSink(
            mail_dir=self.mail_dir,
            host=settings.smtp_host,
            port=settings.smtp_port,
            log_path=self.log_dir / "smtp-sink.log",
        )
        # The keys that sign the links in mails (configured, or this data directory's).
        self.token_secrets = secrets_for(settings, self.data_dir)
        self.facebook_dir = self.data_dir / "facebook"
        self.facebook = FacebookStandIn(
            directory=self.facebook_dir,
            port=settings.facebook_port,
            log_path=self.log_dir / "facebook.log",
            page_id=settings.facebook_page_id.get_secret_value(),
            token=self.token_secrets["facebook_page_token"],
            clock_file=settings.clock_file,
        )
        service_env = self._service_env()
        self.services: dict[str, ManagedProcess] = {
            name: ManagedProcess(
                name,
                service_command(name),
                log_path=self.log_dir / f"{name}.log",
                env={**service_env, **self.nats_login(name), **self._metrics_env(name)},
                cwd=self.base_dir,
                ready_check=self._health_check(name),
            )
            for name in settings.services
        }
        if settings.web:
            self.services[WEB] = ManagedProcess(
                WEB,
                [sys.executable, "-m", "web"],
                log_path=self.log_dir / "web.log",
                env={
                    **service_env,
                    **self.nats_login(nats_accounts.WEB_USER),
                    **self._metrics_env(WEB),
                },
                cwd=self.base_dir,
                ready_check=self._web_check,
            )
        self._supervision = {name: _Supervision() for name in self.services}
        self._lock_file: IO[bytes] | None = None
        self._started = False

    # -- public API -------------------------------------------------------------------

    @property
    def infrastructure(self) -> tuple[NatsServer, MongoServer, SmtpSink, FacebookStandIn]:
        return (self.nats, self.mongo, self.smtp, self.facebook)

    def service(self, name: str) -> ManagedProcess:
        try:
            return self.services[name]
        except KeyError:
            raise KeyError(f"no service {name!r} in this stack: {sorted(self.services)}") from None

    def metrics_port(self, name: str) -> int | None:
        """Where process ``name`` (a service, or the website) serves its metrics; None
        when the stack serves none (SAMSKAB_METRICS_BASE_PORT=0)."""
        base = self.settings.metrics_base_port
        if not base:
            return None
        order = [entry.name for entry in registry.SERVICES] + [WEB]
        return base + order.index(name) if name in order else None

    def metrics_urls(self) -> dict[str, str]:
        """The metrics address of every process the stack runs."""
        found = {name: self.metrics_port(name) for name in self.services}
        return {name: f"http://127.0.0.1:{port}/metrics" for name, port in found.items() if port}

    def _metrics_env(self, name: str) -> dict[str, str]:
        port = str(self.metrics_port(name) or 0)
        if name == WEB:
            return {"SAMSKAB_WEB_METRICS_PORT": port, "SAMSKAB_WEB_METRICS_HOST": "127.0.0.1"}
        return {"SAMSKAB_METRICS_PORT": port, "SAMSKAB_METRICS_HOST": "127.0.0.1"}

    def nats_login(self, user: str) -> dict[str, str]:
        """SAMSKAB_NATS_USER and SAMSKAB_NATS_PASSWORD of one of the stack's NATS users."""
        return {"SAMSKAB_NATS_USER": user, "SAMSKAB_NATS_PASSWORD": self.nats_passwords[user]}

    def nats_options(self, user: str) -> dict[str, str]:
        """``nats.connect`` keywords to log in as one of the stack's NATS users (and read
        replies on the inbox its permissions allow)."""
        password = self.nats_passwords[user]
        return {"user": user, "password": password, "inbox_prefix": inbox_prefix(user)}

    def env(self) -> dict[str, str]:
        """What a CLI or a test needs in its environment to talk to this stack (as the
        operators' ``cli`` user)."""
        return {
            **self.nats_login(nats_accounts.CLI_USER),
            "SAMSKAB_NATS_URL": self.settings.nats_url,
            "SAMSKAB_MONGO_URL": self.settings.mongo_url,
            "SAMSKAB_SMTP_HOST": self.settings.smtp_host,
            "SAMSKAB_SMTP_PORT": str(self.settings.smtp_port),
            "SAMSKAB_DATA_DIR": str(self.data_dir),
        }

    def start(self) -> None:
        """Start everything and wait until it answers; on any failure stop what started."""
        if self._started:
            raise StackError("the stack is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        try:
            self._check_ports()
            # The three servers do not depend on each other: start all, then wait for each.
            for proc in self.infrastructure:
                log.info("starting %s", proc.name)
                proc.start()
            for proc in self.infrastructure:
                proc.wait_ready(timeout=self.ready_timeout)
                log.info("%s is ready (pid %s)", proc.name, proc.pid)
            for service in self.services.values():
                log.info("starting service %s", service.name)
                service.start()
            for service in self.services.values():
                service.wait_ready(timeout=self.ready_timeout, interval=0.2)
                log.info("service %s is ready (pid %s)", service.name, service.pid)
        except BaseException:
            self._stop_all()
            raise
        for state in self._supervision.values():
            state.failures, state.restart_at = 0, None
        self._started = True

    def stop(self) -> None:
        """Stop the services, then the servers, each gracefully (SIGKILL after a timeout)."""
        self._stop_all()
        self._started = False

    def supervise(self) -> None:
        """One supervision round: restart dead services when their backoff is over.

        Raises InfrastructureDiedError if nats-server, SecantusDB or the sink has ended.
        """
        for proc in self.infrastructure:
            if not proc.running:
                raise InfrastructureDiedError(
                    f"{proc.name} died (exit status {proc.returncode}); see {proc.log_path}:\n"
                    f"{proc.log_tail(10)}"
                )
        now = time.monotonic()
        for name, service in self.services.items():
            state = self._supervision[name]
            if service.running:
                if (
                    state.failures
                    and service.started_at is not None
                    and now - service.started_at >= self.stable_after
                ):
                    state.failures = 0
                continue
            if state.restart_at is None:
                delay = self.restart_backoff[min(state.failures, len(self.restart_backoff) - 1)]
                state.failures += 1
                state.restart_at = now + delay
                log.warning(
                    "service %s died (exit status %s); restarting in %g s, see %s",
                    name,
                    service.returncode,
                    delay,
                    service.log_path,
                )
            elif now >= state.restart_at:
                state.restart_at = None
                service.start()
                log.warning("service %s restarted (pid %s)", name, service.pid)

    def supervise_until(self, stop: threading.Event, interval: float = 0.5) -> None:
        """Supervise until ``stop`` is set; InfrastructureDiedError ends it early."""
        while not stop.wait(interval):
            self.supervise()

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------

    def _service_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(settings_env(self.settings))
        env.update(self.env())
        for field, secret in self.token_secrets.items():
            env[f"SAMSKAB_{field.upper()}"] = secret
        env["SAMSKAB_FACEBOOK_GRAPH_URL"] = self.facebook.url
        # Logs reach the file as they happen, which matters most for the lines before a crash.
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _health_check(self, name: str) -> Callable[[], bool]:
        def check() -> bool:
            return service_is_healthy(
                self.settings.nats_url,
                name,
                user=nats_accounts.CLI_USER,
                password=self.nats_passwords[nats_accounts.CLI_USER],
            )

        return check

    @property
    def web_port(self) -> int:
        """Where the website listens (SAMSKAB_WEB_PORT, else the public URL's port)."""
        return listen_port(self.settings.public_url, self.settings.web_port)

    def _web_check(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.web_port}/healthz", timeout=2
            ) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def _check_ports(self) -> None:
        wanted = [
            (self.nats.host, self.nats.port, "NATS", "SAMSKAB_NATS_URL"),
            (
                self.nats.host,
                self.nats.http_port,
                "NATS monitoring",
                f"{NATS_MONITOR_PORT_ENV} / --nats-monitor-port",
            ),
            (self.mongo.host, self.mongo.port, "MongoDB (SecantusDB)", "SAMSKAB_MONGO_URL"),
            (self.smtp.host, self.smtp.port, "SMTP sink", "SAMSKAB_SMTP_PORT"),
            (self.facebook.host, self.facebook.port, "Graph API stand-in", "SAMSKAB_FACEBOOK_PORT"),
        ]
        if WEB in self.services:
            wanted.append(("127.0.0.1", self.web_port, "the website", "SAMSKAB_PUBLIC_URL"))
        for name in self.services:
            port = self.metrics_port(name)
            if port:
                wanted.append(
                    ("127.0.0.1", port, f"metrics of {name}", "SAMSKAB_METRICS_BASE_PORT")
                )
        seen: dict[int, str] = {}
        for host, port, what, setting in wanted:
            if port in seen:
                raise StackError(f"port {port} is configured for both {seen[port]} and {what}")
            seen[port] = what
            if port_in_use(host, port):
                raise PortInUseError(port, what, setting)

    def _lock_data_dir(self) -> None:
        lock_file = (self.data_dir / "stack.lock").open("ab")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise StackError(
                f"another samskab stack is using {self.data_dir}; stop it first"
            ) from None
        self._lock_file = lock_file

    def _stop_all(self) -> None:
        for service in reversed(self.services.values()):
            self._stop_one(service)
            self._supervision[service.name].restart_at = None
        for proc in reversed(self.infrastructure):
            self._stop_one(proc)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _stop_one(self, proc: ManagedProcess) -> None:
        if not proc.running:
            return
        log.info("stopping %s (pid %s)", proc.name, proc.pid)
        status = proc.stop(self.stop_timeout)
        if status not in (0, -signal.SIGTERM):
            log.warning("%s ended with status %s", proc.name, status)


# -- samskab-stack ------------------------------------------------------------------------


def _banner(stack: EmbeddedStack) -> str:
    services = (
        ", ".join(f"{name} (pid {proc.pid})" for name, proc in stack.services.items())
        or "none (SAMSKAB_SERVICES is empty)"
    )
    website = (
        stack.settings.public_url if WEB in stack.services else "not started (SAMSKAB_WEB=false)"
    )
    urls = stack.metrics_urls()
    metrics = (
        "".join(f"\n    {name:<12}{url}" for name, url in urls.items())
        or " none (SAMSKAB_METRICS_BASE_PORT=0)"
    )
    return f"""
samskab is running.
  data      {stack.data_dir}  (a second start resumes from here)
  logs      {stack.log_dir}/<name>.log
  mail      {stack.mail_dir}  (every message sent, one .eml file each)
  NATS      {stack.settings.nats_url}  (monitoring {stack.nats.monitor_url})
  MongoDB   {stack.settings.mongo_url}
  SMTP      {stack.settings.smtp_host}:{stack.settings.smtp_port}
  Facebook  {stack.facebook.url}  (Graph API stand-in; posts under {stack.facebook_dir})
  services  {services}
  website   {website}
  metrics   (Prometheus){metrics}

Use the CLI from another terminal: .venv/bin/samskab --help
  (or `source .venv/bin/activate`, then `samskab --help`).
Press Ctrl-C to stop.
"""


@contextlib.contextmanager
def _signals_raise_interrupt() -> Iterator[None]:
    """While starting, SIGTERM behaves like Ctrl-C so a half-started stack is still stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="samskab-stack",
        description="Run nats-server, SecantusDB, an SMTP sink and the samskab services "
        "on this machine until Ctrl-C. Settings come from SAMSKAB_* variables or .env.",
    )
    parser.add_argument(
        "--nats-monitor-port",
        type=int,
        default=None,
        help=f"HTTP monitoring port of nats-server (default {DEFAULT_NATS_MONITOR_PORT}, "
        f"or ${NATS_MONITOR_PORT_ENV})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    try:
        stack = EmbeddedStack(StackSettings(), Path.cwd(), nats_monitor_port=args.nats_monitor_port)
    except ValidationError as exc:
        print(f"samskab-stack: invalid SAMSKAB_* settings: {exc}", file=sys.stderr)
        return 2
    except (StackError, FileNotFoundError) as exc:
        print(f"samskab-stack: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()
    try:
        with _signals_raise_interrupt():
            stack.start()
    except KeyboardInterrupt:
        print("samskab-stack: interrupted while starting; stopped.", file=sys.stderr)
        return 130
    except StackError as exc:
        print(f"samskab-stack: {exc}", file=sys.stderr)
        return 1
    except (TimeoutError, RuntimeError) as exc:
        print(f"samskab-stack: could not start: {exc}", file=sys.stderr)
        return 1

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            print("\nsamskab-stack: stopping...", file=sys.stderr, flush=True)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(_banner(stack), flush=True)

    status = 0
    try:
        stack.supervise_until(stop)
    except InfrastructureDiedError as exc:
        print(f"samskab-stack: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        stack.stop()
    print("samskab-stack: stopped.", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

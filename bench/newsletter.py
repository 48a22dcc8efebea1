"""Sending one newsletter issue to many subscribers, against a bare aiosmtplib baseline.

Run ``.venv/bin/python bench/newsletter.py`` (``--quick`` for a smoke run). It starts its
own embedded stack in a temporary directory on free ports (nats-server, SecantusDB, the
SMTP sink and the newsletter service as a process, through ``stack/``), then for two sizes,
``--subscribers`` / 5 first and ``--subscribers`` after it:

1. seeds confirmed subscribers straight into the service's database (the documents the
   service's own subscribe + confirm would store, built by its domain functions; without
   their confirmation mails and ``subscribed`` events), up to the size;
2. adds a news item and drafts an issue through the service (ServiceClient requests);
3. baseline: a bare aiosmtplib loop sends one pre-rendered copy of that issue to the same
   recipients over ``mail_concurrency`` connections, each opened once and reused, every
   copy with its own Message-ID (the sink drops a Message-ID it stored before);
4. ours: ``send`` through the service, timed from the request until the sink stored the
   last subscriber's copy (file names in the sink's mail directory carry a hash of the
   Message-ID, which follows from the issue and the subscriber; the time is the newest
   copy's mtime, the directory is scanned every half second); the service's RSS is
   sampled every ~50 ms meanwhile.

The sink stores every message with an fsync, for both paths alike. The table shows each
process's CPU during each run; ``--keep`` keeps the stack's directory (logs, mail) for a
post-mortem, ``--profile DIR`` records py-spy profiles (raw, collapsed stacks) of the
service, SecantusDB and the sink while ours sends the larger issue.

Printed last: ``newsletter_send_ratio=<ours/baseline>`` (mails per second at the larger
size; with ``--rounds N`` the larger size is measured N times, each round's ratio printed,
and the median is the figure).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on the path, where bench/web.py would hide the web
# package: the repository root takes its place (see bench/__init__.py).
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiosmtplib
import nats
from pymongo import AsyncMongoClient

from bench.report import aligned
from contracts.newsletter import Endpoints
from services.newsletter import delivery, domain, store
from services.newsletter.delivery.states import mail_id_for, message_id_for
from services.newsletter.mail import compose
from services.newsletter.mail.rendering import render_issue
from services.runtime.client import ServiceClient
from services.runtime.mongo import DatabaseT
from services.runtime.settings import ClientSettings
from services.runtime.tokens import UNSUBSCRIBE, Signer
from services.runtime.unit_of_work import Reading
from stack.embedded import EmbeddedStack, fresh_settings
from stack.processes import free_port
from stack.settings import StackSettings
from stack.smtp_sink import message_id_key, read_duplicates
from stack.streams import NEWSLETTER_PRODUCERS, declare_streams

try:  # a dev dependency: without it the CPU and memory columns are empty
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUEST_TIMEOUT = 60.0
BENCH_USER = "bench"
SEED_BATCH = 1000
RSS_INTERVAL = 0.05
COUNT_INTERVAL = 0.5
# A placeholder the baseline's pre-rendered copy carries where each send's Message-ID goes.
PLACEHOLDER_ID = "PLACEHOLDERPLACEHOLDERPLACEHOLDER"

T = TypeVar("T")


# ---------------------------------------------------------------------------- measuring


@dataclass
class Run:
    """One measured send: how many mails reached the sink, how fast, at what cost."""

    label: str
    size: int
    done: int = 0
    failures: int = 0
    elapsed: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core, per process
    rss_start: int | None = None  # the service's, bytes
    rss_peak: int | None = None
    timed_out: bool = False

    @property
    def per_second(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


class RssSampler:
    """The peak RSS of one process, sampled every ``interval`` seconds in the background."""

    def __init__(self, pid: int | None, interval: float = RSS_INTERVAL) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def read(self) -> int | None:
        if psutil is None or self.pid is None:
            return None
        try:
            rss = int(psutil.Process(self.pid).memory_info().rss)
        except psutil.Error:
            return None
        self.peak = max(self.peak, rss)
        self.samples += 1
        return rss

    async def _loop(self) -> None:
        while True:
            self.read()
            await asyncio.sleep(self.interval)

    def start(self) -> int | None:
        self.peak, self.samples = 0, 0
        first = self.read()
        self._task = asyncio.create_task(self._loop())
        return first

    async def stop(self) -> int | None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.read()
        return self.peak or None


class CpuMeter:
    """CPU seconds used by each process of the stack (and this script) between two reads."""

    NAMES = ("db", "svc", "sink", "nats", "bench")

    def __init__(self, stack: EmbeddedStack) -> None:
        self.pids = {
            "db": stack.mongo.pid,
            "svc": stack.service("newsletter").pid,
            "sink": stack.smtp.pid,
            "nats": stack.nats.pid,
            "bench": os.getpid(),
        }

    def read(self) -> dict[str, float]:
        if psutil is None:
            return {}
        used: dict[str, float] = {}
        for name, pid in self.pids.items():
            if pid is None:
                continue
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                used[name] = times.user + times.system
        return used

    async def measure(self, run: Run, work: Awaitable[T]) -> T:
        before, started = self.read(), time.perf_counter()
        result = await work
        after, wall = self.read(), time.perf_counter() - started
        if wall > 0:
            run.cpu = {
                name: max(0.0, after[name] - before.get(name, 0.0)) / wall
                for name in after
                if name in before
            }
        return result


class SinkCounter:
    """How many of the expected Message-IDs the sink has stored, from its file names
    (``<ns>-<sha256(Message-ID)[:32]>.eml``), looking at each new name once."""

    def __init__(self, mail_dir: Path, message_ids: Sequence[str]) -> None:
        self.mail_dir = mail_dir
        self.expected = {message_id_key(m) for m in message_ids}
        self.looked_at: set[str] = set()
        self.count = 0
        # When the sink stored the newest expected copy (its file's mtime, epoch seconds).
        self.last_stored = 0.0

    def poll(self) -> int:
        with os.scandir(self.mail_dir) as entries:
            for entry in entries:
                name = entry.name
                if not name.endswith(".eml") or name in self.looked_at:
                    continue
                self.looked_at.add(name)
                if name[:-4].partition("-")[2] in self.expected:
                    self.count += 1
                    with contextlib.suppress(OSError):
                        self.last_stored = max(self.last_stored, entry.stat().st_mtime)
        return self.count


# ---------------------------------------------------------------------------- subscribers


def subscriber_documents(
    settings: StackSettings, unsubscribe: Signer, run: str, start: int, count: int
) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """What ``subscribe`` then ``confirm`` store for ``count`` new addresses, built by the
    service's domain rules; with (id, address, unsubscribe token) of each."""
    docs: list[dict[str, Any]] = []
    who: list[tuple[str, str, str]] = []
    ttl = timedelta(hours=settings.newsletter_token_ttl_hours)
    for i in range(start, start + count):
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
        email = domain.normalised_email(f"abonnent-{run}-{i:06d}@example.org")
        name = domain.normalised_name(f"Abonnent Nummer {i}")
        outcome = domain.subscribe(None, email=email, name=name, now=now, token_ttl=ttl)
        confirmed = domain.confirm(outcome.subscriber, now)
        docs.append(store._to_document(confirmed))
        assert confirmed.address is not None
        who.append((confirmed.id, confirmed.address, unsubscribe.sign(confirmed.id)))
    return docs, who


async def seed(
    db: DatabaseT, settings: StackSettings, unsubscribe: Signer, run: str, start: int, count: int
) -> list[tuple[str, str, str]]:
    who: list[tuple[str, str, str]] = []
    for offset in range(0, count, SEED_BATCH):
        n = min(SEED_BATCH, count - offset)
        docs, batch = subscriber_documents(settings, unsubscribe, run, start + offset, n)
        await db.subscribers.insert_many(docs, ordered=False)
        who.extend(batch)
    return who


# ---------------------------------------------------------------------------- baseline


@dataclass(frozen=True)
class Template:
    """One pre-rendered copy of the issue, split where the Message-ID goes."""

    head: bytes
    tail: bytes
    sender: str

    def message(self, message_id: str) -> bytes:
        return self.head + message_id.encode() + self.tail


async def prerender(
    db: DatabaseT, settings: StackSettings, issue_id: str, who: tuple[str, str, str]
) -> Template:
    """The issue as the service renders it (no images here), one subscriber's copy."""
    issue = await store.load_issue(Reading(db, datetime.now(UTC)), issue_id)
    assert issue is not None, f"issue {issue_id} not found"
    context = domain.issue_context(issue, message_id_domain=settings.mail_message_id_domain)
    context |= {"sender_name": settings.mail_from_name, "public_url": settings.public_url}
    rendered = render_issue(context)
    prepared = compose.PreparedIssue(
        rendered, from_address=settings.mail_from_address, from_name=settings.mail_from_name
    )
    _, address, token = who
    message = prepared.message_for(
        to_address=address,
        to_name=None,
        message_id=f"<{PLACEHOLDER_ID}@{settings.mail_message_id_domain}>",
        unsubscribe_url=domain.unsubscribe_url(settings.public_url, token),
        unsubscribe_mailto=compose.mailto_unsubscribe(settings.mail_unsubscribe_mailto, token),
    )
    marker = f"<{PLACEHOLDER_ID}@{settings.mail_message_id_domain}>".encode()
    head, found, tail = message.partition(marker)
    assert found and marker not in tail, "the Message-ID placeholder must appear once"
    return Template(head, tail, settings.mail_from_address)


async def bare_send(
    settings: StackSettings, template: Template, recipients: Sequence[str], tag: str, run: Run
) -> None:
    """``mail_concurrency`` connections, each opened once, sending until none are left."""
    todo = iter(enumerate(recipients))
    domain_name = settings.mail_message_id_domain

    async def connection() -> None:
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            local_hostname=domain_name,
            timeout=settings.smtp_timeout_seconds,
            start_tls=False,
        )
        await client.connect()
        try:
            for i, rcpt in todo:
                message = template.message(f"<base-{tag}-{i}@{domain_name}>")
                try:
                    await client.sendmail(template.sender, [rcpt], message)
                except aiosmtplib.SMTPException as exc:
                    run.failures += 1
                    if run.failures <= 3:
                        print(f"  baseline: failed: {exc!r}", file=sys.stderr)
                    continue
                run.done += 1
        finally:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(settings.mail_concurrency)))
    run.elapsed = time.perf_counter() - started


# ---------------------------------------------------------------------------- ours


def issue_message_ids(
    settings: StackSettings, issue_id: str, subscriber_ids: Sequence[str]
) -> list[str]:
    """The Message-IDs the service gives this issue's mails (they follow from the dedupe key)."""
    return [
        message_id_for(mail_id_for(f"issue:{issue_id}:{sid}"), settings.mail_message_id_domain)
        for sid in subscriber_ids
    ]


async def draft_issue(client: ServiceClient, label: str) -> str:
    await client.request(
        Endpoints.ITEM_ADD.subject,
        {
            "title": f"Nyt fra netværket ({label})",
            "body": "Vi mødtes i Fredericia og planlagde efterårets arrangementer.\n\n"
            "Alle er velkomne til næste møde; skriv til os, hvis du vil være med.",
            "link": "https://fredericia.example/netvaerk",
        },
        timeout=REQUEST_TIMEOUT,
    )
    issue = await client.request(
        Endpoints.DRAFT.subject,
        {"title": f"Nyhedsbrev, benchmark {label}"},
        timeout=REQUEST_TIMEOUT,
    )
    return str(issue["id"])


async def send_through_service(
    client: ServiceClient,
    issue_id: str,
    counter: SinkCounter,
    sampler: RssSampler,
    run: Run,
    deadline_seconds: float,
) -> None:
    run.rss_start = sampler.start()
    started, started_at = time.perf_counter(), time.time()
    # The reply is the send's job, at once; the fan-out and the mails follow, so the sink
    # is watched from the start.
    request = asyncio.create_task(
        client.request(Endpoints.SEND.subject, {"issue_id": issue_id}, timeout=REQUEST_TIMEOUT)
    )
    try:
        want = len(counter.expected)
        while counter.poll() < want:
            if request.done():
                request.result()  # an error reply ends the run
            if time.perf_counter() - started > deadline_seconds:
                run.timed_out = True
                break
            await asyncio.sleep(COUNT_INTERVAL)
        run.elapsed = time.perf_counter() - started
        if not run.timed_out and counter.last_stored > started_at:
            # The sink's clock, not this loop's: the directory is looked at only now and
            # then (a scan costs CPU the service and the sink would miss).
            run.elapsed = counter.last_stored - started_at
        run.done = counter.count
        await request
    finally:
        request.cancel()
        run.rss_peak = await sampler.stop()


async def settle(db: DatabaseT, issue_id: str, size: int, timeout: float = 60.0) -> dict[str, int]:
    """Wait (unmeasured) until the service has marked the issue's mails, so its trailing
    writes do not land in the next run; returns the issue's mails by state."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await delivery.count_by_state(db, issue_id)
        if counts.get("sent", 0) >= size or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.25)


# ---------------------------------------------------------------------------- profiling


class Profiler:
    """py-spy record (raw collapsed stacks) of some processes while a run lasts."""

    def __init__(self, out_dir: Path | None, pids: dict[str, int | None], label: str) -> None:
        self.out_dir = out_dir
        self.pids = pids
        self.label = label
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def __enter__(self) -> Profiler:
        if self.out_dir is None:
            return self
        spy = Path(sys.executable).with_name("py-spy")
        exe = str(spy) if spy.exists() else shutil.which("py-spy")
        if exe is None:
            print("py-spy not found: no profiles", file=sys.stderr)
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            if pid is None:
                continue
            out = self.out_dir / f"{self.label}-{name}.raw"
            cmd = [exe, "record", "-p", str(pid), "-d", "3600", "-f", "raw", "-o", str(out)]
            cmd += ["--nonblocking", "-r", "200"]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.procs.append((name, proc))
        time.sleep(0.5)  # py-spy attaches
        return self

    def __exit__(self, *exc_info: object) -> None:
        for _, proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        for name, proc in self.procs:
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if proc.returncode not in (0, -signal.SIGINT):
                print(f"py-spy ({name}): {err.decode(errors='replace')[-300:]}", file=sys.stderr)


# ---------------------------------------------------------------------------- the stack


def bench_settings(data_dir: Path, run: str, concurrency: int | None) -> StackSettings:
    extra: dict[str, Any] = {} if concurrency is None else {"mail_concurrency": concurrency}
    return fresh_settings(
        data_dir,
        services=["newsletter"],
        mongo_database=f"bench_{run}",
        demo_import=False,
        # Per-mail INFO lines would cost the service CPU a production setup would not.
        log_level="WARNING",
        log_format="json",
        **extra,
    )


async def _quiet(_exc: Exception) -> None:
    """nats-py prints every refused connect attempt otherwise."""


async def declare_consumed_streams(stack: EmbeddedStack, starting: asyncio.Future[None]) -> None:
    """The streams the newsletter consumes (AMBASSADORS, EVENTS), as their producers declare
    them, once NATS is up: the service waits for them, and their producers are not part of
    this stack."""
    deadline = time.monotonic() + 60
    while not starting.done():
        try:
            nc = await nats.connect(
                stack.settings.nats_url,
                **stack.nats_options(BENCH_USER),
                connect_timeout=1,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                error_cb=_quiet,
            )
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        try:
            await declare_streams(nc.jetstream(), NEWSLETTER_PRODUCERS, stack.settings)
            return
        finally:
            await nc.close()


@contextlib.asynccontextmanager
async def embedded_stack(
    data_dir: Path, run: str, concurrency: int | None
) -> AsyncIterator[EmbeddedStack]:
    stack = EmbeddedStack(
        bench_settings(data_dir, run, concurrency),
        REPO_ROOT,
        nats_monitor_port=free_port(),
        ready_timeout=60,
        # Declares the streams of the producers this stack does not run.
        unrestricted_nats_users=[BENCH_USER],
    )
    starting = asyncio.create_task(asyncio.to_thread(stack.start))
    try:
        # The service waits until the streams it consumes exist; their producers are not
        # part of this stack, so the streams are declared here.
        await declare_consumed_streams(stack, starting)
        await starting
    except BaseException:
        with contextlib.suppress(BaseException):
            await starting
        raise
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


# ---------------------------------------------------------------------------- report


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def render_table(runs: list[Run]) -> str:
    header = ["run", "mails", "done", "failed", "seconds", "mails/s", "rss0 MiB", "peak MiB"]
    if any(r.cpu for r in runs):
        header += [f"{n}%" for n in CpuMeter.NAMES]
    rows = []
    for r in runs:
        row = [
            r.label + (" (deadline)" if r.timed_out else ""),
            str(r.size),
            str(r.done),
            str(r.failures),
            f"{r.elapsed:.2f}",
            f"{r.per_second:.1f}",
            mib(r.rss_start),
            mib(r.rss_peak),
        ]
        if r.cpu:
            row += [f"{100 * r.cpu.get(n, 0.0):.0f}" for n in CpuMeter.NAMES]
        rows.append(row)
    return aligned(header, rows)


# ---------------------------------------------------------------------------- main


@dataclass
class Bench:
    args: argparse.Namespace
    stack: EmbeddedStack
    db: DatabaseT
    client: ServiceClient
    run_id: str
    meter: CpuMeter
    sampler: RssSampler
    who: list[tuple[str, str, str]] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def settings(self) -> StackSettings:
        return self.stack.settings

    @property
    def unsubscribe(self) -> Signer:
        """Signs unsubscribe links as the service does (the baseline's mails carry one)."""
        return Signer(self.stack.token_secrets["newsletter_token_secret"], UNSUBSCRIBE)

    async def size(
        self, size: int, profile_dir: Path | None, round_no: int = 1, ours_first: bool = False
    ) -> tuple[Run, Run]:
        """Baseline and ours at ``size`` (seeding what is missing): one round. ``ours_first``
        swaps the order, so that a drift of the machine (a warming cache, a growing
        database) does not always favour the same side."""
        s = self.settings
        started = time.perf_counter()
        added = await seed(
            self.db, s, self.unsubscribe, self.run_id, len(self.who), size - len(self.who)
        )
        self.who.extend(added)
        if added:
            print(
                f"  seeded {len(added)} confirmed subscribers ({len(self.who)} in all) in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
        label = f"{size}" if round_no == 1 else f"{size} #{round_no}"
        issue_id = await draft_issue(self.client, label)
        template = await prerender(self.db, s, issue_id, self.who[0])
        recipients = [address for _, address, _ in self.who[:size]]
        suffix = "" if round_no == 1 else f" #{round_no}"
        base = Run(f"baseline n={size}{suffix}", size)
        ours = Run(f"ours n={size}{suffix}", size)

        async def baseline() -> None:
            print(f"  baseline: {size} mails, {s.mail_concurrency} connections ...", flush=True)
            tag = f"{self.run_id}-{size}-{round_no}"
            await self.meter.measure(base, bare_send(s, template, recipients, tag, base))
            self.runs.append(base)

        async def through_service() -> None:
            print(f"  ours: send issue {issue_id} to {size} subscribers ...", flush=True)
            ids = issue_message_ids(s, issue_id, [sid for sid, _, _ in self.who[:size]])
            counter = SinkCounter(self.stack.mail_dir, ids)
            counter.poll()  # names already there are looked at before the clock starts
            pids = {name: self.meter.pids[name] for name in ("svc", "db", "sink")}
            with Profiler(profile_dir, pids, f"n{size}-{round_no}"):
                await self.meter.measure(
                    ours,
                    send_through_service(
                        self.client, issue_id, counter, self.sampler, ours, self.args.phase_timeout
                    ),
                )
            self.runs.append(ours)
            counts = await settle(self.db, issue_id, size)
            states = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
            self.notes.append(f"issue n={size}{suffix}: mails by state after the run: {states}")

        for step in (through_service, baseline) if ours_first else (baseline, through_service):
            await step()
            await asyncio.sleep(1.0)  # the sink's last fsyncs, the service's idle polls
        return base, ours


async def run_bench(args: argparse.Namespace) -> int:
    run_id = uuid.uuid4().hex[:8]
    with contextlib.ExitStack() as cleanup:
        if args.keep:
            tmp = tempfile.mkdtemp(prefix="samskab-bench-newsletter-")
            print(f"keeping the stack's data and logs in {tmp}", flush=True)
        else:
            tmp = cleanup.enter_context(
                tempfile.TemporaryDirectory(prefix="samskab-bench-newsletter-")
            )
        async with embedded_stack(Path(tmp) / "var", run_id, args.concurrency) as stack:
            s = stack.settings
            service = stack.service("newsletter")
            print(
                f"stack: nats-server {s.nats_url}, SecantusDB {s.mongo_url}, SMTP sink "
                f"{s.smtp_host}:{s.smtp_port}, newsletter pid {service.pid}; "
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(s.mongo_url, tz_aware=True)
            client = ServiceClient(
                ClientSettings(_env_file=None, nats_url=s.nats_url, data_dir=stack.data_dir)
            )
            try:
                await client.connect()
                bench = Bench(
                    args,
                    stack,
                    mongo[s.mongo_database],
                    client,
                    run_id,
                    CpuMeter(stack),
                    RssSampler(service.pid),
                )
                return await measure(bench)
            finally:
                await client.close()
                await mongo.close()
    return 1  # pragma: no cover (the context managers do not swallow exceptions)


async def measure(bench: Bench) -> int:
    args = bench.args
    small = max(1, args.subscribers // 5)
    print(f"small issue: {small} subscribers ...", flush=True)
    _, ours_small = await bench.size(small, None)
    ratios: list[float] = []
    for round_no in range(1, args.rounds + 1):
        print(f"large issue, round {round_no}: {args.subscribers} subscribers ...", flush=True)
        base, ours = await bench.size(
            args.subscribers,
            args.profile if round_no == 1 else None,
            round_no,
            ours_first=round_no % 2 == 0,
        )
        ratios.append(ours.per_second / base.per_second if base.per_second > 0 else 0.0)

    s = bench.settings
    print()
    print(render_table(bench.runs))
    print()
    print("mails/s: mails in the sink per second; ours from the send request until the sink")
    print("         holds every subscriber's copy, baseline from its first connect to the")
    print(f"         last reply; both over mail_concurrency={s.mail_concurrency} connections")
    print("rss:     the newsletter service's resident memory when the send starts, and its")
    print(f"         peak while sending (sampled every {RSS_INTERVAL * 1000:.0f} ms)")
    print("cpu:     share of one core per process during the run (2 cores = 200)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work on this machine)")
    duplicates = read_duplicates(bench.stack.mail_dir)
    print(f"duplicates the sink dropped: {len(duplicates)}")
    for note in bench.notes:
        print(note)
    if ours_small.rss_peak and ours.rss_peak:
        growth = (ours.rss_peak - ours_small.rss_peak) / 2**20
        print(
            f"service peak RSS: {mib(ours_small.rss_peak)} MiB at {ours_small.size} subscribers, "
            f"{mib(ours.rss_peak)} MiB at {ours.size} ({growth:+.1f} MiB)"
        )
    print(f"ours: {ours.per_second:.1f} mails/s, baseline: {base.per_second:.1f} mails/s")
    if len(ratios) > 1:
        print("ratio per round (ours/baseline): " + ", ".join(f"{r:.3f}" for r in ratios))
    print(f"newsletter_send_ratio={statistics.median(ratios):.3f}")
    complete = all(r.done == r.size and not r.timed_out for r in bench.runs)
    return 0 if complete else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--subscribers",
        type=int,
        default=10_000,
        help="confirmed subscribers of the larger issue (the smaller one goes to a fifth)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="SMTP connections, for the service (mail_concurrency) and the baseline alike "
        "(default: the setting's default)",
    )
    parser.add_argument(
        "--phase-timeout",
        type=float,
        default=600.0,
        help="give up on a send through the service after this many seconds",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="write py-spy raw profiles of the service, SecantusDB and the sink during "
        "ours at the larger size into DIR",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary stack directory (logs, data)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the larger issue this many times, baseline and ours in turn (the "
        "order swapped every other round); the ratio printed last is their median",
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.phase_timeout = 300, 30.0
    if args.subscribers < 5 or args.phase_timeout <= 0 or args.rounds < 1:
        parser.error("--subscribers must be at least 5, --phase-timeout > 0, --rounds >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run_bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

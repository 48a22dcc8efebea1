"""Sign-up throughput and latency of the ambassadors service against a bare-script baseline.

Run ``.venv/bin/python bench/signup.py`` (``--quick`` for a smoke run). It starts its own
embedded stack in a temporary directory on free ports (nats-server, SecantusDB, the SMTP
sink and the ambassadors service as a process, through ``stack/``), warms both paths up,
then measures in this order:

1. baseline, against the same nats-server and SecantusDB: a bare script doing the least a
   sign-up needs (one MongoDB transaction inserting an ambassador-like document and an
   outbox document, a JetStream publish with ``Nats-Msg-Id`` waiting for the ack, marking
   the outbox entry published), ``--count`` of them with ``--concurrency`` in flight, each
   done when a core subscriber has its message; our renderer is stopped meanwhile;
2. steady load: our staff sign-ups at ``--rate`` per second for ``--seconds`` (open loop:
   sends keep their schedule whatever the replies do); the latency of each is from sending
   the command to its ``ambassadors.v1.activated`` event reaching a plain core NATS
   subscriber;
3. saturation: ``--count`` of our sign-ups with ``--concurrency`` in flight, each done when
   its ``activated`` event arrives (no new one is started after ``--phase-timeout``);
4. (not with ``--quick`` or ``--no-extra``) the baseline again, now that our store holds
   every sign-up so far: while our renderer works through their certificates, then with
   it stopped, plus SecantusDB's CPU while nothing is being signed up.

Every staff sign-up also queues a certificate PDF (WeasyPrint, ~100 ms CPU each) for the
service's niced renderer process, which competes for the 2 cores; ``--renderer paused``
stops it (SIGSTOP) during our runs to see what it costs. The table shows each process's CPU.
``--keep`` keeps the stack's directory (logs) for a post-mortem.

Printed last: ``signup_p99_ms_at_<rate>=`` (steady load; a sign-up that never completed
counts as infinite) and ``signup_throughput_ratio=<ours/baseline>`` (saturation of 3.
against the baseline of 1.).
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
import json
import math
import os
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from bench.report import aligned, ms, percentile
from contracts.ambassadors import Endpoints
from services.runtime.client import ServiceClient
from services.runtime.settings import ClientSettings
from stack.embedded import EmbeddedStack, fresh_settings
from stack.processes import free_port
from stack.settings import StackSettings

try:  # a dev dependency: without it the CPU columns and the renderer pause are skipped
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

REPO_ROOT = Path(__file__).resolve().parents[1]
ACTIVATED = "ambassadors.v1.activated"
BASELINE_STREAM = "BENCHBASE"
BENCH_USER = "bench"
BASELINE_SUBJECT = "benchbase.v1.activated"
WAIT_FOR_EVENT_SECONDS = 60.0
REQUEST_TIMEOUT = 60.0

Document = dict[str, Any]
# perf_counter times of one sign-up: sent, acknowledged (committed), event arrived.
Timing = tuple[float, float, float]


# ---------------------------------------------------------------------------- measuring


class Arrivals:
    """When each event (by ``ambassador_id``) first reached our core NATS subscriber."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._waiters: dict[str, asyncio.Future[float]] = {}

    async def on_message(self, msg: Msg) -> None:
        now = time.perf_counter()
        key = str(json.loads(msg.data)["ambassador_id"])
        self.times.setdefault(key, now)
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(self.times[key])

    async def wait(self, key: str, timeout: float = WAIT_FOR_EVENT_SECONDS) -> float:
        if key in self.times:
            return self.times[key]
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[key] = waiter
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiters.pop(key, None)


@dataclass
class Phase:
    """One measured run: how many sign-ups, how fast, how long each took."""

    label: str
    sent: int = 0
    failures: int = 0
    elapsed: float = 0.0  # first send -> last completion
    latencies_ms: list[float] = field(default_factory=list)  # sent -> event arrived
    ack_ms: list[float] = field(default_factory=list)  # sent -> reply (committed)
    done_at: list[float] = field(default_factory=list)  # seconds since the first send
    acked_at: list[float] = field(default_factory=list)
    stopped_early: bool = False  # the phase deadline came before --count was reached
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core, per process

    def record(self, sent: float, acked: float, done: float) -> None:
        """One completed sign-up, times in seconds since the phase started."""
        self.latencies_ms.append((done - sent) * 1000)
        self.ack_ms.append((acked - sent) * 1000)
        self.done_at.append(done)
        self.acked_at.append(acked)

    @property
    def acked_per_second(self) -> float:
        span = max(self.acked_at, default=0.0)
        return len(self.acked_at) / span if span > 0 else 0.0

    @property
    def done(self) -> int:
        return len(self.latencies_ms)

    @property
    def per_second(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def latency(self, q: float) -> float:
        """Percentile over every sign-up sent; one that never completed counts as infinite."""
        values = self.latencies_ms + [math.inf] * self.failures
        return percentile(values, q) if values else math.inf

    def quarter_rates(self) -> tuple[float, float]:
        """Completions per second in the first and in the last quarter of completions."""
        times = sorted(self.done_at)
        n = len(times) // 4
        if n < 2:
            return (math.nan, math.nan)
        first = n / times[n - 1] if times[n - 1] > 0 else math.nan
        span = times[-1] - times[-n - 1]
        last = n / span if span > 0 else math.nan
        return (first, last)


async def steady(
    label: str, work: Callable[[], Awaitable[Timing]], rate: float, seconds: float
) -> Phase:
    """Open loop: start ``work`` ``rate`` times a second whatever the replies do."""
    phase = Phase(label, sent=max(1, round(rate * seconds)))
    start = time.perf_counter()

    async def one() -> None:
        try:
            sent, acked, done = await work()
        except Exception as exc:
            phase.failures += 1
            if phase.failures <= 3:
                print(f"  {label}: failed: {exc!r}", file=sys.stderr)
            return
        phase.record(sent - start, acked - start, done - start)

    tasks: list[asyncio.Task[None]] = []
    for i in range(phase.sent):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    phase.elapsed = max(phase.done_at, default=time.perf_counter() - start)
    return phase


async def closed_loop(
    label: str,
    work: Callable[[], Awaitable[Timing]],
    count: int,
    concurrency: int,
    deadline_seconds: float = math.inf,
) -> Phase:
    """``count`` calls of ``work`` with ``concurrency`` in flight; none started after the
    deadline. ``work`` returns (sent, done) perf_counter times."""
    phase = Phase(label)
    queue = iter(range(count))
    start = time.perf_counter()
    deadline = start + deadline_seconds

    async def worker() -> None:
        for _ in queue:
            if time.perf_counter() > deadline:
                phase.stopped_early = True
                return
            phase.sent += 1
            try:
                sent, acked, done = await work()
            except Exception as exc:
                phase.failures += 1
                if phase.failures <= 3:
                    print(f"  {label}: failed: {exc!r}", file=sys.stderr)
                continue
            phase.record(sent - start, acked - start, done - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.elapsed = max(phase.done_at, default=time.perf_counter() - start)
    return phase


# ---------------------------------------------------------------------------- our service


class Ours:
    """Staff sign-ups through the ambassadors service, done when ``activated`` arrives."""

    def __init__(self, client: ServiceClient, arrivals: Arrivals, run: str) -> None:
        self.client = client
        self.arrivals = arrivals
        self.run = run
        self.serial = 0
        self.last_id: str | None = None

    async def start_renderer(self) -> None:
        """Fetch one certificate: the service starts its renderer process for it, so that
        the renderer exists (and can be paused) from the first measured run on."""
        if self.last_id is not None:
            await self.client.request(
                Endpoints.CERTIFICATE.subject,
                {"ambassador_id": self.last_id},
                timeout=REQUEST_TIMEOUT,
            )

    def payload(self) -> dict[str, Any]:
        self.serial += 1
        return {
            "name": f"Bench Ambassadør {self.serial}",
            "email": f"bench-{self.run}-{self.serial}@example.org",
            "kind": "citizen",
            "consent": True,
        }

    async def sign_up(self) -> Timing:
        payload = self.payload()
        sent = time.perf_counter()
        result = await self.client.request(
            Endpoints.REGISTER.subject, payload, timeout=REQUEST_TIMEOUT
        )
        acked = time.perf_counter()
        self.last_id = str(result["ambassador"]["id"])
        # The event may arrive before the reply; Arrivals keeps its time either way.
        arrived = await self.arrivals.wait(self.last_id)
        return sent, acked, arrived


# ---------------------------------------------------------------------------- baseline


class Baseline:
    """The same store transaction + outbox + JetStream publish, by a bare script."""

    def __init__(
        self, mongo: AsyncMongoClient[Document], nc: Client, arrivals: Arrivals, run: str
    ) -> None:
        self.mongo = mongo
        self.db = mongo[f"bench_baseline_{run}"]
        self.js = nc.jetstream()
        self.arrivals = arrivals
        self.run = run
        self.serial = 0

    async def prepare(self) -> None:
        # The indexes a real sign-up store keeps: unique e-mail, the outbox's claim order;
        # the stream is configured like ours (file storage, 24 h dedupe window).
        await self.db.ambassadors.create_index("email_key", unique=True)
        await self.db.outbox.create_index([("state", ASCENDING), ("order", ASCENDING)])
        with contextlib.suppress(NotFoundError):
            await self.js.delete_stream(BASELINE_STREAM)
        await self.js.add_stream(
            StreamConfig(
                name=BASELINE_STREAM,
                subjects=["benchbase.v1.>"],
                storage=StorageType.FILE,
                num_replicas=1,
                duplicate_window=24 * 3600,
            )
        )

    async def sign_up(self) -> Timing:
        self.serial += 1
        serial = self.serial
        sent = time.perf_counter()
        ambassador_id = uuid.uuid4().hex
        event_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        email = f"base-{self.run}-{serial}@example.org"
        payload = json.dumps(
            {
                "event_id": event_id,
                "occurred_at": now.isoformat(),
                "producer": "baseline",
                "ambassador_id": ambassador_id,
                "name": f"Baseline {serial}",
                "email": email,
                "kind": "citizen",
            }
        ).encode()

        async def work(session: AsyncClientSession) -> None:
            await self.db.ambassadors.insert_one(
                {
                    "_id": ambassador_id,
                    "status": "active",
                    "email_key": email,
                    "profile": {"name": f"Baseline {serial}", "email": email},
                    "kind": "citizen",
                    "signed_up_at": now,
                    "activated_at": now,
                },
                session=session,
            )
            await self.db.outbox.insert_one(
                {
                    "_id": event_id,
                    "subject": BASELINE_SUBJECT,
                    "payload": payload,
                    "state": "pending",
                    "order": time.time_ns(),
                    "created_at": now,
                },
                session=session,
            )

        # As the service does it: snapshot reads, majority commit.
        async with self.mongo.start_session() as session:
            await session.with_transaction(
                work, read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
            )
        acked = time.perf_counter()  # committed: where our service would reply
        await self.js.publish(
            BASELINE_SUBJECT, payload, headers={"Nats-Msg-Id": event_id}, timeout=5.0
        )
        await self.db.outbox.update_one(
            {"_id": event_id},
            {"$set": {"state": "published", "published_at": datetime.now(UTC)}},
        )
        arrived = await self.arrivals.wait(ambassador_id)
        return sent, acked, arrived


# ---------------------------------------------------------------------------- processes


def renderer_pids(service_pid: int) -> list[int]:
    """The service's certificate renderer: a spawned ProcessPoolExecutor worker."""
    if psutil is None:
        return []
    try:
        children = psutil.Process(service_pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child.pid)
    return found


@contextlib.contextmanager
def renderer_paused(service_pid: int) -> Iterator[bool]:
    """SIGSTOP the renderer meanwhile (its backlog waits); yields whether one was running."""
    pids = renderer_pids(service_pid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        yield bool(pids)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


class CpuMeter:
    """CPU seconds used by each process of the stack (and this script) between two reads."""

    def __init__(self, stack: EmbeddedStack) -> None:
        service = stack.service("ambassadors")
        self.service_pid = service.pid or 0
        self.fixed = {
            "db": stack.mongo.pid,
            "svc": service.pid,
            "nats": stack.nats.pid,
            "bench": os.getpid(),
        }

    def read(self) -> dict[str, float]:
        if psutil is None:
            return {}
        pids: dict[str, list[int]] = {
            name: [pid] for name, pid in self.fixed.items() if pid is not None
        }
        pids["render"] = renderer_pids(self.service_pid)
        used: dict[str, float] = {}
        for name, group in pids.items():
            total = 0.0
            for pid in group:
                with contextlib.suppress(psutil.Error):
                    times = psutil.Process(pid).cpu_times()
                    total += times.user + times.system
            used[name] = total
        return used

    async def measure(self, phase: Awaitable[Phase]) -> Phase:
        before, started = self.read(), time.perf_counter()
        result = await phase
        after, wall = self.read(), time.perf_counter() - started
        result.cpu = {
            name: max(0.0, after[name] - before.get(name, 0.0)) / wall for name in after if wall > 0
        }
        return result


# ---------------------------------------------------------------------------- the stack


def bench_settings(data_dir: Path, run: str) -> StackSettings:
    return fresh_settings(
        data_dir,
        services=["ambassadors"],
        mongo_database=f"bench_{run}",
        demo_import=False,
        # Per-request INFO lines would cost the service CPU a production setup would not.
        log_level="WARNING",
        log_format="json",
    )


def operator_settings(stack: EmbeddedStack) -> ClientSettings:
    """What the CLI would use: the stack's operator login."""
    return ClientSettings(_env_file=None, nats_url=stack.settings.nats_url, data_dir=stack.data_dir)


@contextlib.asynccontextmanager
async def embedded_stack(data_dir: Path, run: str) -> AsyncIterator[EmbeddedStack]:
    stack = EmbeddedStack(
        bench_settings(data_dir, run),
        REPO_ROOT,
        nats_monitor_port=free_port(),
        ready_timeout=60,
        # The baseline's own stream and the subscribers: nothing a service user may do.
        unrestricted_nats_users=[BENCH_USER],
    )
    await asyncio.to_thread(stack.start)
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


# ---------------------------------------------------------------------------- report


def render_table(phases: list[Phase]) -> str:
    header = ["run", "sent", "done", "failed", "per s", "p50 ms", "p99 ms", "max ms"]
    header += ["acks/s", "ack p50", "ack p99"]
    cpu_names = ["db", "svc", "render", "nats", "bench"]
    if any(p.cpu for p in phases):
        header += [f"{n}%" for n in cpu_names]
    rows = []
    for p in phases:
        row = [
            p.label + (" (deadline)" if p.stopped_early else ""),
            str(p.sent),
            str(p.done),
            str(p.failures),
            f"{p.per_second:.1f}",
            ms(p.latency(50)),
            ms(p.latency(99)),
            ms(p.latency(100)),
            f"{p.acked_per_second:.1f}",
            ms(percentile(p.ack_ms, 50)) if p.ack_ms else "-",
            ms(percentile(p.ack_ms, 99)) if p.ack_ms else "-",
        ]
        if p.cpu:
            row += [f"{100 * p.cpu.get(n, 0.0):.0f}" for n in cpu_names]
        rows.append(row)
    return aligned(header, rows)


# ---------------------------------------------------------------------------- main


async def run_bench(args: argparse.Namespace) -> int:
    run = uuid.uuid4().hex[:8]
    with contextlib.ExitStack() as cleanup:
        if args.keep:
            tmp = tempfile.mkdtemp(prefix="samskab-bench-")
            print(f"keeping the stack's data and logs in {tmp}", flush=True)
        else:
            tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="samskab-bench-"))
        async with embedded_stack(Path(tmp) / "var", run) as stack:
            url = stack.settings.nats_url
            print(
                f"stack: nats-server {url}, SecantusDB {stack.settings.mongo_url}, "
                f"ambassadors pid {stack.service('ambassadors').pid}; "
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            ours_arrivals, base_arrivals = Arrivals(), Arrivals()
            bench_login = stack.nats_options(BENCH_USER)
            sub_nc = await nats.connect(url, name="bench-subscriber", **bench_login)
            base_nc = await nats.connect(url, name="bench-baseline", **bench_login)
            mongo: AsyncMongoClient[Document] = AsyncMongoClient(
                stack.settings.mongo_url, tz_aware=True
            )
            client = ServiceClient(operator_settings(stack))
            try:
                # Plain core subscriptions: they see what JetStream stores on these subjects.
                await sub_nc.subscribe(ACTIVATED, cb=ours_arrivals.on_message)
                await sub_nc.subscribe(BASELINE_SUBJECT, cb=base_arrivals.on_message)
                await sub_nc.flush()
                await client.connect()
                ours = Ours(client, ours_arrivals, run)
                baseline = Baseline(mongo, base_nc, base_arrivals, run)
                await baseline.prepare()
                return await measure(args, stack, ours, baseline)
            finally:
                await client.close()
                await mongo.close()
                await base_nc.close()
                await sub_nc.close()


async def measure(
    args: argparse.Namespace, stack: EmbeddedStack, ours: Ours, baseline: Baseline
) -> int:
    meter = CpuMeter(stack)
    service_pid = meter.service_pid
    c = args.concurrency
    notes: list[str] = []

    print("warming up ...", flush=True)
    await closed_loop("warm-up", ours.sign_up, args.warmup, min(4, c))
    await closed_loop("warm-up", baseline.sign_up, args.warmup, min(4, c))
    await ours.start_renderer()

    phases: list[Phase] = []
    # The baseline first, on an idle machine: the renderer is stopped (its warm-up backlog
    # waits) and our store is still nearly empty.
    print(f"baseline: {args.count} sign-ups, {c} in flight ...", flush=True)
    with renderer_paused(service_pid) as paused:
        if not args.quick:
            notes.append(f"SecantusDB CPU while idle, before ours: {await idle_db(meter):.0%}")
        base_idle = await meter.measure(
            closed_loop(f"baseline c={c}", baseline.sign_up, args.count, c, args.phase_timeout)
        )
    phases.append(base_idle)
    if not paused:
        notes.append("(no renderer process found to pause: psutil missing or none started)")

    # Ours: the renderer runs as in production, unless --renderer paused.
    hold = args.renderer == "paused"
    suffix = ", renderer paused" if hold else ""
    with renderer_paused(service_pid) if hold else contextlib.nullcontext(False):
        print(f"ours, steady: {args.rate:g}/s for {args.seconds:g} s ...", flush=True)
        steady_phase = await meter.measure(
            steady(f"ours steady {args.rate:g}/s{suffix}", ours.sign_up, args.rate, args.seconds)
        )
        phases.append(steady_phase)

        print(f"ours, saturation: {args.count} sign-ups, {c} in flight ...", flush=True)
        stored_before = ours.serial
        ours_sat = await meter.measure(
            closed_loop(
                f"ours saturation c={c}{suffix}", ours.sign_up, args.count, c, args.phase_timeout
            )
        )
        phases.append(ours_sat)
    first, last = ours_sat.quarter_rates()
    notes.append(
        f"ours saturation started with {stored_before} ambassadors stored; "
        f"first quarter {first:.1f}/s, last quarter {last:.1f}/s"
    )

    if not args.quick and not args.no_extra:
        # The baseline again, now that our store holds every sign-up so far: first while
        # the renderer works through their certificates, then with it stopped.
        print("baseline again: renderer busy, then paused ...", flush=True)
        busy = await meter.measure(
            closed_loop(
                f"baseline c={c}, after ours, renderer busy",
                baseline.sign_up,
                args.count,
                c,
                args.phase_timeout,
            )
        )
        phases.append(busy)
        with renderer_paused(service_pid):
            notes.append(
                f"SecantusDB CPU while idle, after ours ({ours.serial} ambassadors, "
                f"service idle, renderer paused): {await idle_db(meter):.0%}"
            )
            after = await meter.measure(
                closed_loop(
                    f"baseline c={c}, after ours, renderer paused",
                    baseline.sign_up,
                    args.count,
                    c,
                    args.phase_timeout,
                )
            )
        phases.append(after)
        if after.per_second > 0:
            notes.append(
                f"renderer effect on the baseline: {busy.per_second:.1f}/s rendering vs "
                f"{after.per_second:.1f}/s paused ({busy.per_second / after.per_second:.2f}x)"
            )

    print()
    print(render_table(phases))
    print()
    print("latency: command sent -> its ambassadors.v1.activated at a core NATS subscriber")
    print("         (baseline: transaction start -> its message at a core subscriber);")
    print("         a sign-up that failed counts as infinite")
    print("per s:   sign-ups completed per second, first send to last completion")
    print("acks:    replies (ours) / commits (baseline) per second, and sent -> reply p50/p99 ms")
    print("cpu:     share of one core per process during the run (2 cores = 200)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work on this machine)")
    for note in notes:
        print(note)

    p99 = steady_phase.latency(99)
    print(f"signup_p99_ms_at_{args.rate:g}={ms(p99)}")
    ratio = ours_sat.per_second / base_idle.per_second if base_idle.per_second > 0 else 0.0
    print(f"signup_throughput_ratio={ratio:.3f}")
    broken = ours_sat.done == 0 or base_idle.done == 0 or steady_phase.done == 0
    return 1 if broken else 0


async def idle_db(meter: CpuMeter, seconds: float = 2.0) -> float:
    """SecantusDB's CPU share while nobody signs up (what background polling costs it)."""
    before = meter.read().get("db", 0.0)
    await asyncio.sleep(seconds)
    return (meter.read().get("db", 0.0) - before) / seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="steady sign-ups per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady load duration")
    parser.add_argument("--concurrency", type=int, default=32, help="in flight at saturation")
    parser.add_argument("--count", type=int, default=1000, help="sign-ups at saturation")
    parser.add_argument(
        "--phase-timeout",
        type=float,
        default=120.0,
        help="start no new sign-up in a saturation run after this many seconds",
    )
    parser.add_argument("--warmup", type=int, default=20, help="sign-ups each to warm up")
    parser.add_argument(
        "--renderer",
        choices=["run", "paused"],
        default="run",
        help="run: the certificate renderer works during our runs, as in production; "
        "paused: it is stopped (SIGSTOP) meanwhile, to see what it costs",
    )
    parser.add_argument("--no-extra", action="store_true", help="skip the baseline runs after ours")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary stack directory (logs, data)"
    )
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.seconds, args.concurrency, args.count = 20.0, 1.0, 8, 40
        args.warmup, args.phase_timeout = 5, 20.0
    if min(args.rate, args.seconds, args.concurrency, args.count, args.phase_timeout) <= 0:
        parser.error("--rate, --seconds, --concurrency, --count and --phase-timeout must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run_bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

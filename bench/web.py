"""The website's directory and calendar pages against a bare ASGI app serving the same bytes.

Run ``.venv/bin/python bench/web.py`` (``--quick`` for a smoke run). It starts its own
embedded stack in a temporary directory on free ports (nats-server, SecantusDB, the SMTP
sink, the ambassadors, events and networks services and the website as processes, through
``stack/``), with the demo import's organisations in the directory and ``--meetings``
public meetings in the calendar. It then captures each page of :data:`PAGES` once from
the website and starts the baseline: a bare ASGI app that answers each path with the
captured status, headers and body, served by ``web.__main__.serve`` (the same uvicorn
settings as the website) as a process of its own.

Measured for each, in turn (the order swapped every other round, ``--rounds``):

1. steady load: ``--rate`` requests per second for ``--seconds`` (open loop: sends keep
   their schedule whatever the replies do), the pages in turn; latency from sending the
   request to the last byte of the answer;
2. saturation: ``--count`` requests with ``--concurrency`` in flight.

Every request is a first visit (no ``If-None-Match``): the website asks the services and
renders each time. Both sides are asked over keep-alive connections, as a reverse proxy
in front would. The client runs on the same machine and shares its cores with both.

The website keeps the services' answers that are the same for every visitor for a few
seconds (``SAMSKAB_WEB_ANSWER_CACHE_SECONDS``, web/shared_answers.py); ``--answer-cache-seconds
0`` measures every page view asking its service.

Printed last: ``web_p99_ms_at_<rate>=`` (our steady load, the worst round) and
``web_page_ratio=<ours/bare>`` (saturation throughput, the median of the rounds).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on the path, where this file would hide the web
# package: the repository root takes its place (see bench/__init__.py).
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import re
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from bench.report import aligned, ms, percentile
from contracts.ambassadors import Endpoints as Ambassadors
from contracts.ambassadors import GetDirectory, Register
from contracts.errors import ErrorCode, ServiceError
from contracts.events import COPENHAGEN, Audience, MeetingKind, ScheduleMeeting
from contracts.events import Endpoints as Events
from services.runtime.client import ServiceClient
from services.runtime.settings import ClientSettings
from stack.embedded import EmbeddedStack, fresh_settings
from stack.processes import ManagedProcess, free_port
from web.settings import WebSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
# Directory and calendar pages, as visitors open them.
DIRECTORY_PAGES = (
    "/ambassadoerer",
    "/ambassadoerer?side=2",
    "/ambassadoerer?tema=5",
    "/ambassadoerer?type=association&kerneomraade=health",
)
CALENDAR_PAGES = ("/kalender",)
REQUEST_TIMEOUT = 10.0


@dataclass
class Phase:
    label: str
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return len(self.latencies_ms)

    @property
    def per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def latency(self, q: float) -> float:
        # A request that failed counts as infinitely slow.
        return percentile(self.latencies_ms + [math.inf] * self.failures, q)


class Visitor:
    """Asks one site for its pages in turn over a pool of keep-alive connections."""

    def __init__(self, base: str, pages: list[str], connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.client = httpx.AsyncClient(base_url=base, limits=limits, timeout=REQUEST_TIMEOUT)
        self.pages = pages
        self.turn = 0

    async def close(self) -> None:
        await self.client.aclose()

    async def visit(self, phase: Phase) -> None:
        path = self.pages[self.turn % len(self.pages)]
        self.turn += 1
        started = time.perf_counter()
        try:
            answer = await self.client.get(path)
            await answer.aread()
            ok = answer.status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            phase.latencies_ms.append((time.perf_counter() - started) * 1000)
        else:
            phase.failures += 1


async def steady(label: str, visitor: Visitor, rate: float, seconds: float) -> Phase:
    phase = Phase(label)
    total = int(rate * seconds)
    started = time.perf_counter()
    tasks = []
    for n in range(total):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(visitor.visit(phase)))
    await asyncio.gather(*tasks)
    phase.seconds = time.perf_counter() - started
    return phase


async def saturation(label: str, visitor: Visitor, count: int, concurrency: int) -> Phase:
    phase = Phase(label)
    left = count

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await visitor.visit(phase)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.seconds = time.perf_counter() - started
    return phase


# ---------------------------------------------------------------------------- the baseline


def bare_app(captured: dict[str, dict[str, Any]]) -> Any:
    """An ASGI app answering each captured path with its status, headers and body."""
    answers = {
        path: (
            page["status"],
            [(k.encode("latin-1"), v.encode("latin-1")) for k, v in page["headers"]],
            base64.b64decode(page["body"]),
        )
        for path, page in captured.items()
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope["path"] + (f"?{query}" if query else "")
        status, headers, body = answers.get(path, (404, [], b""))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def serve_bare(port: int, capture: Path) -> None:
    from web.__main__ import serve

    serve(bare_app(json.loads(capture.read_text())), "127.0.0.1", port)


async def capture(base: str, pages: list[str]) -> dict[str, dict[str, Any]]:
    # Headers that belong to one connection, not to the page.
    per_connection = {"date", "content-length", "connection", "transfer-encoding", "set-cookie"}
    captured: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT) as client:
        for path in pages:
            answer = await client.get(path)
            if answer.status_code != 200:
                raise SystemExit(f"{path}: {answer.status_code} from the website")
            captured[path] = {
                "status": answer.status_code,
                "headers": [
                    (k, v) for k, v in answer.headers.items() if k.lower() not in per_connection
                ],
                "body": base64.b64encode(answer.content).decode("ascii"),
            }
    return captured


# ---------------------------------------------------------------------------- the stack


@contextlib.asynccontextmanager
async def embedded_stack(data_dir: Path) -> AsyncIterator[EmbeddedStack]:
    settings = fresh_settings(
        data_dir,
        # The events service waits for the networks service's stream, and the website
        # asks it too (goals, networks).
        services=["ambassadors", "events", "networks"],
        web=True,
        web_port=free_port(),
        log_level="WARNING",
        log_format="json",
    )
    stack = EmbeddedStack(settings, REPO_ROOT, nats_monitor_port=free_port(), ready_timeout=90)
    await asyncio.to_thread(stack.start)
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


async def fill_calendar(client: ServiceClient, meetings: int) -> None:
    """``meetings`` public meetings, each inviting one ambassador (inviting everyone would
    keep the events service busy while we measure)."""
    someone = await client.call(
        Ambassadors.REGISTER,
        Register(name="Bench Inviteret", email="bench.inviteret@example.org", kind="citizen",
                 consent=True),
    )  # fmt: skip
    invitee = someone.ambassador.id
    first = datetime.now(COPENHAGEN).replace(hour=17, minute=0, second=0, microsecond=0)
    for n in range(meetings):
        starts = (first + timedelta(days=7 + 3 * n)).replace(tzinfo=None)
        meeting = ScheduleMeeting(
            kind=MeetingKind.THEME_DAY if n % 2 else MeetingKind.DIALOGUE_MEETING,
            title=f"Temadag {n + 1} om fællesskaber",
            description="Vi mødes og taler om, hvordan flere kommer med i fællesskaberne.",
            starts=starts,
            ends=starts + timedelta(hours=2),
            place="Fredericia Bibliotek",
            public=True,
            audience=Audience(ambassador_ids=[invitee]),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                await client.call(Events.SCHEDULE, meeting)
                break
            except ServiceError as exc:
                # The events service has not yet heard of the new ambassador.
                if exc.code != ErrorCode.VALIDATION_FAILED or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)


async def wait_for_directory(client: ServiceClient, at_least: int) -> int:
    deadline = time.monotonic() + 120
    while True:
        listed = len((await client.call(Ambassadors.DIRECTORY, GetDirectory())).entries)
        if listed >= at_least or time.monotonic() > deadline:
            return listed
        await asyncio.sleep(0.5)


# ---------------------------------------------------------------------------- report


def render_table(phases: list[Phase]) -> str:
    header = ["run", "done", "failed", "per s", "p50 ms", "p99 ms", "max ms"]
    rows = [
        [
            p.label,
            str(p.done),
            str(p.failures),
            f"{p.per_second:.1f}",
            ms(p.latency(50)),
            ms(p.latency(99)),
            ms(p.latency(100)),
        ]
        for p in phases
    ]
    return aligned(header, rows)


# ---------------------------------------------------------------------------- main


async def run_bench(args: argparse.Namespace) -> int:
    if args.answer_cache_seconds is not None:
        # The website process reads it from the environment it inherits.
        os.environ["SAMSKAB_WEB_ANSWER_CACHE_SECONDS"] = str(args.answer_cache_seconds)
    kept = os.environ.get(
        "SAMSKAB_WEB_ANSWER_CACHE_SECONDS",
        str(WebSettings.model_fields["web_answer_cache_seconds"].default),
    )
    print(f"the website keeps shared answers for {kept} s", flush=True)
    with contextlib.ExitStack() as cleanup:
        if args.keep:
            tmp = tempfile.mkdtemp(prefix="samskab-bench-web-")
            print(f"keeping the stack's data and logs in {tmp}", flush=True)
        else:
            tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="samskab-bench-web-"))
        async with embedded_stack(Path(tmp) / "var") as stack:
            operator = ClientSettings(
                _env_file=None, nats_url=stack.settings.nats_url, data_dir=stack.data_dir
            )
            async with ServiceClient(operator) as client:
                listed = await wait_for_directory(client, at_least=51)
                await fill_calendar(client, args.meetings)
            ours_url = f"http://127.0.0.1:{stack.web_port}"
            calendar = await calendar_pages(ours_url)
            pages = [*DIRECTORY_PAGES, *calendar]
            print(
                f"stack up: {listed} ambassadors listed, {args.meetings} public meetings; "
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            captured = await capture(ours_url, pages)
            sizes = ", ".join(
                f"{p} {len(base64.b64decode(c['body'])) // 1024} KiB" for p, c in captured.items()
            )
            print(f"pages: {sizes}", flush=True)
            capture_file = Path(tmp) / "captured.json"
            capture_file.write_text(json.dumps(captured))
            bare_port = free_port()
            bare = ManagedProcess(
                "bare",
                [sys.executable, "-m", "bench.web", "--serve-bare", str(bare_port),
                 str(capture_file)],
                log_path=Path(tmp) / "bare.log",
                cwd=REPO_ROOT,
            )  # fmt: skip
            bare.start()
            try:
                await wait_until_up(f"http://127.0.0.1:{bare_port}{pages[0]}")
                return await measure(args, ours_url, f"http://127.0.0.1:{bare_port}", pages)
            finally:
                bare.stop()


async def calendar_pages(base: str) -> list[str]:
    """The calendar and the pages of its first meetings, as the calendar links them."""
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT) as client:
        page = (await client.get("/kalender")).text
    meetings = list(dict.fromkeys(re.findall(r'href="(/kalender/[^"]+)"', page)))[:3]
    return [*CALENDAR_PAGES, *meetings]


async def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"the bare baseline did not come up at {url}")
            await asyncio.sleep(0.2)


async def measure(args: argparse.Namespace, ours_url: str, bare_url: str, pages: list[str]) -> int:
    ours = Visitor(ours_url, pages, args.concurrency)
    bare = Visitor(bare_url, pages, args.concurrency)
    phases: list[Phase] = []
    ratios: list[float] = []
    p99s: list[float] = []
    try:
        print("warming up ...", flush=True)
        for visitor in (ours, bare):
            await saturation("warm-up", visitor, args.warmup, args.concurrency)
        for round_no in range(1, args.rounds + 1):
            order = [("ours", ours), ("bare", bare)]
            if round_no % 2 == 0:
                order.reverse()
            results: dict[str, tuple[Phase, Phase]] = {}
            for name, visitor in order:
                print(
                    f"round {round_no}: {name}, {args.rate:g}/s for {args.seconds:g} s, "
                    f"then {args.count} with {args.concurrency} in flight ...",
                    flush=True,
                )
                steady_phase = await steady(
                    f"{name} steady {args.rate:g}/s (round {round_no})",
                    visitor,
                    args.rate,
                    args.seconds,
                )
                saturated = await saturation(
                    f"{name} saturation c={args.concurrency} (round {round_no})",
                    visitor,
                    args.count,
                    args.concurrency,
                )
                results[name] = (steady_phase, saturated)
                phases += [steady_phase, saturated]
            ratio = results["ours"][1].per_second / max(results["bare"][1].per_second, 1e-9)
            ratios.append(ratio)
            p99s.append(results["ours"][0].latency(99))
            print(f"round {round_no}: web_page_ratio {ratio:.3f}", flush=True)
    finally:
        await ours.close()
        await bare.close()
    print()
    print(render_table(phases))
    print()
    ours_steady = [p for p in phases if p.label.startswith("ours steady")]
    print(f"steady p50 ms per round (ours): {', '.join(ms(p.latency(50)) for p in ours_steady)}")
    print(f"ratios per round: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"web_p99_ms_at_{args.rate:g}={ms(max(p99s))}")
    print(f"web_page_ratio={statistics.median(ratios):.3f}")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--meetings", type=int, default=12)
    parser.add_argument(
        "--answer-cache-seconds",
        type=float,
        default=None,
        help="the website's SAMSKAB_WEB_ANSWER_CACHE_SECONDS (0: every page view asks its "
        "service); default: the setting's default",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the stack's directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.count, args.warmup, args.rounds = 3.0, 200, 20, 1
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-bare"]:
        serve_bare(int(argv[1]), Path(argv[2]))
        return 0
    return asyncio.run(run_bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

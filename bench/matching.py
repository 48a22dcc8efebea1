"""Suggesting a team among 100,000 ambassadors, over NATS, against its floor.

Run ``.venv/bin/python bench/matching.py`` (``--quick`` for a smoke run). It starts its own
embedded stack in a temporary directory on free ports (nats-server, SecantusDB, the
ambassadors, events and networks services as processes, through ``stack/``), writes
``--candidates`` active ambassadors into the networks service's read model (as its
reactions to the ambassadors' events would: entries numbered as changes, so the service's
pool catches up with them) with realistic skew: most are citizens and volunteers, a few
politicians; skills follow a Zipf law over 128 tags (the vocabulary's and free ones);
themes and core areas are skewed too; some are paused, some have a limit, and 5 % are
active in a network or were invited lately (fatigue). A challenge needs 5 skills; each
suggestion asks for a team of 5-8 with at least one citizen, one municipal unit and one
association (and one with the housing core area in every other request).

Measured, after one warm-up suggestion (the pool's first catch-up):

1. ``networks.query.suggest`` over NATS request/reply, ``--suggestions`` of them one
   after the other, from sending to the reply parsed: p50, p99;
2. the floor, in the same run: a bare nats-py request/reply round trip with a reply of
   the same size (a responder in this process), and the vectorised scoring alone (the
   same matching code on the same candidates, in this process);
3. the networks service's memory (RSS) after the suggestions.

Printed last: ``matching_p99_ms_at_<candidates>=``. Targets: p99 under 100 ms, memory
under 400 MB.
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
import random
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import nats
import psutil
from pymongo import AsyncMongoClient

from bench.report import aligned, ms, percentile
from contracts.ambassadors import CoreArea, Kind
from contracts.networks import Endpoints, RaiseChallenge, Suggest
from services.networks import matching
from services.networks.candidates import candidate_row
from services.networks.skills import SkillReader
from services.networks.store import AMBASSADOR_CHANGES, MEMBERSHIP_CHANGES
from services.networks.vocabulary import VOCABULARY
from services.runtime.client import ServiceClient
from services.runtime.known_ambassadors import COLLECTION, KnownAmbassador, _document
from services.runtime.settings import ClientSettings
from stack.embedded import EmbeddedStack, fresh_settings
from stack.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_BATCH = 5000
BENCH_USER = "bench"
KINDS: dict[Kind, float] = {
    Kind.CITIZEN: 0.36,
    Kind.VOLUNTEER: 0.22,
    Kind.ASSOCIATION: 0.12,
    Kind.ORGANISATION: 0.09,
    Kind.COMPANY: 0.08,
    Kind.MUNICIPAL_UNIT: 0.06,
    Kind.POLITICIAN: 0.02,
    Kind.OTHER: 0.05,
}
SKILL_COUNT = 128
# Wanted by the challenge: neither the most common skills nor the rarest.
CHALLENGE_SKILLS = 5
TARGET_P99_MS = 100.0
TARGET_RSS_MIB = 400.0


def skill_tags() -> list[str]:
    """128 tags, the vocabulary's first (their order is their popularity)."""
    tags = list(VOCABULARY)
    tags += [f"færdighed-{n:03d}" for n in range(SKILL_COUNT - len(tags))]
    return tags[:SKILL_COUNT]


def people(count: int, seed: int) -> list[KnownAmbassador]:
    rng = random.Random(seed)
    tags = skill_tags()
    zipf = [1 / (rank + 1) ** 1.1 for rank in range(len(tags))]
    themes = list(range(1, 13))
    theme_weights = [12 - t / 2 for t in themes]
    kinds, kind_weights = list(KINDS), list(KINDS.values())
    today = date.today()
    found = []
    for i in range(count):
        kind = rng.choices(kinds, kind_weights)[0]
        personal = kind in (Kind.CITIZEN, Kind.VOLUNTEER)
        found.append(
            KnownAmbassador(
                id=f"bench-{i:06d}",
                name=f"Ambassadør {i}",
                email=f"ambassador-{i:06d}@example.org",
                kind=kind,
                organisation=None if personal else f"Organisation {i}",
                public=rng.random() < 0.6,
                themes=tuple(sorted(set(rng.choices(themes, theme_weights, k=rng.randint(0, 4))))),
                core_areas=tuple(
                    sorted(set(rng.choices(list(CoreArea), [5, 3, 2], k=rng.randint(0, 2))))
                ),
                skills=tuple(sorted(set(rng.choices(tags, zipf, k=rng.randint(0, 6))))),
                networks_at_once=rng.choice((None, None, None, 1, 2, 3)),
                paused_until=today + timedelta(days=30) if rng.random() < 0.03 else None,
                activated_at=datetime.now(UTC),
                as_of=datetime.now(UTC),
            )
        )
    return found


async def seed(
    mongo: AsyncMongoClient[dict[str, Any]], everyone: list[KnownAmbassador], seed_: int
) -> dict[str, tuple[int, int]]:
    """The read model's entries and some memberships, as the service's reactions would
    write them; the changes numbered so the pool reads them at its next look."""
    db = mongo["samskab_networks"]
    counter = await db.counters.find_one_and_update(
        {"_id": AMBASSADOR_CHANGES}, {"$inc": {"seq": 1}}, upsert=True, return_document=True
    )
    change = int(counter["seq"]) if counter else 1
    for start in range(0, len(everyone), SEED_BATCH):
        batch = everyone[start : start + SEED_BATCH]
        await db[COLLECTION].insert_many(
            [{**_document(k), "pool_seq": change} for k in batch], ordered=False
        )
    rng = random.Random(seed_ + 1)
    fatigue: dict[str, tuple[int, int]] = {}
    memberships = []
    now = datetime.now(UTC)
    for known in rng.sample(everyone, k=max(1, len(everyone) // 20)):
        joined = rng.random() < 0.5
        invited_at = now - timedelta(days=rng.randint(1, 120))
        memberships.append(
            {
                "ambassador_id": known.id,
                "state": "joined" if joined else "declined",
                "network_open": joined,
                "invited_at": invited_at,
            }
        )
        recent = 1 if invited_at >= now - timedelta(days=90) else 0
        fatigue[known.id] = (1 if joined else 0, recent)
    await db.memberships.insert_many(memberships, ordered=False)
    await db.counters.update_one({"_id": MEMBERSHIP_CHANGES}, {"$inc": {"seq": 1}}, upsert=True)
    return {who: counts for who, counts in fatigue.items() if any(counts)}


def challenge_skills() -> list[str]:
    """Five skills from the middle of the popularity order."""
    tags = skill_tags()
    return [tags[i] for i in (3, 9, 17, 30, 52)][:CHALLENGE_SKILLS]


def request(challenge_id: str, n: int) -> Suggest:
    return Suggest(
        challenge_id=challenge_id,
        size_min=5,
        size_max=8,
        require_kinds={Kind.CITIZEN: 1, Kind.MUNICIPAL_UNIT: 1, Kind.ASSOCIATION: 1},
        require_core_areas={CoreArea.HOUSING: 1} if n % 2 else {},
    )


# ---------------------------------------------------------------------------- the floor


async def bare_round_trips(stack: EmbeddedStack, reply: bytes, count: int) -> list[float]:
    """A responder answering a reply of the same size, asked as the service is."""
    nc = await nats.connect(stack.settings.nats_url, **stack.nats_options(BENCH_USER))
    try:

        async def answer(msg: Any) -> None:
            await msg.respond(reply)

        await nc.subscribe("bench.floor", cb=answer)
        await nc.flush()
        times = []
        for _ in range(count):
            started = time.perf_counter()
            await nc.request("bench.floor", b"{}", timeout=5)
            times.append((time.perf_counter() - started) * 1000)
        return times
    finally:
        await nc.close()


def scoring_alone(
    everyone: list[KnownAmbassador], fatigue: dict[str, tuple[int, int]], count: int
) -> tuple[list[float], list[float]]:
    """The vectorised scoring, and the whole matching, on the same candidates here."""
    reader = SkillReader()
    pool = matching.Pool.build(candidate_row(k, reader) for k in everyone)
    skills = tuple(reader.read(t) for t in challenge_skills())
    wanted = matching.Wanted(skills=skills, themes=(5, 7), core_areas=(CoreArea.HOUSING,))
    today = date.today()
    scored, whole = [], []
    for n in range(count):
        rules = matching.Rules(
            size_min=5,
            size_max=8,
            required_skills=skills,
            kind_minimums={Kind.CITIZEN: 1, Kind.MUNICIPAL_UNIT: 1, Kind.ASSOCIATION: 1},
            core_area_minimums={CoreArea.HOUSING: 1} if n % 2 else {},
        )
        started = time.perf_counter()
        matching.score(pool, wanted, rules, fatigue, today)
        scored.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        matching.suggest(pool, wanted, rules, fatigue, today)
        whole.append((time.perf_counter() - started) * 1000)
    return scored, whole


# ---------------------------------------------------------------------------- the stack


@contextlib.asynccontextmanager
async def embedded_stack(data_dir: Path) -> AsyncIterator[EmbeddedStack]:
    settings = fresh_settings(
        data_dir,
        services=["ambassadors", "events", "networks"],
        demo_import=False,
        log_level="WARNING",
        log_format="json",
    )
    # The floor's responder runs as a user of its own (any subject).
    stack = EmbeddedStack(
        settings,
        REPO_ROOT,
        nats_monitor_port=free_port(),
        ready_timeout=90,
        unrestricted_nats_users=[BENCH_USER],
    )
    await asyncio.to_thread(stack.start)
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


def rss_mib(pid: int | None) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20 if pid else float("nan")


async def run_bench(args: argparse.Namespace) -> int:
    everyone = people(args.candidates, args.seed)
    with contextlib.ExitStack() as cleanup:
        if args.keep:
            tmp = tempfile.mkdtemp(prefix="samskab-bench-matching-")
            print(f"keeping the stack's data and logs in {tmp}", flush=True)
        else:
            tmp = cleanup.enter_context(
                tempfile.TemporaryDirectory(prefix="samskab-bench-matching-")
            )
        async with embedded_stack(Path(tmp) / "var") as stack:
            pid = stack.services["networks"].pid
            rss_start = rss_mib(pid)
            mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.settings.mongo_url)
            try:
                fatigue = await seed(mongo, everyone, args.seed)
            finally:
                await mongo.close()
            operator = ClientSettings(
                _env_file=None,
                nats_url=stack.settings.nats_url,
                data_dir=stack.data_dir,
                request_timeout_seconds=120,
            )
            async with ServiceClient(operator) as client:
                raised = await client.call(
                    Endpoints.RAISE_CHALLENGE,
                    RaiseChallenge(
                        title="Et værested om vinteren",
                        description="Et varmt sted med mad og råd for hjemløse om vinteren.",
                        themes=[5, 7],
                        core_areas=[CoreArea.HOUSING],
                        skills=challenge_skills(),
                    ),
                )
                started = time.perf_counter()
                first = await client.call(Endpoints.SUGGEST, request(raised.id, 0))
                warm_up = time.perf_counter() - started
                print(
                    f"stack up: {first.considered} of {args.candidates} can be asked; the pool's "
                    f"first catch-up and suggestion took {warm_up:.1f} s; team of "
                    f"{len(first.members)} ({first.method}); {os.cpu_count()} CPUs, "
                    f"load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                ours, reply_sizes = [], []
                rss_peak = rss_mib(pid)
                for n in range(args.suggestions):
                    started = time.perf_counter()
                    raw = await client.request(Endpoints.SUGGEST.subject, request(raised.id, n + 1))
                    ours.append((time.perf_counter() - started) * 1000)
                    reply_sizes.append(len(str(raw)))
                    if n % 20 == 0:
                        rss_peak = max(rss_peak, rss_mib(pid))
                rss_end = rss_mib(pid)
                rss_peak = max(rss_peak, rss_end)
            reply = b"x" * max(reply_sizes)
            bare = await bare_round_trips(stack, reply, args.suggestions)
    scored, whole = scoring_alone(everyone, fatigue, args.suggestions)
    floor = [b + s for b, s in zip(sorted(bare), sorted(scored), strict=True)]

    def row(label: str, times: list[float]) -> list[str]:
        return [label, *(ms(percentile(times, q)) for q in (50, 90, 99)), ms(max(times))]

    rows = [
        row("networks.query.suggest", ours),
        row("bare request/reply", bare),
        row("scoring alone", scored),
        row("floor (bare + scoring)", floor),
        row("matching alone (in process)", whole),
    ]
    print(aligned(["what", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows))
    p99 = percentile(ours, 99)
    print(
        f"networks RSS: {rss_start:.0f} MiB at start, {rss_peak:.0f} MiB at most, "
        f"{rss_end:.0f} MiB after (target < {TARGET_RSS_MIB:.0f}); "
        f"p99 {p99 / percentile(floor, 99):.1f}x the floor's (target < {TARGET_P99_MS:.0f} ms)"
    )
    print(f"matching_rss_mib_at_{args.candidates}={rss_peak:.0f}")
    print(f"matching_p99_ms_at_{args.candidates}={p99:.1f}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--suggestions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--keep", action="store_true", help="Keep the stack's data and logs.")
    parser.add_argument(
        "--quick", action="store_true", help="A smoke run: 2,000 candidates, 20 suggestions."
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.candidates, args.suggestions = 2000, 20
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run_bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

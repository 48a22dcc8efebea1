"""A long import through the real CLI: a job with a progress bar, a report at its end, and
a second run of the same list that imports nobody twice (`samskab jobs show` follows it).

On servers of its own: transactions that earlier tests' stopped services left open on the
session's SecantusDB (reaped only after 60 s) would stall 4,000 transactions here."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from contracts.ambassadors import STREAM, Endpoints
from stack.mongo import MongoServer
from stack.nats import NatsServer
from tests.support.polling import eventually
from tests.support.stack import (
    REPO_ROOT,
    TOKEN_SECRETS,
    start_mongo,
    start_nats,
    start_service,
    venv_script,
)
from tests.support.streams import read_stream
from tests.support.terminal import run_on_terminal

ROWS = 2000
# 2,000 staff sign-ups on a 2-core machine, with their certificates rendering meanwhile.
IMPORT_TIMEOUT = 600.0


@pytest.fixture
def own_servers(tmp_path: Path) -> Iterator[tuple[NatsServer, MongoServer]]:
    nats_server = start_nats(tmp_path / "own-nats")
    mongo_server = start_mongo(tmp_path / "own-mongo")
    yield nats_server, mongo_server
    mongo_server.stop()
    nats_server.stop()


def cli_env(nats: NatsServer, data_dir: Path) -> dict[str, str]:
    return {
        "PATH": str(venv_script("samskab").parent) + ":/usr/bin:/bin",
        "HOME": str(data_dir),
        "SAMSKAB_NATS_URL": nats.url,
        "SAMSKAB_DATA_DIR": str(data_dir),
    }


def samskab(*args: str) -> list[str]:
    return [str(venv_script("samskab")), *args]


def progress_counts(terminal: str) -> list[int]:
    """The row counts the progress bar showed, frame by frame ("1234/2000")."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal)
    return [int(done) for done in re.findall(rf"(\d+)/{ROWS}\b", plain)]


async def test_importing_2000_rows_shows_progress_and_the_report_and_a_rerun_imports_nobody_twice(
    own_servers: tuple[NatsServer, MongoServer], tmp_path: Path
) -> None:
    nats_server, mongo_server = own_servers
    service_env = {
        **TOKEN_SECRETS,
        "SAMSKAB_NATS_URL": nats_server.url,
        "SAMSKAB_MONGO_URL": mongo_server.url,
        "SAMSKAB_MONGO_DATABASE": "import_job",
        "SAMSKAB_DEMO_IMPORT": "false",
        "SAMSKAB_DATA_DIR": str(tmp_path / "service"),
    }
    service = await asyncio.to_thread(
        start_service,
        "ambassadors",
        nats_url=nats_server.url,
        env=service_env,
        log_path=tmp_path / "log" / "ambassadors.log",
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_server.url, tz_aware=True)
    try:
        await import_twice(nats_server, mongo, tmp_path)
    finally:
        await mongo.close()
        service.stop()


async def import_twice(
    nats_server: NatsServer, mongo: AsyncMongoClient[dict[str, Any]], tmp_path: Path
) -> None:
    db = mongo["import_job"]
    tag = uuid.uuid4().hex[:8]
    csv_file = tmp_path / "ambassadører.csv"
    csv_file.write_text(
        "name,email,kind\n"
        + "".join(f"Ambassadør {i},import-{tag}-{i}@example.org,citizen\n" for i in range(ROWS)),
        encoding="utf-8",
    )
    env = cli_env(nats_server, tmp_path / "cli")

    first = run_on_terminal(
        samskab("ambassadors", "import", str(csv_file)),
        env=env,
        cwd=REPO_ROOT,
        timeout=IMPORT_TIMEOUT,
    )

    assert first.returncode == 0, first.describe()
    assert first.stdout.splitlines() == [f"imported {ROWS}, already there 0, bad rows 0"]
    assert "importing ambassadors" in first.terminal, first.describe()
    counts = progress_counts(first.terminal)
    assert counts and counts[-1] == ROWS, first.describe()
    assert counts == sorted(counts), "the bar never goes back"
    assert len({c for c in counts if 0 < c < ROWS}) >= 3, f"no progress on the way: {counts}"
    assert await db.ambassadors.count_documents({}) == ROWS

    # The same list again, left to run (`--no-wait`) and followed by its id later.
    started = run_on_terminal(
        samskab("ambassadors", "import", str(csv_file), "--no-wait", "--json"),
        env=env,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert started.returncode == 0, started.describe()
    job = json.loads(started.stdout)
    assert job["command"] == Endpoints.IMPORT.subject and job["unit"] == "rows"
    shown = run_on_terminal(
        samskab("jobs", "show", job["id"], "--wait"),
        env=env,
        cwd=REPO_ROOT,
        timeout=IMPORT_TIMEOUT,
    )
    assert shown.returncode == 0, shown.describe()
    lines = shown.stdout.splitlines()
    assert lines[0] == f"job {job['id']}: importing ambassadors", shown.describe()
    assert lines[1].split() == ["state", "done,", f"{ROWS}/{ROWS}", "rows"], shown.describe()
    assert lines[-1] == f"imported 0, already there {ROWS}, bad rows 0", shown.describe()

    assert await db.ambassadors.count_documents({}) == ROWS
    assert len(await db.ambassadors.distinct("email_key")) == ROWS

    async def published() -> bool:
        return await db.outbox.count_documents({}) == 0

    await eventually(published, "the outbox to be published")
    on_stream = await read_stream(nats_server.url, STREAM)
    signed = [m for m in on_stream if m.subject.endswith(".signed_up")]
    assert len(signed) == ROWS

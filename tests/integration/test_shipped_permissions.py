"""The services and the CLI work under the NATS permissions we ship.

deploy/nats/accounts.conf gives each service its own user, allowed to publish only its own
subjects and to read only its own inbox. A permission the runtime needs but the config
lacks would only show in production; here the real service runs as its user against the
shipped config, and the CLI as the ``cli`` user.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from PIL import Image
from pypdf import PdfReader

from contracts.ambassadors import Endpoints
from services.runtime.client import ServiceClient
from services.runtime.settings import ClientSettings
from stack.mongo import MongoServer
from stack.nats import run_sync, service_is_healthy
from stack.processes import ManagedProcess
from stack.smtp_sink import SmtpSink, read_mailbox
from stack.streams import declare_streams_at
from tests.support.stack import REPO_ROOT, TOKEN_SECRETS
from tests.unit.test_deploy_configs import ShippedNats, compose, shipped_nats

__all__ = ["compose", "shipped_nats"]

SAMSKAB = str(Path(sys.executable).parent / "samskab")


def run_as_its_user(
    name: str, server: ShippedNats, mongo_server: MongoServer, tmp_path: Path, **env: str
) -> Iterator[ManagedProcess]:
    """The service ``name`` connected to NATS as its own user; afterwards its log must hold
    no permissions violation."""
    log_path = tmp_path / f"{name}.log"
    process = ManagedProcess(
        name,
        [sys.executable, "-m", f"services.{name}"],
        log_path=log_path,
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "SAMSKAB_NATS_URL": server.url,
            "SAMSKAB_NATS_USER": name,
            "SAMSKAB_NATS_PASSWORD": server.passwords[name],
            "SAMSKAB_MONGO_URL": mongo_server.url,
            "SAMSKAB_MONGO_DATABASE": f"perm_{name}_{uuid.uuid4().hex[:8]}",
            "SAMSKAB_DEMO_IMPORT": "false",
            **TOKEN_SECRETS,
            **env,
        },
        cwd=REPO_ROOT,
        ready_check=lambda: service_is_healthy(
            server.url, name, user="cli", password=server.passwords["cli"]
        ),
    )
    process.start()
    try:
        process.wait_ready(timeout=30, interval=0.2)
        yield process
    finally:
        process.stop()
        log = log_path.read_text()
        assert "Permissions Violation" not in log and "permissions violation" not in log, log


@pytest.fixture
def ambassadors_as_its_user(
    shipped_nats: ShippedNats, mongo_server: MongoServer, tmp_path: Path
) -> Iterator[ManagedProcess]:
    yield from run_as_its_user("ambassadors", shipped_nats, mongo_server, tmp_path)


@pytest.fixture
def newsletter_as_its_user(
    shipped_nats: ShippedNats, mongo_server: MongoServer, smtp_sink: SmtpSink, tmp_path: Path
) -> Iterator[ManagedProcess]:
    # It waits for the EVENTS, NETWORKS and SOCIAL streams too; none of those services runs
    # here, so each stream is declared as its service would, under its own user.
    for producer in ("events", "networks", "social"):
        run_sync(
            declare_streams_at(
                shipped_nats.url,
                [producer],
                user=producer,
                password=shipped_nats.passwords[producer],
            )
        )
    yield from run_as_its_user(
        "newsletter",
        shipped_nats,
        mongo_server,
        tmp_path,
        SAMSKAB_SMTP_HOST="127.0.0.1",
        SAMSKAB_SMTP_PORT=str(smtp_sink.port),
    )


def cli_env(server: ShippedNats) -> dict[str, str]:
    return {
        **os.environ,
        "SAMSKAB_NATS_URL": server.url,
        "SAMSKAB_NATS_USER": "cli",
        "SAMSKAB_NATS_PASSWORD": server.passwords["cli"],
    }


def test_sign_up_and_certificate_under_shipped_permissions(
    shipped_nats: ShippedNats, ambassadors_as_its_user: ManagedProcess, tmp_path: Path
) -> None:
    env = cli_env(shipped_nats)
    signed = subprocess.run(
        [SAMSKAB, "ambassadors", "sign-up", "--name", "Tilladt Ambassadør",
         "--email", "tilladt@example.org", "--kind", "citizen", "--consent", "--staff"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    ambassador_id = signed.stdout.split()[0]

    pdf = tmp_path / "bevis.pdf"
    got = subprocess.run(
        [SAMSKAB, "ambassadors", "certificate", ambassador_id, "--out", str(pdf)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "Tilladt" in text

    health = subprocess.run(
        [SAMSKAB, "health", "--json"], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert '"status": "ok"' in health.stdout


async def test_another_user_cannot_read_the_cli_replies(
    shipped_nats: ShippedNats, ambassadors_as_its_user: ManagedProcess
) -> None:
    errors: list[str] = []

    async def on_error(error: Exception) -> None:
        errors.append(str(error))

    snoop = await nats.connect(
        shipped_nats.url,
        user="newsletter",
        password=shipped_nats.passwords["newsletter"],
        error_cb=on_error,
        allow_reconnect=False,
        inbox_prefix="_INBOX_newsletter",
    )
    seen: list[bytes] = []

    async def spy(msg: Msg) -> None:
        seen.append(msg.data)

    await snoop.subscribe("_INBOX_cli.>", cb=spy)
    await snoop.flush()
    settings = ClientSettings(
        nats_url=shipped_nats.url, nats_user="cli", nats_password=shipped_nats.passwords["cli"]
    )
    async with ServiceClient(settings) as client:
        goals = await client.request(Endpoints.GOALS.subject, {})
    assert goals["target"] == 150
    for _ in range(40):
        if any("permissions violation" in e.lower() for e in errors):
            break
        await asyncio.sleep(0.05)
    await snoop.close()
    assert seen == []
    assert any("_inbox_cli" in e.lower() for e in errors), errors


def test_welcome_mail_and_news_image_under_shipped_permissions(
    shipped_nats: ShippedNats,
    ambassadors_as_its_user: ManagedProcess,
    newsletter_as_its_user: ManagedProcess,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    env = cli_env(shipped_nats)
    address = f"velkommen-{uuid.uuid4().hex[:8]}@example.org"
    signed = subprocess.run(
        [SAMSKAB, "ambassadors", "sign-up", "--name", "Velkommen Ambassadør",
         "--email", address, "--kind", "citizen", "--consent", "--staff"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr

    # The newsletter consumed the ambassadors' event and read the PDF from their bucket.
    deadline = time.monotonic() + 60
    welcome: list[EmailMessage] = []
    while not welcome and time.monotonic() < deadline:
        welcome = [m for m in read_mailbox(smtp_sink.mail_dir) if address in str(m["To"])]
        time.sleep(0.3)
    assert welcome, "no welcome mail arrived"
    attachments = [
        p for p in welcome[0].iter_attachments() if p.get_content_type() == "application/pdf"
    ]
    assert attachments and bytes(attachments[0].get_content()).startswith(b"%PDF")

    # An image bigger than one NATS message goes through the uploads bucket.
    photo = tmp_path / "foto.png"
    Image.effect_noise((900, 700), 90).convert("RGB").save(photo)
    assert photo.stat().st_size > 1_000_000
    added = subprocess.run(
        [SAMSKAB, "newsletter", "item", "add", "--title", "Billede", "--body", "Tekst",
         "--image", str(photo), "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr

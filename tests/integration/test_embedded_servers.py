"""The embedded infrastructure itself: real nats-server, SecantusDB, SMTP sink, EmbeddedStack."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import nats
import psutil
import pytest
from pymongo import AsyncMongoClient

from stack.embedded import InfrastructureDiedError, PortInUseError, settings_env
from stack.mongo import MongoServer
from stack.nats import NatsServer, request_health
from stack.processes import free_port, port_in_use
from stack.smtp_sink import ENVELOPE_TO_HEADER, SmtpSink, read_mailbox, wait_for_mail
from tests.conftest import ServiceProcessFactory
from tests.support.stack import (
    TESTER,
    fake_service_command,
    fresh_settings,
    fresh_stack,
    start_nats,
)

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def publish_once(nats_url: str, stream: str, msg_id: str, data: bytes, **login: str) -> None:
    nc = await nats.connect(nats_url, **login)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        ack = await js.publish(f"{stream.lower()}.x", data, headers={"Nats-Msg-Id": msg_id})
        assert not ack.duplicate
    finally:
        await nc.close()


async def stored_messages(nats_url: str, stream: str, **login: str) -> list[bytes]:
    nc = await nats.connect(nats_url, **login)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        return [
            (await js.get_msg(stream, seq)).data or b""
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await nc.close()


# -- the session fixtures ----------------------------------------------------------------


async def test_jetstream_dedupes_by_msg_id_and_delivers(nats_server: NatsServer) -> None:
    stream = unique("DEDUPE").upper()
    subject = f"{stream.lower()}.event"
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        first = await js.publish(subject, b"hello", headers={"Nats-Msg-Id": "evt-1"})
        again = await js.publish(subject, b"hello", headers={"Nats-Msg-Id": "evt-1"})
        assert not first.duplicate
        assert again.duplicate and again.seq == first.seq
        assert (await js.stream_info(stream)).state.messages == 1

        sub = await js.pull_subscribe(subject, durable="reader", stream=stream)
        [msg] = await sub.fetch(1, timeout=5)
        assert msg.data == b"hello"
        assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == "evt-1"
        await msg.ack_sync()
        with pytest.raises(nats.errors.TimeoutError):
            await sub.fetch(1, timeout=0.3)
    finally:
        await nc.close()


async def test_mongo_transaction_commits_and_abort_leaves_nothing(
    mongo_server: MongoServer,
) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_server.url)
    try:
        items = client[unique("txn")]["items"]
        # Create the collection outside a transaction, as services do with their indexes.
        await items.insert_one({"_id": "setup"})

        async with client.start_session() as session, await session.start_transaction():
            await items.insert_one({"_id": "committed"}, session=session)
            await items.insert_one({"_id": "committed-too"}, session=session)
        assert await items.count_documents({"_id": {"$regex": "^committed"}}) == 2

        async with client.start_session() as session:
            await session.start_transaction()
            await items.insert_one({"_id": "aborted"}, session=session)
            # Not visible outside the transaction before commit.
            assert await items.find_one({"_id": "aborted"}) is None
            await session.abort_transaction()
        assert await items.find_one({"_id": "aborted"}) is None
        assert await items.count_documents({}) == 3
    finally:
        await client.close()


def test_smtp_sink_stores_each_message_as_one_eml(smtp_sink: SmtpSink) -> None:
    subject = unique("Velkommen")
    message = EmailMessage()
    message["From"] = "samskab@kommune.example"
    message["To"] = "ambassador@example.org"
    message["Subject"] = subject
    message.set_content("Hej og velkommen som ambassadør.\n")
    before = len(read_mailbox(smtp_sink.mail_dir))

    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as smtp:
        smtp.send_message(message, to_addrs=["ambassador@example.org", "hidden@example.org"])

    messages = wait_for_mail(smtp_sink.mail_dir, before + 1, timeout=5)
    assert len(messages) == before + 1
    [received] = [m for m in messages if m["Subject"] == subject]
    assert received.get_all(ENVELOPE_TO_HEADER) == ["ambassador@example.org", "hidden@example.org"]
    assert received["To"] == "ambassador@example.org"
    body = received.get_body()
    assert body is not None and "ambassadør" in body.get_content()
    stored = sorted(smtp_sink.mail_dir.iterdir())
    assert all(p.suffix == ".eml" for p in stored), "no temp files left behind"


def test_nats_keeps_acked_message_across_kill(tmp_path: Path) -> None:
    server = start_nats(tmp_path)
    try:
        # kill -9 proves recovery from the store; the fsync that also protects against an
        # OS crash cannot be shown without crashing the OS, so check it is switched on.
        assert server.varz()["jetstream"]["config"]["sync_always"] is True
        asyncio.run(publish_once(server.url, "DURABLE", "evt-1", b"kept"))
        server.kill()
        assert not server.running
        server.start()
        server.wait_ready(timeout=20)
        assert asyncio.run(stored_messages(server.url, "DURABLE")) == [b"kept"]
    finally:
        server.stop()


async def test_service_process_fixture_starts_against_the_servers(
    service_process: ServiceProcessFactory, stack_env: dict[str, str], nats_server: NatsServer
) -> None:
    proc = service_process(
        "fakesvc", {"SAMSKAB_LOG_LEVEL": "DEBUG"}, command=fake_service_command("fakesvc")
    )
    health = await request_health(nats_server.url, "fakesvc")
    assert health is not None and health["pid"] == proc.pid
    for key, value in stack_env.items():
        assert health["env"][key] == value
    assert health["env"]["SAMSKAB_LOG_LEVEL"] == "DEBUG"


# -- EmbeddedStack ------------------------------------------------------------------------


async def test_embedded_stack_resumes_from_its_data_dir(tmp_path: Path) -> None:
    stack = fresh_stack(tmp_path / "var")
    await asyncio.to_thread(stack.start)
    try:
        tester = stack.nats_options(TESTER)
        await publish_once(
            stack.settings.nats_url, "RESUME", "evt-1", b"from the first run", **tester
        )
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(stack.settings.mongo_url)
        await client["samskab_test"]["things"].insert_one({"_id": "first-run"})
        await client.close()
        with smtplib.SMTP(stack.settings.smtp_host, stack.settings.smtp_port, timeout=5) as smtp:
            smtp.sendmail("a@example.org", ["b@example.org"], b"Subject: first run\r\n\r\nhi\r\n")
    finally:
        await asyncio.to_thread(stack.stop)

    assert not any(proc.running for proc in stack.infrastructure)
    for port in (stack.nats.port, stack.nats.http_port, stack.mongo.port, stack.smtp.port):
        assert not port_in_use("127.0.0.1", port), f"port {port} still held"
    assert (tmp_path / "var" / "log" / "nats.log").exists()

    again = fresh_stack(
        tmp_path / "var",
        nats_url=stack.settings.nats_url,
        mongo_url=stack.settings.mongo_url,
        smtp_port=stack.settings.smtp_port,
    )
    await asyncio.to_thread(again.start)
    try:
        # The same passwords, kept under the data directory.
        assert again.nats_passwords == stack.nats_passwords
        stored = await stored_messages(
            again.settings.nats_url, "RESUME", **again.nats_options(TESTER)
        )
        assert stored == [b"from the first run"]
        client = AsyncMongoClient(again.settings.mongo_url)
        assert await client["samskab_test"]["things"].find_one({"_id": "first-run"}) is not None
        await client.close()
        assert [m["Subject"] for m in read_mailbox(again.mail_dir)] == ["first run"]
    finally:
        await asyncio.to_thread(again.stop)


async def test_supervisor_restarts_a_dead_service(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The stand-in answers as "ambassadors": only the registry's services have NATS users.
    stack = fresh_stack(
        tmp_path / "var", services=["ambassadors"], service_command=fake_service_command
    )
    await asyncio.to_thread(stack.start)
    stop = threading.Event()
    supervisor = threading.Thread(target=stack.supervise_until, args=(stop, 0.1), daemon=True)
    cli = stack.nats_options("cli")
    try:
        service = stack.service("ambassadors")
        health = await request_health(
            stack.settings.nats_url, "ambassadors", user="cli", password=cli["password"]
        )
        assert health is not None and health["pid"] == service.pid
        # Services see the stack's settings, not just the connection URLs, and log in as
        # themselves.
        assert health["env"]["SAMSKAB_SERVICES"] == '["ambassadors"]'
        assert health["env"]["SAMSKAB_DATA_DIR"] == str(stack.data_dir)
        assert health["env"]["SAMSKAB_NATS_USER"] == "ambassadors"

        supervisor.start()
        old_pid = service.pid
        service.kill()
        deadline = time.monotonic() + 15
        while True:
            health = await request_health(
                stack.settings.nats_url,
                "ambassadors",
                timeout=0.5,
                user="cli",
                password=cli["password"],
            )
            if health is not None and health["pid"] != old_pid:
                break
            assert time.monotonic() < deadline, "the dead service was not restarted"
            await asyncio.sleep(0.1)
        assert service.running and service.starts == 2
        assert "service ambassadors died" in caplog.text
    finally:
        stop.set()
        if supervisor.is_alive():
            supervisor.join(timeout=5)

    try:
        # An infrastructure process dying is not papered over: the launcher must stop.
        stack.mongo.kill()
        with pytest.raises(InfrastructureDiedError, match="mongo died"):
            stack.supervise()
    finally:
        await asyncio.to_thread(stack.stop)
    assert not stack.service("ambassadors").running
    assert not any(proc.running for proc in stack.infrastructure)


def test_port_in_use_fails_fast_naming_port_and_setting(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        stack = fresh_stack(tmp_path / "var", nats_url=f"nats://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(PortInUseError) as excinfo:
            stack.start()
    message = str(excinfo.value)
    assert f"port {port}" in message and "SAMSKAB_NATS_URL" in message and "\n" not in message
    assert time.monotonic() - started < 2
    assert not any(proc.running for proc in stack.infrastructure)


# -- samskab-stack, the `make up` entry point ---------------------------------------------


def _launcher_env(settings_dir: Path, **overrides: object) -> tuple[dict[str, str], int]:
    settings = fresh_settings(settings_dir, **overrides)
    monitor_port = free_port()
    env = {
        **os.environ,
        **settings_env(settings),
        "SAMSKAB_DATA_DIR": str(settings_dir),
        "SAMSKAB_NATS_MONITOR_PORT": str(monitor_port),
    }
    return env, monitor_port


def _launcher() -> str:
    return str(Path(sys.executable).parent / "samskab-stack")


def test_samskab_stack_runs_until_sigint_and_stops_everything(tmp_path: Path) -> None:
    env, _ = _launcher_env(tmp_path / "var")
    output = tmp_path / "launcher.out"
    with output.open("wb") as out:
        launcher = subprocess.Popen(
            [_launcher()], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while "Press Ctrl-C" not in output.read_text():
            assert launcher.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.1)
        children = psutil.Process(launcher.pid).children(recursive=True)
        assert len(children) >= 3  # nats-server, secantusd-py, the SMTP sink
        banner = output.read_text()
        assert str(tmp_path / "var" / "mail") in banner and ".venv/bin/samskab --help" in banner

        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=30) == 0, output.read_text()
    finally:
        if launcher.poll() is None:
            launcher.kill()
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"children left running: {alive}"
    assert "samskab-stack: stopped." in output.read_text()


def test_samskab_stack_reports_a_taken_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env, _ = _launcher_env(tmp_path / "var", smtp_port=port)
        result = subprocess.run(
            [_launcher()], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port}" in lines[0] and "SAMSKAB_SMTP_PORT" in lines[0]

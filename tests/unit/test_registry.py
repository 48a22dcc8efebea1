"""One registry of services (services/registry.py), and everything that names the services
agrees with it: the code that runs them, their settings and app factories, the embedded
stack, the CLI, docker-compose, the NATS accounts and the MongoDB users."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from faststream import FastStream

from contracts.operations import operator_endpoints
from services import registry
from services.runtime.service import Service
from services.runtime.settings import ServiceSettings
from stack.settings import StackSettings
from tests.support.registry import app_factory, settings_class
from tests.support.stack import settings_of

ROOT = Path(__file__).resolve().parents[2]
BUILT = registry.built()


def strip_comments(conf: str) -> str:
    return re.sub(r"(^|\s)(#|//).*$", r"\1", conf, flags=re.MULTILINE)


def test_the_built_services_are_the_ones_that_can_run() -> None:
    runnable = {main.parent.name for main in (ROOT / "services").glob("*/__main__.py")}
    assert set(BUILT) == runnable
    assert set(BUILT) <= set(registry.names())


@pytest.mark.parametrize("name", BUILT)
def test_a_built_service_has_its_settings_and_factory(name: str) -> None:
    entry = registry.entry(name)
    cls = settings_class(name)
    assert issubclass(cls, ServiceSettings)
    settings = settings_of(cls)
    assert settings.database_for(name) == entry.database
    app = app_factory(name)(settings)
    assert isinstance(app, FastStream)


@pytest.mark.parametrize("name", BUILT)
def test_a_built_service_answers_every_endpoint_its_contracts_declare(name: str) -> None:
    contracts = importlib.import_module(f"contracts.{name}")
    assert name == contracts.SERVICE
    assert registry.entry(name).stream == contracts.STREAM
    build = importlib.import_module(f"{registry.entry(name).module}.app").build
    service, _ = build(settings_of(settings_class(name)))
    assert isinstance(service, Service)
    declared = {e.subject for e in contracts.Endpoints.all()}
    assert declared <= set(service.endpoints)
    # Besides them, only the operator endpoints every service has.
    extra = set(service.endpoints) - declared
    assert extra == {
        f"{name}.health",
        f"{name}.query.dead_letters.list",
        f"{name}.query.dead_letters.show",
        f"{name}.cmd.dead_letters.replay",
        f"{name}.query.audit",
        f"{name}.cmd.privacy.export",
        f"{name}.cmd.privacy.audit",
    }
    assert extra == {e.subject for e in operator_endpoints(name)}
    assert {b.name for b in service.buckets} == set(registry.entry(name).buckets)


def test_the_embedded_stack_runs_the_built_services() -> None:
    assert StackSettings(_env_file=None).services == BUILT


def test_the_cli_asks_every_built_service() -> None:
    from cli import operations

    assert operations.every_service() == registry.built()


def test_the_end_to_end_tests_expect_the_built_services() -> None:
    from tests.e2e import conftest

    assert list(conftest.SERVICES) == BUILT


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_docker_compose_has_a_container_for_each_built_service() -> None:
    containers = {
        name
        for name, service in compose()["services"].items()
        if isinstance(service.get("build"), dict)
    }
    assert containers == {*BUILT, *registry.GATEWAYS}


def test_the_nats_accounts_have_a_user_for_each_service_and_its_buckets() -> None:
    accounts = strip_comments((ROOT / "deploy" / "nats" / "accounts.conf").read_text())
    users = set(re.findall(r"^\s*user:\s*(\w+)\s*$", accounts, re.MULTILINE))
    assert users == {*registry.names(), "cli", *registry.GATEWAYS}
    blocks = re.split(r"\{\s*user:\s*", accounts)
    for entry in registry.SERVICES:
        [block] = [b for b in blocks if b.startswith(entry.name)]
        assert f'"{entry.name}.>"' in block
        assert f"$JS.API.STREAM.*.{entry.stream}" in block
        for bucket in entry.buckets:
            assert f'"$O.{bucket}.>"' in block, (entry.name, bucket)


def test_mongodb_has_a_user_for_each_service() -> None:
    script = (ROOT / "deploy" / "mongo" / "init-replica-set.js").read_text()
    declared = re.search(r"^const SERVICES = \[(.*?)\];", script, re.MULTILINE)
    assert declared is not None
    assert set(re.findall(r"'(\w+)'", declared.group(1))) == set(registry.names())


def test_the_shipped_nats_accounts_are_the_generated_ones() -> None:
    from stack import nats_accounts

    shipped = nats_accounts.ACCOUNTS_FILE.read_text(encoding="utf-8")
    assert shipped == nats_accounts.render(), (
        "deploy/nats/accounts.conf differs from what stack/nats_accounts.py generates from "
        "the registry: run `.venv/bin/python -m stack.nats_accounts`"
    )

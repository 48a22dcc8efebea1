"""Hostile input to every subject of every service, generated from the contracts.

Every built service runs as a process against the real nats-server and SecantusDB, each
with a database of its own. To each command and query subject (and the operators' ones:
health, dead letters, audit, a person's data) go:

- requests drawn by hypothesis from the request's own JSON Schema
  (tests/support/schema_strategies.py), and the same with control characters, bidi
  overrides and strings of 100,000 characters in every text field: each reply is a valid
  result of the endpoint's reply model or a structured error with a known code, within
  the request time-out;
- requests that cannot be read: not JSON, empty (where a field is required), JSON that is
  not an object, every field of the wrong type, nested too deep: each is refused with
  ``validation_failed``, and all of them together store nothing in any database (every
  collection counted before and after).

Afterwards no service process has died and none logged a traceback.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import hypothesis.strategies as st
import nats
import pytest
from hypothesis import HealthCheck, given, settings
from nats.aio.client import Client
from nats.errors import MaxPayloadError
from pydantic import ValidationError
from pymongo import MongoClient

from contracts.endpoints import ACTOR_HEADER, Endpoint
from contracts.errors import ErrorCode, Reply
from contracts.operations import operator_endpoints
from services import registry
from stack.mongo import MongoServer
from stack.nats import NatsServer
from stack.processes import ManagedProcess
from stack.streams import declare_streams_at
from tests.conftest import ServiceProcessFactory
from tests.support.schema_strategies import from_schema

pytestmark = pytest.mark.integration

# A service does database work for a command: well inside what a caller waits.
TIMEOUT = 5.0
KNOWN_CODES = {code.value for code in ErrorCode}
HOSTILE_TEXT = st.sampled_from(
    [
        "\u202eredro\u202c",  # right-to-left override
        "Anna\u0000Hansen",
        "\u2066\u2067\u2068isolates\u2069",
        "line\r\nbreak\x1b[31m",
        "\ufeffbom",
        "x" * 100_000,
        "Ⅻ𝕬\U0001f600",
    ]
)
# An empty body is a request without arguments (``nats req ambassadors.health ""``): it is
# refused only where the request has required fields.
UNREADABLE = {
    "not JSON": b"\xff\xfe{not json",
    "a JSON list": b"[1, 2, 3]",
    "a JSON string": b'"sign me up"',
    "null": b"null",
    "nested 40 deep": b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}",
    "truncated": b'{"name": "Anna", "email": ',
}
WRONG_TYPE = st.one_of(
    st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=3),
    st.lists(st.dictionaries(st.text(max_size=5), st.none(), min_size=1), min_size=1, max_size=3),
)


def endpoints() -> list[Endpoint[Any, Any]]:
    found: list[Endpoint[Any, Any]] = []
    for name in registry.built():
        found += list(importlib.import_module(f"contracts.{name}").Endpoints.all())
        found += operator_endpoints(name)
    return found


ENDPOINTS = endpoints()


class Requests:
    """One NATS connection on an event loop of its own, for hypothesis's synchronous
    tests: ``ask`` sends a request and waits for its reply."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc: Client = self._run(nats.connect(url))

    def _run(self, work: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(work, self.loop)
        return future.result(timeout=TIMEOUT + 5)

    @property
    def max_payload(self) -> int:
        """The largest message the server takes (its ``max_payload``)."""
        return self.nc.max_payload

    def ask(self, subject: str, body: bytes) -> tuple[dict[str, Any] | None, float]:
        """The reply (None: none within the time-out) and the seconds it took.

        A request that got no answer is sent once more: a service that cannot answer some
        input fails the same way twice, while a machine busy with another test's servers
        (two test workers share two cores) can delay one answer past the time-out."""
        reply, seconds = self._ask_once(subject, body)
        if reply is None:
            reply, seconds = self._ask_once(subject, body)
        return reply, seconds

    def _ask_once(self, subject: str, body: bytes) -> tuple[dict[str, Any] | None, float]:
        started = time.monotonic()
        try:
            msg = self._run(
                self.nc.request(
                    subject, body, timeout=TIMEOUT, headers={ACTOR_HEADER: "operator:fuzzer"}
                )
            )
        except TimeoutError:
            return None, time.monotonic() - started
        reply: dict[str, Any] = json.loads(msg.data)
        return reply, time.monotonic() - started

    def close(self) -> None:
        self._run(self.nc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture
def services(
    service_process: ServiceProcessFactory, nats_server: NatsServer
) -> Iterator[tuple[Requests, dict[str, str], list[ManagedProcess]]]:
    asyncio.run(declare_streams_at(nats_server.url, registry.built()))
    databases = {name: f"fz_{name[:3]}_{uuid.uuid4().hex[:8]}" for name in registry.built()}
    # No demo import: nothing works in the background while the databases are counted.
    processes = [
        service_process(
            name, {"SAMSKAB_MONGO_DATABASE": databases[name], "SAMSKAB_DEMO_IMPORT": "false"}
        )
        for name in registry.built()
    ]
    requests = Requests(nats_server.url)
    try:
        yield requests, databases, processes
    finally:
        requests.close()


def counts(mongo_url: str, databases: dict[str, str]) -> dict[str, int]:
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongo_url, directConnection=True) as client:
        return {
            f"{db}.{name}": client[db][name].count_documents({})
            for db in databases.values()
            for name in client[db].list_collection_names()
        }


def settled_counts(mongo_url: str, databases: dict[str, str]) -> dict[str, int]:
    """The counts once the services' own start-up work (a first token check, a first
    housekeeping round) has stopped changing them."""
    last = counts(mongo_url, databases)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = counts(mongo_url, databases)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the databases keep changing: {last}")


def check_reply(endpoint: Endpoint[Any, Any], reply: dict[str, Any] | None) -> str:
    """What is wrong with ``reply`` ("" if nothing)."""
    if reply is None:
        return f"no answer within {TIMEOUT:g} s"
    try:
        envelope = Reply.model_validate(reply)
    except ValidationError as exc:
        return f"not a reply: {exc}"
    if envelope.ok:
        try:
            endpoint.reply.model_validate(envelope.result)
        except ValidationError as exc:
            return f"a result that is not a {endpoint.reply.__name__}: {exc}"
        return ""
    if envelope.error is None or envelope.error.code not in KNOWN_CODES:
        return f"an error without a known code: {reply}"
    return ""


def assert_no_traceback(processes: list[ManagedProcess]) -> None:
    for process in processes:
        assert process.running, f"{process.name} died:\n{process.log_tail(40)}"
        log = process.log_path.read_text()
        blocks = log.split("Traceback (most recent call last):\n")[1:]
        raised = {
            next((line for line in b.splitlines() if not line.startswith(" ")), "").split(":")[0]
            for b in blocks
        }
        # faststream logs one when a pull consumer's fetch times out on a quiet stream.
        assert raised <= {"TimeoutError"}, log[-4000:]


def with_hostile_text(schema_value: Any, text: str) -> Any:
    """``schema_value`` with every string in it replaced by ``text``."""
    if isinstance(schema_value, str):
        return text
    if isinstance(schema_value, list):
        return [with_hostile_text(v, text) for v in schema_value]
    if isinstance(schema_value, dict):
        return {k: with_hostile_text(v, text) for k, v in schema_value.items()}
    return schema_value


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[Endpoint[Any, Any], bytes]:
    endpoint = draw(st.sampled_from(ENDPOINTS))
    value = draw(from_schema(endpoint.request.model_json_schema()))
    if draw(st.booleans()):
        value = with_hostile_text(value, draw(HOSTILE_TEXT))
    return endpoint, json.dumps(value).encode()


def test_well_formed_and_hostile_requests_to_every_subject_get_a_structured_answer(
    services: tuple[Requests, dict[str, str], list[ManagedProcess]],
) -> None:
    requests, _, processes = services
    wrong: list[str] = []
    asked: set[str] = set()

    @settings(
        max_examples=len(ENDPOINTS) * 6,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(well_formed())
    def every_subject(case: tuple[Endpoint[Any, Any], bytes]) -> None:
        endpoint, body = case
        if len(body) > requests.max_payload:
            # Eleven fields of 100,000 characters: no NATS client sends it, so no service
            # ever sees it.
            with pytest.raises(MaxPayloadError):
                requests.ask(endpoint.subject, body)
            return
        reply, seconds = requests.ask(endpoint.subject, body)
        asked.add(endpoint.subject)
        problem = check_reply(endpoint, reply)
        if problem:
            wrong.append(f"{endpoint.subject} <- {body[:300]!r}: {problem}")
        assert seconds < TIMEOUT

    every_subject()
    assert not wrong, "\n".join(wrong[:20])
    assert len(asked) >= len(ENDPOINTS) * 0.8, sorted({e.subject for e in ENDPOINTS} - asked)
    assert_no_traceback(processes)


def test_requests_that_cannot_be_read_are_refused_and_store_nothing(
    services: tuple[Requests, dict[str, str], list[ManagedProcess]],
    mongo_server: MongoServer,
) -> None:
    requests, databases, processes = services
    before = settled_counts(mongo_server.url, databases)
    wrong: list[str] = []
    refused = 0

    def expect_refusal(endpoint: Endpoint[Any, Any], label: str, body: bytes) -> None:
        nonlocal refused
        reply, _ = requests.ask(endpoint.subject, body)
        code = ((reply or {}).get("error") or {}).get("code")
        if reply is None or reply.get("ok") is not False or code != "validation_failed":
            wrong.append(f"{endpoint.subject} ({label}): {str(reply)[:300]}")
        refused += 1

    for endpoint in ENDPOINTS:
        for label, body in UNREADABLE.items():
            expect_refusal(endpoint, label, body)
        if any(field.is_required() for field in endpoint.request.model_fields.values()):
            expect_refusal(endpoint, "empty", b"")

    typed = [e for e in ENDPOINTS if e.request.model_fields]

    @settings(max_examples=len(typed) * 4, deadline=None, database=None)
    @given(st.sampled_from(typed), st.data())
    def every_field_wrong(endpoint: Endpoint[Any, Any], data: st.DataObject) -> None:
        fields = endpoint.request.model_fields
        body = {name: data.draw(WRONG_TYPE) for name in fields}
        expect_refusal(endpoint, "every field of the wrong type", json.dumps(body).encode())

    every_field_wrong()
    assert not wrong, "\n".join(wrong[:20])
    assert refused >= len(ENDPOINTS) * len(UNREADABLE)
    assert counts(mongo_server.url, databases) == before
    assert_no_traceback(processes)

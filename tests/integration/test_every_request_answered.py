"""Every subject a service answers gets an answer, whatever is sent to it.

The three built services run as processes against the real nats-server and SecantusDB. To
each of their subjects (their commands and queries, health, dead letters, audit) go a body
nested 10,000 deep and one holding a 5,000-digit number; to each whose request has a kind,
a kind that is a list and one that is an object. Each comes back ``validation_failed``
within one second, and no service logs a traceback for any of it.
"""

from __future__ import annotations

import importlib
import json
import time
import uuid

import nats
import pytest
from pydantic import BaseModel

from contracts.endpoints import ACTOR_HEADER, Endpoint
from contracts.operations import operator_endpoints
from services import registry
from stack.nats import NatsServer
from stack.streams import declare_streams_at
from tests.conftest import ServiceProcessFactory

pytestmark = pytest.mark.integration

DEEP = b'{"name": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
LONG_NUMBER = b'{"limit": ' + b"9" * 5_000 + b"}"
SIGN_UP = {"name": "Anna Hansen", "email": "anna@example.org", "consent": True}


def raised(log: str) -> list[str]:
    """The exception each traceback in ``log`` ends with (its first unindented line)."""
    found = []
    for block in log.split("Traceback (most recent call last):\n")[1:]:
        line = next((line for line in block.splitlines() if not line.startswith(" ")), "")
        found.append(line.split(":", 1)[0])
    return found


def endpoints_of(service: str) -> list[Endpoint[BaseModel, BaseModel]]:
    declared = importlib.import_module(f"contracts.{service}").Endpoints
    return [*declared.all(), *operator_endpoints(service)]


def bodies_for(endpoint: Endpoint[BaseModel, BaseModel]) -> dict[str, bytes]:
    bodies = {"nested 10,000 deep": DEEP, "a 5,000-digit number": LONG_NUMBER}
    if "kind" in endpoint.request.model_fields:
        for label, kind in (("a list", ["citizen"]), ("an object", {"value": "citizen"})):
            bodies[f"kind as {label}"] = json.dumps({**SIGN_UP, "kind": kind}).encode()
    return bodies


async def test_every_subject_answers_what_it_cannot_read_with_validation_failed(
    service_process: ServiceProcessFactory, nats_server: NatsServer
) -> None:
    # Each service waits at start-up for the streams it consumes, and some consume each
    # other's: declared first, as the producers would, so they start one after the other.
    await declare_streams_at(nats_server.url, registry.built())
    processes = [
        service_process(name, {"SAMSKAB_MONGO_DATABASE": f"{name[:2]}_{uuid.uuid4().hex[:8]}"})
        for name in registry.built()
    ]
    nc = await nats.connect(nats_server.url)
    wrong: list[str] = []
    asked = 0
    try:
        for name in registry.built():
            for endpoint in endpoints_of(name):
                for label, body in bodies_for(endpoint).items():
                    started = time.monotonic()
                    try:
                        msg = await nc.request(
                            endpoint.subject,
                            body,
                            timeout=1.0,
                            headers={ACTOR_HEADER: "operator:tester"},
                        )
                    except TimeoutError:
                        wrong.append(f"{endpoint.subject} ({label}): no answer within 1 s")
                        continue
                    asked += 1
                    reply = json.loads(msg.data)
                    code = (reply.get("error") or {}).get("code")
                    if reply.get("ok") is not False or code != "validation_failed":
                        wrong.append(f"{endpoint.subject} ({label}): {reply}")
                    assert time.monotonic() - started < 1.0
    finally:
        await nc.close()
    assert not wrong, "\n".join(wrong)
    assert asked >= 3 * 2 * 5  # every service's operator subjects at least
    for process in processes:
        log = process.log_path.read_text()
        # One warning line per refused request, no traceback: the only ones a service logs
        # here are faststream's, when a pull consumer's fetch times out on a quiet stream.
        assert set(raised(log)) <= {"TimeoutError"}, log[-4000:]
        assert "request failed" not in log, log[-4000:]

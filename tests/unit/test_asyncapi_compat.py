"""The v1 promise: the committed AsyncAPI documents (docs/asyncapi/) still hold for the code.

A ``v1`` event, command or query that changes incompatibly (a field removed or renamed, a
type narrowed, a new required field) fails here; the fix is a new ``v2`` subject, not an
edited document. The comparison itself (stack/asyncapi_compat.py) is tested on small
schemas first."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services import registry
from stack import asyncapi
from stack.asyncapi_compat import incompatibilities, schema_problems

BUILT = registry.built()

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "age": {"type": "integer"},
        "kind": {"$ref": "#/$defs/Kind"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "kind"],
    "$defs": {"Kind": {"type": "string", "enum": ["person", "organisation"]}},
}


def changed(path: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """PERSON with the value at ``path`` (``properties/age/type``) replaced or deleted."""
    schema = copy.deepcopy(PERSON)
    *parents, last = path.split("/")
    target: Any = schema
    for part in parents:
        target = target[part]
    if delete:
        del target[last]
    else:
        target[last] = value
    return schema


def renamed(old: str, new: str) -> dict[str, Any]:
    schema = copy.deepcopy(PERSON)
    schema["properties"][new] = schema["properties"].pop(old)
    return schema


def test_the_same_schema_is_compatible() -> None:
    assert schema_problems(PERSON, copy.deepcopy(PERSON)) == []


@pytest.mark.parametrize(
    ("new", "problem"),
    [
        pytest.param(changed("properties/age", delete=True), "age: removed", id="removed"),
        pytest.param(renamed("age", "years"), "age: removed", id="renamed"),
        pytest.param(
            changed("properties/age/type", "string"),
            "age: type narrowed from integer to string",
            id="integer-to-string",
        ),
        pytest.param(
            changed("properties/name/type", "integer"),
            "name: type narrowed from string to integer",
            id="string-to-integer",
        ),
        pytest.param(
            changed("properties/note", {"type": "string"}),
            "note: no longer accepts null",
            id="union-loses-a-member",
        ),
        pytest.param(
            changed("$defs/Kind/enum", ["person"]),
            "kind: no longer accepts the values ['organisation']",
            id="enum-loses-a-value",
        ),
        pytest.param(
            changed("properties/tags/items/type", "integer"),
            "tags[]: type narrowed from string to integer",
            id="list-items-narrowed",
        ),
        pytest.param(
            changed("properties/name/maxLength", 100),
            "name: maxLength narrowed from 200 to 100",
            id="shorter-limit",
        ),
        pytest.param(
            changed("properties/tags/items/format", "uuid"),
            "tags[]: format changed from None to 'uuid'",
            id="format-added",
        ),
        pytest.param(
            changed("required", ["name", "kind", "age"]),
            "age: optional field made required",
            id="optional-made-required",
        ),
        pytest.param(
            changed("properties/email", {"type": "string"})
            | {"required": ["name", "kind", "email"]},
            "email: new required field",
            id="new-required-field",
        ),
        pytest.param(
            changed("additionalProperties", False),
            "payload: no longer accepts fields it does not name",
            id="extra-fields-forbidden",
        ),
    ],
)
def test_an_incompatible_change_is_found(new: dict[str, Any], problem: str) -> None:
    problems = schema_problems(PERSON, new)
    assert any(found.startswith(problem) for found in problems), problems


@pytest.mark.parametrize(
    "new",
    [
        pytest.param(changed("properties/email", {"type": "string"}), id="new-optional-field"),
        pytest.param(changed("properties/age/type", "number"), id="integer-to-number"),
        pytest.param(
            changed("properties/age", {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
            id="made-nullable",
        ),
        pytest.param(
            changed("$defs/Kind/enum", ["person", "organisation", "unit"]), id="enum-gains-a-value"
        ),
        pytest.param(changed("properties/name/maxLength", 500), id="longer-limit"),
        pytest.param(changed("properties/name/maxLength", delete=True), id="limit-dropped"),
        pytest.param(changed("required", ["name"]), id="required-made-optional"),
        pytest.param(changed("properties/age", {"title": "Age"}), id="anything-goes"),
        pytest.param(
            changed("properties/name/description", "What the person is called"), id="annotated"
        ),
    ],
)
def test_a_compatible_change_passes(new: dict[str, Any]) -> None:
    assert schema_problems(PERSON, new) == []


def test_a_recursive_model_is_compared_to_its_end() -> None:
    def tree(leaf: str) -> dict[str, Any]:
        return {
            "$ref": "#/$defs/Node",
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "value": {"type": leaf},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    },
                }
            },
        }

    assert schema_problems(tree("string"), tree("string")) == []
    assert schema_problems(tree("string"), tree("integer")) == [
        "value: type narrowed from string to integer"
    ]


def document(payloads: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A small AsyncAPI 3 document in faststream's shape, one message per channel."""
    return {
        "asyncapi": "3.0.0",
        "channels": {
            subject: {
                "address": subject,
                "messages": {"Message": {"$ref": f"#/components/messages/{subject}:Message"}},
            }
            for subject in payloads
        },
        "components": {
            "messages": {
                f"{subject}:Message": {"payload": {"$ref": f"#/components/schemas/{subject}"}}
                for subject in payloads
            },
            "schemas": {**payloads, "Kind": PERSON["$defs"]["Kind"]},
        },
    }


def person(**changes: Any) -> dict[str, Any]:
    # In a document, a model's $refs point into components/schemas.
    schema = copy.deepcopy(PERSON)
    del schema["$defs"]
    schema["properties"]["kind"] = {"$ref": "#/components/schemas/Kind"}
    schema["properties"].update(changes)
    return schema


OLD = document(
    {
        "people.v1.joined": person(),
        "people.cmd.join": person(),
        "people.query.show": person(),
        "people.health": person(),
    }
)


def test_documents_compare_by_channel() -> None:
    new = copy.deepcopy(OLD)
    new["channels"]["people.v1.left"] = new["channels"]["people.v1.joined"]
    new["components"]["schemas"]["people.health"] = {"type": "string"}
    assert incompatibilities(OLD, new) == []

    new["components"]["schemas"]["people.v1.joined"] = person(age={"type": "string"})
    new["components"]["schemas"]["Kind"] = {"type": "string", "enum": ["person"]}
    assert incompatibilities(OLD, new) == [
        "people.cmd.join: kind: no longer accepts the values ['organisation']",
        "people.query.show: kind: no longer accepts the values ['organisation']",
        "people.v1.joined: age: type narrowed from integer to string",
        "people.v1.joined: kind: no longer accepts the values ['organisation']",
    ]


@pytest.mark.parametrize("subject", ["people.v1.joined", "people.cmd.join", "people.query.show"])
def test_a_removed_channel_breaks_the_promise(subject: str) -> None:
    new = copy.deepcopy(OLD)
    del new["channels"][subject]
    assert incompatibilities(OLD, new) == [
        f"{subject}: channel removed (a breaking change is a new v2 subject)"
    ]


def test_a_health_channel_may_go() -> None:
    new = copy.deepcopy(OLD)
    del new["channels"]["people.health"]
    assert incompatibilities(OLD, new) == []


# ---------------------------------------------------------------- the real documents


@pytest.fixture(scope="module")
def fresh() -> dict[str, str]:
    return asyncapi.generate()


@pytest.mark.parametrize("name", BUILT)
def test_the_code_keeps_the_committed_v1_promise(name: str, fresh: dict[str, str]) -> None:
    committed = json.loads((asyncapi.DIRECTORY / f"{name}.json").read_text(encoding="utf-8"))
    problems = incompatibilities(committed, json.loads(fresh[name]))
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("name", BUILT)
def test_the_committed_document_guards_the_services_messages(name: str) -> None:
    # An empty or unreadable document would make the test above pass vacuously.
    committed = json.loads((asyncapi.DIRECTORY / f"{name}.json").read_text(encoding="utf-8"))
    subjects = {channel["address"] for channel in committed["channels"].values()}
    assert any(subject.startswith(f"{name}.v1.") for subject in subjects)
    assert any(subject.startswith(f"{name}.cmd.") for subject in subjects)


def test_the_committed_documents_are_current(fresh: dict[str, str]) -> None:
    problems = asyncapi.stale(asyncapi.DIRECTORY, fresh)
    assert problems == [], "run .venv/bin/python -m stack.asyncapi\n" + "\n".join(problems)


def test_stale_documents_are_named(fresh: dict[str, str], tmp_path: Path) -> None:
    asyncapi.write(tmp_path, fresh)
    assert asyncapi.stale(tmp_path, fresh) == []
    first, second, *_ = BUILT
    (tmp_path / f"{first}.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / f"{second}.json").unlink()
    (tmp_path / "retired.json").write_text("{}\n", encoding="utf-8")
    assert asyncapi.stale(tmp_path, fresh) == [
        f"{tmp_path / first}.json: differs from what the code gives",
        f"{tmp_path / second}.json: missing",
        f"{tmp_path / 'retired'}.json: no built service 'retired'",
    ]


def test_the_environment_does_not_change_a_document(fresh: dict[str, str], tmp_path: Path) -> None:
    """Another NATS address (variable or .env), a NATS user, another hash seed: another
    process makes the same documents, byte for byte."""
    asyncapi.write(tmp_path / "docs", fresh)
    (tmp_path / ".env").write_text("SAMSKAB_NATS_URL=nats://elsewhere.example:4222\n")
    env = os.environ | {
        "SAMSKAB_NATS_USER": "someone",
        "SAMSKAB_NATS_PASSWORD": "secret",
        "SAMSKAB_AMBASSADORS_TOKEN_SECRET": "f" * 64,
        "PYTHONHASHSEED": "4242",
    }
    result = subprocess.run(
        [sys.executable, "-m", "stack.asyncapi", "--check", "--directory", "docs"],
        cwd=tmp_path,
        env=env,
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr

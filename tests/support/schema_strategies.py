"""Hypothesis strategies drawn from the JSON Schemas pydantic writes for our contracts.

hypothesis-jsonschema would be the library for this, but its last release (0.23.1) uses
hypothesis internals that hypothesis 6.170 no longer has (``AttributeError: 'many' object
has no attribute 'more'``). Our schemas use a small part of JSON Schema (objects with
``properties`` and ``required``, ``$ref`` into ``$defs``, ``anyOf``, ``enum``/``const``,
strings with lengths, a pattern or a date format, bounded numbers, arrays with a maximum),
and this module covers exactly that part; anything else it meets raises, so a contract
using more is noticed rather than skipped.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import hypothesis.strategies as st

Schema = dict[str, Any]
# Values of a few hundred characters at most: the hostile long strings are a case of their own.
TEXT_CAP = 300
LIST_CAP = 5


def from_schema(schema: Schema) -> st.SearchStrategy[Any]:
    """Values valid against ``schema`` (a model's ``model_json_schema()``)."""
    return _strategy(schema, schema.get("$defs", {}))


def _strategy(schema: Schema, defs: dict[str, Schema]) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        return _strategy(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return st.one_of([_strategy(s, defs) for s in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return _object(schema, defs)
    if kind == "array":
        items = _strategy(schema.get("items", {"type": "string"}), defs)
        cap = min(schema.get("maxItems", LIST_CAP), LIST_CAP)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=max(cap, 0))
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**9)), schema.get("maximum", 10**9))
    if kind == "number":
        return st.floats(schema.get("minimum", -1e9), schema.get("maximum", 1e9), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if not schema or (kind is None and set(schema) <= {"title", "description", "default"}):
        return st.one_of(st.none(), st.integers(), st.text(max_size=20))  # Any
    raise NotImplementedError(f"no strategy for the schema {schema}")


def _object(schema: Schema, defs: dict[str, Schema]) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Schema] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    if not properties and isinstance(schema.get("additionalProperties"), dict):
        values = _strategy(schema["additionalProperties"], defs)
        return st.dictionaries(st.text(min_size=1, max_size=20), values, max_size=LIST_CAP)
    needed = {name: _strategy(s, defs) for name, s in properties.items() if name in required}
    optional = {name: _strategy(s, defs) for name, s in properties.items() if name not in required}
    return st.fixed_dictionaries(needed, optional=optional)


def _string(schema: Schema) -> st.SearchStrategy[str]:
    low = schema.get("minLength", 0)
    high = min(schema.get("maxLength", TEXT_CAP), max(TEXT_CAP, low))
    form = schema.get("format")
    if form == "date":
        return st.dates().map(lambda d: d.isoformat())
    if form == "date-time":
        return st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
    if form in ("email", "uri", "binary", "base64") or "pattern" in schema:
        if "pattern" in schema:
            return st.from_regex(str(schema["pattern"]), fullmatch=True).filter(
                lambda s: low <= len(s) <= schema.get("maxLength", 10**6)
            )
        if form == "email":
            return st.emails()
        if form == "uri":
            return st.just("https://example.org/")
        return st.binary(max_size=64).map(lambda b: b.hex())
    return st.text(min_size=low, max_size=high)

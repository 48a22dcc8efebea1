"""Does a new AsyncAPI document keep the promises of the committed one?

The rule, per guarded channel: everything the old payload schema accepted, the new one still
accepts, and every field the old one named is still there. Why that direction: a ``v1``
event stays in its stream for a year and is read again (a new consumer, a replay, a
dead letter), so today's models must read yesterday's events; integrators write their
commands and queries against the committed document; and a consumer that reads a field must
still find it. So these fail: a field removed or renamed, a type narrowed (``string`` to
``integer``, a union or an enum losing a member, a tighter length, bound or format), a new
required field or an optional one made required, a guarded channel removed. These pass: a
new optional field, a widened type, a new channel. A breaking change is a new ``v2``
subject (docs/architecture.md).

Guarded: ``<service>.v1.<event>`` and ``<service>.cmd.`` / ``<service>.query.`` channels;
health and other channels may change freely. The schemas are the JSON Schema subset pydantic
writes; a keyword this module does not understand counts as a break whenever its value
changes, so a narrowing it cannot judge is never let through silently. Pure: data in,
problems out (stack/asyncapi.py makes the documents).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GUARDED = re.compile(r"^[a-z0-9_]+\.(v1|cmd|query)\.")

# Words for people, not for validation: a change in them is never a break. (``$defs`` only
# holds what ``$ref`` points to; ``discriminator`` only says which member to try first.)
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$comment",
        "$schema",
        "$id",
        "$defs",
        "definitions",
        "discriminator",
    }
)
# Keywords compared below; anything else falls to the "changed at all" rule.
_UPPER_BOUNDS = ("maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum")
_LOWER_BOUNDS = ("minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum")
_COMPARED = frozenset(
    {
        "type",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "$ref",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "propertyNames",
        *_UPPER_BOUNDS,
        *_LOWER_BOUNDS,
    }
)

# A problem: where in the payload (``certificate.object_name``, ``themes[]``), and what.
Problem = tuple[str, str]


def _join(prefix: str, location: str) -> str:
    if not location:
        return prefix
    return prefix + location if location.startswith("[") or not prefix else f"{prefix}.{location}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _enum(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if enum is not None else None


def _types(schema: Any) -> set[str] | None:
    """The JSON types a schema allows; None: any."""
    if not isinstance(schema, Mapping):
        return set() if schema is False else None
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return set(declared)
    enum = _enum(schema)
    return {_json_type(value) for value in enum} if enum is not None else None


def _lost_types(old: set[str], new: set[str]) -> set[str]:
    # Every integer is a number: integer -> number widens.
    return {t for t in old if t not in new and not (t == "integer" and "number" in new)}


def _describe(types: set[str] | None) -> str:
    return " | ".join(sorted(types)) if types is not None else "any value"


def _unconstrained(schema: Any) -> bool:
    return schema is True or (
        isinstance(schema, Mapping) and all(key in _ANNOTATIONS for key in schema)
    )


@dataclass
class _Comparison:
    old_root: Mapping[str, Any]
    new_root: Mapping[str, Any]
    # Results by (old $ref, new $ref): a model used in many places is compared once, and a
    # recursive one ends where it refers to itself (in progress: assumed compatible).
    done: dict[tuple[str, str], list[Problem]] = field(default_factory=dict)

    def compare(self, old: Any, new: Any) -> list[Problem]:
        old_ref, old = _resolve(old, self.old_root)
        new_ref, new = _resolve(new, self.new_root)
        if old_ref is None or new_ref is None:
            return self._compare(old, new)
        key = (old_ref, new_ref)
        if key not in self.done:
            self.done[key] = []
            self.done[key] = self._compare(old, new)
        return self.done[key]

    def _compare(self, old: Any, new: Any) -> list[Problem]:
        if _unconstrained(new) or old is False:
            return []
        if new is False:
            return [("", "accepts nothing any more")]
        if _unconstrained(old):
            return [("", f"accepted any value, now only {_describe(_types(new))}")]
        if _branches(old) is not None or _branches(new) is not None:
            return self._union(old, new)
        return self._single(old, new)

    def _union(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Problem]:
        """Every member of the old union must be accepted by some member of the new one."""
        new_members = _branches(new) or [new]
        problems: list[Problem] = []
        for member in _branches(old) or [old]:
            tried = [self.compare(member, candidate) for candidate in new_members]
            if any(not result for result in tried):
                continue
            member_types = _types(_resolve(member, self.old_root)[1])
            alike = [
                result
                for result, candidate in zip(tried, new_members, strict=True)
                if _overlaps(member_types, _types(_resolve(candidate, self.new_root)[1]))
            ]
            if alike:
                # The member that is most like it says best what changed.
                closest: list[Problem] = min(alike, key=len)
                problems.extend(closest)
            else:
                problems.append(("", f"no longer accepts {_describe(member_types)}"))
        return problems

    def _single(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Problem]:
        old_types, new_types = _types(old), _types(new)
        if new_types is not None:
            lost = _lost_types(old_types, new_types) if old_types is not None else None
            if old_types is None or lost:
                return [
                    ("", f"type narrowed from {_describe(old_types)} to {_describe(new_types)}")
                ]
        problems: list[Problem] = []
        old_enum, new_enum = _enum(old), _enum(new)
        if new_enum is not None:
            if old_enum is None:
                problems.append(("", f"now limited to the values {new_enum}"))
            elif lost_values := [value for value in old_enum if value not in new_enum]:
                problems.append(("", f"no longer accepts the values {lost_values}"))
        problems += _bounds(old, new)
        for key in sorted(new.keys() - _ANNOTATIONS - _COMPARED):
            if new[key] != old.get(key):
                problems.append(("", f"{key} changed from {old.get(key)!r} to {new[key]!r}"))
        if "items" in old or "items" in new:
            problems += _under("[]", self.compare(old.get("items", True), new.get("items", True)))
        if "propertyNames" in new:
            names = self.compare(old.get("propertyNames", True), new["propertyNames"])
            problems += _under("{key}", names)
        return problems + self._object(old, new)

    def _object(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        old_properties: Mapping[str, Any] = old.get("properties", {})
        new_properties: Mapping[str, Any] = new.get("properties", {})
        for name, schema in old_properties.items():
            if name not in new_properties:
                problems.append((name, "removed (or renamed)"))
            else:
                problems += _under(name, self.compare(schema, new_properties[name]))
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        for name in sorted(new_required - old_required):
            was = "optional field made required" if name in old_properties else "new required field"
            problems.append((name, was))
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            problems.append(("", "no longer accepts fields it does not name"))
        elif new_extra is not False and old_extra is not False:
            problems += _under("{*}", self.compare(old_extra, new_extra))
        return problems


def _bounds(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for key in _UPPER_BOUNDS:
        if key in new and (key not in old or new[key] < old[key]):
            problems.append(("", f"{key} narrowed from {old.get(key, 'none')} to {new[key]}"))
    for key in _LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            problems.append(("", f"{key} narrowed from {old.get(key, 'none')} to {new[key]}"))
    return problems


def _overlaps(old: set[str] | None, new: set[str] | None) -> bool:
    return old is None or new is None or bool(old & new) or ("integer" in old and "number" in new)


def _under(prefix: str, problems: list[Problem]) -> list[Problem]:
    return [(_join(prefix, location), message) for location, message in problems]


def _branches(schema: Any) -> list[Any] | None:
    if not isinstance(schema, Mapping):
        return None
    members = schema.get("anyOf", schema.get("oneOf"))
    return list(members) if members is not None else None


def _pointer(root: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are followed, not {ref!r}")
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def _resolve(schema: Any, root: Mapping[str, Any]) -> tuple[str | None, Any]:
    """Follow ``$ref`` (and a lone ``allOf`` member, pydantic's way to annotate a ref)."""
    ref = None
    for _ in range(64):
        if not isinstance(schema, Mapping):
            break
        if "$ref" in schema:
            ref = schema["$ref"]
            schema = _pointer(root, ref)
        elif len(schema.get("allOf", ())) == 1 and not schema.keys() - _ANNOTATIONS - {"allOf"}:
            schema = schema["allOf"][0]
        else:
            break
    return ref, schema


def schema_problems(
    old: Any,
    new: Any,
    *,
    old_root: Mapping[str, Any] | None = None,
    new_root: Mapping[str, Any] | None = None,
) -> list[str]:
    """Why ``new`` does not accept what ``old`` did (empty: compatible); ``$ref``s are
    looked up in the roots (an AsyncAPI document, or the schemas themselves)."""
    comparison = _Comparison(
        old_root if old_root is not None else old, new_root if new_root is not None else new
    )
    return [
        f"{location or 'payload'}: {message}" for location, message in comparison.compare(old, new)
    ]


def payloads(doc: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The payload schemas of each guarded channel, by subject."""
    found: dict[str, list[Any]] = {}
    for key, channel in doc.get("channels", {}).items():
        subject = channel.get("address") or key
        if not GUARDED.match(subject):
            continue
        for message in channel.get("messages", {}).values():
            _, resolved = _resolve(message, doc)
            found.setdefault(subject, []).append(resolved.get("payload", True))
    return found


def _one(schemas: Sequence[Any]) -> Any:
    # A channel with several messages accepts any of them.
    return schemas[0] if len(schemas) == 1 else {"anyOf": list(schemas)}


def incompatibilities(old_doc: Mapping[str, Any], new_doc: Mapping[str, Any]) -> list[str]:
    """Every break of ``old_doc``'s guarded channels in ``new_doc`` (empty: compatible)."""
    old_payloads, new_payloads = payloads(old_doc), payloads(new_doc)
    comparison = _Comparison(old_doc, new_doc)
    problems: list[str] = []
    for subject, schemas in sorted(old_payloads.items()):
        if subject not in new_payloads:
            problems.append(f"{subject}: channel removed (a breaking change is a new v2 subject)")
            continue
        for location, message in comparison.compare(_one(schemas), _one(new_payloads[subject])):
            problems.append(f"{subject}: {location or 'payload'}: {message}")
    return problems

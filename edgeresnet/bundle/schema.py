"""The manifest's JSON Schema (``schema.json``, package data) and the check ``verify`` runs with it.

``jsonschema`` is used where it is installed. The runtime must work without it (an app embedding a
bundle installs numpy and a runtime, nothing more), so a small validator of exactly the keywords
``schema.json`` uses stands in; ``tests/test_bundle_format.py`` checks it against ``jsonschema`` on the
same documents.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from edgeresnet.backends.registry import bundle_targets
from edgeresnet.bundle.layout import SCHEMA_RESOURCE

_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}
SUPPORTED_KEYWORDS = frozenset({
    "$schema", "$id", "title", "description", "$defs", "$ref", "type", "const", "enum", "required",
    "properties", "additionalProperties", "items", "minItems", "maxItems", "minLength", "minimum", "maximum",
    "pattern", "minProperties",
})


@cache
def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of a version-2 manifest."""
    text = resources.files("edgeresnet.bundle").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return json.loads(text)


def schema_problems(record: Any, *, limit: int = 5) -> list[str]:
    """Where ``record`` breaks the manifest schema, as ``path: reason`` lines (empty when it conforms)."""
    schema = _with_registered_targets(manifest_schema())
    try:
        import jsonschema
    except ImportError:
        problems = list(_validate(record, schema, schema, "manifest"))
    else:
        validator = jsonschema.Draft202012Validator(schema)
        problems = [f"{_path(error.absolute_path)}: {error.message}"
                    for error in sorted(validator.iter_errors(record), key=lambda e: list(map(str, e.path)))]
    return problems[:limit]


def builtin_schema_problems(record: Any) -> list[str]:
    """The stand-in validator's verdict (what :func:`schema_problems` says where jsonschema is absent)."""
    schema = _with_registered_targets(manifest_schema())
    return list(_validate(record, schema, schema, "manifest"))


def _with_registered_targets(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with ``target`` accepting every registered backend that writes bundles: schema.json lists
    the built-in ones for other tools, a backend added to the registry extends it here."""
    targets = list(bundle_targets())
    if schema["properties"]["target"].get("enum") == targets:
        return schema
    return {**schema, "properties": {**schema["properties"], "target": {"enum": targets}}}


def _path(parts: Any) -> str:
    return "manifest" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def _validate(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> Any:
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        yield from _validate(value, target, root, where)
        return
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(value, name) for name in names):
            yield f"{where}: {value!r:.40} is not of type {' or '.join(names)}"
            return
    if "const" in schema and not _equal(value, schema["const"]):
        yield f"{where}: {schema['const']!r} was expected"
    if "enum" in schema and not any(_equal(value, option) for option in schema["enum"]):
        yield f"{where}: {value!r:.40} is not one of {schema['enum']!r}"
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                yield f"{where}: {name!r} is a required property"
        if len(value) < schema.get("minProperties", 0):
            yield f"{where}: should have at least {schema['minProperties']} properties"
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                yield from _validate(item, properties[name], root, f"{where}.{name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                yield from _validate(item, schema["additionalProperties"], root, f"{where}.{name}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield f"{where}: should have at least {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield f"{where}: should have at most {schema['maxItems']} items"
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                yield from _validate(item, schema["items"], root, f"{where}[{index}]")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            yield f"{where}: should be non-empty"
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            yield f"{where}: {value!r:.40} does not match {schema['pattern']!r}"
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            yield f"{where}: {value} is less than the minimum of {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            yield f"{where}: {value} is greater than the maximum of {schema['maximum']}"


def _equal(value: Any, expected: Any) -> bool:
    # JSON Schema compares 1 and True as different values; Python's == does not.
    return type(value) is type(expected) and value == expected if isinstance(value, bool) or isinstance(
        expected, bool) else value == expected

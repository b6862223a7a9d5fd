"""The providers' documented wire examples (tests/fixtures/wire/<protocol>/, each with its
source and date) and the one notion of shape both sides are held to: the adapters read these
examples (tests/providers/test_wire_fixtures.py) and the sandbox answers in them
(tests/sandbox/test_wire_shapes.py)."""

import json
from pathlib import Path
from typing import Any

WIRE = Path(__file__).resolve().parent / "fixtures" / "wire"


def documented(protocol: str, name: str) -> dict[str, Any]:
    return json.loads((WIRE / protocol / name).read_text(encoding="utf-8"))


def json_type(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}[type(value)]


def shape_errors(example: Any, answer: Any, where: str = "body") -> list[str]:
    """Where `answer` lacks a field of the documented `example` or gives it another JSON type
    (a documented null fits anything; lists compare their first items; extra fields are
    fine — the examples rarely show every field)."""
    if example is None:
        return []
    if json_type(example) != json_type(answer):
        return [f"{where}: documented {json_type(example)}, got {json_type(answer)}"]
    if isinstance(example, dict):
        errors = []
        for key, value in example.items():
            if key not in answer:
                errors.append(f"{where}.{key}: documented, missing")
            else:
                errors += shape_errors(value, answer[key], f"{where}.{key}")
        return errors
    if isinstance(example, list) and example and answer:
        return shape_errors(example[0], answer[0], f"{where}[0]")
    return []

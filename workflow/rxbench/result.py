"""The cell result (workflow/schemas/result.schema.yaml): validation and reading."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import yaml

from . import ROOT, RxbenchError

SCHEMA = ROOT / "workflow" / "schemas" / "result.schema.yaml"


class ResultError(RxbenchError):
    pass


@lru_cache(maxsize=1)
def _validator():
    import jsonschema
    with open(SCHEMA) as f:       # libyaml's safe loader when there: 6x faster, same result
        schema = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return jsonschema.Draft202012Validator(schema)


def validate_result(data: dict, where: str = "result") -> dict:
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        key = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ResultError(f"{where}: key {key}: {e.message}")
    return data


def load_result(path: str | Path) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ResultError(f"{path}: cannot read a result: {e}") from None
    return validate_result(data, str(path))

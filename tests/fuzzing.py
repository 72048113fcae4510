"""Shared pieces of the fuzz tests (tests/*/test_fuzz_*.py).

`mutated(doc)` damages a valid JSON document the way a careless or hostile user would: values
replaced by odd ones (wrong types, NaN, huge, negative, empty, path-like), keys and list items
deleted or duplicated, unknown keys added, numbers negated, zeroed or scaled. The fuzz tests
feed the results to every reader and demand one of two outcomes: accepted and usable, or
refused with the documented error (never another exception, never partial output).

`fuzz(n)` is the settings of a fuzz test: n examples (kept small for CI) times the
TASKGROUP_FUZZ_SCALE environment variable, e.g. `TASKGROUP_FUZZ_SCALE=20 pytest -k fuzz` for
a longer search before a release.
"""

from __future__ import annotations

import copy
import json
import math
import os
from typing import Any, Iterator

from hypothesis import HealthCheck, settings, strategies as st


def fuzz(examples: int) -> settings:
    scale = int(os.environ.get("TASKGROUP_FUZZ_SCALE", "1"))
    return settings(max_examples=examples * scale, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 2.5, 1e308, -1e-308, "", "0", "1", "NaN", "..", "../x", "/etc/passwd", "a" * 300]),
    st.text(max_size=6),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-3, 3), max_size=2),
)


def _paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _parent(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _numeric_variants(value: Any) -> list[Any]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [value]
    variants = [-value, 0, value * 1e6, value + 1e-9, float("nan"), float("inf"), -float("inf"), 2 ** 64]
    if isinstance(value, int):
        variants.append(float(value))
    elif math.isfinite(value):
        variants.append(int(value))
    return variants


@st.composite
def mutated(draw, doc: dict, max_mutations: int = 3, skip: tuple[str, ...] = ()) -> dict:
    """A deep copy of `doc` with 1..max_mutations random damages (never to top-level keys in `skip`)."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = [p for p in _paths(doc) if p[0] not in skip]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(doc, path), path[-1]
        op = draw(st.sampled_from(["replace", "replace", "delete", "numeric", "numeric", "duplicate"]))
        if op == "replace":
            parent[key] = draw(ODD_VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "numeric":
            parent[key] = draw(st.sampled_from(_numeric_variants(parent[key])))
        elif isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[f"{key}_extra"] = copy.deepcopy(parent[key])
    return doc


def dumps(doc: Any) -> str:
    """JSON text as a user's editor might leave it: NaN and Infinity allowed (Python's json reads them)."""
    return json.dumps(doc, allow_nan=True)

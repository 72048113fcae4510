"""Reading a manifest's fields: the value checks every block of the manifest shares.

Each check raises a one-line BundleError naming the manifest file and the field, so a bad
bundle is refused at load with where to look, never later at the first frame.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from taskgroup_runtime.errors import BundleError

# Largest frame side a manifest may declare: far above any per-frame perception network, yet
# small enough that one frame is allocated safely (an absurd size would ask for tens of GiB).
MAX_SIDE = 8192
MAX_THREADS = 1024  # most intra-op threads per session a manifest (or a caller) may ask for
# What a field the exporter never writes that way calls for (descriptive blocks typed since).
REEXPORT = "re-export the bundle with `taskgroup export`"


def set_fields(record: Any, keys: Iterable[str]) -> dict[str, Any]:
    """A record's fields that are set, as JSON, then its `extra` (absent fields stay absent)."""
    doc: dict[str, Any] = {}
    for key in keys:
        value = getattr(record, key)
        if value is not None:
            doc[key] = value.to_json() if hasattr(value, "to_json") else value
    return {**doc, **record.extra}


def unknown(doc: dict, keys: Iterable[str]) -> dict[str, Any]:
    """The fields of `doc` a record does not know, kept as written (its `extra`)."""
    known = set(keys)
    return {k: v for k, v in doc.items() if k not in known}


def optional(doc: dict, key: str, types: type | tuple[type, ...], field_name: str, where: object,
             fix: str | None = None) -> Any:
    """doc[key] if absent, null or of `types` (never a bool where a number is asked); else a BundleError."""
    value = doc.get(key)
    wants_bool = types is bool
    if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and not wants_bool)):
        raise BundleError(f"{where}: field '{field_name}.{key}': expected "
                          f"{getattr(types, '__name__', types)} or null, found {value!r}" + (f"; {fix}" if fix else ""))
    return value


def object_field(doc: Any, field_name: str, where: object) -> dict:
    """An optional object (null or absent: empty)."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise BundleError(f"{where}: field '{field_name}': expected an object, found {type(doc).__name__}")
    return doc


def required(doc: dict, key: str, types, where: str, path: Path | object):
    """doc[key], present and of `types`; `where` is the field's prefix (e.g. 'input.')."""
    if not isinstance(doc, dict) or key not in doc:
        raise BundleError(f"{path}: field '{where}{key}': missing")
    value = doc[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise BundleError(f"{path}: field '{where}{key}': expected {types}, found a boolean")
    if not isinstance(value, types):
        raise BundleError(f"{path}: field '{where}{key}': expected {getattr(types, '__name__', types)}, "
                          f"found {type(value).__name__}")
    return value


def is_number(value: object) -> bool:
    """A finite JSON number (never a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def positive(value: object) -> bool:
    return is_number(value) and value > 0


def numbers(values: list, count: int, field_name: str, path: Path | object) -> tuple[float, ...]:
    """`count` finite numbers (a string or NaN here would only fail at the first frame)."""
    if len(values) != count or not all(is_number(v) for v in values):
        raise BundleError(f"{path}: field '{field_name}': expected {count} finite numbers, found {values}")
    return tuple(float(v) for v in values)


def task_names(value: Any, field_name: str, where: object, nullable: bool = False) -> tuple[str, ...] | None:
    """A list of task names (or null where `nullable`), as a tuple."""
    if value is None and nullable:
        return None
    if not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
        raise BundleError(f"{where}: field '{field_name}': expected a list of task names, found {value!r}")
    return tuple(value)

"""The loss estimators by name (`--estimate NAME`), each registered where it is defined.

An estimator takes the measured candidates and the cost function and returns the list the
search should use. A new one registers itself with `@register("name", plan=...)`, naming the
candidate set (`taskgroup train --candidates`) it needs trained; one that also needs the loss
table (e.g. its affinity table) says `uses_table=True` and is called with `table=` and `split=`
(the split the measured losses are from) as keywords. Importing taskgroup.search registers the
built-in ones.
"""

from __future__ import annotations

from taskgroup.errors import TaskgroupError
from taskgroup.search.candidates import Estimator

ESTIMATORS: dict[str, Estimator] = {}
# The candidate set (`taskgroup train --candidates`) each estimator needs trained.
TRAINING_PLANS: dict[str, str] = {}


def register(name: str, *, plan: str, uses_table: bool = False):
    def deco(fn: Estimator) -> Estimator:
        if uses_table:
            fn.uses_table = True  # type: ignore[attr-defined]
        ESTIMATORS[name] = fn
        TRAINING_PLANS[name] = plan
        return fn
    return deco


def get_estimator(spec: "str | Estimator") -> Estimator:
    if callable(spec):
        return spec
    try:
        return ESTIMATORS[spec]
    except KeyError:
        raise TaskgroupError(f"unknown estimator '{spec}'; valid options: {', '.join(sorted(ESTIMATORS))}") from None

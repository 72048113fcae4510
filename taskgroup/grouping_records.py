"""How a grouping was selected: the typed records best.json keeps beside its networks and budget.

Selection writes what it found on the way: how the search ran and what it proved (`SolveRecord`),
how the choice stands against latency noise (`RobustnessRecord`), the within-noise rule's decision
(`ParsimonyRecord`), the k best groupings and what they need trained (`TopK`), the stakes against
one network and independent singles (`StakesRecord`), the better grouping the noise rule left out
(`ExcludedByNoise`) and, after the pipeline's finalize, how far its estimates were off
(`EstimateError`). `Grouping` holds each as a typed field; this module reads and writes them.

Every record writes its fields in the order selection always has, so a grouping read and written
again is byte-for-byte the file it was read from; a field it does not know is kept in its own
`extra` (written after the known ones), so a newer writer's additions survive a round trip. Files
written before a field existed still load: a missing field reads as None (a missing top-level record
stays missing; a field missing inside a record is written back as null where selection writes
null). A field of the wrong type is a one-line SchemaError naming the file, the field and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping

from taskgroup.errors import SchemaError

# What a field holds (the `kind` of its metadata); a record class or a one-element list of one is nested.
NUM, INT, STR, BOOL, STRS, INTS, LOSSES = "number", "integer", "string", "boolean", "names", "integers", "losses"
FIX = "fix the field, or select again to rewrite the file"


def _f(kind: Any, *, omit: bool = False, only_with: str | None = None) -> Any:
    """A record field: its kind; `omit`: not written when None; `only_with`: written exactly when that
    other field is set (a group of fields selection writes together)."""
    return field(default=None, metadata={"kind": kind, "omit": omit, "only_with": only_with})


def _read(kind: Any, value: Any, where: object, name: str) -> Any:
    def bad(expected: str) -> SchemaError:
        return SchemaError(where, name, f"expected {expected}, found {value!r}; {FIX}")

    def number(v: Any) -> bool:
        return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)

    if isinstance(kind, list):
        if not isinstance(value, list):
            raise bad("a list")
        return tuple(_read(kind[0], v, where, f"{name}[{i}]") for i, v in enumerate(value))
    if isinstance(kind, tuple):  # one of several kinds (e.g. a count, or a sentence saying it was too many)
        for k in kind:
            try:
                return _read(k, value, where, name)
            except SchemaError:
                pass
        raise bad(" or ".join(k if isinstance(k, str) else k.__name__ for k in kind))
    if isinstance(kind, type):
        return kind.from_json(value, where, name)
    ok = {NUM: number(value), INT: isinstance(value, int) and not isinstance(value, bool),
          STR: isinstance(value, str), BOOL: isinstance(value, bool),
          STRS: isinstance(value, list) and all(isinstance(v, str) for v in value),
          INTS: isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
          LOSSES: isinstance(value, dict) and all(number(v) for v in value.values())}[kind]
    if not ok:
        raise bad({NUM: "a finite number", INT: "an integer", STR: "a string", BOOL: "true or false",
                   STRS: "a list of strings", INTS: "a list of integers", LOSSES: "an object name -> number"}[kind])
    return tuple(value) if kind in (STRS, INTS) else dict(value) if kind == LOSSES else value


def _write(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_write(v) for v in value]
    if isinstance(value, dict):
        return dict(value)
    return value.to_json() if hasattr(value, "to_json") else value


class Record:
    """to_json/from_json of a frozen dataclass whose fields (but `extra`) are declared with `_f`."""

    extra: dict[str, Any]
    _KEYS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _fields(cls) -> list:
        return [f for f in fields(cls) if f.name != "extra"]

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for f in self._fields():
            value, meta = getattr(self, f.name), f.metadata
            if meta["only_with"] is not None and getattr(self, meta["only_with"]) is None:
                continue
            if meta["omit"] and value is None:
                continue
            doc[f.name] = None if value is None else _write(value)
        return {**doc, **self.extra}

    @classmethod
    def from_json(cls, doc: Any, where: object = "grouping", name: str | None = None) -> Any:
        """`name`: the record's field in the file ("" for fields at the top level)."""
        name = cls.__name__ if name is None else name
        if not isinstance(doc, dict):
            raise SchemaError(where, name, f"expected an object, found {type(doc).__name__}; {FIX}")
        known = {f.name: f for f in cls._fields()}
        prefix = f"{name}." if name else ""
        values = {k: None if doc.get(k) is None else _read(f.metadata["kind"], doc[k], where, prefix + k)
                  for k, f in known.items()}
        return cls(**values, extra={k: v for k, v in doc.items() if k not in known})


# ---- how the search ran ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CandidateCounts(Record):
    given: int | None = _f(INT)  # candidates the search was given
    after_pruning: int | None = _f(INT)  # left after exact dominance pruning (and the families searched unlisted)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ColumnSearch(Record):
    """Column generation's record (search/colgen.py): each field only once that step ran."""
    rounds: int | None = _f(INT, omit=True)  # pricing rounds
    lp_bound: float | None = _f(NUM, omit=True)  # the master LP's optimum at the root
    columns_generated: int | None = _f(INT, omit=True)  # columns in the master's pool
    finish_columns: int | str | None = _f((INT, STR), omit=True)  # columns the exact finish read, or "more than N"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Optimality(Record):
    proven_optimal: bool | None = _f(BOOL)  # no grouping scores below the objective
    lower_bound: float | None = _f(NUM)  # a proven lower bound on the objective
    gap: float | None = _f(NUM)  # objective - lower_bound (0: proven optimal)
    relative_gap: float | None = _f(NUM)  # gap / |objective|
    search: ColumnSearch | None = _f(ColumnSearch, omit=True)  # column generation's record, when it searched
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SolveRecord(Record):
    """How the search ran; written as top-level fields of the grouping, together."""
    max_networks: int | None = _f(INT)  # the limit on networks searched under (None: none)
    headroom: float | None = _f(NUM)  # budget - cost (None: no budget)
    solver: str | None = _f(STR)  # the solver that found it (milp, dp, reference, colgen)
    candidates: CandidateCounts | None = _f(CandidateCounts)
    solve_time_s: float | None = _f(NUM)  # wall time of the search
    optimality: Optimality | None = _f(Optimality)
    extra: dict[str, Any] = field(default_factory=dict)  # always empty: the grouping keeps unknown top-level fields


# ---- latency noise ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NearBudget(Record):
    """Another optimal grouping whose cost is within its noise of the budget."""
    networks: tuple[str, ...] | None = _f(STRS)
    cost_ms: float | None = _f(NUM)  # its predicted cost
    fit_cost_ms: float | None = _f(NUM)  # its cost with the noise margin
    noise_ms: float | None = _f(NUM)
    objective: float | None = _f(NUM)
    fits: bool | None = _f(BOOL)  # within the budget with the margin
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RobustnessRecord(Record):
    """How the choice stands against latency noise (search/robustness.py); costs in ms."""
    rule: str | None = _f(STR)  # the fitting rule in words
    sigmas: float | None = _f(NUM)  # the margin used: cost + sigmas x noise <= budget
    risk_next_profile: float | None = _f(NUM)  # chance the next profile predicts a choice at the margin over budget
    sigmas_asked: float | None = _f(NUM)  # the margin asked for (above `sigmas` when nothing fitted with it)
    noise_known: bool | None = _f(BOOL)  # False for profiles without stored noise
    noise_ms: float | None = _f(NUM)  # the choice's noise
    cost_ms: float | None = _f(NUM)  # its predicted cost
    fit_cost_ms: float | None = _f(NUM)  # cost + sigmas x noise
    budget_ms: float | None = _f(NUM)
    margin_ms: float | None = _f(NUM)  # budget - fit cost
    margin_sigmas: float | None = _f(NUM)  # the margin in noise sigmas (None: no noise)
    holds_from_ms: float | None = _f(NUM)  # below this budget the rule chooses otherwise
    holds_to_ms: float | None = _f(NUM)  # from this budget on it chooses another grouping (None: never)
    near_budget: tuple[NearBudget, ...] | None = _f([NearBudget])
    standard_network_ms: float | None = _f(NUM, omit=True)  # one SNT, when the budget range is also in SNT
    holds_from_snt: float | None = _f(NUM, only_with="standard_network_ms")
    holds_to_snt: float | None = _f(NUM, only_with="standard_network_ms")
    sentence: str | None = _f(STR)  # the record in one sentence (robustness_sentence)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExcludedByNoise(Record):
    """The better grouping the plain prediction would choose, left out by the noise rule."""
    networks: tuple[str, ...] | None = _f(STRS)
    objective: float | None = _f(NUM)
    cost_ms: float | None = _f(NUM)  # its predicted cost: within the budget
    fit_cost_ms: float | None = _f(NUM)  # with the noise margin: over it
    sigmas: float | None = _f(NUM)
    noise_ms: float | None = _f(NUM)
    extra: dict[str, Any] = field(default_factory=dict)


# ---- seed noise: the within-noise rule and top-k ----------------------------------------------------------------
@dataclass(frozen=True)
class SpreadRecord(Record):
    """A seed-to-seed standard deviation, its degrees of freedom and where it comes from (seednoise.Spread)."""
    std: float | None = _f(NUM)
    df: float | None = _f(NUM)  # an integer as written; read as any number
    basis: str | None = _f(STR)  # paired, bound, independent, one grouping, gain
    text: str | None = _f(STR)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PairedSpread(Record):
    a: str | None = _f(STR)  # the record's names of the two groupings
    b: str | None = _f(STR)
    std: float | None = _f(NUM)
    df: float | None = _f(NUM)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoiseEvidence(Record):
    """The seed-noise measurement a rule used (WithinNoise.evidence)."""
    run_seeds: int | None = _f(INT)  # seeds the run's objectives are means over
    preset: str | None = _f(STR)
    source: str | None = _f(STR)  # where the record was measured
    split: str | None = _f(STR)
    measured_seeds: tuple[int, ...] | None = _f(INTS)
    objective: str | None = _f(STR)
    one_grouping: SpreadRecord | None = _f(SpreadRecord)
    bound: SpreadRecord | None = _f(SpreadRecord)
    paired: tuple[PairedSpread, ...] | None = _f([PairedSpread])
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoiseComparison(Record):
    """One grouping against the optimum under the within-noise rule (WithinNoise.comparison)."""
    networks: tuple[str, ...] | None = _f(STRS)
    objective: float | None = _f(NUM)
    cost: float | None = _f(NUM)
    minus_optimum: float | None = _f(NUM)  # its objective minus the optimum's
    tolerance: float | None = _f(NUM)  # one standard error of the paired difference
    spread: SpreadRecord | None = _f(SpreadRecord)
    measured_as: str | None = _f(STR)  # the record's name of this grouping, if it was measured
    within: bool | None = _f(BOOL)  # within the tolerance of the optimum
    chosen: bool | None = _f(BOOL, omit=True)  # (parsimony only) the grouping taken
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupingBrief(Record):
    networks: tuple[str, ...] | None = _f(STRS)
    objective: float | None = _f(NUM)
    cost: float | None = _f(NUM)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsimonyRecord(Record):
    """The within-noise rule's decision: the optimum, whether it was taken, and every comparison."""
    rule: str | None = _f(STR)
    optimum: GroupingBrief | None = _f(GroupingBrief)
    chose_the_optimum: bool | None = _f(BOOL)
    tolerance: float | None = _f(NUM)  # of the grouping taken (None: the optimum was taken)
    compared: tuple[NoiseComparison, ...] | None = _f([NoiseComparison], only_with="evidence")  # cheaper ones
    evidence: NoiseEvidence | None = _f(NoiseEvidence, omit=True)  # the seed noise (None: a fixed tolerance)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TopKNetwork(Record):
    tasks: tuple[str, ...] | None = _f(STRS)  # trained
    width: float | None = _f(NUM)
    served: tuple[str, ...] | None = _f(STRS)
    estimated: bool | None = _f(BOOL)
    losses: dict[str, float] | None = _f(LOSSES)  # trained task -> loss on the selection table
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TopKGrouping(Record):
    networks: tuple[TopKNetwork, ...] | None = _f([TopKNetwork])
    objective: float | None = _f(NUM)
    cost: float | None = _f(NUM)
    within_noise_of_best: NoiseComparison | None = _f(NoiseComparison, omit=True)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkToTrain(Record):
    tasks: tuple[str, ...] | None = _f(STRS)
    width: float | None = _f(NUM)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TopK(Record):
    """Top-k re-ranking; written as the grouping's top-level fields top_k, to_train and top_k_noise."""
    top_k: tuple[TopKGrouping, ...] | None = _f([TopKGrouping])  # the k best distinct groupings, best first
    to_train: tuple[NetworkToTrain, ...] | None = _f([NetworkToTrain])  # their estimated networks, each once
    top_k_noise: NoiseEvidence | None = _f(NoiseEvidence, omit=True)  # the seed noise they were compared with
    extra: dict[str, Any] = field(default_factory=dict)  # always empty: the grouping keeps unknown top-level fields


# ---- the stakes ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StakeRecord(Record):
    """The chosen grouping against one alternative (search/stakes.py Stake)."""
    against: str | None = _f(STR)  # "one network" or "independent singles"
    networks: str | None = _f(STR)
    cost: float | None = _f(NUM)
    fits: bool | None = _f(BOOL)
    objective: float | None = _f(NUM)
    percent_lower: float | None = _f(NUM)  # the chosen objective below it, in % of one network's
    verdict: str | None = _f(STR)  # same, better, worse, within noise, unknown
    threshold_percent: float | None = _f(NUM)
    noise: str | None = _f(STR)  # where the spread comes from
    difference: float | None = _f(NUM, omit=True)  # chosen - alternative, when the noise is known
    stderr: float | None = _f(NUM, only_with="difference")
    df: float | None = _f(NUM, only_with="difference")
    p_value: float | None = _f(NUM, only_with="difference")
    confidence: float | None = _f(NUM, only_with="difference")
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChosenSide(Record):
    networks: str | None = _f(STR)
    objective: float | None = _f(NUM)
    cost: float | None = _f(NUM)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StakesRecord(Record):
    """How much grouping matters at this budget (search/stakes.py Stakes)."""
    split: str | None = _f(STR)
    confidence: float | None = _f(NUM)
    matters: bool | None = _f(BOOL)  # None: unknown
    conclusion: str | None = _f(STR)
    estimated: tuple[str, ...] | None = _f(STRS)  # the sides whose objective is estimated
    chosen: ChosenSide | None = _f(ChosenSide)
    one_network: StakeRecord | None = _f(StakeRecord)
    independent_singles: StakeRecord | None = _f(StakeRecord)
    extra: dict[str, Any] = field(default_factory=dict)


# ---- after finalize ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EstimateError(Record):
    """An estimated network's estimate against its loss once trained (search/topk.py estimate_errors)."""
    network: str | None = _f(STR)
    task: str | None = _f(STR)
    estimated: float | None = _f(NUM)
    measured: float | None = _f(NUM)
    error: float | None = _f(NUM)  # estimated / measured - 1
    extra: dict[str, Any] = field(default_factory=dict)


def records_from_json(doc: Mapping[str, Any], where: object) -> dict[str, Any]:
    """The grouping's typed selection records from its top-level fields (absent ones None)."""
    def present(*keys: str) -> bool:
        return any(doc.get(k) is not None for k in keys)

    solve_keys = [f.name for f in SolveRecord._fields()]
    warnings = doc.get("warnings")
    if warnings is not None and not (isinstance(warnings, list) and all(isinstance(w, str) for w in warnings)):
        raise SchemaError(where, "warnings", f"expected a list of strings, found {warnings!r}; {FIX}")
    off = doc.get("within_noise_off")
    if off is not None and not isinstance(off, str):
        raise SchemaError(where, "within_noise_off", f"expected a string, found {off!r}; {FIX}")
    return {
        "estimate_errors": None if doc.get("estimate_errors") is None else
        _read([EstimateError], doc["estimate_errors"], where, "estimate_errors"),
        "solve": SolveRecord.from_json({k: doc.get(k) for k in solve_keys}, where, "") if present(*solve_keys) else None,
        "robustness": None if doc.get("robustness") is None else
        RobustnessRecord.from_json(doc["robustness"], where, "robustness"),
        "parsimony": None if doc.get("parsimony") is None else
        ParsimonyRecord.from_json(doc["parsimony"], where, "parsimony"),
        "within_noise_off": off,
        "top_k": TopK.from_json({k: doc.get(k) for k in ("top_k", "to_train", "top_k_noise")}, where, "")
        if present("top_k", "to_train", "top_k_noise") else None,
        "excluded_by_noise": None if doc.get("excluded_by_noise") is None else
        ExcludedByNoise.from_json(doc["excluded_by_noise"], where, "excluded_by_noise"),
        "stakes": None if doc.get("stakes") is None else StakesRecord.from_json(doc["stakes"], where, "stakes"),
        "warnings": None if warnings is None else tuple(warnings),
    }


# The top-level fields the records above are written as, in the order selection writes them.
RECORD_KEYS = ("estimate_errors", *(f.name for f in SolveRecord._fields()), "robustness", "parsimony",
               "within_noise_off", "top_k", "to_train", "top_k_noise", "excluded_by_noise", "stakes", "warnings")

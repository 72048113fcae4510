"""The seed-to-seed noise of a preset: how far apart two groupings' objectives must be to tell them apart.

A grouping's objective moves with the seed its networks were trained with. benchmarks/seed_noise.py
trains a set of groupings with several seeds; its record (one JSON file per preset in
taskgroup/data/seed_noise/, naming its source) holds each grouping's objective per seed, and
the pairwise gains per seed. From it:

- a pair's *paired* spread: the standard deviation over seeds of the difference between two
  measured groupings trained with the same seeds (n - 1 degrees of freedom). This is what decides
  whether two groupings can be told apart, and it is not one grouping's spread: on the `wide`
  preset it ranges from 0.27x to 2.75x of it, as groupings share more or less of their luck;
- one grouping's spread: pooled over the measured groupings (root mean square of their standard
  deviations; degrees of freedom: the sum of seeds - 1); a difference of two groupings trained
  independently spreads sqrt(2) times as much;
- the conservative bound for a pair not measured: the largest paired spread measured, or sqrt(2)
  x the largest one-grouping spread if that is larger. No measured pair of groupings differed by
  more from seed to seed, so a difference within it is never called real on a spread that
  measured noise could exceed.

A record applies to runs trained with the recipe it measured (any seed;
taskgroup.train.recipes.seed_noise_for decides), on its objective: `reference` (each loss over its trivial predictor's) or `none` (the plain sum).
Adding a preset's numbers: `python benchmarks/seed_noise.py --preset NAME` writes the record
after training; `--record-from RESULTS.json` writes it from a finished benchmark's results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.tasks import PAPER_TASKS
from taskgroup.fileio import read_json
from taskgroup.grouping_records import NoiseEvidence, PairedSpread, SpreadRecord
from taskgroup.stats import pooled_std, sample_std

KIND = "seed_noise"
RECORDS = Path(__file__).resolve().parent / "data" / "seed_noise"
OBJECTIVES = {"reference": "normalised", "none": "total"}  # selection objective -> the record's series

Network = tuple  # (trained tasks, width, served tasks)


def grouping_id(networks: Iterable[Network]) -> frozenset:
    """What makes two groupings the same: each network's trained tasks, width and served tasks."""
    return frozenset((frozenset(t), float(w), frozenset(s)) for t, w, s in networks)


@dataclass(frozen=True)
class Spread:
    """The standard deviation over seeds of one seed's value (of a grouping, or of a difference of two),
    the degrees of freedom it was estimated with, and where it comes from."""

    std: float
    df: int
    basis: str  # "paired" (both groupings measured), "bound" (conservative), "independent" (sqrt(2) x one grouping), "one grouping", "gain"
    text: str  # the same in words, for reports

    def to_json(self) -> dict[str, Any]:
        return self.record().to_json()

    def record(self) -> SpreadRecord:
        """As a grouping file records it."""
        return SpreadRecord(self.std, self.df, self.basis, self.text)


@dataclass(frozen=True)
class MeasuredGrouping:
    name: str
    networks: tuple[Network, ...]
    per_seed: Mapping[str, tuple[float, ...]]  # "total" / "normalised" -> value per seed (the record's seed order)

    @property
    def id(self) -> frozenset:
        return grouping_id(self.networks)


@dataclass(frozen=True)
class SeedNoise:
    """One preset's record (see the module doc)."""

    preset: str
    source: str  # where the numbers come from: the benchmark's results, machine and date
    split: str  # the split the objectives were measured on
    run_config: Mapping[str, Any]  # the recipe measured (taskgroup.train.RunConfig.to_dict())
    seeds: tuple[int, ...]
    groupings: tuple[MeasuredGrouping, ...]
    pairwise_gains: Mapping[str, tuple[float, ...]]  # "task|partner" -> L(half single) / L(pair) - 1 per seed
    path: str = ""

    # ---- spreads --------------------------------------------------------------------------
    def series(self, objective: str) -> str:
        if objective not in OBJECTIVES:
            raise TaskgroupError(f"no seed noise for objective '{objective}'; measured: {', '.join(OBJECTIVES)}")
        return OBJECTIVES[objective]

    def one_grouping(self, objective: str) -> Spread:
        """Pooled standard deviation of one grouping's objective over seeds."""
        key = self.series(objective)
        std, df = pooled_std(g.per_seed[key] for g in self.groupings)
        return Spread(std, df, "one grouping", f"one grouping's seed-to-seed standard deviation {std:.4f}, pooled "
                                               f"over {len(self.groupings)} groupings")

    def independent(self, objective: str) -> Spread:
        """Spread of the difference of two groupings trained independently: sqrt(2) x one grouping's."""
        one = self.one_grouping(objective)
        std = math.sqrt(2) * one.std
        return Spread(std, one.df, "independent", f"sqrt(2) x {one.text}: two groupings trained independently")

    def paired(self, objective: str) -> dict[tuple[str, str], Spread]:
        """(name a, name b) -> the paired spread of every measured pair (a before b in the record)."""
        key = self.series(objective)
        out = {}
        for i, a in enumerate(self.groupings):
            for b in self.groupings[i + 1:]:
                diffs = [x - y for x, y in zip(a.per_seed[key], b.per_seed[key])]
                std = sample_std(diffs)
                out[(a.name, b.name)] = Spread(std, len(diffs) - 1, "paired",
                                               f"the paired seed-to-seed standard deviation {std:.4f} of '{a.name}' "
                                               f"minus '{b.name}', measured over {len(diffs)} seeds")
        return out

    def bound(self, objective: str) -> Spread:
        """The conservative spread for a pair of groupings not both measured."""
        pairs = self.paired(objective)
        (a, b), widest = max(pairs.items(), key=lambda kv: kv[1].std)
        key = self.series(objective)
        loose = max(self.groupings, key=lambda g: sample_std(g.per_seed[key]))
        alone = math.sqrt(2) * sample_std(loose.per_seed[key])
        if alone > widest.std:
            return Spread(alone, len(self.seeds) - 1, "bound",
                          f"the conservative bound {alone:.4f} (sqrt(2) x the largest one-grouping standard deviation, "
                          f"'{loose.name}', over {len(self.seeds)} seeds)")
        return Spread(widest.std, widest.df, "bound",
                      f"the conservative bound {widest.std:.4f} (the largest paired standard deviation measured, "
                      f"'{a}' minus '{b}', over {len(self.seeds)} seeds)")

    def pair(self, objective: str, a: Iterable[Network], b: Iterable[Network]) -> Spread:
        """The spread of the difference between groupings a and b: paired if both were measured, else the bound."""
        by_id = {g.id: g.name for g in self.groupings}
        na, nb = by_id.get(grouping_id(a)), by_id.get(grouping_id(b))
        if na is not None and nb is not None and na != nb:
            pairs = self.paired(objective)
            return pairs.get((na, nb)) or pairs[(nb, na)]
        return self.bound(objective)

    def measured(self, networks: Iterable[Network]) -> str | None:
        """The record's name of this grouping, if it was measured."""
        return next((g.name for g in self.groupings if g.id == grouping_id(networks)), None)

    def gain(self) -> Spread:
        """Pooled standard deviation over seeds of a pairwise gain."""
        std, df = pooled_std(self.pairwise_gains.values())
        return Spread(std, df, "gain", f"a pairwise gain's seed-to-seed standard deviation {std:.2%}, pooled over "
                                       f"{len(self.pairwise_gains)} gains")

    def evidence(self, objective: str, run_seeds: int | None = None) -> NoiseEvidence:
        """What a grouping file records of the measurement its noise rule used (`run_seeds`: the seeds the
        run's objectives are means over)."""
        return NoiseEvidence(run_seeds, self.preset, self.source, self.split, tuple(self.seeds), objective,
                             self.one_grouping(objective).record(), self.bound(objective).record(),
                             tuple(PairedSpread(a, b, s.std, s.df) for (a, b), s in self.paired(objective).items()))

    # ---- the file -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"kind": KIND, "schema_version": 1, "preset": self.preset, "source": self.source, "split": self.split,
                "run_config": dict(self.run_config), "seeds": list(self.seeds),
                "groupings": [{"name": g.name,
                               "networks": [{"tasks": list(t), "width": w, "served": list(s)} for t, w, s in g.networks],
                               "per_seed": {k: list(v) for k, v in g.per_seed.items()}} for g in self.groupings],
                "pairwise_gains": {k: list(v) for k, v in self.pairwise_gains.items()}}

    @classmethod
    def from_json(cls, doc: Any, where: object) -> "SeedNoise":
        if not isinstance(doc, dict):
            raise SchemaError(where, "<top level>", "expected a JSON object")
        if doc.get("kind") != KIND:
            raise SchemaError(where, "kind", f"expected '{KIND}', found {doc.get('kind')!r}")
        if doc.get("schema_version") != 1:
            raise SchemaError(where, "schema_version", f"expected 1, found {doc.get('schema_version')!r}")
        for name in ("preset", "source", "split"):
            if not isinstance(doc.get(name), str) or not doc[name]:
                raise SchemaError(where, name, "expected a non-empty string")
        if not isinstance(doc.get("run_config"), dict):
            raise SchemaError(where, "run_config", "expected the measured run's config (an object)")
        seeds = doc.get("seeds")
        if not isinstance(seeds, list) or len(seeds) < 2 or len(set(seeds)) != len(seeds) \
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise SchemaError(where, "seeds", "expected a list of at least two distinct integer seeds")
        raw = doc.get("groupings")
        if not isinstance(raw, list) or len(raw) < 2:
            raise SchemaError(where, "groupings", "expected a list of at least two measured groupings")
        groupings, names, ids = [], set(), set()
        for k, g in enumerate(raw):
            f = f"groupings[{k}]"
            if not isinstance(g, dict) or not isinstance(g.get("name"), str):
                raise SchemaError(where, f, "expected an object with a 'name'")
            nets = g.get("networks")
            if not isinstance(nets, list) or not nets:
                raise SchemaError(where, f + ".networks", "expected a non-empty list of networks")
            networks = []
            for i, n in enumerate(nets):
                ok = (isinstance(n, dict) and _names(n.get("tasks")) and _names(n.get("served"))
                      and set(n["served"]) <= set(n["tasks"]) and isinstance(n.get("width"), (int, float))
                      and not isinstance(n.get("width"), bool) and n["width"] > 0)
                if not ok:
                    raise SchemaError(where, f"{f}.networks[{i}]", "expected tasks (names), served (a subset of "
                                                                   "them) and a positive width")
                networks.append((tuple(n["tasks"]), float(n["width"]), tuple(n["served"])))
            per_seed = g.get("per_seed")
            if not isinstance(per_seed, dict) or set(per_seed) != set(OBJECTIVES.values()):
                raise SchemaError(where, f + ".per_seed", f"expected the series {', '.join(OBJECTIVES.values())}")
            for key, values in per_seed.items():
                if not _numbers(values, len(seeds)):
                    raise SchemaError(where, f"{f}.per_seed.{key}", f"expected {len(seeds)} finite numbers, one per seed")
            m = MeasuredGrouping(g["name"], tuple(networks), {k: tuple(map(float, v)) for k, v in per_seed.items()})
            if m.name in names or m.id in ids:
                raise SchemaError(where, f, f"grouping '{m.name}' is listed twice (by name or by its networks)")
            names.add(m.name)
            ids.add(m.id)
            groupings.append(m)
        gains = doc.get("pairwise_gains")
        if not isinstance(gains, dict) or not gains:
            raise SchemaError(where, "pairwise_gains", "expected 'task|partner' -> one gain per seed")
        for name, values in gains.items():
            if not _numbers(values, len(seeds)):
                raise SchemaError(where, f"pairwise_gains.{name}", f"expected {len(seeds)} finite numbers, one per seed")
        return cls(doc["preset"], doc["source"], doc["split"], doc["run_config"], tuple(seeds), tuple(groupings),
                   {k: tuple(map(float, v)) for k, v in gains.items()}, str(where))

    @classmethod
    def load(cls, path: str | Path) -> "SeedNoise":

        return cls.from_json(read_json(path, KIND), path)


@lru_cache(maxsize=None)
def for_preset(preset: str) -> SeedNoise | None:
    """The preset's record, if it was measured."""
    path = RECORDS / f"{preset}.json"
    return SeedNoise.load(path) if path.is_file() else None


def record_from_benchmark(doc: Mapping[str, Any], source: str, preset: str | None = None) -> SeedNoise:
    """A record from benchmarks/seed_noise.py's results document (its per-seed test objectives), named
    `preset` (the preset that ships the recipe measured: taskgroup.train.recipes.shipped_preset), else
    as the run named it. A grouping measured twice under two names (the pipeline's choice equal to a
    fixed grouping) counts once."""

    if doc.get("kind") != "benchmark_seed_noise":
        raise SchemaError(source, "kind", f"expected 'benchmark_seed_noise', found {doc.get('kind')!r}")
    seeds = [int(s) for s in doc["seeds"]]
    letters = {"segment_semantic": "s", "depth_zbuffer": "d", "normal": "n", "keypoints2d": "k", "edge_texture": "e"}
    code = {v: k for k, v in letters.items() if k in PAPER_TASKS}
    groupings, seen = [], set()
    for name, g in sorted(doc["groupings"].items(), key=lambda kv: kv[0].startswith("pipeline")):
        networks = tuple(_parse_network(n, code) for n in g["networks"])
        if grouping_id(networks) in seen:
            continue
        seen.add(grouping_id(networks))
        groupings.append(MeasuredGrouping(name, networks, {
            "total": tuple(float(g["test_total_per_seed"][str(s)]) for s in seeds),
            "normalised": tuple(float(g["test_normalised_per_seed"][str(s)]) for s in seeds)}))
    gains = {}
    for key, values in doc["pairwise_gains_per_seed"].items():
        t, p = (code.get(x, x) for x in key.split("|"))
        gains[f"{t}|{p}"] = tuple(float(v) for v in values)
    machine = doc.get("machine") or {}
    where = f"{source} ({machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {machine.get('date', '?')})"
    preset = preset or doc["preset"]
    return SeedNoise(preset, where, "test", {**doc["run_config"], "preset": preset}, tuple(seeds), tuple(groupings),
                     gains)


def _parse_network(text: str, code: Mapping[str, str]) -> Network:
    """'sdnk@1' or 'sdnke@1->dke' (benchmark notation: one letter per paper task)."""
    head, _, served = text.partition("->")
    letters, width = head.split("@")
    trained = tuple(code[c] for c in letters)
    return (trained, float(width), tuple(code[c] for c in served) if served else trained)


def _names(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, str) and x for x in value)


def _numbers(value: Any, n: int) -> bool:
    return (isinstance(value, list) and len(value) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))

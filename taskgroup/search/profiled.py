"""Selection with costs from a device profile: does the profile fit the loss table, and what
the grouping records about it.

A profile can cost a loss table's networks only if it measured every task's head at every
width the table trained, on the same architecture and input size. A mismatch is a user
error naming the profile file, what is missing, and the `taskgroup profile` command that
makes a matching one. The budget in SNT on a profile is relative to the standard network
*for the tasks being selected* (full width, serving all of them), so a profile of more
tasks than the table can still express the paper's unit.

No torch here: `taskgroup select --profile` stays a fast, torch-free command.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable
from taskgroup.profile.costmodel import DeviceProfile, profile_name
from taskgroup.tasks import known_tasks


def standard_network_ms(profile: DeviceProfile, tasks: Sequence[str]) -> float:
    """One SNT on this profile: the full-width network serving every task in `tasks`."""
    return profile.network_ms(1.0, tasks)


def check_profile_for_table(profile: DeviceProfile, table: LossTable, stage: str, source: str | os.PathLike) -> None:
    """Raise TaskgroupError unless `profile` can cost every `stage` network of `table`.

    Checks task names (the paper's abstract columns t0.. cannot be costed), profiled heads,
    widths, and, when the table records its run configuration, preset, input size and
    architecture.
    """

    where = profile.path or "device profile"
    known = known_tasks()  # built-in, and those a run's config declared (the loss table declares them when read)
    unknown = [t for t in table.tasks if t not in known]
    if unknown:
        raise TaskgroupError(
            f"{source}: task(s) {unknown} are not task names a device profile can cost (the paper's tables name "
            f"their columns abstractly); name them with --task-names using known tasks ({', '.join(known)}), or "
            "select without --profile using --budget in SNT units")
    run = table.meta.get("run_config") if isinstance(table.meta, dict) else None
    run = run if isinstance(run, dict) else {}
    arch = run.get("arch") if isinstance(run.get("arch"), dict) else {}
    preset = run.get("preset") if isinstance(run.get("preset"), str) else None
    resolution = arch.get("resolution") if isinstance(arch.get("resolution"), int) else None
    widths = sorted({float(n.width) for n in table.networks if n.stage == stage}, reverse=True)
    if 1.0 not in widths:
        widths.insert(0, 1.0)  # estimators and the SNT reference use the full width
    # A command that runs as printed: a training run's table names its run (its architecture, input size and
    # declared tasks come from it); other tables name the tasks and the preset.
    wanted = " --widths " + ",".join(f"{w:g}" for w in widths) + " --out profiles/NAME.json`"
    if run:
        fix = (f"make a matching profile on the target device with `taskgroup profile --run "
               f"{_shell_path(source)}" + wanted)
    else:
        fix = ("make a matching profile on the target device with `taskgroup profile --tasks " + ",".join(table.tasks)
               + f" --preset {preset or profile.preset}" + wanted)
    missing = [t for t in table.tasks if t not in profile.tasks]
    if missing:
        raise TaskgroupError(f"{where}: the profile has no head for task(s) {missing} of the loss table {source}; "
                             f"profiled tasks: {', '.join(profile.tasks)}; {fix}")
    profiled_w = sorted(profile.widths)
    missing_w = [w for w in widths if not any(abs(w - p) <= 1e-9 for p in profiled_w)]
    if missing_w:
        raise TaskgroupError(f"{where}: width(s) {', '.join(f'{w:g}' for w in missing_w)} of the loss table {source} "
                             f"were not profiled; profiled widths: {', '.join(f'{w:g}' for w in profiled_w)}; {fix}")
    if preset is not None and preset != profile.preset:
        raise TaskgroupError(f"{where}: the profile was measured on preset '{profile.preset}', but the loss table "
                             f"{source} was trained on preset '{preset}'; {fix}")
    if resolution is not None and tuple(profile.input_shape[2:]) != (resolution, resolution):
        raise TaskgroupError(f"{where}: the profile was timed at input {profile.input_shape[2]}x"
                             f"{profile.input_shape[3]}, but the loss table {source} was trained at "
                             f"{resolution}x{resolution}; {fix}")
    for key in ("model", "model_config"):
        ours, theirs = arch.get(key), getattr(profile, key)
        if ours is not None and theirs is not None and _canonical(ours) != _canonical(theirs):
            raise TaskgroupError(f"{where}: the profile's {key} {_canonical(theirs)} differs from the loss table "
                                 f"{source}'s {_canonical(ours)} (the networks were trained with an architecture the "
                                 f"profile did not measure); {fix}")


def profile_record(profile: DeviceProfile, out_path: str | os.PathLike) -> dict[str, Any]:
    """What a grouping or frontier file records about the profile its costs come from.

    `profile` is the file's path relative to the folder of `out_path` (as the pipeline writes
    it), so `taskgroup export` finds it next to the grouping and records its device.
    """
    out_dir = Path(out_path).resolve().parent
    return {
        "profile": os.path.relpath(Path(profile.path).resolve(), out_dir),
        "profile_name": profile_name(profile.path),
        "statistic": profile.statistic,
        "device": profile.device.to_json(),
        "backend": profile.backend,
        "execution_provider": profile.execution_provider,
        "backend_settings": profile.backend_settings.to_json() if profile.backend_settings else None,
        "preset": profile.preset,
        "input_shape": list(profile.input_shape),
    }


def device_summary(profile: DeviceProfile) -> str:
    """One line naming the device and backend, for printed summaries."""
    return f"{profile.device.label} ({profile.backend}, {profile.execution_provider}, {profile.statistic})"


def round_up(value: float, digits: int = 4) -> float:
    """`value` rounded up to `digits` significant digits (a budget suggestion that surely fits)."""
    if value <= 0 or not math.isfinite(value):
        return value
    scale = 10 ** (digits - 1 - math.floor(math.log10(value)))
    return math.ceil(value * scale - 1e-9) / scale


def _canonical(value: Any) -> Any:
    """Tuples and lists compare equal (JSON has only lists)."""
    return json.loads(json.dumps(value, sort_keys=True))


def _shell_path(path: str | os.PathLike) -> str:
    import shlex

    return shlex.quote(str(path))

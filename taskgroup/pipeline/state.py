"""The pipeline-state file (RUN/pipeline.json): the run's settings and the stages finished so far.

Resume reads it to skip finished stages and to refuse changed settings (a new budget alone redoes
selection onwards). Version 1 runs trained on unstandardised targets and cannot be resumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from taskgroup.errors import TaskgroupError
from taskgroup.fileio import read_json, write_json_atomic

STATE_FILE = "pipeline.json"
STATE_KIND = "pipeline_state"
STATE_VERSION = 2  # 2: networks trained on standardised targets (1: on the data's values; not resumable)


@dataclass
class PipelineState:
    config: dict[str, Any]  # PipelineConfig.to_json() the run was started (or last resumed) with
    finished: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> {"seconds": ..., what it reported}

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": STATE_VERSION, "kind": STATE_KIND, "config": self.config, "finished": self.finished}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], path: Path) -> "PipelineState":
        """A state document already checked for its kind and version (read_json); `path` names it in errors."""
        finished = doc.get("finished") or {}
        if not isinstance(finished, dict) or not all(isinstance(v, dict) for v in finished.values()):
            raise TaskgroupError(f"{path}: field 'finished' must map stage names to records; start a new --out")
        return cls(dict(doc.get("config") or {}), {k: dict(v) for k, v in finished.items()})

    @classmethod
    def load(cls, run_dir: Path) -> "PipelineState":
        path = run_dir / STATE_FILE
        doc = read_json(path, STATE_KIND, (1, STATE_VERSION))
        if doc["schema_version"] == 1:
            raise TaskgroupError(f"{path}: schema_version 1: this pipeline run was started before target "
                                 f"standardisation (this taskgroup writes version {STATE_VERSION}) and cannot be "
                                 "resumed; its report, grouping and bundle remain valid; start a new --out")
        return cls.from_json(doc, path)

    def save(self, run_dir: Path) -> None:
        write_json_atomic(run_dir / STATE_FILE, self.to_json())

    def finish(self, run_dir: Path, stage: str, seconds: float, **info: Any) -> None:
        """Record a stage as finished, atomically: a resume skips it from now on."""
        self.finished[stage] = {"seconds": round(seconds, 3), **info}
        self.save(run_dir)

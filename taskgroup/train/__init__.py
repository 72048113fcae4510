"""Training: the paper's recipe, candidate sets, and the resumable SQLite results store.

Torch-free at import (so `taskgroup results` stays light); the training functions import
torch when called.

    from taskgroup.train import make_run_config, candidate_set, train_candidates
    config = make_run_config("default", seed=0)
    table = train_candidates("runs/a", tasks, candidate_set("pairs", tasks), config)
"""

from taskgroup.train.candidates import CANDIDATE_SETS, CandidateSpec, candidate_set
from taskgroup.train.config import RunConfig, TrainConfig, make_run_config
from taskgroup.train.run import default_stages, train_candidates, train_more
from taskgroup.train.stored_config import run_config_from_store
from taskgroup.train.store import RunStore

__all__ = [
    "CANDIDATE_SETS", "CandidateSpec", "candidate_set", "RunConfig", "TrainConfig", "make_run_config",
    "default_stages", "run_config_from_store", "train_candidates", "train_more", "RunStore",
    "train_one", "RunData", "load_run_data",
]


def __getattr__(name: str):
    # Torch-using names load on first use.
    if name in ("train_one", "RunData", "load_run_data", "evaluate", "Progress"):
        from taskgroup.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'taskgroup.train' has no attribute {name!r}")

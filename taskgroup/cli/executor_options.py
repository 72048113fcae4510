"""The executor options `taskgroup train` and `taskgroup pipeline` share: their help texts and parsing."""

from __future__ import annotations

from typing import Optional

from taskgroup.train.executors import parse_executor

# Where networks train: shared by `train` and `pipeline` (taskgroup.train.executors, docs/training.md).
EXECUTOR_HELP = ("Where networks train: local (this process, one after another; the default) | processes:N (N worker "
                 "processes on this machine, one per device of --devices in turn) | ray (one Ray task per network "
                 "and seed, on --ray-address or a local Ray instance; pip install 'taskgrouping\\[ray]'). This process "
                 "commits every result; on the CPU the losses are the same whatever the executor.")
DEVICES_HELP = ("Devices to train on: cpu (default), cuda:N for local, a list such as cuda:0,cuda:1 for processes:N "
                "(worker i uses the i-th, in turn), cuda for ray (one GPU per task). Training on a GPU is written to "
                "PyTorch's and Ray's documentation but has never been run on one.")
RAY_ADDRESS_HELP = "With --executor ray: the address of a running cluster (e.g. 10.0.0.5:6379 or auto)."
SHARED_STORAGE_HELP = ("With processes:N or ray: workers write checkpoints straight into the run directory, which every "
                       "node must see at the same path (e.g. NFS). Default: workers send checkpoint bytes to this "
                       "process.")


def executor_spec(executor: str, devices: Optional[str], ray_address: Optional[str], shared_storage: bool):
    """The ExecutorSpec the four options describe (a malformed one fails here, before anything is written)."""
    return parse_executor(executor, devices=devices, ray_address=ray_address, shared_storage=shared_storage)

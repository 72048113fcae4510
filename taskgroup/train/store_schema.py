"""The tables of a run's results store (`RUN_DIR/runs.sqlite`) and the integrity check of their rows.

`SCHEMA` is what every store is created with; the tables of optional records (`affinity`,
`loss_weights`, `task_stops`) are created by the first commit that has one, so stores without
them keep the layout they had. Every committed row of `results`, `task_stops`, `affinity` and
`loss_weights` carries `row_sha256` (taskgroup.train.store_integrity); rows from before the check
have none and are read as they are. taskgroup.train.store documents what each table holds.
"""

from __future__ import annotations

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE candidates (
    name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    tasks TEXT NOT NULL,            -- JSON list, in the run's task order
    width REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done')),
    stages TEXT NOT NULL,           -- JSON list of the stages the current/last job trains
    attempts INTEGER NOT NULL,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (name, seed)
);
CREATE TABLE results (
    name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('final', 'early')),
    fraction REAL NOT NULL,
    best_epoch REAL NOT NULL,
    steps INTEGER NOT NULL,
    wall_time_s REAL NOT NULL,
    losses TEXT NOT NULL,           -- JSON: split -> task -> loss
    checkpoint TEXT NOT NULL,       -- relative to the run directory
    checkpoint_sha256 TEXT NOT NULL,
    row_sha256 TEXT,                -- integrity check of the row (store_integrity.ROW_CHECKS); NULL in rows from before it
    PRIMARY KEY (name, seed, stage),
    FOREIGN KEY (name, seed) REFERENCES candidates(name, seed)
);
CREATE TABLE reference (task TEXT NOT NULL, split TEXT NOT NULL, loss REAL NOT NULL, PRIMARY KEY (task, split));
"""
AFFINITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS affinity (
    name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('final', 'early')),
    steps INTEGER NOT NULL,         -- training steps at which affinity was measured
    every INTEGER NOT NULL,         -- measured every this many steps
    seconds REAL NOT NULL,          -- time spent measuring (part of the job's wall time)
    matrices TEXT NOT NULL,         -- JSON: kind ('tag', 'cosine') -> n x n, [source][target] in the network's task order
    row_sha256 TEXT,                -- integrity check of the row (store_integrity.ROW_CHECKS); NULL in rows from before it
    PRIMARY KEY (name, seed, stage),
    FOREIGN KEY (name, seed) REFERENCES candidates(name, seed)
)
"""
LOSS_WEIGHTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS loss_weights (
    name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('final', 'early')),
    weights TEXT NOT NULL,          -- JSON: weighting, multipliers per task (+ log_variance, per_epoch if learned)
    row_sha256 TEXT,                -- integrity check of the row (store_integrity.ROW_CHECKS); NULL in rows from before it
    PRIMARY KEY (name, seed, stage),
    FOREIGN KEY (name, seed) REFERENCES candidates(name, seed)
)
"""
TASK_STOPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS task_stops (
    name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('final', 'early')),
    task TEXT NOT NULL,             -- the task whose validation loss chose the epoch
    epoch REAL NOT NULL,
    losses TEXT NOT NULL,           -- JSON: split -> task -> loss of the weights of that epoch
    checkpoint TEXT NOT NULL,       -- relative to the run directory
    checkpoint_sha256 TEXT NOT NULL,
    row_sha256 TEXT,                -- integrity check of the row (store_integrity.ROW_CHECKS); NULL in rows from before it
    PRIMARY KEY (name, seed, stage, task),
    FOREIGN KEY (name, seed) REFERENCES candidates(name, seed)
)
"""

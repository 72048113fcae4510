"""Exact grouping search: which candidate networks to deploy under an inference budget.

Public API (no PyTorch needed):
- `candidates_from_table(table, split, stage, cost_fn=None, estimate=None) -> list[Candidate]`
- `read_paper_table(path, task_names=None, split="val") -> LossTable`
- `select(candidates, budget, ...) -> Selection`; `Selection.to_grouping_json(out_path, table_dir)`
- `frontier(candidates, ...) -> Frontier`; `Frontier.to_json()`, `Frontier.plot(path)`
"""

from taskgroup.search.candidates import Candidate, CostFn, make_candidate, snt_cost
from taskgroup.search.registry import ESTIMATORS, TRAINING_PLANS, get_estimator, register
from taskgroup.search.table import candidates_from_table
# The estimators register themselves where they are defined: importing them fills ESTIMATORS.
from taskgroup.search.estimate import higher_order_approximation
from taskgroup.search import affinity as _affinity, base_model as _base_model, rounds as _rounds  # noqa: F401
from taskgroup.search.frontier import Frontier, frontier
from taskgroup.search.paper_tables import read_paper_table
from taskgroup.search.problem import Problem, build_problem, prune_dominated
from taskgroup.search.select import Selector, select
from taskgroup.search.selection import ChosenNetwork, Evaluation, Selection

__all__ = [
    "Candidate", "CostFn", "candidates_from_table", "make_candidate", "snt_cost",
    "ESTIMATORS", "TRAINING_PLANS", "get_estimator", "higher_order_approximation", "register",
    "Frontier", "frontier", "read_paper_table", "Problem", "build_problem", "prune_dominated",
    "ChosenNetwork", "Evaluation", "Selection", "Selector", "select",
]

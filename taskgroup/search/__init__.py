"""Exact grouping search: which candidate networks to deploy under an inference budget.

Public API (no PyTorch needed):
- `candidates_from_table(table, split, stage, cost_fn=None, estimate=None) -> list[Candidate]`
- `read_paper_table(path, task_names=None, split="val") -> LossTable`
- `select(candidates, budget, ...) -> Selection`; `Selection.to_grouping_json(out_path, table_dir)`
- `frontier(candidates, ...) -> Frontier`; `Frontier.to_json()`, `Frontier.plot(path)`
"""

from taskgroup.search.candidates import Candidate, CostFn, candidates_from_table, make_candidate, snt_cost
from taskgroup.search.estimate import ESTIMATORS, get_estimator, higher_order_approximation, register
from taskgroup.search.frontier import Frontier, frontier
from taskgroup.search.paper_tables import read_paper_table
from taskgroup.search.problem import Problem, build_problem, prune_dominated
from taskgroup.search.select import ChosenNetwork, Evaluation, Selection, Selector, select

__all__ = [
    "Candidate", "CostFn", "candidates_from_table", "make_candidate", "snt_cost",
    "ESTIMATORS", "get_estimator", "higher_order_approximation", "register",
    "Frontier", "frontier", "read_paper_table", "Problem", "build_problem", "prune_dominated",
    "ChosenNetwork", "Evaluation", "Selection", "Selector", "select",
]

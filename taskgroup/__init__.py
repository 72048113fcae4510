"""taskgroup: which perception tasks should share a network, under a measured latency budget.

Importing this package must stay cheap and must not import torch: selection, frontier and
results commands run without it.
"""

__version__ = "0.1.0"

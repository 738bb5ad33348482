"""The math of policy optimisation, as pure tensor functions on separate registries.

Importing this package registers every built-in; it imports only torch (docs/design.md 4.7 rule 8).
"""

from lenrl.algos.advantages import ADVANTAGES, AdvantageInput
from lenrl.algos.aggregation import AGGREGATIONS
from lenrl.algos.budgets import BUDGET_SCHEDULES, QUESTION_BUDGETS
from lenrl.algos.filters import GROUP_FILTERS, FilterInput
from lenrl.algos.group_losses import GROUP_LOSSES, GroupLossInput
from lenrl.algos.kl import KL_ESTIMATORS
from lenrl.algos.policy_losses import POLICY_LOSSES, LossInput

__all__ = [
    "ADVANTAGES",
    "AGGREGATIONS",
    "BUDGET_SCHEDULES",
    "GROUP_FILTERS",
    "GROUP_LOSSES",
    "KL_ESTIMATORS",
    "POLICY_LOSSES",
    "QUESTION_BUDGETS",
    "AdvantageInput",
    "FilterInput",
    "GroupLossInput",
    "LossInput",
]

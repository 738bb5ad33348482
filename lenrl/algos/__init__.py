"""The math of policy optimisation, as pure tensor functions on separate registries.

Importing this package registers every built-in; it imports only torch (design.md 4.7 rule 8).
"""

from lenrl.algos.advantages import ADVANTAGES, AdvantageInput
from lenrl.algos.aggregation import AGGREGATIONS
from lenrl.algos.budgets import BUDGET_SCHEDULES
from lenrl.algos.filters import GROUP_FILTERS, FilterInput
from lenrl.algos.kl import KL_ESTIMATORS
from lenrl.algos.policy_losses import POLICY_LOSSES, LossInput

__all__ = ["ADVANTAGES", "AGGREGATIONS", "BUDGET_SCHEDULES", "GROUP_FILTERS", "FilterInput", "KL_ESTIMATORS", "POLICY_LOSSES", "AdvantageInput", "LossInput"]

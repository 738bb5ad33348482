"""Built-in reward plugins.

Importing this package registers every built-in reward in `lenrl.reward.REWARDS` (each module's
`@register_reward` runs at import). Add a new module here with one import line.
"""

from rewards import math_correct  # noqa: F401  (registers "math_correct")

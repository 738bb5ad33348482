"""Built-in reward plugins.

Importing this package registers every built-in reward in `lenrl.reward.REWARDS` (each module's
`@register_reward` runs at import). Add a new module here with one import line.
"""

from rewards import math_correct  # noqa: F401  (registers "math_correct")
from rewards import format  # noqa: F401  (registers "format")
from rewards import length_group  # noqa: F401  (registers kimi, shorter_better, arora_zanette, surrogate)
from rewards import length_penalty  # noqa: F401  (truncation overlong l1_* cosine tlts_triangular repetition)

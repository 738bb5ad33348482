"""Built-in reward plugins.

Importing this package registers every built-in reward in `lenrl.reward.REWARDS` (each module's
`@register_reward` runs at import). Add a new module here with one import line.
"""

from rewards import (
    format,  # noqa: F401  (registers "format")
    length_group,  # noqa: F401  (registers kimi, shorter_better, arora_zanette, surrogate)
    length_penalty,  # noqa: F401  (truncation overlong l1_* cosine tlts_triangular repetition)
    math_correct,  # noqa: F401  (registers "math_correct")
)

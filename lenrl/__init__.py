"""lenrl: RL post-training for reasoning-length control."""

__version__ = "0.1.0"

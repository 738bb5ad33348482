"""Rollout generation: the vLLM engine wrapper and weight loading into it."""

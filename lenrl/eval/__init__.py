"""Evaluation: pure metrics over per-sample records (`metrics.py`), following docs/algorithms.md §11.

Nothing here imports vllm, ray or transformers (docs/design.md 4.7 rule 8).
"""

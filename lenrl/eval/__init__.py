"""Evaluation: pure metrics over per-sample records (`metrics.py`), following algorithms.md §11.

Nothing here imports vllm, ray or transformers (design.md 4.7 rule 8).
"""

"""Problem sources (built-in arithmetic, JSONL, Parquet, Hugging Face datasets) and prompt rendering."""

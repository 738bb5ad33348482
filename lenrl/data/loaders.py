"""Load problem sets into `Problem` records: built-in arithmetic, local JSONL/Parquet, or a HF dataset.

Every bad input becomes a one-line `LenrlError` that names the file and line (or row) so a user can fix
the data without reading a traceback. Files are read lazily where possible so `limit` stays cheap on big
files. GSM8K-style answers that hold a whole solution ("... #### 1,234") are reduced to the number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lenrl.data.arith import DEFAULT_DIFFICULTY, arith_problems
from lenrl.errors import LenrlError
from lenrl.records import Problem

ARITH_DEFAULT_N = 10000


def load_problems(
    source: str,
    *,
    split: str = "train",
    question_field: str = "problem",
    answer_field: str = "answer",
    limit: int | None = None,
    seed: int = 0,
    difficulty: int = DEFAULT_DIFFICULTY,
    hf_config: str | None = None,
) -> list[Problem]:
    """Problems from `source`: "arith", a `.jsonl` or `.parquet` path, or a Hugging Face dataset id.

    `split` and `hf_config` (a dataset configuration, e.g. gsm8k's "main") are used only for HF datasets;
    `seed` and `difficulty` only for "arith".
    """
    if limit is not None and limit < 1:
        raise LenrlError(f"data limit must be >= 1 or unset, got {limit}")
    if source == "arith":
        return arith_problems(limit or ARITH_DEFAULT_N, seed=seed, difficulty=difficulty)
    if source.startswith("testbed:"):  # lenrl/testbed/data.py: generated, split train/test by content
        from lenrl.testbed.data import testbed_problems

        return testbed_problems(source, split=split, limit=limit, seed=seed, difficulty=difficulty)
    fields = (question_field, answer_field)
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".parquet"):
        if not path.is_file():
            raise LenrlError(f"data file not found: {source}")
        rows = _jsonl_rows(path) if suffix == ".jsonl" else _parquet_rows(path)
        return _to_problems(rows, path.name, str(path), fields, limit)
    if path.exists():
        raise LenrlError(f"unsupported data file {source}: expected .jsonl or .parquet (or 'arith' or a HF dataset id)")
    rows = _hf_rows(source, split, hf_config)
    return _to_problems(rows, f"{source}[{split}]", f"{source}[{split}]", fields, limit)


def assign_target_lengths(problems: list[Problem], low: int, high: int, seed: int) -> list[Problem]:
    """L1 / LCPO data (arXiv 2503.04697, `scripts/data/deepscaler_dataset.py`): every problem gets a target
    length N ~ U{low..high} in meta["target_len"], drawn once per problem (seeded) as L1 does at
    preprocessing. Problems whose row already has a `target_len` keep it."""
    import random

    rng = random.Random(seed)
    out = []
    for p in problems:
        n = rng.randint(low, high)  # drawn for every problem, so a row's N does not depend on its neighbours
        out.append(p if "target_len" in p.meta else Problem(p.id, p.question, p.answer, {**p.meta, "target_len": n}))
    return out


def extract_gsm8k_answer(answer: str) -> str:
    """The final answer of a GSM8K solution ("... #### 1,234" -> "1234"); other answers unchanged."""
    if "####" not in answer:
        return answer.strip()
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def _jsonl_rows(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(where, number, row) per non-blank line; `where` is "file:line" for error messages."""
    with path.open("rb") as f:  # decoded line by line, so a bad byte is reported with its line
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:  # utf-8-sig on line 1: a byte-order mark (Windows editors) is not part of the JSON
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                bad = f"byte {raw[e.start]:#04x} at column {e.start + 1}"
                raise LenrlError(f"{where}: not valid UTF-8 ({bad})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise LenrlError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise LenrlError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, lineno, row


def _parquet_rows(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types (ArrowInvalid, OSError) for a bad file
        raise LenrlError(f"{path}: cannot read Parquet ({_first_line(e)})") from None
    for i, row in enumerate(table.to_pylist()):
        yield f"{path}: row {i}", i, row


def _hf_rows(source: str, split: str, config: str | None = None) -> Iterator[tuple[str, int, dict[str, Any]]]:
    try:
        import datasets

        ds = datasets.load_dataset(source, config, split=split)
    except Exception as e:  # network, unknown id, bad split, missing config: all the user's to fix
        raise LenrlError(f"could not load dataset {source!r} (split {split!r}): {_first_line(e)}") from None
    for i, row in enumerate(ds):
        yield f"{source}[{split}] row {i}", i, row


def _to_problems(
    rows: Iterable[tuple[str, int, dict[str, Any]]],
    basename: str,
    what: str,
    fields: tuple[str, str],
    limit: int | None,
) -> list[Problem]:
    problems = []
    for where, number, row in rows:
        problems.append(_row_to_problem(row, where, f"{basename}:{number}", fields))
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise LenrlError(f"{what}: no problems (the data is empty)")
    return problems


def _row_to_problem(row: dict[str, Any], where: str, default_id: str, fields: tuple[str, str]) -> Problem:
    question_field, answer_field = fields
    for name in fields:
        if name not in row:
            present = ", ".join(sorted(map(str, row))) or "none"
            raise LenrlError(f"{where}: missing field {name!r} (fields present: {present})")
        if row[name] is None or str(row[name]).strip() == "":
            raise LenrlError(f"{where}: field {name!r} is empty")
    question = str(row[question_field])
    answer = extract_gsm8k_answer(_answer_str(row[answer_field]))
    pid = str(row["id"]) if row.get("id") is not None else default_id
    meta = {k: v for k, v in row.items() if k not in (question_field, answer_field, "id")}
    return Problem(id=pid, question=question, answer=answer, meta=meta)


def _answer_str(value: Any) -> str:
    """Numbers from files become strings; an integral float (27.0) becomes "27", as graders expect."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]

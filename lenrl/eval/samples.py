"""Per-sample evaluation records and the JSONL file that holds them, with resume.

One line per (question, sample). A question's n lines are appended together and flushed to disk, so an
interrupted evaluation loses at most the question in flight: on restart, questions with all n samples are
kept and not regenerated; a torn last line or a partial question is dropped and redone. The settings of
the run are stored beside it (`settings.json`) and a resume with different settings is refused rather than
mixing two protocols in one file.

Records are written whatever the model emits: a completion that is not valid UTF-8 reaches Python as text
with lone surrogates, which UTF-8 cannot encode; `record_line` writes those (and only those) as JSON
`\\uXXXX` escapes, so the file stays valid UTF-8, the rest stays readable, and reading the line back
gives the exact text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lenrl.errors import LenrlError
from lenrl.files import atomic_write


@dataclass(frozen=True)
class Forced:
    """Budget forcing at one budget: the forced answer's correctness and the sample's total tokens
    (the prefix up to the budget + the forcing text + the forced continuation)."""

    correct: bool
    tokens: int


@dataclass(frozen=True)
class SampleRecord:
    qid: str
    sample: int
    seed: int
    prompt_tokens: int
    response_len: int
    think_len: int
    finish_reason: str
    truncated: bool
    score: float
    correct: bool
    answer: str | None
    """the extracted, normalised final answer (majority voting clusters equal strings)"""
    text: str
    forced: dict[str, Forced] = field(default_factory=dict)
    """budget (as a string, JSON keys) -> forcing outcome, for budgets this sample had not finished within"""
    target: int | None = None
    """the target length written into the prompt (`--target-len`, L1's "Think for N tokens."); None without one"""

    @property
    def finished(self) -> bool:
        return not self.truncated

    def at_budget(self, budget: int) -> tuple[bool, int]:
        """(correct, tokens) of this sample under budget forcing at `budget`."""
        if self.finished and self.response_len <= budget:
            return self.correct, self.response_len
        f = self.forced[str(budget)]
        return f.correct, f.tokens

    @staticmethod
    def from_json(d: dict[str, Any]) -> SampleRecord:
        forced = {k: Forced(**v) for k, v in d.pop("forced", {}).items()}
        return SampleRecord(**d, forced=forced)


def record_line(r: SampleRecord) -> str:
    """One JSONL line (with its newline). Lone surrogates can only sit inside JSON strings, where
    `backslashreplace` turns each into the `\\uXXXX` escape that `json.loads` reads back as itself."""
    d = asdict(r)
    if d["target"] is None:  # evaluations without target lengths keep their records as they were
        del d["target"]
    line = json.dumps(d, ensure_ascii=False) + "\n"
    return line.encode("utf-8", errors="backslashreplace").decode("utf-8")


class SampleFile:
    """`samples.jsonl` + `settings.json` of one model on one benchmark."""

    def __init__(self, directory: Path, settings: dict[str, Any]):
        self.dir, self.settings = Path(directory), settings
        self.path = self.dir / "samples.jsonl"
        self.settings_path = self.dir / "settings.json"

    def resume(self, n: int) -> dict[str, list[SampleRecord]]:
        """Finished questions from an earlier run (qid -> its n records); rewrites the file without torn
        or partial questions. Creates the directory and settings file on a fresh start."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.settings_path.exists():
            old = json.loads(self.settings_path.read_text())
            if old != self.settings:
                diff = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
                raise LenrlError(
                    f"{self.dir}: holds an evaluation with other settings ({', '.join(diff)}); "
                    "use another --out or delete it"
                )
        else:
            atomic_write(self.settings_path, json.dumps(self.settings, indent=1))
        by_q: dict[str, list[SampleRecord]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = SampleRecord.from_json(json.loads(line))
                except (ValueError, TypeError):
                    continue  # a torn last line from an interruption
                by_q.setdefault(rec.qid, []).append(rec)
        done = {q: sorted(rs, key=lambda r: r.sample) for q, rs in by_q.items() if len({r.sample for r in rs}) == n}
        self._rewrite([r for rs in done.values() for r in rs])
        return done

    def append(self, records: Iterable[SampleRecord]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            for r in records:
                f.write(record_line(r))
            f.flush()
            os.fsync(f.fileno())

    def _rewrite(self, records: list[SampleRecord]) -> None:
        atomic_write(self.path, "".join(record_line(r) for r in records))

"""Evaluate one model on one benchmark: generate, grade with the reward plugins, force answers at each
budget, write per-sample records (resumable) and the summary.

Accuracy against budget costs one long generation per sample (max_tokens = the largest cap), not one per
budget:
- hard truncation at b: a sample counts iff it stopped by itself within b tokens and is correct
  (`metrics.accuracy_vs_budget` gives the argument: tokens are drawn from p(. | prompt, tokens so far),
  which does not depend on max_tokens, so the long sample's first b tokens are what a run capped at b
  draws; with the same per-request seed they are the same tokens);
- budget forcing at b (s1, arXiv 2501.19393; ThinkEdit's forced answer): for every sample that had not
  finished within b tokens, the prefix of b tokens is what a capped run would have stopped with, so the
  forced answer is a short continuation of prompt + prefix + forcing text (close the thinking, ask for the
  answer), `force_tokens` long. Samples that finished within b keep their own answer.
tests/eval/test_eval_e2e.py checks both against separate capped runs with greedy decoding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from lenrl.config import DataConfig
from lenrl.data.prompts import PLACEHOLDER
from lenrl.errors import LenrlError
from lenrl.eval.samples import Forced, SampleFile, SampleRecord
from lenrl.eval.summary import summarize
from lenrl.records import GenerationRequest, GenerationStats, Prompt, Rollout, RolloutBatch
from lenrl.reward import reward_input_from_rollouts
from lenrl.reward_runner import RewardRunner
from lenrl.rollout.vllm_engine import request_seed

THINK_FORCE = "\n</think>\n\nFinal Answer: \\boxed{"
PLAIN_FORCE = "\n\nFinal Answer: \\boxed{"


class Engine(Protocol):
    """What the runner needs of the rollout engine (VLLMEngine, or RolloutGroup over several)."""

    def generate(self, requests: list[GenerationRequest], step: int) -> tuple[list[Rollout], GenerationStats]: ...


@dataclass(frozen=True)
class EvalSettings:
    n: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 512
    seed: int = 0
    budgets: tuple[int, ...] = ()
    """caps for the accuracy-vs-budget curve: strictly increasing, at most max_tokens"""
    force_tokens: int = 32
    force_text: str | None = None
    """appended to the prefix to force an answer; None: close </think> when `thinking`, then ask"""
    instruction: str = DataConfig().instruction
    system_prompt: str | None = None
    think_prefix: str = ""
    """text pre-filled at the start of the response (DeepSeek-R1 style "<think>\\n"), counted as prompt.
    Only text: it does not set the thinking mode, and a prefix that opens `<think>` needs `thinking`"""
    thinking: bool = False
    """THE thinking mode (`model.thinking` in training, `--thinking`): a response without `</think>` has no
    answer (graded wrong, DLER's reward) and budget forcing closes `</think>`; off, the whole text is graded"""
    max_prompt_tokens: int = 1024
    chunk: int = 32
    """questions per generation call; also the unit of resume"""
    extra: dict[str, Any] = field(default_factory=dict)
    """anything else that defines the protocol (reward, model), compared on resume"""
    target_len: tuple[int, int] | None = None
    """(low, high): each question gets a target length N ~ U{low..high} (seeded by `seed`), written into the
    prompt through the instruction's `{target_len}` (L1, arXiv 2503.04697 §3); recorded per sample and
    summarised as length-control error. None: no targets (and no `target_len` key in the record)"""

    def __post_init__(self) -> None:
        for name in ("n", "max_tokens", "force_tokens", "max_prompt_tokens", "chunk"):
            if not getattr(self, name) >= 1:
                raise LenrlError(f"eval {name} must be >= 1, got {getattr(self, name)}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise LenrlError(f"eval needs temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        if self.temperature == 0 and self.n != 1:  # vLLM refuses it; greedy samples would all be the same anyway
            raise LenrlError(f"eval with --temperature 0 (greedy) needs --n 1, got --n {self.n}")
        b = list(self.budgets)
        if any(not isinstance(x, int) or x <= 0 for x in b) or any(y <= x for x, y in zip(b, b[1:], strict=False)):
            raise LenrlError(f"--budgets must be strictly increasing positive integers, got {b}")
        if b and b[-1] > self.max_tokens:
            raise LenrlError(f"--budgets: the largest budget {b[-1]} exceeds --max-tokens {self.max_tokens}")
        self._check_targets()
        if "<think>" in self.think_prefix and not self.thinking:  # one switch: grading and forcing would disagree
            raise LenrlError(
                f"--think-prefix {self.think_prefix!r} opens <think> but the thinking mode is off: add --thinking"
            )

    def _check_targets(self) -> None:
        if self.target_len is None:
            return
        t = self.target_len
        if len(t) != 2 or any(isinstance(x, bool) or not isinstance(x, int) for x in t) or not 0 < t[0] <= t[1]:
            raise LenrlError(f"--target-len must be LOW,HIGH with 0 < LOW <= HIGH, got {t}")
        if not self.uses_targets:
            raise LenrlError(
                f"--target-len needs an --instruction with {{target_len}} (e.g. '... Think for {{target_len}} "
                f"tokens.'), got {self.instruction!r}"
            )

    @property
    def uses_targets(self) -> bool:
        """The prompt names each question's target length (L1's "Think for {target_len} tokens.")."""
        return "target_len" in PLACEHOLDER.findall(self.instruction)

    @property
    def forcing(self) -> str:
        if self.force_text is not None:
            return self.force_text
        return THINK_FORCE if self.thinking else PLAIN_FORCE

    def record(self) -> dict[str, Any]:
        """The settings as stored beside the samples (resume must match them)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("chunk", "extra", "target_len")}
        if self.target_len is not None:  # absent otherwise: earlier evaluations' settings.json stay resumable
            d["target_len"] = list(self.target_len)
        return {**d, "budgets": list(self.budgets), "force_text": self.forcing, **self.extra}


@dataclass
class Progress:
    seconds_generate: float = 0.0
    tokens: int = 0
    questions: int = 0


class BenchmarkEval:
    """One model x one benchmark. `prompts[i]` is question i, rendered; its group id is i (seeds stay put
    when the run is chunked differently or resumed)."""

    def __init__(self, engine: Engine, rewards: RewardRunner, tokenizer: Any, settings: EvalSettings, extract: Any):
        if rewards.thinking != settings.thinking:
            raise LenrlError(f"eval: the grader's thinking mode ({rewards.thinking}) differs from the settings'")
        self.engine, self.rewards, self.tok, self.s = engine, rewards, tokenizer, settings
        self.extract = extract  # text -> normalised final answer or None (majority voting)
        self.force_ids = tokenizer(settings.forcing, add_special_tokens=False)["input_ids"]

    def run(self, prompts: list[Prompt], out_dir: Path, *, meta: dict[str, Any], aes_base: dict | None = None) -> dict:
        files = SampleFile(out_dir, self.s.record())
        done = files.resume(self.s.n)
        todo = [i for i, p in enumerate(prompts) if p.problem.id not in done]
        t0, prog = time.perf_counter(), Progress()
        for start in range(0, len(todo), self.s.chunk):
            idx = todo[start : start + self.s.chunk]
            records = self._chunk([prompts[i] for i in idx], idx, prog)
            files.append(records)
            for r in records:
                done.setdefault(r.qid, []).append(r)
            print(f"lenrl eval: {meta.get('benchmark')}: {len(done)}/{len(prompts)} questions", flush=True)
        wall = time.perf_counter() - t0
        questions = [done[p.problem.id] for p in prompts]
        summary = {**meta, "settings": self.s.record(), **summarize(questions, list(self.s.budgets), aes_base=aes_base)}
        summary["throughput"] = {
            "seconds": wall,
            "generate_seconds": prog.seconds_generate,
            "questions": prog.questions,
            "resumed_questions": len(prompts) - prog.questions,
            "generated_tokens": prog.tokens,
            "questions_per_s": prog.questions / wall if wall > 0 and prog.questions else float("nan"),
            "tokens_per_s": prog.tokens / prog.seconds_generate if prog.seconds_generate > 0 else float("nan"),
        }
        return summary

    def _chunk(self, prompts: list[Prompt], idx: list[int], prog: Progress) -> list[SampleRecord]:
        s = self.s
        reqs = [self._request(i, p.token_ids, s.n, s.max_tokens) for i, p in zip(idx, prompts, strict=True)]
        rollouts, stats = self.engine.generate(reqs, 0)
        prog.seconds_generate += stats.seconds
        prog.tokens += stats.tokens
        prog.questions += len(prompts)
        by_gid = dict(zip(idx, prompts, strict=True))
        scored = self._score(rollouts, by_gid)
        sample_no: dict[int, int] = {}
        records = []
        for r, (score, correct) in zip(rollouts, scored, strict=True):
            j = sample_no[r.group_id] = sample_no.get(r.group_id, -1) + 1
            p = by_gid[r.group_id]
            records.append(
                SampleRecord(
                    qid=p.problem.id,
                    sample=j,
                    seed=request_seed(s.seed, 0, r.group_id),
                    prompt_tokens=len(p.token_ids),
                    response_len=r.response_len,
                    think_len=r.think_len,
                    finish_reason=r.finish_reason,
                    truncated=r.truncated,
                    score=score,
                    correct=correct,
                    answer=self.extract(r.text),
                    text=r.text,
                    target=int(p.problem.meta["target_len"]) if s.uses_targets else None,
                )
            )
        return self._force(records, rollouts, by_gid, prog) if s.budgets else records

    def _request(self, gid: int, ids: list[int], n: int, max_tokens: int) -> GenerationRequest:
        """Every request names the evaluation's sampling settings and seed, so any engine (`lenrl eval`'s, or
        the training engines evaluating mid-run) draws the same tokens for it."""
        s = self.s
        return GenerationRequest(gid, ids, n, max_tokens, temperature=s.temperature, top_p=s.top_p, seed=s.seed)

    def _score(self, rollouts: list[Rollout], by_gid: dict[int, Prompt]) -> list[tuple[float, bool]]:
        rows = [by_gid[r.group_id] for r in rollouts]
        out = self.rewards.score(
            reward_input_from_rollouts(
                RolloutBatch.from_rollouts(rollouts),
                [p.text for p in rows],
                [p.problem.answer for p in rows],
                [p.problem.meta for p in rows],
            )
        )
        return [(float(a), bool(b)) for a, b in zip(out.score_B.tolist(), out.correct_B.tolist(), strict=True)]

    def _force(
        self, records: list[SampleRecord], rollouts: list[Rollout], by_gid: dict[int, Prompt], prog: Progress
    ) -> list[SampleRecord]:
        """Budget forcing: one short continuation per (sample, budget) the sample had not finished within."""
        forced: list[dict[str, Forced]] = [{} for _ in records]
        for bi, b in enumerate(self.s.budgets):
            need = [k for k, r in enumerate(records) if not (r.finished and r.response_len <= b)]
            if not need:
                continue
            prefixes = [rollouts[k].response_ids[:b] for k in need]
            # stable ids (question index * n + sample): seeds do not depend on chunking or resume
            gids = [rollouts[k].group_id * self.s.n + records[k].sample for k in need]
            reqs = [
                self._request(g, rollouts[k].prompt_ids + pre + self.force_ids, 1, self.s.force_tokens)
                for g, k, pre in zip(gids, need, prefixes, strict=True)
            ]
            outs, stats = self.engine.generate(reqs, 1 + bi)  # step 1 + bi: own seeds per budget
            prog.seconds_generate += stats.seconds
            prog.tokens += stats.tokens
            conts = {o.group_id: o for o in outs}
            joined = [
                self._joined(rollouts[k], pre, conts[g], b) for g, k, pre in zip(gids, need, prefixes, strict=True)
            ]
            scored = self._score(joined, {g: by_gid[rollouts[k].group_id] for g, k in zip(gids, need, strict=True)})
            for k, j, (_, ok) in zip(need, joined, scored, strict=True):
                forced[k][str(b)] = Forced(correct=ok, tokens=j.response_len)
        return [replace(r, forced=f) for r, f in zip(records, forced, strict=True)]

    def _joined(self, r: Rollout, prefix: list[int], cont: Rollout, budget: int) -> Rollout:
        """The forced response as one rollout: prefix + forcing text + continuation. Its group id is the
        sample's position (unique per budget), so group-relative rewards see it alone."""
        text = self.tok.decode(prefix, skip_special_tokens=True) + self.s.forcing + cont.text
        return replace(
            r,
            group_id=cont.group_id,
            response_ids=prefix + self.force_ids + cont.response_ids,
            sampler_logprobs=[],
            finish_reason=cont.finish_reason,
            budget=budget,
            think_len=0,
            text=text,
        )

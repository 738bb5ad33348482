"""Bad input: one-line errors before anything heavy starts, and no run directory left behind.

The table runs each command in-process with Ray, vLLM and model loading replaced by guards that fail the
test if reached, so each row proves its error comes *before* them; the subprocess tests below check the
real command line end to end (exit status, stderr) on a few rows, and that SIGTERM cleans up.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lenrl.errors import LenrlError

REPO = Path(__file__).resolve().parents[1]
MATH500 = (REPO / "../shared/data/math500.jsonl").resolve()


def run_train(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, str(REPO / "lenrl" / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(p, *fragments):
    assert p.returncode == 2, p.stderr[-2000:]
    lines = [line for line in p.stderr.splitlines() if line.startswith("lenrl: error:")]
    assert len(lines) == 1, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


# ---------------------------------------------------------------- the table (in-process, guarded)


def _files(tmp: Path) -> None:
    """The hostile inputs the table refers to as {tmp}/NAME."""
    (tmp / "dup.yaml").write_text("train:\n  steps: 2\n  steps: 3\n")
    (tmp / "latin1.yaml").write_bytes(b"train:\n  steps: 2  # d\xe9j\xe0 vu\n")
    (tmp / "latin1.jsonl").write_bytes(b'{"problem": "1+1?", "answer": "2"}\n{"problem": "caf\xe9", "answer": "2"}\n')
    (tmp / "cols.jsonl").write_text('{"question": "1+1?", "answer": "2"}\n')
    (tmp / "syntax.py").write_text("def f(x:\n    return 1\n")
    (tmp / "raises.py").write_text("import torch\n\nSCALE = 1 / 0\n")
    (tmp / "nomodel").mkdir()
    (tmp / "nomodel" / "tokenizer.json").write_text("{}")
    (tmp / "runs" / "taken").mkdir(parents=True)
    prev = tmp / "prev" / "math500"
    prev.mkdir(parents=True)
    (prev / "settings.json").write_text(json.dumps({"n": 8, "temperature": 0.6, "reward": "math_correct"}))


TRAIN = ["output.dir={tmp}/runs"]
EVAL = ["--data", f"math500={MATH500}", "--limit", "2", "--out", "{tmp}/evals"]

ROWS = [
    # -- training: accepted and run before
    (["train", "train.lr=.inf"], "config train.lr: must be a finite number, got inf"),
    (["train", "algo.kl_coef=.nan"], "config algo.kl_coef: must be a finite number, got nan"),
    (["train", "rollout.n=1"], "config rollout.n: the advantage 'grpo' at algo.advantage compares"),
    (["train", "--algo", "rloo", "rollout.n=1"], "the advantage 'rloo' at algo.advantage"),
    (["train", "--algo", "dapo", "rollout.n=1", "algo.advantage.name=grpo"], "rollout.n"),
    (["train", "grader.params.fallback=last_numbr"], "config grader: math: unknown fallback 'last_numbr'"),
    (["train", "--algo", "dapo", "rewards.1.params.length_on=thnk"], "config rewards[1]: overlong: length_on"),
    (["train", "--config", "{tmp}/dup.yaml"], "dup.yaml:3: duplicate key 'steps'"),
    # -- training: a traceback before
    (["train", "train.steps.value=3"], "override 'train.steps.value': train.steps is a value (20)"),
    (["train", "algo.loss.params.clip_low=abc"], "parameter 'clip_low' expects float, got 'abc' (str)"),
    (["train", "--config", "{tmp}"], "is not a file"),
    (["train", "--config", "{tmp}/latin1.yaml"], "latin1.yaml:2: not valid UTF-8 (byte 0xe9)"),
    (["train", "rewards.0.name={tmp}/syntax.py:f"], "cannot load reward '{tmp}/syntax.py:f': SyntaxError"),
    (["train", "rewards.0.name={tmp}/raises.py:f"], "({tmp}/raises.py:3): ZeroDivisionError"),
    (["train", "data.source={tmp}/latin1.jsonl"], "latin1.jsonl:2: not valid UTF-8 (byte 0xe9 at column 17)"),
    # -- training: too late before (data after the model load; an existing run after Ray)
    (["train", "data.source={tmp}/cols.jsonl"], "cols.jsonl:1: missing field 'problem'"),
    (["train", "data.source={tmp}/missing.jsonl"], "data file not found"),
    (["train", "model.name={tmp}/nomodel"], "holds no config.json"),
    (["train", "output.name=taken"], "run directory {tmp}/runs/taken already exists"),
    (["train", "output.dir=nosuch://bucket/runs"], "output.dir: 'nosuch://bucket/runs': no fsspec filesystem for"),
    (["train", "output.dir=memory://runs"], "output.dir: 'memory://runs' lives in one process's memory"),
    (["train", "output.dir=file://{tmp}", "output.name=runs/taken"], "run directory file://{tmp}/runs/taken already"),
    (["train", "train.resume=file://{tmp}/nothing"], "train.resume: file://{tmp}/nothing is not a run directory"),
    (["train", "--algo", "nope"], "unknown algorithm 'nope'"),
    # -- evaluation: all of these came after Ray and vLLM started
    (["eval", "--model", "{tmp}/nomodel"], "--model {tmp}/nomodel: holds no model (no config.json)"),
    (["eval", "--model", "{tmp}/runs/x/checkpoint"], "no such directory"),
    (["eval", "--model", "file://{tmp}/nomodel"], "model file://{tmp}/nomodel: holds no model (no config.json)"),
    (["eval", "--reward", "nope"], "--reward: unknown reward 'nope'"),
    (["eval", "--reward", "{tmp}/syntax.py:f"], "--reward: cannot load reward"),
    (["eval", "--benchmarks", ","], "--benchmarks names no benchmark"),
    (["eval", "--out", "{tmp}/prev"], "{tmp}/prev/math500: holds an evaluation with other settings"),
    (["eval", "--data", "math500={tmp}/latin1.jsonl"], "latin1.jsonl:2: not valid UTF-8"),
    (["eval", "--budgets", "64,32"], "--budgets must be strictly increasing"),
    (["eval", "--grader", "nope"], "--grader: unknown grader 'nope'"),
    (["eval", "--grader", "{tmp}/raises.py:g"], "--grader: cannot load grader"),
    (["eval", "--fallback", "last_numbr"], "--grader: math: unknown fallback 'last_numbr'"),
    (["eval", "--think-prefix", "<think>\n"], "--think-prefix '<think>\\n' opens <think> but the thinking mode is off"),
]


@pytest.fixture
def guarded(monkeypatch):
    """Ray, and any model or tokenizer load, fail the test if a command reaches them."""
    import transformers

    import lenrl.train

    def reached(what):
        def fail(*args, **kwargs):
            raise AssertionError(f"bad input was not caught before {what}")

        return fail

    monkeypatch.setattr(lenrl.train, "init_ray", reached("Ray started"))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", reached("the tokenizer loaded"))
    monkeypatch.setattr("lenrl.model.embedded.embedded_model_dir", reached("the model was converted"))


@pytest.mark.parametrize("argv, fragment", ROWS, ids=[" ".join(r[0])[:60] for r in ROWS])
def test_bad_input_table(argv, fragment, tmp_path, guarded, capsys):
    from lenrl.cli import main

    _files(tmp_path)
    extra = TRAIN if argv[0] == "train" else EVAL
    argv = [a.replace("{tmp}", str(tmp_path)) for a in [argv[0], *extra, *argv[1:]]]
    before = sorted((tmp_path / "runs").iterdir())
    t0 = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("lenrl: error:")]
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]), err[-2000:]
    assert "Traceback" not in err
    assert fragment.replace("{tmp}", str(tmp_path)) in lines[0], lines[0]
    assert sorted((tmp_path / "runs").iterdir()) == before  # no run directory made
    assert not (tmp_path / "evals").exists()  # no evaluation output made
    assert seconds < 30, f"{seconds:.1f} s"  # generous on a loaded 2-core machine; Ray alone takes longer


@pytest.mark.parametrize("option", ["--temperature", "--top-p"])
@pytest.mark.parametrize("value", ["nan", "inf", "1e999"])
def test_eval_refuses_non_finite_numbers(option, value, capsys):
    from lenrl.cli import main

    with pytest.raises(SystemExit) as e:  # argparse's own one-line usage error
        main(["eval", option, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2
    assert err[-1] == f"lenrl eval: error: argument {option}: must be a finite number, got {value!r}"


def test_eval_out_check_accepts_a_resume_of_the_same_evaluation(tmp_path):
    """The pre-Ray check compares with what SampleFile writes, so the same command still resumes."""
    from lenrl.eval.samples import SampleFile
    from lenrl.evaluate import check_before_ray, parse_args, settings_from

    args = parse_args(["--data", f"math500={MATH500}", "--budgets", "8,16", "--out", str(tmp_path)])
    settings = settings_from(args)
    SampleFile(tmp_path / "math500", settings.record()).resume(settings.n)  # writes settings.json
    check_before_ray(args, ["embedded:smollm2-135m"], ["math500"], [tmp_path], settings)
    args.n = 8
    with pytest.raises(LenrlError, match=r"math500: holds an evaluation with other settings \(n\)"):
        check_before_ray(args, ["embedded:smollm2-135m"], ["math500"], [tmp_path], settings_from(args))


# ---------------------------------------------------------------- the real command line


def test_unknown_algorithm(tmp_path):
    p = run_train("--algo", "nope", cwd=tmp_path)
    assert_one_line_error(p, "unknown algorithm 'nope'", "grpo")


@pytest.fixture
def base_args(tiny_model_dir, tmp_path):
    return [f"model.name={tiny_model_dir}", f"output.dir={tmp_path / 'runs'}"]


def test_malformed_dataset_line_is_named(base_args, tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", "answer": \n')
    p = run_train(*base_args, f"data.source={f}", cwd=tmp_path)
    assert_one_line_error(p, "bad.jsonl:2")
    assert not (tmp_path / "runs").exists()


def test_prompt_longer_than_limit(base_args, tmp_path):
    f = tmp_path / "long.jsonl"
    f.write_text('{"id": "q-long", "problem": "' + "seven " * 400 + '", "answer": "7"}\n')
    p = run_train(*base_args, f"data.source={f}", cwd=tmp_path)
    assert_one_line_error(p, "q-long", "256")
    assert not (tmp_path / "runs").exists()


def test_unreachable_ray_address(base_args, tmp_path):
    p = run_train(*base_args, cwd=tmp_path, env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert_one_line_error(p, "cannot reach the Ray cluster", "127.0.0.1:1")
    assert not (tmp_path / "runs").exists()


def test_config_errors_are_one_line(tmp_path):
    # RAY_ADDRESS unreachable: an error that came after Ray would say so instead
    env = {"RAY_ADDRESS": "127.0.0.1:1"}
    for override, fragment in [
        ("train.stepz=3", "train.stepz: unknown key"),
        ("train.lr=.inf", "config train.lr: must be a finite number"),
        ("train.steps.value=3", "override 'train.steps.value'"),
    ]:
        assert_one_line_error(run_train(override, cwd=tmp_path, env=env), fragment)


SLOW_REWARD = '''
import time
import torch
from lenrl.reward import RewardOutput


def slow(x):
    """Holds the first training step for a minute (not the 2-sample probe at load)."""
    if len(x) > 2:
        time.sleep(60)
    return RewardOutput(score_B=torch.zeros(len(x)))
'''


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.vllm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_removes_the_half_made_run_directory(sig, tiny_model_dir, tmp_path):
    """Stopped before its first step is logged, a run leaves nothing behind, as after an error."""
    plugin = tmp_path / "slow.py"
    plugin.write_text(SLOW_REWARD)
    run = tmp_path / "runs" / "run"
    args = [f"model.name={tiny_model_dir}", f"output.dir={tmp_path / 'runs'}", "output.name=run"]
    args += ["rollout.max_tokens=8", "train.prompts_per_step=2", "rollout.n=2", "train.reward_timeout_s=300"]
    args += [f"rewards.0.name={plugin}:slow"]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "lenrl" / "train.py"), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (run / "config.yaml").exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the run directory never appeared"
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err[-3000:]
    assert f"lenrl: interrupted ({signal.Signals(sig).name})" in err
    assert "Traceback" not in err, err[-3000:]
    assert not run.exists()


def test_a_signal_reraised_as_plain_keyboard_interrupt_keeps_its_number():
    """A library that catches the `Interrupted` and raises a plain KeyboardInterrupt (seen with SIGTERM
    under load) must not turn SIGTERM's exit status 143 into SIGINT's 130."""
    import os

    from lenrl.errors import exit_code_of, interrupt_on_signals

    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    interrupt_on_signals()

    def command() -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None  # what such a library does
        return 0

    try:
        assert exit_code_of(command) == 128 + signal.SIGTERM
    finally:
        for s, h in old.items():
            signal.signal(s, h)

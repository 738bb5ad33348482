"""Markdown reports and plots from fake evaluation output directories (lenrl/eval/report.py)."""

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lenrl.errors import LenrlError
from lenrl.eval.comparison import write_comparison
from lenrl.eval.report import load_results, write_report

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SUMMARY = {
    "label": "grpo-step4",
    "model": "/ckpt/grpo-step4",
    "benchmark": "math500",
    "settings": {
        "n": 4,
        "temperature": 0.6,
        "top_p": 0.95,
        "max_tokens": 512,
        "seed": 0,
        "budgets": [64, 128, 256],
        "force_tokens": 32,
        "template": "chat",
        "data": "math500.jsonl",
    },
    "num_questions": 20,
    "num_samples": 80,
    "accuracy": {"avg@k": 0.31, "pass@k": {"1": 0.31, "2": 0.42, "4": 0.55}, "maj@k": {"1": 0.31, "4": 0.35}},
    "length": {
        "all": {"n": 80, "mean": 210.5, "median": 190.0, "p90": 400.0},
        "correct": {"n": 25, "mean": 150.0, "median": 140.0, "p90": 260.0},
        "incorrect": {"n": 55, "mean": 238.0, "median": 220.0, "p90": 450.0},
    },
    "spans": {"total_mean": 210.5, "think_mean": 0.0, "answer_mean": 210.5},
    "truncation_rate": 0.12,
    "tokens_per_correct": 673.6,
    "shortest_fraction_accuracy": {"0.05": 0.5, "0.1": 0.4, "0.2": 0.35},
    "budget_curve": [
        {
            "budget": 64,
            "truncation": 0.05,
            "forcing": 0.10,
            "mean_tokens_truncation": 60.1,
            "mean_tokens_forcing": 75.3,
        },
        {
            "budget": 128,
            "truncation": 0.15,
            "forcing": 0.20,
            "mean_tokens_truncation": 110.0,
            "mean_tokens_forcing": 130.2,
        },
        {
            "budget": 256,
            "truncation": 0.25,
            "forcing": None,
            "mean_tokens_truncation": 180.0,
            "mean_tokens_forcing": None,
        },
    ],
    "aes": None,
    "throughput": {"seconds": 40.2, "questions_per_s": 0.5, "tokens_per_s": 420.0, "generated_tokens": 16800},
}


def _summary(benchmark, **changes):
    """SUMMARY for `benchmark`; `changes` maps "a.b" key paths to new values."""
    s = copy.deepcopy(SUMMARY)
    s["benchmark"] = benchmark
    for path, value in changes.items():
        *parents, last = path.split(".")
        d = s
        for k in parents:
            d = d[k]
        d[last] = value
    return s


def _write_bench(out, summary, n_samples=40):
    d = out / summary["benchmark"]
    d.mkdir(parents=True)
    # json.dumps writes float("nan") as NaN, as the evaluation runner does.
    (d / "summary.json").write_text(json.dumps(summary))
    rows = [
        {
            "qid": f"q{i // 4}",
            "sample": i % 4,
            "response_len": 40 + 9 * i,
            "think_len": 0,
            "truncated": False,
            "correct": i % 3 == 0,
            "score": float(i % 3 == 0),
            "answer": str(i),
            "extra": [1],
        }
        for i in range(n_samples)
    ]
    (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _one_model(out):
    """math500 with budgets (one forcing point null) and NaN fields; gsm8k with no budgets and an AES entry."""
    _write_bench(out, _summary("math500", **{"spans.think_mean": math.nan, "accuracy.maj@k.4": math.nan}))
    gsm = _summary(
        "gsm8k",
        budget_curve=[],
        tokens_per_correct=math.inf,
        **{"accuracy.avg@k": 0.725},
        aes={
            "baseline": "base-model",
            "value": 0.4217,
            "delta_length": 0.3,
            "delta_accuracy": 0.04,
            "base_accuracy": 0.3,
            "base_length": 300.0,
        },
    )
    _write_bench(out, gsm)
    return out


@pytest.fixture
def one_model(tmp_path):
    return _one_model(tmp_path / "grpo")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """(output dir, report.md text) rendered once for the read-only tests: plotting dominates test time."""
    out = _one_model(tmp_path_factory.mktemp("report") / "grpo")
    return out, write_report(out).read_text(encoding="utf-8")


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_after(md, heading):
    """The first Markdown table after the line `heading`, as a list of {header: cell} rows."""
    lines = md.splitlines()
    i = lines.index(heading)
    while not lines[i].startswith("|"):
        i += 1
    header, rows = _cells(lines[i]), []
    for line in lines[i + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, _cells(line), strict=True)))
    return rows


def _section(md, heading):
    """The text of a '## ' section, up to the next one."""
    return md.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 1024, path


# --- write_report ----------------------------------------------------------------------------


def test_report_header_and_main_table(report):
    _, md = report
    assert md.startswith("# Evaluation report: grpo-step4\n")
    assert "- model: `/ckpt/grpo-step4`" in md
    assert "- settings: n=4, temperature=0.6, top_p=0.95, max_tokens=512, seed=0" in md

    rows = {r["benchmark"]: r for r in _table_after(md, "## Results")}
    assert list(rows) == ["gsm8k", "math500"]  # sorted by benchmark name
    m = rows["math500"]
    assert m["avg@k (%)"] == "31.0"
    assert (m["pass@1 (%)"], m["pass@2 (%)"], m["pass@4 (%)"]) == ("31.0", "42.0", "55.0")
    assert (m["maj@1 (%)"], m["maj@4 (%)"]) == ("31.0", "–")  # NaN in the JSON
    assert (m["mean len"], m["median len"], m["p90 len"]) == ("210.5", "190.0", "400.0")
    assert (m["len ✓"], m["len ✗"]) == ("150.0", "238.0")
    assert (m["think"], m["answer"]) == ("–", "210.5")  # think_mean NaN
    assert (m["trunc. (%)"], m["tok/✓"]) == ("12.0", "673.6")
    assert (m["short 5% (%)"], m["short 10% (%)"], m["short 20% (%)"]) == ("50.0", "40.0", "35.0")
    assert m["AES"] == "–"  # "aes": null for math500
    g = rows["gsm8k"]
    assert (g["avg@k (%)"], g["AES"], g["tok/✓"]) == ("72.5", "0.42", "∞")
    assert "AES is measured against the baseline `base-model`." in md
    assert "- math500: 40.2 s, 0.50 questions/s, 420.0 tokens/s, 16800 generated tokens" in md


def test_report_budget_tables_and_plots(report):
    one_model, md = report
    budget_rows = _table_after(md, "## math500")
    assert [list(r.values()) for r in budget_rows] == [
        ["64", "5.0", "10.0", "60.1", "75.3"],
        ["128", "15.0", "20.0", "110.0", "130.2"],
        ["256", "25.0", "–", "180.0", "–"],  # forcing null at this budget
    ]
    assert list(budget_rows[0]) == [
        "budget",
        "truncation acc (%)",
        "forcing acc (%)",
        "mean tokens (truncation)",
        "mean tokens (forcing)",
    ]
    math_section, gsm_section = _section(md, "## math500"), _section(md, "## gsm8k")
    assert "![accuracy vs budget: math500](plots/accuracy_vs_budget_math500.png)" in math_section
    assert "![length histogram: math500](plots/length_hist_math500.png)" in math_section
    assert "No token budgets were evaluated." in gsm_section and "|" not in gsm_section
    assert "accuracy_vs_budget" not in gsm_section

    plots = one_model / "plots"
    assert sorted(p.name for p in plots.iterdir()) == [
        "accuracy_vs_budget_math500.png",
        "length_hist_gsm8k.png",
        "length_hist_math500.png",
    ]
    for p in plots.iterdir():
        _assert_png(p)
    for link in (line.split("](", 1)[1].rstrip(")") for line in md.splitlines() if line.startswith("![")):
        assert (one_model / link).is_file(), link  # relative links resolve from the report's directory


def test_report_removes_stale_budget_plot_and_leaves_no_temp_files(one_model):
    (one_model / "plots").mkdir()
    stale = one_model / "plots" / "accuracy_vs_budget_gsm8k.png"
    stale.write_bytes(PNG_SIGNATURE)  # from an earlier run in which gsm8k had budgets
    write_report(one_model)
    assert not stale.exists()
    assert not [p for p in one_model.rglob("*") if p.name.endswith(".tmp")]


def test_report_without_samples_skips_the_histogram(one_model):
    (one_model / "gsm8k" / "samples.jsonl").unlink()
    md = write_report(one_model).read_text(encoding="utf-8")
    assert not (one_model / "plots" / "length_hist_gsm8k.png").exists()
    assert "No samples.jsonl records: no length histogram." in _section(md, "## gsm8k")


def test_report_bad_sample_line_names_file_and_line(one_model):
    path = one_model / "math500" / "samples.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(LenrlError, match=re.escape(f"{path}:41: bad sample record")):
        write_report(one_model)
    assert not (one_model / "report.md").exists()  # everything is rendered before anything is written


# --- write_comparison ------------------------------------------------------------------------


def test_comparison_tables_aes_and_plots(tmp_path):
    base, short = tmp_path / "base", tmp_path / "short"
    _write_bench(base, _summary("math500", label="base", **{"accuracy.avg@k": 0.30, "length.all.mean": 300.0}))
    _write_bench(
        base, _summary("gsm8k", label="base", budget_curve=[], **{"accuracy.avg@k": 0.50, "length.all.mean": 100.0})
    )
    _write_bench(short, _summary("math500", label="short", **{"accuracy.avg@k": 0.33, "length.all.mean": 210.0}))
    _write_bench(
        short, _summary("gsm8k", label="short", budget_curve=[], **{"accuracy.avg@k": 0.40, "length.all.mean": 80.0})
    )
    _write_bench(short, _summary("aime", label="short"))  # the baseline has no aime results

    md = write_comparison([base, short], tmp_path / "cmp").read_text(encoding="utf-8")
    header = "AES vs base"
    math500 = {r["model"]: r for r in _table_after(md, "## math500")}
    # dL = (300 - 210) / 300 = 0.3; dA = (0.33 - 0.30) / 0.30 = 0.1 >= 0, so AES = 1 * 0.3 + 3 * 0.1 = 0.60.
    assert math500["short"][header] == "0.60"
    # The baseline against itself: dL = dA = 0, so AES = 0.00 (shown, not "–"; documented in the report).
    assert math500["base"][header] == "0.00"
    assert (math500["short"]["avg@k (%)"], math500["short"]["pass@4 (%)"], math500["short"]["mean len"]) == (
        "33.0",
        "55.0",
        "210.0",
    )
    gsm8k = {r["model"]: r for r in _table_after(md, "## gsm8k")}
    # dL = (100 - 80) / 100 = 0.2; dA = (0.40 - 0.50) / 0.50 = -0.2 < 0, so AES = 0.2 - 5 * 0.2 = -0.80.
    assert (gsm8k["base"][header], gsm8k["short"][header]) == ("0.00", "-0.80")
    aime = {r["model"]: r for r in _table_after(md, "## aime")}
    assert set(aime["base"].values()) == {"base", "–"}  # missing benchmark: a row of dashes
    assert aime["short"]["avg@k (%)"] == "31.0" and aime["short"][header] == "–"  # no baseline to compare with
    assert "the baseline's own AES is 0.00" in md

    plots = tmp_path / "cmp" / "plots"
    assert sorted(p.name for p in plots.iterdir()) == [
        "compare_accuracy_vs_budget_aime.png",
        "compare_accuracy_vs_budget_math500.png",
        "compare_accuracy_vs_length_aime.png",
        "compare_accuracy_vs_length_gsm8k.png",
        "compare_accuracy_vs_length_math500.png",
    ]  # no model has budgets on gsm8k
    for p in plots.iterdir():
        _assert_png(p)
    assert "(plots/compare_accuracy_vs_budget_math500.png)" in md
    assert "compare_accuracy_vs_budget_gsm8k" not in md


def test_comparison_zero_baseline_accuracy_gives_dashes(tmp_path):
    base, other = tmp_path / "base", tmp_path / "other"
    _write_bench(base, _summary("math500", label="base", **{"accuracy.avg@k": 0.0}))
    _write_bench(other, _summary("math500", label="other"))
    md = write_comparison([base, other], tmp_path / "cmp").read_text(encoding="utf-8")
    assert [r["AES vs base"] for r in _table_after(md, "## math500")] == ["–", "–"]


def test_comparison_needs_a_directory(tmp_path):
    with pytest.raises(LenrlError, match="at least one"):
        write_comparison([], tmp_path / "cmp")


# --- load_results ----------------------------------------------------------------------------


def test_load_results_sorted_with_nan(report):
    summaries = load_results(report[0])
    assert [s["benchmark"] for s in summaries] == ["gsm8k", "math500"]
    assert math.isnan(summaries[1]["spans"]["think_mean"])


def test_load_results_empty_directory(tmp_path):
    with pytest.raises(LenrlError, match="no evaluation results") as e:
        load_results(tmp_path)
    assert str(tmp_path) in str(e.value) and "summary.json" in str(e.value)


def test_load_results_missing_directory(tmp_path):
    with pytest.raises(LenrlError, match="does not exist"):
        load_results(tmp_path / "nope")


@pytest.mark.parametrize("text,why", [('{"label": ', "not valid JSON"), ("[1, 2]", "expected a JSON object")])
def test_load_results_bad_summary_names_the_file(one_model, text, why):
    path = one_model / "math500" / "summary.json"
    path.write_text(text)
    with pytest.raises(LenrlError) as e:
        load_results(one_model)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and why in msg and "\n" not in msg


def test_importing_report_does_not_import_matplotlib():
    code = "import sys, lenrl.eval.report; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)

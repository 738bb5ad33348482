"""load_problems over the offline benchmark copies, Parquet, the built-in task, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lenrl.data.loaders import extract_gsm8k_answer, load_problems
from lenrl.errors import LenrlError

# The shared data folder beside the repo root; read in place, never copied into the repo.
DATA = (Path(__file__).resolve().parents[2] / "../shared/data").resolve()

ROWS = {
    "math500": 500,
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "gsm8k_test": 1319,
    "gsm8k_train": 7473,
    "math_train": 11998,
}  # from DATA/README.md


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(ROWS))
def test_shared_files_row_counts(name):
    problems = load_problems(str(DATA / f"{name}.jsonl"))
    assert len(problems) == ROWS[name]
    assert len({p.id for p in problems}) == len(problems)  # ids come from the `id` column
    assert all(p.question and p.answer for p in problems)
    assert "id" not in problems[0].meta and "problem" not in problems[0].meta


def test_gsm8k_answers_are_plain_numbers():
    problems = load_problems(str(DATA / "gsm8k_test.jsonl"))
    assert all(p.answer.lstrip("-").isdigit() for p in problems)
    assert problems[0].id == "gsm8k_test_0000" and "####" in problems[0].meta["solution"]


def test_gsm8k_full_solution_as_answer_field():
    # Pointing the answer field at the worked solution gives the number after the last ####.
    by_solution = load_problems(str(DATA / "gsm8k_test.jsonl"), answer_field="solution", limit=200)
    by_answer = load_problems(str(DATA / "gsm8k_test.jsonl"), limit=200)
    assert [p.answer for p in by_solution] == [p.answer for p in by_answer]
    assert extract_gsm8k_answer("so 2 + 3 = 5\n#### 1,234") == "1234"
    assert extract_gsm8k_answer("(1, 2)") == "(1, 2)"  # commas kept outside GSM8K answers


def test_limit_and_amc_float_answers():
    assert [p.id for p in load_problems(str(DATA / "aime24.jsonl"), limit=3)] == [
        "aime_2024_I_01",
        "aime_2024_I_02",
        "aime_2024_I_03",
    ]
    assert load_problems(str(DATA / "amc23.jsonl"), limit=1)[0].answer == "27"
    with pytest.raises(LenrlError, match="limit"):
        load_problems(str(DATA / "aime24.jsonl"), limit=0)


def test_numbers_ids_meta_and_blank_lines(tmp_path):
    path = write_jsonl(
        tmp_path / "mine.jsonl",
        [
            json.dumps({"q": "1+1?", "a": 2, "level": 1}),
            "",
            "   ",
            json.dumps({"q": "half?", "a": 0.5, "id": 7}),
        ],
    )
    a, b = load_problems(str(path), question_field="q", answer_field="a")
    assert (a.id, a.answer, a.meta) == ("mine.jsonl:1", "2", {"level": 1})
    assert (b.id, b.answer, b.meta) == ("7", "0.5", {})


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (DATA / "math500.jsonl").read_text(encoding="utf-8").splitlines()[:5]]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    problems = load_problems(str(tmp_path / "m.parquet"))
    assert [p.id for p in problems] == [r["id"] for r in rows]
    assert [p.answer for p in problems] == [r["answer"] for r in rows]
    assert problems[0].meta["level"] == rows[0]["level"]

    pq.write_table(pa.Table.from_pylist([{"problem": "x", "ans": 1}]), tmp_path / "bad.parquet")
    msg = r"bad\.parquet: row 0: missing field 'answer' \(fields present: ans, problem\)"
    with pytest.raises(LenrlError, match=msg):
        load_problems(str(tmp_path / "bad.parquet"))
    pq.write_table(pa.Table.from_pylist([{"problem": "x", "answer": 1}]), tmp_path / "ok.parquet")
    assert load_problems(str(tmp_path / "ok.parquet"))[0].id == "ok.parquet:0"


def test_malformed_json_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [json.dumps({"problem": "p", "answer": "1"}), '{"problem": "p",'])
    with pytest.raises(LenrlError) as e:
        load_problems(str(path))
    assert f"{path}:2: invalid JSON" in str(e.value) and "\n" not in str(e.value)


def test_non_utf8_line_is_named_and_a_bom_is_skipped(tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = json.dumps({"problem": "p", "answer": "1"}).encode()
    path.write_bytes(good + b"\n" + '{"problem": "caf\xe9", "answer": "2"}\n'.encode("latin-1"))
    with pytest.raises(LenrlError) as e:
        load_problems(str(path))
    assert str(e.value) == f"{path}:2: not valid UTF-8 (byte 0xe9 at column 17)"
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + good + b"\n")
    assert [(p.question, p.answer) for p in load_problems(str(bom))] == [("p", "1")]


def test_missing_field(tmp_path):
    path = write_jsonl(
        tmp_path / "f.jsonl",
        [json.dumps({"problem": "p", "answer": "1"}), json.dumps({"question": "p", "answer": "1"})],
    )
    msg = r"f\.jsonl:2: missing field 'problem' \(fields present: answer, question\)"
    with pytest.raises(LenrlError, match=msg):
        load_problems(str(path))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(LenrlError, match="not found"):
        load_problems(str(tmp_path / "nope.jsonl"))
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(LenrlError, match="empty"):
        load_problems(str(tmp_path / "empty.jsonl"))
    (tmp_path / "x.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(LenrlError, match="unsupported"):
        load_problems(str(tmp_path / "x.csv"))


def test_arith_source():
    problems = load_problems("arith", limit=5, seed=2, difficulty=2)
    assert [p.id for p in problems][-1] == "arith-d2-s2-000004"
    default = load_problems("arith")
    assert len(default) == 10000 and default[0].id == "arith-d0-s0-000000"  # DEFAULT_DIFFICULTY


def test_unloadable_hf_dataset(monkeypatch):
    # No network here; offline mode makes the failure immediate instead of after retries. datasets
    # reads the variable at import, so patch its config too in case another test imported it already.
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(LenrlError, match="could not load dataset 'no-such-org/no-such-set'") as e:
        load_problems("no-such-org/no-such-set", split="test")
    assert "\n" not in str(e.value)

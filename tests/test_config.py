import dataclasses
import inspect
import sys
from pathlib import Path

import pytest
import yaml

from lenrl.axes import AXES, specs_at
from lenrl.config import CONFIG_DIR, Config, available_algos, load_config
from lenrl.config_checks import load_checked_config
from lenrl.errors import LenrlError
from lenrl.yaml_tree import build_dataclass, read_yaml

REPO = Path(__file__).resolve().parents[1]
LEAF_BUDGET = 80  # docs/design.md §4.4: raise on purpose, not by drift


def _leaves(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict) and k != "params" and set(v) != {"name", "params"}:
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield prefix + k


def _effective(cfg: Config) -> dict:
    """cfg as a dict, each registry spec's params completed with its function's keyword defaults."""
    cfg = cfg if cfg.algo_name == "grpo" else dataclasses.replace(cfg, algo_name="grpo")
    d = cfg.to_dict()
    for axis in AXES:
        for where, spec in specs_at(cfg, axis.path):
            reg = next(a.registry() for a in AXES if a.path == axis.path and spec.name in a.registry().names())
            defaults = {
                p.name: p.default
                for p in inspect.signature(reg.get(spec.name)).parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.default is not p.empty and p.name not in reg.runtime
            }
            node = d
            for part in where.replace("[", ".").replace("]", "").split("."):
                node = node[int(part)] if part.isdigit() else node[part]
            node["params"] = {**defaults, **spec.params}
    return d


def test_every_preset_loads_and_binds():
    assert "grpo" in available_algos()
    for algo in available_algos():
        cfg = load_checked_config(algo)
        assert isinstance(cfg, Config) and cfg.algo_name == algo


def test_base_yaml_is_the_dataclass_defaults_field_by_field():
    """One source: base.yaml must state every field of the schema, each with the dataclass default, and
    registry parameters it spells out must be the registered function's own defaults."""
    base = read_yaml(CONFIG_DIR / "base.yaml")
    assert len(list(_leaves(base))) <= LEAF_BUDGET
    defaults = Config()
    assert set(_leaves(base)) == set(_leaves(defaults.to_dict())) - {"algo_name"}
    assert "model.thinking" in set(_leaves(base)) and "grader" in set(_leaves(base))
    from_yaml = build_dataclass(Config, {**base, "algo_name": "grpo"}, "")
    assert _effective(from_yaml) == _effective(defaults)


def test_config_module_imports_only_the_errors_and_yaml_modules():
    """config.py is the schema and loader: no lenrl import but lenrl.errors and the generic YAML reader (no
    cycle with the checks)."""
    import ast

    tree = ast.parse((REPO / "lenrl" / "config.py").read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in mods if m and m.startswith("lenrl")} == {"lenrl.errors", "lenrl.yaml_tree"}
    import subprocess

    code = "import sys, lenrl.config; print(sorted(m for m in sys.modules if m.startswith('lenrl')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['lenrl', 'lenrl.config', 'lenrl.errors', 'lenrl.yaml_tree']"


def test_budget_at_lives_with_the_schedules():
    from lenrl.algos.budgets import BUDGET_SCHEDULES, budget_at

    cfg = load_checked_config("curriculum", None, ["train.steps=8", "rollout.max_tokens=256"])
    schedule = BUDGET_SCHEDULES.bind(cfg.rollout.budget.name, cfg.rollout.budget.params)
    assert budget_at(cfg, schedule, 1) == 256  # step 1 is the schedule's t = 0, the first stage


def test_overrides_are_typed(tmp_path):
    cfg = load_config("grpo", None, ["train.steps=3", "train.lr=1e-4", "data.limit=5", "rewards.0.weight=2"])
    assert cfg.train.steps == 3 and cfg.train.lr == 1e-4 and cfg.data.limit == 5 and cfg.rewards[0].weight == 2.0
    exp = tmp_path / "exp.yaml"
    exp.write_text("train: {steps: 7, lr: 3e-5}\nrollout: {n: 2}\n")  # YAML 1.2 float: 3e-5 without a dot
    cfg = load_config("grpo", str(exp), ["rollout.n=3"])
    assert (cfg.train.steps, cfg.rollout.n, cfg.train.lr) == (7, 3, 3e-5)


def test_loader_reads_yaml_1_2_floats_in_registry_params():
    cfg = load_checked_config("l1", None, ["rewards.1.params.alpha=5e-4"])
    assert cfg.rewards[1].params["alpha"] == 5e-4 and isinstance(cfg.rewards[1].params["alpha"], float)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.bogus=1", "config train.bogus: unknown key"),
        ("bogus.x=1", "config bogus: unknown key"),
        ("train.steps=1.5", "config train.steps: expected int"),
        ("train.steps=true", "config train.steps: expected int"),
        ("train.lr=true", "config train.lr: expected float"),
        ("model.dtype=int8", "config model.dtype"),
        ("rollout.top_p=1.5", "config rollout.top_p"),
        ("rollout.max_tokens=0", "config rollout.max_tokens: must be > 0"),
        ("rollout.max_tokens=4096", "config rollout.max_model_len"),
        ("train.mini_batches=3", "config train.mini_batches"),
        ("algo.kl_coef=-1", "config algo.kl_coef"),
        # non-finite numbers, in the schema and in registry parameters
        ("train.lr=.inf", "config train.lr: must be a finite number, got inf"),
        ("algo.kl_coef=.nan", "config algo.kl_coef: must be a finite number, got nan"),
        ("rewards.0.weight=-.inf", "config rewards[0].weight: must be a finite number"),
        ("train.lr=inf", "config train.lr: expected float, got 'inf' (str)"),
        ("algo.loss.params.clip_high=.inf", "'ppo_clip' at algo.loss: parameter 'clip_high' must be finite"),
        ("algo.advantage.params.eps=.nan", "parameter 'eps' must be finite, got nan"),
        # a string where a number is needed in registry parameters
        ("algo.loss.params.clip_low=abc", "parameter 'clip_low' expects float, got 'abc' (str)"),
        ("rollout.budget.name=step_decay", "needs parameter 'gamma'"),
        ("algo.advantage.params.eps=[1]", "parameter 'eps' expects float, got [1] (list)"),
        # group-relative methods need groups of two or more
        ("rollout.n=1", "config rollout.n: the advantage 'grpo' at algo.advantage compares the responses"),
        # an override that walks into a scalar
        ("train.steps.value=3", "override 'train.steps.value': train.steps is a value (20), not a section"),
        ("rewards.0.params={a: 1, a: 2}", "override 'rewards.0.params': duplicate key 'a'"),
        ("algo.loss.name=nope", "unknown policy loss or group loss 'nope' at algo.loss; available: drpo, ppo_clip"),
        ("algo.aggregation.params.num_tokens=3", "has no parameter 'num_tokens'"),
        ("rewards.0.params.nope=1", "reward 'math_correct' at rewards[0] has no parameter 'nope'"),
        ("rewards.0.name=nope", "config rewards[0].name: unknown reward 'nope'"),
        ("rewards.5.weight=1", "not an index"),
        ("algo.loss.params.clip_high=1.5", "config algo.loss: ppo_clip: clip_low and clip_high must be in (0, 1]"),
        ("algo.loss.params.clip_low=0", "must be in (0, 1]"),
        ("algo.loss.params.dual_clip=0.5", "dual_clip must be > 1"),
        ("algo.advantage.params.eps=-1", "config algo.advantage: grpo: eps must be >= 0"),
        ("algo.filter.name=nope", "unknown group filter 'nope'"),
        ("rollout.budget.name=exponential", "needs parameter 'end'"),
        ("rewards.0.gate=sometimes", "config rewards[].gate"),
        # the grader axis: name, parameter names and values at load
        ("grader.name=nope", "config grader.name: unknown grader 'nope'; available: math"),
        ("grader.params.fallback=last_numbr", "config grader: math: unknown fallback 'last_numbr'"),
        ("grader.params.nope=1", "grader 'math' at grader has no parameter 'nope'"),
    ],
)
def test_bad_values_fail_at_load(override, message):
    with pytest.raises(LenrlError) as e:
        load_checked_config("grpo", None, [override])
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "algo, override, message",
    [  # reward parameter VALUES, probed on a toy group at load
        ("dapo", "rewards.1.params.length_on=thnk", "config rewards[1]: overlong: length_on must be one of"),
        ("dapo", "rewards.1.params.buffer=400", "config rewards[1]: overlong: buffer (400) exceeds"),
        ("l1", "rewards.1.params.alpha=-1", "config rewards[1]: l1_exact: alpha must be >= 0"),
        ("da_dler", "rewards.2.params.thresholds=[2]", "config rewards[2]: difficulty_truncation"),
        ("grpo_lambda", "rewards.1.groups.params.fraction=2", "config rewards[1].groups: top_fraction"),
        ("grpo_lambda", "rollout.n=1", "config rollout.n"),
        ("dapo", "rewards.1.params.buffer=16.5", "parameter 'buffer' expects int, got 16.5 (float)"),
        ("dr_grpo", "algo.aggregation.params.norm_len=x", "parameter 'norm_len' expects int | None, got 'x' (str)"),
        ("curriculum", "rollout.budget.params.end=0", "config rollout.budget: exponential budget: end must be > 0"),
    ],
)
def test_reward_and_preset_values_fail_at_load(algo, override, message):
    with pytest.raises(LenrlError) as e:
        load_checked_config(algo, None, [override])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_group_loss_needs_groups_of_two(tmp_path):
    """DRPO's loss (a group axis) with n=1 is refused even under an advantage that has no groups to compare."""
    with pytest.raises(LenrlError, match=r"config rollout.n: .* needs rollout.n >= 2, got 1"):
        load_checked_config("drpo", None, ["rollout.n=1", "train.micro_batch_size=1"])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"train:\n  steps: 2\n  lr: 1.0e-5\n  steps: 3\n", "exp.yaml:4: duplicate key 'steps'"),
        (b"rollout: {n: 2, n: 3}\n", "exp.yaml:1: duplicate key 'n'"),
        (b"train:\n  steps: 2\n# caf\xe9\n", "exp.yaml:3: not valid UTF-8 (byte 0xe9)"),
        (b"train: [1, 2\n", "exp.yaml: invalid YAML"),
        (b"- 1\n", "exp.yaml: top level must be a mapping"),
    ],
)
def test_bad_experiment_files(tmp_path, content, message):
    exp = tmp_path / "exp.yaml"
    exp.write_bytes(content)
    with pytest.raises(LenrlError) as e:
        load_config("grpo", str(exp))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_config_file_that_is_a_directory(tmp_path):
    with pytest.raises(LenrlError, match=f"config file {tmp_path} is not a file"):
        load_config("grpo", str(tmp_path))


def test_reward_file_that_fails_at_import_is_one_line(tmp_path):
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def f(x:\n    pass\n")
    raises = tmp_path / "raises.py"
    raises.write_text("import math\n\nVALUE = 1 / 0\n")
    for path, fragment in ((syntax, "SyntaxError"), (raises, f"({raises}:3): ZeroDivisionError: division by zero")):
        with pytest.raises(LenrlError) as e:
            load_checked_config("grpo", None, [f"rewards.0.name={path}:f"])
        assert str(e.value).startswith(f"config rewards[0].name: cannot load reward '{path}:f'"), e.value
        assert fragment in str(e.value) and "\n" not in str(e.value)


def test_probe_input_tolerates_plugins_that_read_other_columns(tmp_path):
    """A user reward may read dataset columns the toy batch lacks: that is left to the run, not refused."""
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "def needs_column(prompts, completions, **kw):\n    return [float(s) for s in kw['solution']]\n"
        "def bad_value(prompts, completions, *, scale: float = 1.0, **kw):\n"
        "    if scale <= 0:\n        raise ValueError(f'scale must be > 0, got {scale}')\n"
        "    return [scale] * len(completions)\n"
    )
    load_checked_config("grpo", None, [f"rewards.0.name={plugin}:needs_column"])
    with pytest.raises(LenrlError, match=r"^config rewards\[0\]: scale must be > 0, got -1$"):
        load_checked_config("grpo", None, [f"rewards.0.name={plugin}:bad_value", "rewards.0.params.scale=-1"])


def test_axes_table_drives_the_catalog():
    from lenrl.catalog import markdown

    text = markdown()
    for axis in AXES:
        assert f"| {axis.label} | `" in text, axis.label
    assert "| grader | `math` |" in text


def test_unknown_algo_lists_available():
    with pytest.raises(LenrlError, match="unknown algorithm 'x'; available: .*grpo"):
        load_config("x")


def test_base_yaml_parses_the_same_with_the_plain_loader():
    """The strict loader changes no value of base.yaml (it only refuses duplicates and reads 1e-6 as float)."""
    text = (CONFIG_DIR / "base.yaml").read_text()
    assert read_yaml(CONFIG_DIR / "base.yaml") == yaml.safe_load(text)


def test_resume_without_a_run_dir_leaves_the_next_override_alone():
    from lenrl.train import parse_args

    args = parse_args(["output.dir=/a", "--algo", "palu", "--resume", "output.dir=s3://b/runs", "train.steps=8"])
    assert args.overrides == ["output.dir=/a", "output.dir=s3://b/runs", "train.steps=8", "train.resume=auto"]
    assert parse_args(["--resume", "s3://b/runs/x"]).overrides == ["train.resume=s3://b/runs/x"]
    assert parse_args(["--resume", "runs/a=b"]).overrides == ["train.resume=runs/a=b"]  # a path, not a key
    assert parse_args(["train.steps=2", "--resume"]).overrides == ["train.steps=2", "train.resume=auto"]

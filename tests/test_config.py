import pytest
import yaml

from lenrl.config import CONFIG_DIR, Config, available_algos, load_config
from lenrl.errors import LenrlError

LEAF_BUDGET = 80  # design.md 4.4: raise on purpose, not by drift


def _leaves(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict) and k != "params":
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield prefix + k


def test_every_preset_loads_and_binds():
    assert "grpo" in available_algos()
    for algo in available_algos():
        cfg = load_config(algo)
        assert isinstance(cfg, Config) and cfg.algo_name == algo


def test_base_yaml_matches_dataclass_defaults_and_leaf_budget():
    base = yaml.safe_load((CONFIG_DIR / "base.yaml").read_text())
    assert len(list(_leaves(base))) <= LEAF_BUDGET
    # every field documented in base.yaml has the dataclass default (one source of truth for readers)
    d = Config().to_dict()
    for section in ("model", "data", "rollout", "train", "ray", "output"):
        assert base[section] == d[section], section


def test_overrides_are_typed(tmp_path):
    cfg = load_config("grpo", None, ["train.steps=3", "train.lr=1e-4", "data.limit=5", "rewards.0.weight=2"])
    assert cfg.train.steps == 3 and cfg.train.lr == 1e-4 and cfg.data.limit == 5 and cfg.rewards[0].weight == 2.0
    exp = tmp_path / "exp.yaml"
    exp.write_text("train: {steps: 7}\nrollout: {n: 2}\n")
    cfg = load_config("grpo", str(exp), ["rollout.n=3"])
    assert (cfg.train.steps, cfg.rollout.n) == (7, 3)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.bogus=1", "config train.bogus: unknown key"),
        ("bogus.x=1", "config bogus: unknown key"),
        ("train.steps=1.5", "config train.steps: expected int"),
        ("train.steps=true", "config train.steps: expected int"),
        ("model.dtype=int8", "config model.dtype"),
        ("rollout.top_p=1.5", "config rollout.top_p"),
        ("rollout.max_tokens=0", "config rollout.max_tokens: must be > 0"),
        ("rollout.max_tokens=4096", "config rollout.max_model_len"),
        ("train.mini_batches=3", "config train.mini_batches"),
        ("algo.kl_coef=-1", "config algo.kl_coef"),
        ("algo.loss.name=nope", "unknown policy loss 'nope'"),
        ("algo.aggregation.params.num_tokens=3", "has no parameter 'num_tokens'"),
        ("rewards.0.params.fallback=x", None),  # accepted at load (a str), rejected by the reward at call
        ("rewards.0.params.nope=1", "reward 'math_correct' at rewards[0] has no parameter 'nope'"),
        ("rewards.0.name=nope", "rewards[0].name"),
        ("rewards.5.weight=1", "not an index"),
        ("algo.loss.params.clip_high=1.5", "config algo.loss: ppo_clip: clip_low and clip_high must be in (0, 1]"),
        ("algo.loss.params.clip_low=0", "must be in (0, 1]"),
        ("algo.loss.params.dual_clip=0.5", "dual_clip must be > 1"),
        ("algo.advantage.params.eps=-1", "config algo.advantage: grpo: eps must be >= 0"),
        ("algo.filter.name=nope", "unknown group filter 'nope'"),
        ("rollout.budget.name=exponential", "needs parameter 'end'"),
        ("rewards.0.gate=sometimes", "config rewards[].gate"),
    ],
)
def test_bad_values_fail_at_load(override, message):
    if message is None:
        load_config("grpo", None, [override])
        return
    with pytest.raises(LenrlError, match=None) as e:
        load_config("grpo", None, [override])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_algo_lists_available():
    with pytest.raises(LenrlError, match="unknown algorithm 'x'; available: .*grpo"):
        load_config("x")

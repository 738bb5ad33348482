"""launch/: shell syntax, what the scripts run, the KubeRay manifest, and what a `--working-dir .` upload holds.

Nothing here starts Ray or Slurm: the scripts run against stand-in `ray`, `srun`, `scontrol` and `python`
commands that record how they were called, and the upload is built by Ray's own packaging code (the path
`ray job submit` takes, minus the HTTP request)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch"
SCRIPTS = sorted(LAUNCH.glob("*.sh"))

# One stand-in for every command: it logs its name, arguments, pid and RAY_ADDRESS as a JSON line, then acts
# just enough like the real one for the scripts to go on. Lines with an "event" record what happened later.
STUB = textwrap.dedent(
    """\
    import json, os, signal, sys, time
    prog, argv = os.path.basename(sys.argv[0]), sys.argv[1:]
    def log(**entry):
        with open(os.environ["STUB_LOG"], "a") as f:
            f.write(json.dumps({"prog": prog, "pid": os.getpid(), **entry}) + "\\n")
    def run_until_sigterm(event, rc, linger=0.0):
        def on_term(*_):
            log(event=event)
            time.sleep(linger)  # a second SIGTERM meanwhile is logged too
            sys.exit(rc)
        signal.signal(signal.SIGTERM, on_term)
        time.sleep(60)
    def entries():
        with open(os.environ["STUB_LOG"]) as f:
            return [json.loads(line) for line in f]
    log(argv=argv, RAY_ADDRESS=os.environ.get("RAY_ADDRESS"))
    rc = int(os.environ.get("STUB_RC", "0"))
    if prog == "scontrol":
        print("\\n".join(os.environ["STUB_NODES"].split(",")))
    elif prog == "srun" and "hostname" in argv:
        print("10.1.2.3 10.9.9.9")
    elif prog == "srun" and "start" in argv:
        # `ray start --block`: runs until the script stops it; off the captured pipes, so a step the script
        # forgot to stop fails assert_stopped at once instead of holding the test until the sleep ends
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # `scancel --batch` signals the batch step, not srun steps
        run_until_sigterm("ray stopped", 0)
    elif prog == "python" and argv[:1] == ["-c"]:
        # the node count: the first check follows the head's `ray start`, later ones the workers' too; like
        # ray.init, wait until those have run (their stand-ins logged), so the test cannot race the script
        first = [e.get("argv", [""])[:1] for e in entries()].count(["-c"]) == 1
        for _ in range(250):
            if sum(e["prog"] == "srun" and "start" in e.get("argv", []) for e in entries()) >= (1 if first else 2):
                break
            time.sleep(0.02)
        print("Connecting...\\n" + ("1" if first else os.environ["STUB_ALIVE"]))  # the count is the last line
    elif prog == "python" and argv[:1] == ["lenrl/train.py"] and os.environ.get("STUB_DRIVER_WAITS"):
        log(event="driver started")
        run_until_sigterm("driver got SIGTERM", rc, linger=0.5)  # lenrl checkpoints, then exits
    elif (prog == "ray" and argv[:2] == ["job", "submit"]) or (prog == "python" and argv[:1] == ["lenrl/train.py"]):
        sys.exit(rc)
    """
)


def make_stubs(tmp_path: Path, names: list[str]) -> dict[str, str]:
    """A PATH with stand-ins for `names` in front, and the environment the scripts run under."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in names:
        (bin_dir / name).write_text(f"#!{sys.executable}\n{STUB}")
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LENRL_", "RAY_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", STUB_LOG=str(tmp_path / "calls.jsonl"))
    return env


def run(script: str, args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    proc = subprocess.run(
        ["bash", str(LAUNCH / script), *args], env=env, capture_output=True, text=True, timeout=60, cwd="/"
    )
    return proc, [e for e in log_entries(env) if "event" not in e]


def log_entries(env: dict[str, str]) -> list[dict]:
    log = Path(env["STUB_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def rayignore_patterns() -> list[str]:
    lines = (line.strip() for line in (REPO / ".rayignore").read_text().splitlines())
    return [p for p in lines if p and not p.startswith("#")]


# ---------------------------------------------------------------- shell syntax


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script):
    proc = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_sbatch_header_precedes_the_first_command():
    # sbatch stops reading #SBATCH lines at the first line that is not a comment or blank
    lines = (LAUNCH / "slurm.sh").read_text().splitlines()
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    sbatch = [i for i, line in enumerate(lines) if line.startswith("#SBATCH")]
    assert sbatch and max(sbatch) < first_command
    assert any("--output=lenrl-slurm-" in lines[i] for i in sbatch)  # the name .rayignore leaves out


# ---------------------------------------------------------------- submit.sh / local.sh


def test_submit_passes_rayignore_as_excludes_and_arguments_to_train(tmp_path):
    env = make_stubs(tmp_path, ["ray"]) | {"RAY_ADDRESS": "http://head:8265"}
    proc, calls = run("submit.sh", ["--algo", "dler", "output.dir=/shared/runs", "train.steps=1"], env)
    assert proc.returncode == 0, proc.stderr
    (call,) = calls
    argv = call["argv"]
    assert argv[:4] == ["job", "submit", "--working-dir", "."]
    runtime_env = json.loads(argv[argv.index("--runtime-env-json") + 1])
    assert runtime_env == {"excludes": rayignore_patterns(), "env_vars": {"LENRL_SUBMIT_DIR": str(REPO)}}
    assert argv[argv.index("--") :] == ["--", "python", "lenrl/train.py", "--algo", "dler"] + [
        "output.dir=/shared/runs",
        "train.steps=1",
    ]
    # a relative output.dir is the driver's to resolve against $LENRL_SUBMIT_DIR (lenrl/trainer/rundir.py)


@pytest.mark.parametrize("rc", [0, 5])
def test_local_submits_through_submit_sh_and_always_stops_ray(tmp_path, rc):
    env = make_stubs(tmp_path, ["ray"]) | {"STUB_RC": str(rc)}
    proc, calls = run("local.sh", ["--algo", "grpo", "train.steps=2"], env)
    assert proc.returncode == rc
    assert [c["argv"][:2] for c in calls] == [["start", "--head"], ["job", "submit"], ["stop"]]
    submit = calls[1]
    assert submit["RAY_ADDRESS"] == "http://127.0.0.1:8265"
    assert "--runtime-env-json" in submit["argv"]
    tail = submit["argv"][submit["argv"].index("--") :]
    assert tail == ["--", "python", "lenrl/train.py", "--algo", "grpo", "train.steps=2"]


# ---------------------------------------------------------------- slurm.sh


def slurm_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = make_stubs(tmp_path, ["scontrol", "srun", "python"])
    env.update(SLURM_JOB_NODELIST="n[1-3]", SLURM_SUBMIT_DIR=str(REPO), SLURM_CPUS_PER_TASK="4")
    env.update(SLURM_GPUS_PER_NODE="h100:2", STUB_NODES="n1,n2,n3", STUB_ALIVE="3")
    return env | extra


def assert_stopped(calls: list[dict]) -> None:
    for c in calls:
        if c["prog"] == "srun" and "start" in c["argv"]:
            with pytest.raises(ProcessLookupError):
                os.kill(c["pid"], 0)


@pytest.mark.parametrize("rc", [0, 3])
def test_slurm_starts_head_then_workers_then_the_driver(tmp_path, rc):
    proc, calls = run("slurm.sh", ["--algo", "dler", "train.steps=1"], slurm_env(tmp_path, STUB_RC=str(rc)))
    assert proc.returncode == rc, proc.stderr
    starts = [c["argv"] for c in calls if c["prog"] == "srun" and "start" in c["argv"]]
    head, workers = starts
    assert head[:3] == ["--nodes=1", "--ntasks=1", "-w"] and head[3] == "n1"
    assert {"--cpus-per-task=4", "--gpus-per-node=h100:2", "--head", "--node-ip-address=10.1.2.3"} <= set(head)
    assert {"--port=6379", "--num-cpus=4", "--num-gpus=2", "--block"} <= set(head)
    assert {"--nodes=2", "--ntasks=2", "--exclude=n1", "--address=10.1.2.3:6379", "--num-gpus=2"} <= set(workers)
    driver = calls[-1]
    assert driver["prog"] == "python" and driver["RAY_ADDRESS"] == "10.1.2.3:6379"
    assert driver["argv"] == ["lenrl/train.py", f"output.dir={REPO}/runs", "--algo", "dler", "train.steps=1"]
    # the head's address came from the head node, before any Ray step took its CPUs
    assert calls[1]["prog"] == "srun" and "hostname" in calls[1]["argv"] and "n1" in calls[1]["argv"]
    assert_stopped(calls)


def test_slurm_refuses_a_relative_output_dir_before_allocating_anything(tmp_path):
    proc, calls = run("slurm.sh", ["--algo", "dler", "output.dir=runs"], slurm_env(tmp_path))
    assert proc.returncode == 2
    assert "output.dir=runs is relative" in proc.stderr
    assert not calls


@pytest.mark.parametrize("out", ["/shared/r", "s3://bucket/runs"])
def test_slurm_keeps_the_users_output_dir(tmp_path, out):
    _, calls = run("slurm.sh", [f"output.dir={out}", "--algo", "dler"], slurm_env(tmp_path))
    assert calls[-1]["argv"] == ["lenrl/train.py", f"output.dir={out}", "--algo", "dler"]


@pytest.mark.parametrize("children_too", [False, True], ids=["shell only", "shell and children"])
def test_slurm_usr1_gives_the_driver_one_sigterm_and_stops_ray_after_it(tmp_path, children_too):
    # --signal=B:USR1@300 and `scancel --batch --signal=USR1` signal the batch shell; some Slurm versions
    # signal its child processes too, and the driver must then still see a single SIGTERM
    env = slurm_env(tmp_path, STUB_DRIVER_WAITS="1", STUB_RC="143")
    argv = ["bash", str(LAUNCH / "slurm.sh"), "--algo", "dler"]
    proc = subprocess.Popen(argv, env=env, cwd="/", text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not any(e.get("event") == "driver started" for e in log_entries(env)):
            assert proc.poll() is None and time.monotonic() < deadline, "the driver never started"
            time.sleep(0.05)
        if children_too:
            os.killpg(proc.pid, signal.SIGUSR1)
        else:
            proc.send_signal(signal.SIGUSR1)
        assert proc.wait(timeout=30) == 143  # 128 + SIGTERM, as lenrl exits when SIGTERM stops it
    finally:
        proc.kill()
    events = [e["event"] for e in log_entries(env) if "event" in e]
    assert events == ["driver started", "driver got SIGTERM", "ray stopped", "ray stopped"]


def test_slurm_gives_up_when_nodes_do_not_join_and_stops_ray(tmp_path):
    env = slurm_env(tmp_path, STUB_ALIVE="1", LENRL_RAY_WAIT_S="0")
    proc, calls = run("slurm.sh", ["--algo", "dler"], env)
    assert proc.returncode == 2
    assert "only 1 of 3 Ray nodes alive at 10.1.2.3:6379" in proc.stderr
    assert not any(c["argv"][:1] == ["lenrl/train.py"] for c in calls)
    assert_stopped(calls)


# ---------------------------------------------------------------- the --working-dir upload

SOURCES = ["lenrl/train.py", "configs/base.yaml", "launch/submit.sh", "README.md"]
JUNK = [
    "runs/dler-1/checkpoint/model.safetensors",
    ".git/HEAD",
    ".venv/bin/python",
    "venv/lib/site.py",
    "lenrl/__pycache__/train.cpython-311.pyc",
    "lenrl/stale.pyc",
    ".pytest_cache/v/cache/lastfailed",
    ".ruff_cache/0.15/x",
    ".mypy_cache/3.11/x.json",
    ".hypothesis/examples/x",
    ".benchmarks/x.json",
    ".cache/x",
    "lenrl.egg-info/PKG-INFO",
    "build/lib/lenrl/x.py",
    "dist/lenrl-0.1.0.whl",
    ".whl/x.whl",
    ".gl/x",
    "lenrl-slurm-123.out",
]


def make_checkout(root: Path, ignore_files: bool) -> set[str]:
    """A small copy of the checkout plus one file in every place the upload must skip; returns what it must keep."""
    keep = set(SOURCES)
    for rel in SOURCES + (([".gitignore", ".rayignore"]) if ignore_files else []):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, root / rel)
        keep.add(rel)
    for rel in JUNK:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x" * 64)
    return keep


def upload(root: Path, runtime_env_json: str, include_gitignore: bool, out: Path) -> tuple[str, set[str]]:
    """What `ray job submit --working-dir ROOT --runtime-env-json JSON` would upload: (package URI, members)."""
    from ray._private.runtime_env.packaging import create_package
    from ray._private.runtime_env.working_dir import upload_working_dir_if_needed
    from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args

    runtime_env = parse_runtime_env_args(runtime_env_json=runtime_env_json, working_dir=str(root))

    def build(working_dir: str, excludes: list[str], is_file: bool = False) -> None:
        create_package(working_dir, out, include_gitignore=include_gitignore, excludes=excludes)

    uri = upload_working_dir_if_needed(runtime_env, include_gitignore=include_gitignore, upload_fn=build)
    with zipfile.ZipFile(out) as z:
        members = {n for n in z.namelist() if not n.endswith("/")}
    out.unlink()
    return uri["working_dir"], members


@pytest.fixture
def submitted_runtime_env(tmp_path) -> str:
    """The --runtime-env-json that launch/submit.sh actually passes."""
    env = make_stubs(tmp_path, ["ray"]) | {"RAY_ADDRESS": "http://head:8265"}
    _, (call,) = run("submit.sh", ["output.dir=/x"], env)
    return call["argv"][call["argv"].index("--runtime-env-json") + 1]


@pytest.mark.parametrize(
    "case",
    [
        "installed ray",  # .gitignore, .rayignore and Ray's default excludes all apply
        "gitignore off",  # RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1
        "excludes only",  # a Ray that reads neither ignore file and has no default excludes
    ],
)
def test_upload_holds_the_sources_and_nothing_else(tmp_path, monkeypatch, submitted_runtime_env, case):
    root = tmp_path / "checkout"
    keep = make_checkout(root, ignore_files=case != "excludes only")
    if case == "excludes only":
        monkeypatch.setenv("RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES", "")
    _, members = upload(root, submitted_runtime_env, case == "installed ray", tmp_path / "pkg.zip")
    assert members == keep


def test_upload_uri_ignores_runs_but_follows_sources(tmp_path, submitted_runtime_env):
    # the URI is a hash of what is uploaded: a new checkpoint must not force a new upload, an edit must
    root = tmp_path / "checkout"
    make_checkout(root, ignore_files=True)
    first, _ = upload(root, submitted_runtime_env, True, tmp_path / "pkg.zip")
    (root / "runs/dler-2").mkdir()
    (root / "runs/dler-2/metrics.jsonl").write_text("{}\n")
    assert upload(root, submitted_runtime_env, True, tmp_path / "pkg.zip")[0] == first
    (root / "lenrl/train.py").write_text("# edited\n")
    assert upload(root, submitted_runtime_env, True, tmp_path / "pkg.zip")[0] != first


# ---------------------------------------------------------------- kuberay.yaml

SHELL_SPECIALS = set(";&|<>`$'\"\\(){}*?")


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return yaml.safe_load((LAUNCH / "kuberay.yaml").read_text())


def pods(rayjob: dict) -> list[tuple[str, dict, int]]:
    """(name, pod spec, replicas) for the head and every worker group."""
    cluster = rayjob["spec"]["rayClusterSpec"]
    out = [("head", cluster["headGroupSpec"]["template"]["spec"], 1)]
    for group in cluster["workerGroupSpecs"]:
        out.append((group["groupName"], group["template"]["spec"], group["replicas"]))
    return out


def entrypoint_config(rayjob: dict):
    from lenrl.config_checks import load_checked_config
    from lenrl.train import parse_args

    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv[0] == "python" and argv[1].endswith("/lenrl/train.py"), argv[:2]
    args = parse_args(argv[2:])
    return load_checked_config(args.algo, args.config, args.overrides)  # the checks train.py runs first


def test_rayjob_shape(rayjob):
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert not SHELL_SPECIALS & set(spec["entrypoint"])  # KubeRay's submitter pastes it into a shell line
    assert spec["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert spec["rayClusterSpec"]["workerGroupSpecs"]
    for _, pod, _ in pods(rayjob):
        (container,) = pod["containers"]
        assert container["image"] and container["resources"]["limits"]


def test_rayjob_entrypoint_is_a_valid_dler_run_that_fits_the_workers(rayjob):
    cfg = entrypoint_config(rayjob)
    assert cfg.algo_name == "dler"
    r = cfg.ray
    gpus = cpus = 0.0
    for _, pod, replicas in pods(rayjob)[1:]:
        limits = pod["containers"][0]["resources"]["limits"]
        assert pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == limits["nvidia.com/gpu"]
        gpus += replicas * float(limits["nvidia.com/gpu"])
        cpus += replicas * float(limits["cpu"])
    assert gpus > 0
    assert r.rollout_workers * r.gpus_per_rollout_worker + r.learners * r.gpus_per_learner <= gpus
    assert r.rollout_workers * r.cpus_per_rollout_worker + r.learners * r.cpus_per_learner <= cpus


def shared_path(pod: dict, path: str) -> str | None:
    """The PersistentVolumeClaim behind `path` in this pod's container, or None when it is pod-local."""
    volumes = pod["volumes"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v}
    for mount in pod["containers"][0]["volumeMounts"]:
        if Path(path).is_relative_to(mount["mountPath"]) and mount["name"] in claims:
            return claims[mount["name"]]
    return None


def test_run_directory_and_model_cache_are_on_one_volume_every_pod_mounts(rayjob):
    out_dir = entrypoint_config(rayjob).output.dir
    assert out_dir.startswith("/")
    claims = set()
    for _, pod, _ in pods(rayjob):
        env = {e["name"]: e["value"] for e in pod["containers"][0].get("env", [])}
        claims.add(shared_path(pod, out_dir))
        claims.add(shared_path(pod, env.get("LENRL_CACHE", "/nonexistent")))
    assert None not in claims and len(claims) == 1, claims

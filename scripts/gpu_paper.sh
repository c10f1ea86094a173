#!/usr/bin/env bash
# Paper scale on the lent GPU machine (Python 3.12 with JAX, no TensorFlow, no network).
# Carry gpu-wheels/ (keras, namex, optree wheels) and gpu-data/ISIC2018 (a copy of ../shared/data/ISIC2018);
# outputs go to $OUT. Arguments go to scripts/gpu_paper.py, e.g.
#   scripts/gpu_paper.sh --models frcunet unet attention-unet --minutes 3 1 1   # one call, about 9 minutes
#   scripts/gpu_paper.sh --models unet --minutes 2        # a later call on the same warm machine continues
#   scripts/gpu_paper.sh --smoke --out /tmp/smoke                        # CPU check (the test runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}  # the interpreter to use (the tests pass their own)
# Whether a package is installed, without importing it (importing Keras imports the backend: seconds).
installed() { "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }
if ! installed keras; then
    "$PYTHON" -m pip install --quiet --no-index --no-deps gpu-wheels/*.whl
fi
if ! installed frcunet; then
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-build-isolation -e .
fi
export KERAS_BACKEND=jax
# Each step runs in its own process; JAX would otherwise take 75 % of the GPU in the first and starve the next.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
# Compiling the full model takes minutes on the GPU: keep what each process compiled for the next ones.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$PWD/.cache/jax}
# The first attempt spent 5 of its 10 minutes compiling fit's steps on an H200 (docs/results.md); XLA's
# autotuning of every convolution is the usual cost there, so it is off unless XLA_FLAGS says otherwise.
export XLA_FLAGS=${XLA_FLAGS:---xla_gpu_autotune_level=0}
exec "$PYTHON" scripts/gpu_paper.py "$@"

#!/usr/bin/env bash
# Paper scale on the lent GPU machine (Python 3.12 with JAX, no TensorFlow, no network).
# Carry gpu-wheels/ (keras, namex, optree wheels) and gpu-data/ISIC2018 (a copy of ../shared/data/ISIC2018);
# outputs go to $OUT. Arguments go to scripts/gpu_paper.py, e.g.
#   scripts/gpu_paper.sh --models frcunet --minutes 6                    # first call
#   scripts/gpu_paper.sh --models unet attention-unet --minutes 3        # second call, same warm machine
#   scripts/gpu_paper.sh --smoke --out /tmp/smoke                        # CPU check (the test runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}  # the interpreter to use (the tests pass their own)
if ! "$PYTHON" -c "import keras" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet --no-deps gpu-wheels/*.whl
fi
if ! "$PYTHON" -c "import frcunet" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet --no-deps -e .
fi
export KERAS_BACKEND=jax
exec "$PYTHON" scripts/gpu_paper.py "$@"

"""Time to load a trained model in a fresh process: built as Keras builds it, then loaded, against
`build_model_to_load`, which skips the initializers whose values the loaded weights replace.

    KERAS_BACKEND=jax python benchmarks/load_time.py [--models frcunet-lite frcunet] [--repeats 2]

Each case runs in its own process (a fresh process is where users pay it: `frcunet predict`, `evaluate`,
`export`), alternating the two ways so that a busy machine slows both alike; the baseline is the plain
build. It times building the model at 128x128 plus loading saved weights, not Python's and Keras' import.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import sys, time
import keras
from frcunet.models.registry import build_model, build_model_to_load
name, weights, way = sys.argv[1:4]
start = time.perf_counter()
if way == "plain":
    model = build_model(name, (128, 128, 3))
    model.load_weights(weights)
else:
    model = build_model_to_load(name, (128, 128, 3), lambda m: m.load_weights(weights))
print(time.perf_counter() - start)
"""


def save_weights(name, path):
    """Weights of a freshly built model, saved by a child process so that this one stays Keras-free."""
    code = ("import sys; from frcunet.models.registry import build_model; "
            "build_model(sys.argv[1], (128, 128, 3)).save_weights(sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, name, path], check=True)


def load_seconds(name, weights, way):
    done = subprocess.run([sys.executable, "-c", CHILD, name, weights, way], check=True, capture_output=True,
                          text=True)
    return float(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["frcunet-lite", "frcunet"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    print(f"backend {backend}, 128x128, fresh process per load, median of {args.repeats}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            weights = os.path.join(folder, f"{name}.weights.h5")
            save_weights(name, weights)
            times = {"plain": [], "to_load": []}
            for _ in range(args.repeats):
                for way in times:
                    times[way].append(load_seconds(name, weights, way))
            plain, to_load = statistics.median(times["plain"]), statistics.median(times["to_load"])
            print(f"{name:14s} built then loaded {plain:6.1f} s  build_model_to_load {to_load:6.1f} s  "
                  f"({plain / to_load:.1f}x faster)", flush=True)


if __name__ == "__main__":
    main()

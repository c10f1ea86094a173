"""Paper scale on one GPU: the full FRCU-Net and full-size baselines at 256x256, each for a wall-clock budget.

    KERAS_BACKEND=jax python scripts/gpu_paper.py [--models frcunet] [--minutes 6] [--out $OUT]
    KERAS_BACKEND=jax python scripts/gpu_paper.py --smoke --out /tmp/smoke       # CPU check, about a minute

scripts/gpu_paper.sh installs the carried wheels first and then runs this. Steps, each skipped when its
result is already there (a warm machine keeps data/, weights/ and output/, so a second call continues):
1. prepare ISIC 2018 from the carried JPEG/PNG folder at 256x256, seeded 70/10/20 split;
2. only with --step-speed-models: images/s of a training step on in-memory random batches (one more compile);
3. train each model with the paper's recipe for --minutes of wall clock (mixed precision and XLA by default)
   and evaluate it on the test split;
4. write results.md (the table beside the paper's rows), metrics.json and each model's history.csv to --out.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STARTED = time.perf_counter()
sys.path.insert(0, str(ROOT))  # benchmarks/ is a package at the repository root
PAPER_ROWS = {  # ISIC 2018, the paper's 1815/259/520 split, pooled pixel metrics (../shared/REFERENCE.md)
    "U-Net (paper)": (0.647, 0.708, 0.964, 0.890, 0.779),
    "Attention U-Net (paper)": (0.665, 0.717, 0.967, 0.897, 0.787),
    "FRCU-Net (paper, best released row)": (0.927, 0.915, 0.986, 0.973, None),
}
COLUMNS = ("f1", "se", "sp", "acc", "pc", "js")


def step(what):
    """Announces a step; the elapsed seconds place each step's cost (compilation above all) on the call's clock."""
    print(f"+ [{time.perf_counter() - STARTED:.0f} s] {what}", flush=True)


def frcunet(*args):
    """Runs one `frcunet` command in its own process; stops the script if it fails."""
    step("frcunet " + " ".join(map(str, args)))
    subprocess.run([sys.executable, "-m", "frcunet", *map(str, args)], check=True)


def device_name():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}: {device.device_kind}"
    return keras.backend.backend() + " backend"


def settings(args):
    if args.smoke:
        return dict(size=(64, 64), models=["frcunet-lite"], options={"width": 0.125, "middle_units": 1},
                    train=dict(epochs=1, batch_size=4, precision="float32"), minutes=[0])
    train = dict(batch_size=args.batch, precision=args.precision, epochs=100, jit=args.jit)
    return dict(size=(256, 256), models=args.models, options={}, minutes=args.minutes, train=train)


def prepare(args, size, work):
    data = work / "data" / f"isic{size[0]}"
    from frcunet.data.manifest import manifest_path, read_manifest

    if manifest_path(data).is_file() and read_manifest(data).size == tuple(size):
        return data
    source = args.data_dir
    if args.smoke:
        source = work / "synthetic"
        if not source.is_dir():
            # 12 pairs split 8/1/3: two equal batches of 4, so the train step compiles once, not twice.
            frcunet("synth", "--out", source, "--n", 12, "--size", 96, 128, "--quiet")
    frcunet("prepare", "isic2018", "--data-dir", source, "--out", data, "--size", *size,
            "--split", 0.7, 0.1, 0.2, "--seed", 0, "--quiet")
    return data


def train_and_evaluate(model, data, plan, work, out):
    """Trains and scores one model with compare's own steps (each skipped when its result is there)."""
    from frcunet.evaluation.compare import evaluate_once, train_and_time
    from frcunet.training.trainer import TrainConfig

    # The evaluation folder (masks, figures) stays in the work folder: a GPU call brings back 8 files of $OUT.
    run, evaluation = work / "weights" / f"gpu_{model}", work / "output" / f"gpu_eval_{model}"
    config = TrainConfig.from_recipe("paper", model, model_options=plan["options"], data=str(data), run=str(run),
                                     max_minutes=plan["minutes"], verbose=2, **plan["train"])
    if not (run / "timing.json").is_file():
        step(f"frcunet train --model {model} --run {run}")
    minutes, epochs, images_per_second = train_and_time(config)
    if not (evaluation / "metrics.json").is_file():
        step(f"frcunet evaluate --run {run} --out {evaluation}")
    metrics, _ = evaluate_once(run, data, evaluation)
    (out / f"{model}_history.csv").write_text((run / "history.csv").read_text())
    return {"model": model, "epochs": epochs, "minutes": minutes, "fit_images_per_second": images_per_second,
            "pooled": metrics.summary.pooled, "dice_per_image": metrics.summary.per_image_mean["dice"],
            "thresholded_jaccard": metrics.summary.thresholded_jaccard}


def results_table(rows_in, device, step_speed, plan):
    from frcunet.core.markdown import markdown_table, number

    lines = [f"# Paper scale on {device}", "",
             f"ISIC 2018 at {plan['size'][0]}x{plan['size'][1]}, seeded 70/10/20 split, paper recipe (BCE, Adam 1e-4, "
             f"plateau schedule), {json.dumps(plan['train'])}, a wall-clock budget per model (`--max-minutes`), "
             f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}.", ""]
    header = ["model", *(c.upper() for c in COLUMNS), "Dice/img", "ISIC thr. Jaccard", "epochs", "minutes",
              "fit images/s", "step images/s (in-memory)"]
    rows = []
    for row in rows_in:
        speed = step_speed.get(row["model"])
        rows.append([row["model"], *(f"{row['pooled'][c]:.4f}" for c in COLUMNS), f"{row['dice_per_image']:.4f}",
                     f"{row['thresholded_jaccard']:.4f}", row["epochs"], f"{row['minutes']:.1f}",
                     f"{row['fit_images_per_second']:.1f}", f"{speed:.1f}" if speed else "-"])
    for name, values in PAPER_ROWS.items():
        rows.append([name, *(number(v, 3) for v in values), "-", "-", "-", 100, "-", "-", "-"])
    lines.append(markdown_table(header, rows))
    lines += ["", "The paper trained 100 epochs on the 1815/259/520 split; the rows above are what the budget "
              "reached. 'fit images/s' includes validation and the input pipeline; 'step images/s' is a training "
              "step on random in-memory batches, so their ratio shows what the input pipeline costs."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "gpu-data" / "ISIC2018",
                        help="the carried copy of ../shared/data/ISIC2018")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "output" / "gpu_paper")))
    parser.add_argument("--work", type=Path, default=ROOT, help="where data/, weights/ go (git-ignored)")
    parser.add_argument("--models", nargs="+", default=["frcunet"])
    parser.add_argument("--minutes", type=float, nargs="+", default=[6.0],
                        help="wall-clock training budget per model, in the order of --models (the last repeats)")
    parser.add_argument("--step-speed-models", nargs="*", default=[],
                        help="models whose in-memory step speed is also measured (each costs one more compilation, "
                        "which took about 3 of the first GPU attempt's 15 minutes: off unless asked)")
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--no-jit", dest="jit", action="store_false")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run: synthetic 64x64, one epoch of frcunet-lite")
    args = parser.parse_args()

    plan = settings(args)
    args.out.mkdir(parents=True, exist_ok=True)
    data = prepare(args, plan["size"], args.work)
    device = device_name()
    speed_file = args.out / "step_speed.json"
    step_speed = json.loads(speed_file.read_text()) if speed_file.is_file() else {}
    earlier = args.out / "metrics.json"
    rows = [r for r in (json.loads(earlier.read_text())["rows"] if earlier.is_file() else [])
            if r["model"] not in plan["models"]]
    from benchmarks.train_speed import images_per_second  # imports Keras: after the CPU-only steps

    for index, model in enumerate(plan["models"]):
        minutes = plan["minutes"][min(index, len(plan["minutes"]) - 1)]
        try:
            if model not in step_speed and model in args.step_speed_models and not args.smoke:
                start = time.perf_counter()
                _, step_speed[model] = images_per_second(model, {}, args.precision, plan["size"], args.batch, steps=5)
                print(f"{model}: {step_speed[model]:.1f} images/s in memory; building, compiling and timing took "
                      f"{time.perf_counter() - start:.0f} s", flush=True)
                speed_file.write_text(json.dumps(step_speed))
            rows.append(train_and_evaluate(model, data, dict(plan, minutes=minutes), args.work, args.out))
        except Exception as failure:  # the next model may still run (out of memory, say): report, go on
            print(f"FAILED: {model}: {failure}", flush=True)
            continue
        # Written after every model, so that a call cut off at its time limit still returns what it finished.
        earlier.write_text(json.dumps({"device": device, "rows": rows, "step_speed": step_speed}, indent=1))
        (args.out / "results.md").write_text(results_table(rows, device, step_speed, plan))
    print((args.out / "results.md").read_text() if (args.out / "results.md").is_file() else "no model finished")


if __name__ == "__main__":
    main()

"""Train several model families on the same data, split and seed, and compare them on the test split.

    python compare.py                                   # every family with train.py's defaults
    python compare.py --models rnn gru --epochs 5       # some families; any train.py flag applies to every run

Each run is `python train.py` in a child process, writing its checkpoints under <out>/<model>/.
Writes to --out (default save_model/compare/): compare_loss.png (training loss of every run, RNN
in red), compare_val_accuracy.png (validation accuracy per epoch), compare_time.png (training
seconds), compare.md and compare.json (test accuracy, balanced accuracy, macro-F1, seconds, size).
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

from config.config import ROOT, SAVE_DIR
from models import TRAINABLE
from models import checkpoint as ckpt
from utils.errors import UserError, run_script

COLOURS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green", "ngram": "tab:purple", "transformer": "tab:orange"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False,
                                     epilog="Every other flag is train.py's (see python train.py --help).")
    parser.add_argument("--models", nargs="+", choices=TRAINABLE, default=TRAINABLE,
                        help=f"families to compare (default: {' '.join(TRAINABLE)})")
    parser.add_argument("--out", type=Path, default=SAVE_DIR / "compare", help="folder for the plots, table and runs")
    args, train_flags = parser.parse_known_args(argv)
    if "--save-dir" in train_flags or "--model" in train_flags:
        parser.error("use --out and --models here, not --save-dir or --model")
    return args, train_flags


def plot_runs(runs: list[dict], out: Path) -> list[Path]:
    from utils.plot import pyplot, running_mean, save_figure

    plt = pyplot()

    def label(r):
        return r["model"].upper() if r["model"] in ("rnn", "lstm", "gru") else r["model"]

    paths = []
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in runs:
        h = r["history"]
        if h["samples"]:  # a counted family has no training curve
            ax.plot(h["samples"], running_mean(h["loss"], window=20), color=COLOURS[r["model"]], lw=1.2, label=label(r))
    ax.set(xlabel="training samples seen", ylabel="training loss (running mean of 20 × 100 samples)",
           title="training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(save_figure(fig, out / "compare_loss.png"))

    fig, (acc_ax, bal_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for r in runs:
        epochs = r["history"]["epochs"]
        x = [e["epoch"] for e in epochs]
        acc_ax.plot(x, [e["val_accuracy"] for e in epochs], marker="o", ms=3,
                    color=COLOURS[r["model"]], label=label(r))
        bal_ax.plot(x, [e["val_balanced_accuracy"] for e in epochs], marker="o", ms=3,
                    color=COLOURS[r["model"]], label=label(r))
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    bal_ax.set(xlabel="epoch", ylabel="balanced accuracy", title="validation balanced accuracy")
    for ax in (acc_ax, bal_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    paths.append(save_figure(fig, out / "compare_val_accuracy.png"))

    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(runs) + 2), 4))
    bars = ax.bar([label(r) for r in runs], [r["seconds"] for r in runs], color=[COLOURS[r["model"]] for r in runs])
    ax.bar_label(bars, fmt="%.0f s")
    ax.set(ylabel="seconds", title="training time (all epochs)")
    ax.tick_params(axis="x", labelrotation=20 if len(runs) > 3 else 0)
    paths.append(save_figure(fig, out / "compare_time.png"))
    return paths


def table(runs: list[dict]) -> str:
    lines = ["| model | accuracy | balanced accuracy | macro-F1 | best epoch | seconds | parameters or counts |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['test']['accuracy']:.3f} | "
              f"{r['test']['balanced_accuracy']:.3f} | {r['test']['macro_f1']:.3f} | {r['test']['epoch']} | "
              f"{r['seconds']:.0f} | {r['parameters']:,} |" for r in runs]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args, train_flags = parse_args(argv)
    runs = []
    for model in args.models:
        save_dir = args.out / model
        print(f"--- {model} ---", flush=True)
        done = subprocess.run([sys.executable, str(ROOT / "train.py"), "--model", model, "--save-dir", str(save_dir),
                               *train_flags])
        if done.returncode != 0:
            raise UserError(f"training {model} failed (exit code {done.returncode}); see above")
        h = json.loads(ckpt.history_path(save_dir, model).read_text())
        runs.append({"model": model, "test": h["test"], "seconds": h["seconds"], "parameters": h["parameters"],
                     "checkpoint": str(ckpt.best_path(save_dir, model)), "history": h})
    args.out.mkdir(parents=True, exist_ok=True)
    paths = plot_runs(runs, args.out)
    markdown = table(runs)
    (args.out / "compare.md").write_text(markdown, encoding="utf-8")
    (args.out / "compare.json").write_text(json.dumps(
        {"train_flags": train_flags, "runs": [{k: v for k, v in r.items() if k != "history"} for r in runs]}, indent=1))
    print("\ntest split, best-on-validation epoch of each run:\n" + markdown)
    print("saved " + ", ".join(str(p) for p in [*paths, args.out / "compare.md", args.out / "compare.json"]))


if __name__ == "__main__":
    run_script(main)

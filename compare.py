"""Train RNN, LSTM and GRU on the same data, split and seed, and compare them on the test split.

    python compare.py                                   # rnn lstm gru with train.py's defaults
    python compare.py --balance none logit-adjust       # and each cell with each imbalance option
    python compare.py --epochs 20 --lr 3e-3             # any train.py flag applies to every run

Writes to --out (default save_model/compare/): compare_loss.png (training loss of every run on one
plot, RNN in red), compare_val_accuracy.png (validation accuracy per epoch), compare_time.png
(training seconds), compare.md and compare.json (test accuracy, balanced accuracy, macro-F1,
seconds, parameters), and each run's checkpoints under <out>/<balance>/.
"""
import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from config.config import CELLS, SAVE_DIR
from utils.balance import BALANCE
from utils.errors import UserError

COLOURS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green"}  # RNN in red, as the original project drew it
STYLES = ["-", "--", ":", "-."]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Every other flag is train.py's (see python train.py --help).")
    parser.add_argument("--models", nargs="+", choices=CELLS, default=list(CELLS), help="recurrent cells to compare")
    parser.add_argument("--balance", nargs="+", choices=BALANCE, default=None,
                        help="imbalance options to train each cell with (default: train.py's default)")
    parser.add_argument("--out", type=Path, default=SAVE_DIR / "compare", help="folder for the plots, table and runs")
    args, rest = parser.parse_known_args(argv)
    from train import parse_args as train_args

    if "--save-dir" in rest:
        parser.error("use --out here, not --save-dir")
    cfg = train_args(rest)
    return args, cfg


def plot_runs(runs: list[dict], out: Path) -> list[Path]:
    from utils.plot import pyplot, running_mean, save_figure

    plt = pyplot()

    balances = list(dict.fromkeys(r["balance"] for r in runs))
    style = {b: STYLES[i % len(STYLES)] for i, b in enumerate(balances)}

    def label(r):
        return r["model"].upper() + ("" if len(balances) == 1 else f", {r['balance']}")

    paths = []
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in runs:
        h = r["history"]
        ax.plot(h["samples"], running_mean(h["loss"], window=20), style[r["balance"]], color=COLOURS[r["model"]], lw=1.2, label=label(r))
    ax.set(xlabel="training samples seen", ylabel="training loss (running mean of 20 × 100 samples)",
           title="training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(save_figure(fig, out / "compare_loss.png"))

    fig, (acc_ax, bal_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for r in runs:
        epochs = r["history"]["epochs"]
        x = [e["epoch"] for e in epochs]
        acc_ax.plot(x, [e["val_accuracy"] for e in epochs], style[r["balance"]], marker="o", ms=3,
                    color=COLOURS[r["model"]], label=label(r))
        bal_ax.plot(x, [e["val_balanced_accuracy"] for e in epochs], style[r["balance"]], marker="o", ms=3,
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
    lines = ["| cell | balance | accuracy | balanced accuracy | macro-F1 | best epoch | seconds | parameters |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model'].upper()} | {r['balance']} | {r['test']['accuracy']:.3f} | "
              f"{r['test']['balanced_accuracy']:.3f} | {r['test']['macro_f1']:.3f} | {r['test']['epoch']} | "
              f"{r['seconds']:.0f} | {r['parameters']:,} |" for r in runs]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args, cfg = parse_args(argv)
    from train import train

    runs = []
    for balance in args.balance or [cfg.balance]:
        for model in args.models:
            result = train(replace(cfg, model=model, balance=balance, save_dir=str(args.out / balance)))
            h = result["history"]
            label = balance if balance == "none" or cfg.balance_power == 1 else f"{balance} {cfg.balance_power:g}"
            runs.append({"model": model, "balance": label, "test": h["test"], "seconds": h["seconds"],
                         "parameters": h["parameters"], "checkpoint": str(result["best_path"]), "history": h})
    args.out.mkdir(parents=True, exist_ok=True)
    paths = plot_runs(runs, args.out)
    markdown = table(runs)
    shared = {k: v for k, v in vars(cfg).items() if k not in ("model", "balance", "save_dir")}
    (args.out / "compare.md").write_text(markdown, encoding="utf-8")
    (args.out / "compare.json").write_text(json.dumps(
        {"config": shared, "runs": [{k: v for k, v in r.items() if k != "history"} for r in runs]}, indent=1))
    print("\ntest split, best-on-validation epoch of each run:\n" + markdown)
    print("saved " + ", ".join(str(p) for p in [*paths, args.out / "compare.md", args.out / "compare.json"]))


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        sys.exit(f"error: {e}")

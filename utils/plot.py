"""Loss and accuracy curves of a training run, to PNG."""
from pathlib import Path

import numpy as np


def running_mean(values: list[float], window: int = 25) -> list[float]:
    """Mean of each point and the `window - 1` before it: the trend through noisy 100-sample averages."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def pyplot():
    """matplotlib.pyplot drawing to files only, never a window; imported when a figure is due, so the
    scripts that draw nothing (predict.py) never load matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Lay out, write and close a figure; returns its path."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def plot_history(history: dict, path: str | Path, title: str = "") -> Path:
    plt = pyplot()
    epochs = history["epochs"]
    per_epoch = max(1, epochs[0]["samples"] // epochs[0]["epoch"])  # training samples in one epoch
    x = np.asarray(history["samples"], dtype=float) / per_epoch
    x_epochs = [e["samples"] / per_epoch for e in epochs]

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((loss_ax, "loss", "cross-entropy loss"), (acc_ax, "accuracy", "accuracy")):
        if history[key]:
            ax.plot(x, history[key], color="tab:blue", alpha=0.25, lw=0.6, label="train, mean of each 100 samples")
            ax.plot(x, running_mean(history[key]), color="tab:blue", lw=1.5, label="train, running mean")
        ax.plot(x_epochs, [e[f"val_{key}"] for e in epochs], "o-", color="tab:orange", label="validation")
        ax.set(xlabel="epoch", ylabel=label, title=label)
    acc_ax.plot(x_epochs, [e["val_balanced_accuracy"] for e in epochs], "s--", color="tab:green",
                label="validation, balanced")
    acc_ax.set_ylim(0, 1)
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=110)

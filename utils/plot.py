"""Every figure, to PNG: training curves, the confusion matrix. matplotlib is imported only when one is drawn."""
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


def plot_confusion(confusion: dict, path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (each true country's rows sum to 1), country names on both axes."""
    plt = pyplot()
    labels = confusion["labels"]
    counts = np.asarray(confusion["matrix"], dtype=float)  # [true, predicted]
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 2.5 + 0.5 * len(labels)  # 11.5 inches for 18 countries: room for a number in every cell
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i, j in zip(*np.nonzero(counts)):
        text = "1" if share[i, j] == 1 else "<.01" if share[i, j] < 0.005 else f"{share[i, j]:.2f}".lstrip("0")
        ax.text(j, i, text, ha="center", va="center",
                fontsize=8, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(labels)), [f"{c} ({int(n)})" for c, n in zip(labels, rows[:, 0])])
    ax.set(xlabel="predicted country", ylabel="true country (rows)")
    fig.colorbar(image, ax=ax, fraction=0.04, label="share of the true country's rows")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)

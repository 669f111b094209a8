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


def plot_reliability(probs, y_true: list[int], path: str | Path, title: str = "", bins: int = 15) -> Path:
    """Reliability diagram: in each bin of top-1 probability, the share of right answers against the mean
    probability (on the diagonal when the probabilities are honest), with the bins' sizes below."""
    probs = np.asarray(probs, dtype=float)
    confidence, correct = probs.max(axis=1), (probs.argmax(axis=1) == np.asarray(y_true)).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    bin_of = np.clip(np.digitize(confidence, edges) - 1, 0, bins - 1)
    filled = [b for b in range(bins) if (bin_of == b).any()]
    plt = pyplot()
    fig, (ax, count_ax) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "--", color="grey", label="honest")
    ax.plot([confidence[bin_of == b].mean() for b in filled], [correct[bin_of == b].mean() for b in filled],
            "o-", color="tab:blue", label="model")
    ax.set(ylabel="share right", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    count_ax.bar((edges[:-1] + edges[1:]) / 2, [(bin_of == b).sum() for b in range(bins)], width=1 / bins,
                 color="tab:blue", alpha=0.6)
    count_ax.set(xlabel="top-1 probability", ylabel="names")
    return save_figure(fig, path)


def plot_risk_coverage(curve: dict, path: str | Path, title: str = "") -> Path:
    """Accuracy of the answers kept against the share of names answered, most confident first."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(curve["coverage"], curve["accuracy"], color="tab:blue")
    ax.set(xlabel="share of names answered (most confident first)", ylabel="accuracy of the answers",
           xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)

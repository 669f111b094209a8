"""Loss and accuracy curves of a training run, to PNG."""
from pathlib import Path


def plot_history(history: dict, path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = history["epochs"]
    loss_ax.plot(history["samples"], history["loss"], lw=0.8, label="train (mean of each 100 samples)")
    loss_ax.plot([e["samples"] for e in epochs], [e["val_loss"] for e in epochs], "o-", label="validation")
    loss_ax.set(xlabel="training samples seen", ylabel="cross-entropy loss", title="loss")
    acc_ax.plot(history["samples"], history["accuracy"], lw=0.8, label="train (mean of each 100 samples)")
    acc_ax.plot([e["samples"] for e in epochs], [e["val_accuracy"] for e in epochs], "o-", label="validation")
    acc_ax.plot([e["samples"] for e in epochs], [e["val_balanced_accuracy"] for e in epochs], "s--",
                label="validation, balanced")
    acc_ax.set(xlabel="training samples seen", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

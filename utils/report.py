"""An evaluation report from predicted countries, whatever produced them: metrics, per-country table,
most confused pairs, confusion matrix (as numbers, markdown and a PNG)."""
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support)


def evaluation_report(names: list[str], y_true: list[str], y_pred: list[str], top: list[list[str]] | None = None,
                      countries: list[str] | None = None, n_pairs: int = 10, n_examples: int = 3) -> dict:
    """Metrics of predictions `y_pred` against `y_true` (country names), one per name in `names`.

    `top`, when given, holds each name's countries best first (at least 3) for top-3 accuracy.
    `countries` fixes the order of the tables (default: sorted); only countries that occur among
    the true or predicted labels enter them, so balanced accuracy is the mean recall over the
    countries present and macro-F1 averages over the countries present or predicted.
    """
    if not (len(names) == len(y_true) == len(y_pred)) or (top is not None and len(top) != len(names)):
        raise ValueError("names, y_true, y_pred (and top) differ in length")
    if not names:
        raise ValueError("nothing to evaluate")
    present = set(y_true) | set(y_pred)
    labels = [c for c in (countries or sorted(present)) if c in present]
    labels += sorted(present - set(labels))  # a prediction outside `countries` still gets a column
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" is expected on small sets
        warnings.simplefilter("ignore")
        balanced = balanced_accuracy_score(y_true, y_pred)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_country = [{"country": c, "support": int(n), "precision": float(p), "recall": float(r), "f1": float(f)}
                   for c, p, r, f, n in zip(labels, precision, recall, f1, support)]
    per_country.sort(key=lambda row: (-row["support"], row["country"]))

    examples, counts = defaultdict(list), Counter()
    for name, true, pred in zip(names, y_true, y_pred):
        if true != pred:
            counts[true, pred] += 1
            if len(examples[true, pred]) < n_examples and name not in examples[true, pred]:
                examples[true, pred].append(name)
    true_counts = Counter(y_true)
    pairs = [{"true": t, "predicted": p, "count": n, "share_of_true": n / true_counts[t], "examples": examples[t, p]}
             for (t, p), n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n_pairs]]
    return {
        "rows": len(names),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "top3_accuracy": None if top is None else float(np.mean([t in ranked[:3] for t, ranked in zip(y_true, top)])),
        "per_country": per_country,
        "confused_pairs": pairs,
        "confusion": {"labels": labels, "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()},
    }


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def report_markdown(report: dict, title: str) -> str:
    """The report as markdown: summary, per-country table, most confused pairs."""
    lines = [f"# {title}", "",
             "| rows | accuracy | balanced accuracy | macro-F1 | top-3 accuracy |", "|---:|---:|---:|---:|---:|",
             f"| {report['rows']} | {_num(report['accuracy'])} | {_num(report['balanced_accuracy'])} | "
             f"{_num(report['macro_f1'])} | {_num(report['top3_accuracy'])} |", "",
             "| country | support | precision | recall | F1 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['country']} | {r['support']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |"
              for r in report["per_country"]]
    lines += ["", "Most confused (true → predicted):", "",
              "| true | predicted | count | share of true | examples |", "|---|---|---:|---:|---|"]
    lines += [f"| {p['true']} | {p['predicted']} | {p['count']} | {p['share_of_true']:.3f} | {', '.join(p['examples'])} |"
              for p in report["confused_pairs"]]
    return "\n".join(lines) + "\n"


def plot_confusion(confusion: dict, path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (each true country's rows sum to 1), country names on both axes."""
    from utils.plot import pyplot, save_figure

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

"""Every score of a classifier, from predicted countries: the one definition of accuracy, balanced accuracy
and macro-F1 that training, evaluation and comparison all use, and the full evaluation report."""
import warnings
from collections import Counter, defaultdict

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support


NO_ANSWER = -1  # a predicted label meaning "no answer" (a chat model's answer outside the list): wrong, not a country


def classification_metrics(y_true: list, y_pred: list) -> dict[str, float]:
    """Accuracy, balanced accuracy (mean recall over the countries present in y_true) and macro-F1
    (mean F1 over the countries present in y_true or y_pred, NO_ANSWER not being one). Labels may be
    indices or country names."""
    if len(y_true) != len(y_pred) or not y_true:
        raise ValueError("y_true and y_pred must be equally long and not empty")
    countries = sorted((set(y_true) | set(y_pred)) - {NO_ANSWER})
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" is expected on small sets
        warnings.simplefilter("ignore")
        _, _, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=countries, average="macro",
                                                      zero_division=0)
        return {"accuracy": float(accuracy_score(y_true, y_pred)),
                "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
                "macro_f1": float(f1)}


def evaluation_report(names: list[str], y_true: list[str], y_pred: list[str], top: list[list[str]] | None = None,
                      countries: list[str] | None = None, n_pairs: int = 10, n_examples: int = 3) -> dict:
    """Metrics of predictions `y_pred` against `y_true` (country names), one per name in `names`.

    `top`, when given, holds each name's countries best first (at least 3) for top-3 accuracy.
    `countries` fixes the order of the tables (default: sorted); only countries that occur among
    the true or predicted labels enter them.
    """
    if not (len(names) == len(y_true) == len(y_pred)) or (top is not None and len(top) != len(names)):
        raise ValueError("names, y_true, y_pred (and top) differ in length")
    if not names:
        raise ValueError("nothing to evaluate")
    present = set(y_true) | set(y_pred)
    labels = [c for c in (countries or sorted(present)) if c in present]
    labels += sorted(present - set(labels))  # a prediction outside `countries` still gets a column
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
        **classification_metrics(y_true, y_pred),
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


def expected_calibration_error(probs, y_true, bins: int = 15) -> float:
    """Mean |accuracy - confidence| of the top-1 answers over `bins` equal-width confidence bins, weighted by the
    bins' shares of the rows. probs [N, n_countries]."""
    import torch

    probs = torch.as_tensor(probs, dtype=torch.float64)
    confidence, predicted = probs.max(dim=1)  # [N], [N]
    correct = (predicted == torch.as_tensor(y_true)).double()  # [N]
    bin_of = torch.clamp((confidence * bins).long(), max=bins - 1)  # [N]
    gap = torch.bincount(bin_of, weights=correct - confidence, minlength=bins).abs()  # [bins]: |sum of the gaps|
    return float(gap.sum()) / len(probs) if len(probs) else 0.0


def probability_metrics(probs, y_true: list[int], bins: int = 15) -> dict:
    """How far the probabilities can be trusted, for probabilities [N, n_countries] and true label indices:
    the expected calibration error of the top-1 probability (`bins` equal-width bins), the mean negative
    log-likelihood, the Brier score (squared error over all countries, summed, averaged over rows), the mean
    top-1 probability, and the accuracy of the answers kept when only the most confident share is answered."""
    import torch

    probs = torch.as_tensor(probs, dtype=torch.float64)
    truth = torch.as_tensor(y_true)
    confidence, predicted = probs.max(dim=1)  # [N], [N]
    correct = (predicted == truth).double()  # [N]
    ece = expected_calibration_error(probs, truth, bins)
    one_hot = torch.nn.functional.one_hot(truth, probs.shape[1]).double()
    order = torch.argsort(confidence, descending=True, stable=True)  # most confident first
    hits = correct[order].cumsum(0) / torch.arange(1, len(order) + 1)  # accuracy of the k most confident
    at_coverage = {f"{share:.0%}": hits[max(0, int(round(share * len(order))) - 1)].item()
                   for share in (1.0, 0.9, 0.8, 0.5)}
    return {"ece": ece,
            "nll": -probs[torch.arange(len(truth)), truth].clamp(min=1e-12).log().mean().item(),
            "brier": ((probs - one_hot) ** 2).sum(dim=1).mean().item(),
            "mean_confidence": confidence.mean().item(),
            "accuracy_at_coverage": at_coverage,
            "risk_coverage": {"coverage": (torch.arange(1, len(order) + 1) / len(order)).tolist()[::max(1, len(order) // 200)],
                              "accuracy": hits.tolist()[::max(1, len(order) // 200)],
                              "threshold": confidence[order].tolist()[::max(1, len(order) // 200)]}}


def domain_row(probs, y_true: list[int], seen: list[bool]) -> dict:
    """One row of the across-domains table: rows, accuracy, balanced accuracy, macro-F1, ECE, and accuracy on the
    names seen and unseen in training (None where there are none). `probs` [N, n_countries]."""
    y_pred = probs.argmax(dim=1).tolist()
    right = [p == t for p, t in zip(y_pred, y_true)]

    def share(keep: bool):
        kept = [r for r, s in zip(right, seen) if s == keep]
        return sum(kept) / len(kept) if kept else None

    return {"rows": len(y_true), **classification_metrics(y_true, y_pred),
            "ece": probability_metrics(probs, y_true)["ece"], "seen_rows": sum(seen),
            "seen_accuracy": share(True), "unseen_accuracy": share(False)}


def domain_markdown(rows: dict[str, dict]) -> str:
    """The across-domains table: one line per set of names."""
    lines = ["| names | rows | accuracy | balanced accuracy | macro-F1 | ECE | seen in training: rows, accuracy "
             "| unseen: accuracy |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in rows.items():
        lines.append(f"| {label} | {r['rows']:,} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | "
                     f"{r['macro_f1']:.3f} | {r['ece']:.3f} | {r['seen_rows']:,}, {_num(r['seen_accuracy'])} | "
                     f"{_num(r['unseen_accuracy'])} |")
    return "\n".join(lines) + "\n"

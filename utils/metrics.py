"""Held-out classification metrics (scikit-learn)."""
import warnings

from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score


def classification_metrics(y_true: list[int], y_pred: list[int], n_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy (mean recall over the countries present) and macro-F1 (over all countries)."""
    with warnings.catch_warnings():  # a country absent from a small split is not worth a warning
        warnings.simplefilter("ignore")
        return {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, labels=list(range(n_classes)), average="macro", zero_division=0)),
        }


# what "best on validation" means when training picks its checkpoint (train.py --select)
SELECT = ("accuracy", "balanced", "mean")


def selection_score(metrics: dict[str, float], select: str) -> float:
    """The validation score to pick the best epoch by: accuracy, balanced accuracy, or the mean of the two."""
    if select == "accuracy":
        return metrics["accuracy"]
    if select == "balanced":
        return metrics["balanced_accuracy"]
    if select == "mean":
        return (metrics["accuracy"] + metrics["balanced_accuracy"]) / 2
    raise ValueError(f"unknown selection {select!r}; choose one of {SELECT}")

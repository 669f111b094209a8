"""train.py --select: the validation score that picks the saved best epoch."""
import pytest

import train
from tests.conftest import run_script
from utils.checkpoint import load_checkpoint
from utils.metrics import selection_score


def test_selection_scores():
    val = {"accuracy": 0.8, "balanced_accuracy": 0.5, "macro_f1": 0.4}
    assert selection_score(val, "accuracy") == 0.8
    assert selection_score(val, "balanced") == 0.5
    assert selection_score(val, "mean") == pytest.approx(0.65)
    with pytest.raises(ValueError, match="unknown selection"):
        selection_score(val, "f1")


# validation scores scripted per epoch, so each rule has a different best: accuracy 1, balanced 2, mean 3
SCRIPTED = [(0.9, 0.3), (0.6, 0.8), (0.8, 0.7)]


@pytest.mark.parametrize("select, expected", [("accuracy", 1), ("balanced", 2), ("mean", 3)])
def test_the_saved_best_epoch_is_the_one_the_rule_picks(tiny_tsv, tmp_path, monkeypatch, select, expected):
    calls = []

    def scripted_metrics(y_true, y_pred, n_classes):
        accuracy, balanced = SCRIPTED[len(calls)] if len(calls) < len(SCRIPTED) else (0.5, 0.5)  # then the test split
        calls.append(1)
        return {"accuracy": accuracy, "balanced_accuracy": balanced, "macro_f1": 0.0}

    monkeypatch.setattr(train, "classification_metrics", scripted_metrics)
    cfg = train.parse_args(["--data", str(tiny_tsv), "--save-dir", str(tmp_path), "--select", select, "--epochs", "3",
                            "--batch-size", "8", "--hidden-size", "8", "--val-fraction", "0.25", "--test-fraction", "0.25"])
    result = train.train(cfg)
    assert result["history"]["test"]["epoch"] == expected
    checkpoint = load_checkpoint(result["best_path"])
    assert checkpoint["epoch"] == expected and checkpoint["config"]["select"] == select
    assert checkpoint["metrics"]["val_accuracy"] == SCRIPTED[expected - 1][0]


def test_unknown_selection_is_refused(tiny_tsv, tmp_path):
    result = run_script("train.py", "--data", str(tiny_tsv), "--save-dir", str(tmp_path), "--select", "loss")
    assert result.returncode == 2 and "invalid choice" in result.stderr

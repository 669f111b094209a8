"""evaluate.py and the report behind it: metrics on hand-made predictions, then the script end to end."""
import json

import pytest
import torch

from tests.conftest import TINY, run_script
from utils.report import evaluation_report, plot_confusion, report_markdown

# 10 names: A is 6 of them; 7 right; A->B, B->A and C->A each once
NAMES = ["a1", "a2", "a3", "a4", "a5", "a6", "b1", "b2", "c1", "c2"]
TRUE = ["A", "A", "A", "A", "A", "A", "B", "B", "C", "C"]
PRED = ["A", "A", "A", "A", "A", "B", "B", "A", "A", "C"]
TOP = [[p] + [c for c in "ABC" if c != p] for p in PRED]  # every truth is in its top 3 ...
TOP[7] = ["A", "C", "D"]  # ... but b2's: top-3 accuracy 0.9


def test_metrics_on_known_predictions():
    report = evaluation_report(NAMES, TRUE, PRED, TOP, countries=["C", "B", "A", "D"])
    assert report["rows"] == 10
    assert report["accuracy"] == pytest.approx(0.7)
    assert report["balanced_accuracy"] == pytest.approx((5 / 6 + 1 / 2 + 1 / 2) / 3)  # mean recall
    f1 = {"A": 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6), "B": 0.5, "C": 2 * 1 * 0.5 / 1.5}
    assert report["macro_f1"] == pytest.approx(sum(f1.values()) / 3)  # D never occurs, so it is not averaged in
    assert report["top3_accuracy"] == pytest.approx(0.9)
    rows = {r["country"]: r for r in report["per_country"]}
    assert [r["country"] for r in report["per_country"]] == ["A", "B", "C"]  # by support
    assert (rows["A"]["support"], rows["A"]["precision"], rows["A"]["recall"]) == (6, pytest.approx(5 / 7), pytest.approx(5 / 6))
    assert (rows["C"]["precision"], rows["C"]["recall"]) == (pytest.approx(1.0), pytest.approx(0.5))
    assert [(p["true"], p["predicted"], p["count"], p["examples"]) for p in report["confused_pairs"]] == [
        ("A", "B", 1, ["a6"]), ("B", "A", 1, ["b2"]), ("C", "A", 1, ["c1"])]
    assert report["confusion"]["labels"] == ["C", "B", "A"]  # the given order, absent D left out
    assert report["confusion"]["matrix"] == [[1, 0, 1], [0, 1, 1], [0, 1, 5]]


def test_no_top_list_and_markdown():
    report = evaluation_report(NAMES, TRUE, PRED)
    assert report["top3_accuracy"] is None
    text = report_markdown(report, "hand-made")
    assert "| 10 | 0.700 | 0.611 |" in text and "| A | B | 1 | 0.167 | a6 |" in text and "n/a" in text


def test_confusion_png(tmp_path):
    path = plot_confusion(evaluation_report(NAMES, TRUE, PRED)["confusion"], tmp_path / "c.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_reproduces_the_test_split(tiny_checkpoint, tmp_path):
    result = run_script("evaluate.py", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"accuracy", "balanced_accuracy", "macro_f1", "top3_accuracy", "per_country", "confused_pairs",
            "confusion", "rows", "set", "data_sha256"} <= report.keys()
    assert report["set"] == "test split"
    # the same rows and the same answers as the test split train.py scored at the end of training
    metrics = torch.load(tiny_checkpoint, weights_only=True)["metrics"]
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert report["balanced_accuracy"] == pytest.approx(metrics["test_balanced_accuracy"])
    stem = tmp_path / "gru_classification_best_eval_test"
    assert json.loads(stem.with_suffix(".json").read_text())["rows"] == report["rows"]
    assert "balanced accuracy" in stem.with_suffix(".md").read_text()
    assert (tmp_path / (stem.name + "_confusion.png")).read_bytes()[:4] == b"\x89PNG"


def test_evaluate_data_with_unknown_countries(tiny_checkpoint, tmp_path):
    data = tmp_path / "mine.tsv"
    rows = [(name, country) for country, names in TINY.items() for name in names[:3]]
    rows += [("Dupont", "French"), ("Martin", "French"), ("Rossi", "Italian")]
    data.write_text("".join(f"{n}\t{c}\n" for n, c in rows), encoding="utf-8")
    result = run_script("evaluate.py", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "French (2), Italian (1)" in result.stderr
    assert "| 9 |" in result.stdout  # the table counts the 9 known rows
    report = json.loads((tmp_path / "gru_classification_best_eval_data_mine.json").read_text())
    assert report["rows"] == 9 and report["left_out"]["unknown_countries"] == {"French": 2, "Italian": 1}
    assert {r["country"] for r in report["per_country"]} <= set(TINY)


def test_evaluate_refuses_other_data_for_the_split(tiny_checkpoint, tmp_path):
    other = tmp_path / "other.tsv"
    other.write_text("Ivanov\tRussian\nSmith\tEnglish\n", encoding="utf-8")
    result = run_script("evaluate.py", "--checkpoint", str(tiny_checkpoint), "--split-data", str(other))
    assert result.returncode != 0
    assert result.stderr.startswith("error:") and "not the data this checkpoint was trained on" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

"""utils/metrics.py: one definition of accuracy, balanced accuracy and macro-F1, checked on hand-computed
predictions; the full evaluation report agrees with it; the markdown and the confusion PNG."""
import pytest

from utils.metrics import classification_metrics, evaluation_report, report_markdown
from utils.plot import plot_confusion

# 10 names: A is 6 of them; 7 right; A->B, B->A and C->A each once
NAMES = ["a1", "a2", "a3", "a4", "a5", "a6", "b1", "b2", "c1", "c2"]
TRUE = ["A", "A", "A", "A", "A", "A", "B", "B", "C", "C"]
PRED = ["A", "A", "A", "A", "A", "B", "B", "A", "A", "C"]
TOP = [[p] + [c for c in "ABC" if c != p] for p in PRED]  # every truth is in its top 3 ...
TOP[7] = ["A", "C", "D"]  # ... but b2's: top-3 accuracy 0.9
F1 = {"A": 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6), "B": 2 * 0.5 * 0.5 / 1.0, "C": 2 * 1 * 0.5 / 1.5}


def test_metrics_by_hand():
    m = classification_metrics(TRUE, PRED)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["balanced_accuracy"] == pytest.approx((5 / 6 + 1 / 2 + 1 / 2) / 3)  # mean recall
    assert m["macro_f1"] == pytest.approx(sum(F1.values()) / 3)
    # labels may be indices: the same numbers
    index = {"A": 0, "B": 1, "C": 2}
    assert classification_metrics([index[t] for t in TRUE], [index[p] for p in PRED]) == pytest.approx(m)


def test_macro_f1_averages_the_labels_in_truth_or_prediction_and_nothing_else():
    # D is predicted but never true: it enters the average with F1 0; E, in neither, never does
    m = classification_metrics(["A", "A", "B", "B"], ["A", "D", "B", "B"])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)  # A: P 1, R 1/2; B: 1; D: 0
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)  # recall over the true classes only
    assert classification_metrics([0, 0, 1, 1], [0, 3, 1, 1])["macro_f1"] == pytest.approx(5 / 9)


@pytest.mark.parametrize("y_true, y_pred, countries", [
    (TRUE, PRED, ["C", "B", "A", "D"]),  # a country of the checkpoint that never occurs
    (["A", "A", "B", "B"], ["A", "D", "B", "B"], ["A", "B", "C", "D"]),  # a prediction of a country never true
    (["A", "A", "B", "B"], ["A", "D", "B", "B"], ["A", "B"]),  # a prediction outside the given countries
    (["A", "B", "C", "A"], ["A", "A", "A", "A"], None),  # a country never predicted
])
def test_the_report_and_the_training_metrics_agree(y_true, y_pred, countries):
    """train.py scores with classification_metrics, evaluate.py with evaluation_report: one definition."""
    report = evaluation_report([f"n{i}" for i in range(len(y_true))], y_true, y_pred, countries=countries)
    metrics = classification_metrics(y_true, y_pred)
    assert {k: report[k] for k in metrics} == pytest.approx(metrics)
    per_country_f1 = [row["f1"] for row in report["per_country"]]
    assert report["macro_f1"] == pytest.approx(sum(per_country_f1) / len(per_country_f1))  # its own table's mean


def test_report_on_known_predictions():
    report = evaluation_report(NAMES, TRUE, PRED, TOP, countries=["C", "B", "A", "D"])
    assert report["rows"] == 10 and report["accuracy"] == pytest.approx(0.7)
    assert report["macro_f1"] == pytest.approx(sum(F1.values()) / 3)  # D never occurs, so it is not averaged in
    assert report["top3_accuracy"] == pytest.approx(0.9)
    rows = {r["country"]: r for r in report["per_country"]}
    assert [r["country"] for r in report["per_country"]] == ["A", "B", "C"]  # by support
    assert (rows["A"]["support"], rows["A"]["precision"], rows["A"]["recall"]) == (6, pytest.approx(5 / 7), pytest.approx(5 / 6))
    assert (rows["C"]["precision"], rows["C"]["recall"], rows["C"]["f1"]) == (1.0, 0.5, pytest.approx(F1["C"]))
    assert [(p["true"], p["predicted"], p["count"], p["examples"]) for p in report["confused_pairs"]] == [
        ("A", "B", 1, ["a6"]), ("B", "A", 1, ["b2"]), ("C", "A", 1, ["c1"])]
    assert report["confused_pairs"][0]["share_of_true"] == pytest.approx(1 / 6)
    assert report["confusion"]["labels"] == ["C", "B", "A"]  # the given order, absent D left out
    assert report["confusion"]["matrix"] == [[1, 0, 1], [0, 1, 1], [0, 1, 5]]


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        classification_metrics([], [])
    with pytest.raises(ValueError):
        classification_metrics(["A"], ["A", "B"])
    with pytest.raises(ValueError, match="differ in length"):
        evaluation_report(NAMES, TRUE, PRED[:-1])


def test_no_top_list_and_markdown():
    report = evaluation_report(NAMES, TRUE, PRED)
    assert report["top3_accuracy"] is None
    text = report_markdown(report, "hand-made")
    assert text.startswith("# hand-made\n")
    assert "| 10 | 0.700 | 0.611 |" in text and "| A | B | 1 | 0.167 | a6 |" in text and "n/a" in text


def test_confusion_png(tmp_path):
    path = plot_confusion(evaluation_report(NAMES, TRUE, PRED)["confusion"], tmp_path / "c.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_no_answer_is_wrong_but_not_a_country_of_the_macro_f1():
    from utils.metrics import NO_ANSWER

    m = classification_metrics([0, 1, 2, 2], [0, 1, NO_ANSWER, 2])
    assert m["accuracy"] == 0.75
    # per country F1: 1, 1, 2/3 (precision 1, recall 1/2); a fourth "country" -1 would pull the mean to 2/3
    assert m["macro_f1"] == pytest.approx((1 + 1 + 2 / 3) / 3)


def test_a_domain_row_by_hand():
    import torch

    from utils.metrics import domain_row

    probs = torch.tensor([[0.9, 0.1, 0.0],  # right, 0.9 sure
                          [0.6, 0.4, 0.0],  # wrong (truth 1), 0.6 sure
                          [0.2, 0.7, 0.1],  # right, 0.7 sure
                          [0.1, 0.1, 0.8]])  # right, 0.8 sure
    row = domain_row(probs, [0, 1, 1, 2], seen=[True, True, False, False])
    assert row["rows"] == 4 and row["accuracy"] == 0.75
    assert row["balanced_accuracy"] == pytest.approx((1 + 0.5 + 1) / 3)  # recall of 0, 1, 2
    # macro-F1: class 0 P 1/2 R 1 -> 2/3; class 1 P 1 R 1/2 -> 2/3; class 2: 1
    assert row["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # ECE, 15 bins: 0.9 (right), 0.6 (wrong), 0.7 (right), 0.8 (right) each alone in a bin
    assert row["ece"] == pytest.approx((0.1 + 0.6 + 0.3 + 0.2) / 4)
    assert (row["seen_rows"], row["seen_accuracy"], row["unseen_accuracy"]) == (2, 0.5, 1.0)
    assert domain_row(probs, [0, 1, 1, 2], seen=[False] * 4)["seen_accuracy"] is None

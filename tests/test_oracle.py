"""tools/oracle.py: the best score any classifier giving one label per name can reach on a split."""
import itertools

import pytest

from tools.oracle import main, oracle_predictions
from utils.metrics import classification_metrics


def test_oracle_gives_each_name_one_label():
    names = ["Smith", "Smith", "Smith", "Mackay", "Jones", "Jones", "Jones", "Jones"]
    labels = [0, 0, 1, 1, 0, 0, 0, 0]  # Smith: twice class 0, once class 1
    assert oracle_predictions(names, labels) == [0, 0, 0, 1, 0, 0, 0, 0]  # one Smith row must be wrong
    # one Smith row is half of class 1's two rows but two Smith rows are only a third of class 0's six
    assert oracle_predictions(names, labels, balanced=True) == [1, 1, 1, 1, 0, 0, 0, 0]


def test_no_labelling_of_one_label_per_name_beats_the_oracle():
    names = ["a", "a", "a", "b", "b", "c", "c", "c", "d", "d"]  # the balanced optimum gives b another label
    labels = [0, 1, 1, 1, 2, 2, 2, 0, 0, 1]
    distinct = sorted(set(names))
    best = {"accuracy": 0.0, "balanced_accuracy": 0.0}
    for choice in itertools.product(range(3), repeat=len(distinct)):  # every way to give each name one label
        label_of = dict(zip(distinct, choice))
        m = classification_metrics(labels, [label_of[n] for n in names])
        best = {k: max(best[k], m[k]) for k in best}
    for balanced, key in ((False, "accuracy"), (True, "balanced_accuracy")):
        predictions = oracle_predictions(names, labels, balanced=balanced)
        assert len({(n, p) for n, p in zip(names, predictions)}) == len(distinct)  # one label per name
        assert classification_metrics(labels, predictions)[key] == pytest.approx(best[key])


def test_oracle_runs_on_the_embedded_data_set_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["--seed", "0"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("test split: 2034 rows")  # about 10% of the 20,050 rows: 10% of the distinct names
    accuracy = float(lines[1].split("accuracy ")[1].split()[0])
    assert 0.95 < accuracy < 1.0  # names filed under several countries keep it below 1

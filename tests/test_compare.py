"""compare.py end to end on tiny data: every family trains on the one split, and the table, JSON and plots."""
import json
import re

import pytest

import compare
import train
from models import TRAINABLE
from tests.conftest import TINY_FRACTIONS, run_script
from models.checkpoint import load
from utils.data import SurnameData


@pytest.mark.slow
def test_every_run_of_a_comparison_uses_the_same_split(tiny_tsv, tmp_path):
    out = tmp_path / "cmp"
    result = run_script("compare.py", "--models", "rnn", "lstm", "--data", str(tiny_tsv), "--out", str(out),
                        "--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--hidden-size", "8", *TINY_FRACTIONS)
    assert result.returncode == 0, result.stderr
    runs = json.loads((out / "compare.json").read_text())["runs"]
    assert [r["model"] for r in runs] == ["rnn", "lstm"]

    # the split each run trained and was tested on, as its checkpoint records it: one and the same
    checkpoints = [load(r["checkpoint"]) for r in runs]
    assert [c["family"] for c in checkpoints] == ["rnn", "lstm"]
    expected = SurnameData.build(tiny_tsv, 0.25, 0.25, seed=0).record()
    assert [c["data"] for c in checkpoints] == [expected, expected]
    assert [c["countries"] for c in checkpoints] == [checkpoints[0]["countries"]] * 2
    for key in ("seed", "val_fraction", "test_fraction", "epochs", "max_steps", "hidden_size"):
        assert checkpoints[0]["config"][key] == checkpoints[1]["config"][key], key
    # ... and each run tested the same number of names, as its own output says
    assert re.findall(r"^test \((\d+) names", result.stdout, flags=re.M) == ["12", "12"]

    table = (out / "compare.md").read_text()
    assert "| balanced accuracy |" in table and "| rnn |" in table and "| lstm |" in table
    for name in ("compare_loss.png", "compare_val_accuracy.png", "compare_time.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert all(0 <= r["test"]["accuracy"] <= 1 and r["test"]["epoch"] == 1 for r in runs)
    assert 0 < runs[0]["parameters"] < runs[1]["parameters"]  # an LSTM cell has four gates to the RNN's one


def test_compare_takes_every_trainable_family_by_default_and_owns_the_save_folders():
    args, train_flags = compare.parse_args(["--epochs", "2"])
    assert args.models == TRAINABLE == ["rnn", "lstm", "gru", "ngram", "transformer"] and train_flags == ["--epochs", "2"]
    for model in args.models:  # each is a model train.py takes (a mix is not: it is made of trained members)
        assert train.parse_args(["--model", model])[0].model == model
    with pytest.raises(SystemExit):
        compare.parse_args(["--models", "mix"])
    with pytest.raises(SystemExit) as e:
        compare.parse_args(["--save-dir", "x"])  # each run's folder is <out>/<model>
    assert e.value.code == 2

"""The benchmark runs end to end on a tiny data set (correctness only: no timing is asserted)."""
import json

import pytest

from tests.conftest import run_script
from utils.data import SurnameData
from utils.errors import DataError


@pytest.mark.slow
def test_bench_runs_end_to_end_on_tiny_data(tiny_tsv, tmp_path):
    out = tmp_path / "bench.json"
    result = run_script("bench/bench.py", "--data", str(tiny_tsv), "--cells", "rnn", "--names", "16",
                        "--repeats", "1", "--epochs", "1", "--startup-runs", "1", "--hidden-size", "16",
                        "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "| baseline: one-hot per item, batch 1, nn.RNN | 1 |" in result.stdout
    assert "| project rnn | 128 |" in result.stdout  # the bench's own default batch, not train.py's
    assert "| `predict.py lucy` |" in result.stdout
    figures = json.loads(out.read_text())
    test_rows = SurnameData.build(tiny_tsv, 0.1, 0.1, seed=0).split.test
    assert [(row["kind"], row["cell"]) for row in figures["training"]] == [("baseline", "rnn"), ("project", "rnn")]
    for row in figures["training"]:
        assert row["names_per_s"] > 0 and 0 <= row["accuracy"] <= 1 and row["rss_peak_mb"] > 0
        assert row["n_test"] == len(test_rows)  # both scored on train.py's default split
    assert set(figures["inference"]) == {"rnn"} and figures["inference"]["rnn"] > 0
    assert set(figures["startup"]) == {"import torch", "predict.py lucy"}


def test_bench_bad_data_is_refused_before_anything_runs(tmp_path):
    from bench.bench import main

    with pytest.raises(DataError, match="--data"):
        main(["--data", str(tmp_path / "missing.tsv")])
    with pytest.raises(SystemExit):
        main(["--cells", "rnn,transformer"])


def test_baseline_item_is_the_original_one_hot():
    """The baseline's Dataset builds the original 57-wide one-hot; an unknown letter lights no slot."""
    from bench.bench import baseline_parts
    from config.config import ALPHABET

    OneHotNames, BaselineRNN = baseline_parts(len(ALPHABET), 8, 3)
    dataset = OneHotNames(["Abe", "O-Neil"], [2, 1], ALPHABET)
    one_hot, label = dataset[0]
    assert one_hot.shape == (3, len(ALPHABET)) and int(label) == 2
    assert one_hot.argmax(dim=1).tolist() == [ALPHABET.index(ch) for ch in "Abe"] and one_hot.sum() == 3
    assert dataset[1][0][1].sum() == 0 and dataset[1][0].sum() == 5
    assert BaselineRNN()(one_hot[None]).shape == (1, 3)

"""compare.py end to end on tiny data, and the class-imbalance helpers it reports on."""
import json

import pytest
import torch

from tests.conftest import run_script
from utils.balance import BalancedBucketSampler, class_weights, log_prior


def test_compare_three_cells(tiny_tsv, tmp_path):
    out = tmp_path / "cmp"
    result = run_script("compare.py", "--data", str(tiny_tsv), "--out", str(out), "--epochs", "2", "--max-steps", "2",
                        "--batch-size", "8", "--hidden-size", "8", "--val-fraction", "0.25", "--test-fraction", "0.25",
                        "--balance", "none", "weighted")
    assert result.returncode == 0, result.stderr
    for name in ("compare_loss.png", "compare_val_accuracy.png", "compare_time.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    table = (out / "compare.md").read_text()
    assert "| balanced accuracy |" in table
    for cell in ("RNN", "LSTM", "GRU"):
        assert f"| {cell} | none |" in table and f"| {cell} | weighted 0.3 |" in table  # the default power
    runs = json.loads((out / "compare.json").read_text())["runs"]
    assert [(r["model"], r["balance"]) for r in runs] == [(m, b) for b in ("none", "weighted 0.3") for m in ("rnn", "lstm", "gru")]
    # every run trained on the same split: same number of test names, each with its own checkpoint
    assert len({r["checkpoint"] for r in runs}) == 6
    assert all(r["parameters"] > 0 and 0 <= r["test"]["accuracy"] <= 1 for r in runs)
    assert runs[0]["parameters"] < runs[2]["parameters"] < runs[1]["parameters"]  # rnn < gru < lstm


LABELS = torch.tensor([0] * 8 + [1] * 2)  # 8 of class 0, 2 of class 1, none of class 2


def test_class_weights_and_prior():
    w = class_weights(LABELS, 3)
    assert w[LABELS][:8].sum().item() == pytest.approx(w[LABELS][8:].sum().item())  # both classes weigh the same
    assert w[0].item() == pytest.approx(10 / (3 * 8)) and w[1].item() == pytest.approx(10 / (3 * 2))
    assert class_weights(LABELS, 3, power=0.0).tolist() == [1.0, 1.0, 1.0]
    assert log_prior(LABELS, 3)[:2].exp().tolist() == pytest.approx([0.8, 0.2])
    assert log_prior(LABELS, 3, power=0.5)[0].item() == pytest.approx(0.5 * torch.log(torch.tensor(0.8)).item())


def test_balanced_sampler_draws_classes_evenly_in_one_length_batches():
    labels = torch.tensor([0] * 900 + [1] * 100)
    lengths = torch.randint(3, 8, (1000,), generator=torch.Generator().manual_seed(0))
    sampler = BalancedBucketSampler(lengths, labels, 2, batch_size=16, seed=0)
    batches = list(sampler)
    rows = torch.tensor([r for b in batches for r in b])
    assert len(rows) == 1000
    assert 0.4 < (labels[rows] == 1).float().mean().item() < 0.6  # 10% of the rows, half of the draws
    assert all(len(set(lengths[b].tolist())) == 1 and len(b) <= 16 for b in batches)

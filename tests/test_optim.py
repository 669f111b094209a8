"""The optimiser, the learning-rate schedule, best-epoch selection, and that their train.py flags reach them."""
import pytest
import torch

import train
from utils.optim import make_optimizer, make_scheduler


def test_weight_decay_on_matrices_only():
    model = torch.nn.GRU(4, 3)
    optimizer = make_optimizer(model, lr=0.1, weight_decay=0.2)
    assert isinstance(optimizer, torch.optim.AdamW)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.2 and all(p.dim() == 2 for p in decayed["params"])
    assert plain["weight_decay"] == 0.0 and all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def lrs(schedule: str, total: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimizer, schedule, total)
    out = []
    for _ in range(total + 3):  # a few steps past the end, as the balanced sampler may take
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_cosine_warms_up_peaks_and_ends_at_zero():
    values = lrs("cosine", 100)
    assert values[0] == pytest.approx(0.2) and values[4] == pytest.approx(1.0)  # 5 warm-up steps
    assert all(a >= b for a, b in zip(values[4:], values[5:]))  # then never rises
    assert values[100:] == pytest.approx([0.0] * 3)
    assert lrs("constant", 10) == [1.0] * 13
    with pytest.raises(ValueError):
        lrs("linear", 10)


def test_selection_score():
    val = {"accuracy": 0.8, "balanced_accuracy": 0.4}
    assert train.selection_score(val, "accuracy") == 0.8
    assert train.selection_score(val, "balanced") == 0.4
    assert train.selection_score(val, "mean") == pytest.approx(0.6)


def test_flags_reach_the_optimiser_and_the_loss(tiny_tsv, tmp_path, monkeypatch):
    seen = []
    cross_entropy = train.F.cross_entropy

    def spy(*args, **kwargs):
        seen.append(kwargs.get("label_smoothing"))
        return cross_entropy(*args, **kwargs)

    monkeypatch.setattr(train.F, "cross_entropy", spy)
    clipped = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, max_norm: clipped.append(max_norm) or clip(params, max_norm))
    cfg = train.parse_args(["--data", str(tiny_tsv), "--save-dir", str(tmp_path), "--epochs", "2", "--batch-size", "8",
                            "--hidden-size", "8", "--val-fraction", "0.25", "--test-fraction", "0.25",
                            "--weight-decay", "0.3", "--label-smoothing", "0.2", "--clip", "0.5",
                            "--schedule", "cosine", "--select", "balanced"])
    train.train(cfg)
    assert 0.2 in seen  # the training loss (evaluation's loss has no smoothing)
    assert clipped and set(clipped) == {0.5}
    checkpoint = torch.load(tmp_path / "gru_classification_2.bin", weights_only=True)
    groups = checkpoint["optimizer"]["param_groups"]
    assert groups[0]["weight_decay"] == 0.3
    assert groups[0]["lr"] == pytest.approx(0.0)  # the cosine ran down to zero at the last step
    assert checkpoint["config"]["select"] == "balanced"

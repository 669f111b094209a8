"""The learning-rate schedule, de-duplication, their train.py flags, and the oracle ceiling (utils/oracle.py)."""
import pytest
import torch

import train
from tests.conftest import TINY
from utils.schedule import make_scheduler


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


def run(data, save, *flags):
    cfg = train.parse_args(["--data", str(data), "--save-dir", str(save), "--epochs", "2", "--batch-size", "8",
                            "--hidden-size", "8", "--val-fraction", "0.25", "--test-fraction", "0.25", *flags])
    return train.train(cfg)["history"]


def test_flags_reach_the_schedule_and_the_training_rows(tmp_path):
    data = tmp_path / "repeated.tsv"  # every Russian name three times, as names.tsv repeats its Arabic names
    rows = [(n, c) for c, names in TINY.items() for n in names for _ in range(3 if c == "Russian" else 1)]
    data.write_text("".join(f"{n}\t{c}\n" for n, c in rows), encoding="utf-8")

    history = run(data, tmp_path / "a", "--schedule", "cosine", "--no-dedupe")
    checkpoint = torch.load(tmp_path / "a" / "gru_classification_2.bin", weights_only=True)
    assert checkpoint["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0)  # the cosine ran down to 0

    deduped = run(data, tmp_path / "b", "--dedupe", "--schedule", "constant")
    checkpoint = torch.load(tmp_path / "b" / "gru_classification_2.bin", weights_only=True)
    assert checkpoint["optimizer"]["param_groups"][0]["lr"] == pytest.approx(train.TrainConfig().lr)
    seen, seen_once = history["epochs"][0]["samples"], deduped["epochs"][0]["samples"]
    n_train_russian = seen - seen_once
    assert n_train_russian > 0 and n_train_russian % 2 == 0  # two extra copies of each training Russian name gone


def test_oracle_gives_each_name_one_label():
    from utils.oracle import oracle_predictions

    names = ["Smith", "Smith", "Smith", "Mackay", "Jones", "Jones", "Jones", "Jones"]
    labels = [0, 0, 1, 1, 0, 0, 0, 0]  # Smith: twice class 0, once class 1
    assert oracle_predictions(names, labels) == [0, 0, 0, 1, 0, 0, 0, 0]  # one Smith row must be wrong
    # one Smith row is half of class 1's two rows but two Smith rows are only a third of class 0's six
    assert oracle_predictions(names, labels, balanced=True) == [1, 1, 1, 1, 0, 0, 0, 0]

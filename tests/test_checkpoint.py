import pytest
import torch

from models.predictor import Predictor
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.errors import CheckpointError

NAMES = ["Nakamura", "Ivanov", "Smith", "lucy", "Müller", "Maxa/B"]


def test_checkpoint_is_self_describing(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    assert checkpoint["countries"] == ["English", "Japanese", "Russian"]
    assert checkpoint["model_args"]["n_letters"] == len(checkpoint["alphabet"]) + 1
    assert checkpoint["model_args"]["cell"] == "gru" and checkpoint["model_args"]["hidden_size"] == 16
    assert checkpoint["split"]["seed"] == 0 and len(checkpoint["split"]["data_sha256"]) == 64
    assert {"val_accuracy", "test_accuracy", "test_balanced_accuracy", "test_macro_f1"} <= set(checkpoint["metrics"])
    assert checkpoint["config"]["epochs"] == 3 and 1 <= checkpoint["epoch"] <= 3


def test_round_trip_gives_identical_predictions(tiny_checkpoint, tmp_path):
    first = Predictor.from_checkpoint(tiny_checkpoint)
    copy = tmp_path / "copy.bin"
    save_checkpoint({k: v for k, v in load_checkpoint(tiny_checkpoint).items() if k != "format"}, copy)
    second = Predictor.from_checkpoint(copy)
    names = [n for n in NAMES]
    assert torch.equal(first.probabilities(names), second.probabilities(names))
    assert [p.top for p in first.predict(NAMES, topk=3)] == [p.top for p in second.predict(NAMES, topk=3)]


def test_probabilities_sum_to_one_and_topk_is_sorted(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    (p,) = predictor.predict(["Müller"], topk=5)
    assert p.normalised == "Muller" and len(p.top) == 3  # only 3 countries exist
    probs = [prob for _, prob in p.top]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_atomic_save_leaves_no_temp_files(tmp_path):
    save_checkpoint({"x": torch.zeros(3)}, tmp_path / "a.bin")
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_missing_corrupt_foreign_and_mismatched_checkpoints(tiny_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="python train.py"):
        Predictor.from_checkpoint(tmp_path / "none.bin")
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        Predictor.from_checkpoint(truncated)
    foreign = tmp_path / "foreign.bin"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a surname-classifier checkpoint"):
        Predictor.from_checkpoint(foreign)
    checkpoint = {k: v for k, v in load_checkpoint(tiny_checkpoint).items() if k != "format"}
    mismatched = tmp_path / "mismatched.bin"
    save_checkpoint({**checkpoint, "model_args": {**checkpoint["model_args"], "hidden_size": 32}}, mismatched)
    with pytest.raises(CheckpointError, match="do not match"):
        Predictor.from_checkpoint(mismatched)
    relabelled = tmp_path / "relabelled.bin"
    save_checkpoint({**checkpoint, "countries": checkpoint["countries"][:2]}, relabelled)
    with pytest.raises(CheckpointError, match="do not match"):
        Predictor.from_checkpoint(relabelled)

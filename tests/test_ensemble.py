"""train.py --members: several classifiers trained side by side that predict with their mean probabilities."""
import pytest
import torch

import train
from config.config import ALPHABET
from models.classifier import ModelArgs, NameClassifier
from models.ensemble import Ensemble, build_model, members_of
from models.predictor import Predictor
from tests.conftest import run_script
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.dataset import encode_names
from utils.text import Alphabet

ALPHA = Alphabet(ALPHABET)


def test_ensemble_predicts_the_mean_probability_of_its_members():
    torch.manual_seed(0)
    model = Ensemble(ModelArgs("gru", ALPHA.size, 4, hidden_size=8, bidirectional=True), 3).eval()
    for i, member in enumerate(model.members):
        member.logit_offset.copy_(torch.tensor([0.0, float(i), -1.0, 0.5]))
    letters, lengths = encode_names(["Tanaka", "Smith", "O'Neill"], ALPHA)  # [3, 7], [3]
    logits = model(letters, lengths)  # [3, 4]
    assert logits.shape == (3, 4)
    mean = torch.stack([torch.softmax(m(letters, lengths), dim=1) for m in model.members]).mean(0)  # [3, 4]
    assert torch.allclose(torch.softmax(logits, dim=1), mean, atol=1e-6)
    assert torch.allclose(logits.exp().sum(1), torch.ones(3), atol=1e-5)  # already log-probabilities
    # members start from different weights, so they disagree
    assert not torch.allclose(model.members[0](letters, lengths), model.members[1](letters, lengths))


def test_one_member_is_the_plain_classifier_with_its_usual_keys():
    args = ModelArgs("lstm", ALPHA.size, 3, hidden_size=8)
    single = build_model(args, 1)
    assert isinstance(single, NameClassifier) and members_of(single) == [single]
    assert set(single.state_dict()) == set(NameClassifier(args).state_dict())
    pair = build_model(args, 2)
    assert len(members_of(pair)) == 2 and all(key.startswith("members.") for key in pair.state_dict())
    with pytest.raises(ValueError, match="at least 2"):
        Ensemble(args, 1)


def test_train_members_round_trip_through_predict(tiny_tsv, tmp_path):
    save = tmp_path / "save"
    result = run_script("train.py", "--data", str(tiny_tsv), "--save-dir", str(save), "--members", "2",
                        "--epochs", "2", "--batch-size", "8", "--hidden-size", "8",
                        "--val-fraction", "0.25", "--test-fraction", "0.25")
    assert result.returncode == 0, result.stderr
    assert "model: 2 x gru" in result.stdout
    path = save / "gru_classification_best.bin"
    checkpoint = load_checkpoint(path)
    assert checkpoint["members"] == 2 and checkpoint["config"]["members"] == 2
    predictor = Predictor.from_checkpoint(path)
    assert isinstance(predictor.model, Ensemble) and len(predictor.model.members) == 2
    # every member carries the class-mix offset training computed
    offsets = [checkpoint["model_state"][f"members.{i}.logit_offset"] for i in range(2)]
    assert torch.equal(offsets[0], offsets[1])

    out = run_script("predict.py", "--checkpoint", str(path), "--topk", "3", "Nakamura")
    assert out.returncode == 0, out.stderr
    assert all(country in out.stdout for country in ("Japanese", "Russian", "English"))
    probs = predictor.probabilities(["Nakamura"])  # [1, 3]
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)

    # a checkpoint whose member count does not fit its weights is refused with one clear line
    save_checkpoint({**checkpoint, "members": 3}, tmp_path / "bad.bin")
    out = run_script("predict.py", "--checkpoint", str(tmp_path / "bad.bin"), "Nakamura")
    assert out.returncode != 0 and "do not match" in out.stderr and "Traceback" not in out.stderr


def test_train_refuses_zero_members(tiny_tsv, tmp_path):
    result = run_script("train.py", "--data", str(tiny_tsv), "--save-dir", str(tmp_path), "--members", "0")
    assert result.returncode == 2 and "--members must be at least 1" in result.stderr


def test_each_member_draws_its_own_batch_order_and_member_0_keeps_the_single_models_order(tiny_tsv):
    def epoch_orders(members: int) -> list[list[list[int]]]:
        """Each member's first epoch: its batches' letters, in order."""
        cfg = train.parse_args(["--data", str(tiny_tsv), "--members", str(members), "--batch-size", "4"])
        loaders = train.load_data(cfg).train_loaders
        assert len(loaders) == members
        return [[letters.tolist() for letters, _, _ in loader] for loader in loaders]

    single, three = epoch_orders(1), epoch_orders(3)
    assert three[0] == single[0]  # one model trains exactly as before ensembles existed
    assert three[1] != three[0] and three[2] != three[0]

"""The class-mix correction applied when predicting, post-hoc adjustment, and letter dropout."""
import math

import pytest
import torch

from config.config import ALPHABET
from models.classifier import ModelArgs, NameClassifier
from models.predictor import Predictor
from tests.conftest import TINY, run_script
from utils.balance import prediction_offset
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.dataset import drop_letters, encode_names
from utils.text import Alphabet

NAMES = torch.tensor([0] * 8 + [1] * 2)  # trained on: 8 distinct names of class 0, 2 of class 1, none of 2
ROWS = torch.tensor([0] * 8 + [1] * 8)  # every row: the two class-1 names repeated 4 times each


def test_rows_prior_multiplies_odds_by_the_row_share_over_the_name_share():
    offset = prediction_offset(NAMES, ROWS, 3, prior="rows")
    # class 0: 8/16 of the rows against 8/10 of the names; class 1: 8/16 against 2/10
    assert offset[:2].tolist() == pytest.approx([math.log(0.5 / 0.8), math.log(0.5 / 0.2)])
    # two classes the model found equally likely on distinct names: the rows make class 1 four times likelier
    probs = torch.softmax(torch.zeros(3) + offset, 0)
    assert (probs[1] / probs[0]).item() == pytest.approx(4.0)


def test_names_prior_changes_nothing_and_posthoc_takes_the_prior_off():
    assert prediction_offset(NAMES, ROWS, 3, prior="names").tolist() == [0.0, 0.0, 0.0]
    assert prediction_offset(NAMES, NAMES, 3, prior="rows").tolist() == [0.0, 0.0, 0.0]  # no duplicates
    adjusted = prediction_offset(NAMES, ROWS, 3, prior="names", posthoc_adjust=1.0)
    assert adjusted[:2].tolist() == pytest.approx([-math.log(0.8), -math.log(0.2)])
    half = prediction_offset(NAMES, ROWS, 3, prior="rows", posthoc_adjust=0.5)
    assert half[1].item() == pytest.approx(0.5 * math.log(0.5) - math.log(0.2))


def test_offset_is_added_when_predicting_only():
    alphabet = Alphabet(ALPHABET)
    model = NameClassifier(ModelArgs("gru", alphabet.size, 3, hidden_size=8))
    letters, lengths = encode_names(["Tanaka", "Smith"], alphabet)  # [2, 6], [2]
    model.eval()
    raw = model(letters, lengths)  # [2, 3]
    model.logit_offset.copy_(torch.tensor([0.0, 2.0, -1.0]))
    assert torch.allclose(model(letters, lengths), raw + torch.tensor([0.0, 2.0, -1.0]))
    model.train()  # dropout is 0: training sees the raw logits the loss is taken on
    assert torch.allclose(model(letters, lengths), raw)
    assert "logit_offset" in model.state_dict()


def test_drop_letters_hides_about_p_of_the_letters_and_keeps_the_rest():
    letters = torch.randint(0, 57, (64, 10), generator=torch.Generator().manual_seed(0))
    assert torch.equal(drop_letters(letters, 0.0, 57), letters)
    torch.manual_seed(1)
    dropped = drop_letters(letters, 0.25, 57)
    hidden = dropped == 57
    assert 0.2 < hidden.float().mean().item() < 0.3
    assert torch.equal(dropped[~hidden], letters[~hidden])
    torch.manual_seed(1)
    assert torch.equal(drop_letters(letters, 0.25, 57), dropped)  # the global seed decides


def test_training_stores_the_row_mix_and_predict_uses_it(tmp_path):
    # Russian names repeated five times: the rows' mix differs from the distinct names'
    rows = [(name, country) for country, names in TINY.items() for name in names]
    rows += [(name, "Russian") for name in TINY["Russian"]] * 4
    data = tmp_path / "dup.tsv"
    data.write_text("".join(f"{n}\t{c}\n" for n, c in rows), encoding="utf-8")
    save = tmp_path / "save"
    result = run_script("train.py", "--data", str(data), "--save-dir", str(save), "--epochs", "1",
                        "--batch-size", "8", "--hidden-size", "8", "--letter-dropout", "0.2",
                        "--val-fraction", "0.25", "--test-fraction", "0.25")
    assert result.returncode == 0, result.stderr
    path = save / "gru_classification_best.bin"
    checkpoint = load_checkpoint(path)
    offset = checkpoint["model_state"]["logit_offset"]  # English, Japanese, Russian
    assert checkpoint["config"]["prior"] == "rows" and checkpoint["config"]["letter_dropout"] == 0.2
    # the split keeps the same share of each country's distinct names, so the ratios are exact
    assert (offset[2] - offset[0]).item() == pytest.approx(math.log(5.0), abs=1e-5)
    assert (offset[1] - offset[0]).item() == pytest.approx(0.0, abs=1e-5)

    # a checkpoint from before the correction (no offset saved) loads and predicts without one
    old = {k: v for k, v in checkpoint.items() if k != "format"}
    old["model_state"] = {k: v for k, v in checkpoint["model_state"].items() if k != "logit_offset"}
    save_checkpoint(old, tmp_path / "old.bin")
    names = ["Tanaka", "Ivanov", "Smith"]
    with_offset = Predictor.from_checkpoint(path).logits(names)
    without = Predictor.from_checkpoint(tmp_path / "old.bin").logits(names)
    assert torch.allclose(with_offset, without + offset, atol=1e-5)

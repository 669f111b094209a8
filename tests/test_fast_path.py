"""The fast paths (index batches, vectorised encoding, Predictor's one-length batches) compute what the one-hot reference computes."""
import random
import string
import subprocess
import sys

import pytest
import torch

from config.config import ALPHABET
from models.classifier import ModelArgs, NameClassifier
from models.predictor import Predictor
from utils.dataset import NamesDataset, collate_one_hot, encode_names, make_loader
from utils.text import Alphabet

from tests.conftest import ROOT

COUNTRIES = [f"country{i}" for i in range(7)]


def random_names(n: int, seed: int) -> list[str]:
    """Names of 1-14 characters, mostly alphabet letters, some outside it ('-', 'é', '1', '中')."""
    rng = random.Random(seed)
    pool = string.ascii_letters * 3 + " .,;'" + "-é1中"
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 14))) for _ in range(n)]


def reference_logits(model: NameClassifier, names: list[str], alphabet: Alphabet) -> torch.Tensor:
    """The documented path: one-hot items (Alphabet.one_hot, as NamesDataset[i] gives them), padded by
    collate_one_hot, packed by the model."""
    dataset = NamesDataset(names, [0] * len(names), alphabet)
    items = [(alphabet.one_hot(name), 0) for name in names]
    assert all(torch.equal(dataset[i][0], items[i][0]) for i in range(len(names)))
    one_hot, lengths, _ = collate_one_hot(items)  # [N, T, n_letters]
    with torch.inference_mode():
        return model.eval()(one_hot, lengths)


def test_encode_names_matches_per_name_encoding():
    alphabet = Alphabet(ALPHABET)
    names = random_names(300, seed=1) + ["", "Ö"]
    letters, lengths = encode_names(names, alphabet)
    expected = torch.nn.utils.rnn.pad_sequence([alphabet.encode(n) for n in names], batch_first=True)
    assert torch.equal(letters, expected)
    assert lengths.tolist() == [len(n) for n in names]
    assert (letters == alphabet.unknown_index).any()  # the unknown characters really were exercised
    assert encode_names([], alphabet)[0].shape == (0, 0)


@pytest.mark.parametrize("args", [
    ModelArgs("rnn", len(ALPHABET) + 1, len(COUNTRIES), hidden_size=32),
    ModelArgs("rnn", len(ALPHABET) + 1, len(COUNTRIES), hidden_size=32, bidirectional=True),
    ModelArgs("lstm", len(ALPHABET) + 1, len(COUNTRIES), hidden_size=32),
    ModelArgs("gru", len(ALPHABET) + 1, len(COUNTRIES), hidden_size=32, num_layers=2, bidirectional=True),
], ids=["rnn", "rnn-bidirectional", "lstm", "gru-2-layers-bidirectional"])
def test_fast_paths_give_the_reference_logits(args):
    torch.manual_seed(0)
    alphabet = Alphabet(ALPHABET)
    model = NameClassifier(args).eval()
    names = random_names(400, seed=2)
    expected = reference_logits(model, names, alphabet)  # [N, n_countries]

    # prediction: Predictor encodes all names at once and runs one-length batches (small ones here)
    predictor = Predictor(model, alphabet, COUNTRIES)
    assert torch.allclose(predictor.logits(names, batch_size=16), expected, atol=1e-5)
    assert torch.allclose(predictor.probabilities(names), torch.softmax(expected, dim=1), atol=1e-6)

    # training: the length-bucketed loader's index batches, fed to the model as train.py does
    dataset = NamesDataset(names, list(range(len(names))), alphabet)  # labels = row numbers, to find each row
    got = torch.empty_like(expected)
    with torch.inference_mode():
        for letters, lengths, rows in make_loader(dataset, batch_size=32, shuffle=True, seed=3):
            assert bool((lengths == lengths[0]).all())
            got[rows] = model(letters, lengths)
    assert torch.allclose(got, expected, atol=1e-5)


def test_predict_returns_the_reference_argmax():
    torch.manual_seed(0)
    alphabet = Alphabet(ALPHABET)
    model = NameClassifier(ModelArgs("gru", alphabet.size, len(COUNTRIES), hidden_size=32))
    names = [name for name in random_names(200, seed=4) if any(ch.isalpha() and ch.isascii() for ch in name)]
    predictions = Predictor(model, alphabet, COUNTRIES).predict(names, topk=3)
    normalised = [p.normalised for p in predictions]
    expected = torch.softmax(reference_logits(model, normalised, alphabet), dim=1)
    assert [p.country for p in predictions] == [COUNTRIES[i] for i in expected.argmax(dim=1).tolist()]
    for p, row in zip(predictions, expected):
        assert [prob for _, prob in p.top] == pytest.approx(row.topk(3).values.tolist(), abs=1e-6)


def imported_packages(*args: str) -> set[str]:
    """Top-level packages a Python command imports, from `python -X importtime`."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True,
                            cwd=ROOT.parent, timeout=300)
    assert result.returncode == 0, result.stderr
    return {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()
            if line.startswith("import time:")}


def test_predict_cli_imports_nothing_beyond_torch_that_it_does_not_need(tiny_checkpoint):
    """`python predict.py NAME` stays near `import torch`: no matplotlib, scikit-learn or scipy, and tqdm only
    where torch itself loads it."""
    predict = imported_packages(str(ROOT / "predict.py"), "lucy", "--checkpoint", str(tiny_checkpoint))
    torch_itself = imported_packages("-c", "import torch")
    assert "torch" in predict and "models" in predict  # the import log was really read
    assert not predict & {"matplotlib", "sklearn", "scipy", "pandas"}
    assert not (predict - torch_itself) & {"tqdm", "numpy"}

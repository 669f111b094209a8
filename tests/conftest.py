"""Shared fixtures: the repo root, a tiny data set made on the spot, a checkpoint trained on it once per session by
train.py's main(), and a hand-built checkpoint whose every answer is known in advance.

Every test reads the data it needs from here or from the embedded copy data/names.tsv; none needs ../shared.
"""
import io
import math
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "Japanese": ["Nakamura", "Tanaka", "Suzuki", "Yamamoto", "Watanabe", "Takahashi", "Kobayashi", "Sato",
                 "Ito", "Kato", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto", "Inoue"],
    "Russian": ["Ivanov", "Smirnov", "Kuznetsov", "Popov", "Vasiliev", "Petrov", "Sokolov", "Mikhailov",
                "Novikov", "Fedorov", "Morozov", "Volkov", "Alekseev", "Lebedev", "Semenov", "Egorov"],
    "English": ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
                "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green"],
}
TINY_COUNTRIES = sorted(TINY)  # English, Japanese, Russian: the label order every run gets
TINY_FRACTIONS = ("--val-fraction", "0.25", "--test-fraction", "0.25")  # 4 of each country's 16 names per side


def write_tiny(path: Path, rows: list[tuple[str, str]] | None = None) -> Path:
    """A name<TAB>country file: `rows`, or TINY in its dict order."""
    rows = rows if rows is not None else [(name, country) for country, names in TINY.items() for name in names]
    path.write_text("".join(f"{name}\t{country}\n" for name, country in rows), encoding="utf-8")
    return path


def run_script(script: str, *args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run one of the project's scripts as a user would, from `cwd` (default: a folder outside the repo)."""
    return subprocess.run([sys.executable, str(ROOT / script), *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd or ROOT.parent, timeout=300)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread, every script's default, from the first test on: on a busy 2-core machine torch's default
    of one per core makes the many small operations here wait for each other (test_ngram.py took 10x as long)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def tiny_tsv(tmp_path) -> Path:
    return write_tiny(tmp_path / "tiny.tsv")


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    folder = tmp_path / "names"
    folder.mkdir()
    for country, names in TINY.items():
        (folder / f"{country}.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    return folder


# --- a checkpoint trained by train.py, once per session ---

TRAIN_FLAGS = ("--model", "gru", "--posthoc-adjust", "0", "--epochs", "4", "--batch-size", "8", "--hidden-size", "16",
               "--lr", "0.03", "--letter-dropout", "0", "--dropout", "0", *TINY_FRACTIONS)  # enough for every training name to be learnt (a few seconds)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> dict:
    """train.py's main() on the tiny data, in this process, once per session: its data file, save folder,
    checkpoint and printed output (tests/test_cli.py runs the same command as a user would, marked slow)."""
    import train

    tmp = tmp_path_factory.mktemp("trained")
    data = write_tiny(tmp / "tiny.tsv")
    save = tmp / "save"
    printed = io.StringIO()
    with redirect_stdout(printed), redirect_stderr(io.StringIO()):  # the stderr: tqdm's bars
        result = train.main(["--data", str(data), "--save-dir", str(save), *TRAIN_FLAGS])
    assert isinstance(result, dict), printed.getvalue()
    return {"data": data, "save": save, "checkpoint": save / "gru_classification_best.bin", "stdout": printed.getvalue()}


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    return tiny_run["checkpoint"]


@pytest.fixture(scope="session")
def tiny_checkpoint_data(tiny_run) -> Path:
    """The data the tiny checkpoint was trained on (its split is rebuilt from it, checked by sha256)."""
    return tiny_run["data"]


# --- a hand-built checkpoint: the last letter decides ---

LAST_LETTER = {"v": "Russian", **{vowel: "Japanese" for vowel in "aeiou"}}  # any other last letter: English
HAND_GAIN = 2.0  # head weight: the chosen country's logit is 2 tanh(3), about 0.79 of the probability


def last_letter_country(name: str) -> str:
    """What the hand-built model answers, from the name's last letter."""
    return LAST_LETTER.get(name[-1].lower(), "English")


def last_letter_probabilities(name: str) -> dict[str, float]:
    """The hand-built model's probabilities, computed by hand: softmax of (2 tanh 3 for the chosen, 0, 0)."""
    top = math.exp(HAND_GAIN * math.tanh(3.0))
    chosen = last_letter_country(name)
    return {c: (top if c == chosen else 1.0) / (top + len(TINY_COUNTRIES) - 1) for c in TINY_COUNTRIES}


def last_letter_payload(data_path: Path) -> dict:
    """A one-way `rnn` checkpoint with hidden size 3 (one unit per country), no recurrence (W_hh = 0), so the
    last state is tanh(3) in the unit of the last letter's country and 0 elsewhere; the head copies the units
    times HAND_GAIN. `data_path`'s split record goes in, so evaluate.py can rebuild the test split."""
    import torch

    from config.config import ALPHABET
    from models import build_model
    from utils.data import Alphabet, SurnameData

    alphabet = Alphabet(ALPHABET)
    args = {"cell": "rnn", "n_letters": alphabet.size, "n_countries": 3, "hidden_size": 3, "num_layers": 1,
            "bidirectional": False, "dropout": 0.0}
    state = {k: torch.zeros_like(v) for k, v in build_model("rnn", args).state_dict().items()}
    for i, letter in enumerate(alphabet.letters):
        state["rnn.weight_ih_l0"][TINY_COUNTRIES.index(last_letter_country(letter)), i] = 3.0
    state["rnn.weight_ih_l0"][TINY_COUNTRIES.index("English"), alphabet.unknown_index] = 3.0
    state["head.weight"] = HAND_GAIN * torch.eye(3)
    data = SurnameData.build(data_path, 0.25, 0.25, 0)
    return {"family": "rnn", "model_args": args, "model_state": state, "alphabet": alphabet.letters,
            "countries": list(TINY_COUNTRIES), "train_prior": data.class_shares("train").tolist(),
            "logit_offset": [0.0, 0.0, 0.0], "temperature": 1.0, "data": data.record(), "config": {},
            "epoch": 1, "metrics": {}, "finished": True}


@pytest.fixture
def hand_checkpoint(tiny_tsv, tmp_path) -> Path:
    from models.checkpoint import save

    return save(last_letter_payload(tiny_tsv), tmp_path / "hand" / "rnn_classification_best.bin")


@pytest.fixture
def empty_kernel_cache(tmp_path, monkeypatch):
    """The C kernel's cache folder in tmp_path, and models/native's loaded kernel forgotten before and after."""
    from models import native

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    native.gru_children.cache_clear()
    yield tmp_path / "surname-classifier"
    native.gru_children.cache_clear()

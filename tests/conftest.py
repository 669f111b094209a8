"""Shared fixtures: the repo root, the shared data set, and a tiny data set made on the spot."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

TINY = {
    "Japanese": ["Nakamura", "Tanaka", "Suzuki", "Yamamoto", "Watanabe", "Takahashi", "Kobayashi", "Sato",
                 "Ito", "Kato", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto", "Inoue"],
    "Russian": ["Ivanov", "Smirnov", "Kuznetsov", "Popov", "Vasiliev", "Petrov", "Sokolov", "Mikhailov",
                "Novikov", "Fedorov", "Morozov", "Volkov", "Alekseev", "Lebedev", "Semenov", "Egorov"],
    "English": ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
                "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green"],
}


def run_script(script: str, *args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run one of the project's scripts as a user would, from `cwd` (default: a folder outside the repo)."""
    return subprocess.run([sys.executable, str(ROOT / script), *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd or ROOT.parent, timeout=300)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full data set beside the checkout; its absence is a failure, not a skip."""
    if not (SHARED_DATA / "names.tsv").is_file() or not (SHARED_DATA / "names").is_dir():
        pytest.fail(f"the shared data set is missing: expected {SHARED_DATA}/names.tsv and names/")
    return SHARED_DATA


@pytest.fixture
def tiny_tsv(tmp_path) -> Path:
    path = tmp_path / "tiny.tsv"
    path.write_text("".join(f"{name}\t{country}\n" for country, names in TINY.items() for name in names), encoding="utf-8")
    return path


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    folder = tmp_path / "names"
    folder.mkdir()
    for country, names in TINY.items():
        (folder / f"{country}.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint trained for a few steps on the tiny data, through the real CLI."""
    tmp = tmp_path_factory.mktemp("trained")
    data = tmp / "tiny.tsv"
    data.write_text("".join(f"{name}\t{country}\n" for country, names in TINY.items() for name in names), encoding="utf-8")
    result = run_script("train.py", "--data", str(data), "--save-dir", str(tmp / "save"), "--epochs", "3",
                        "--batch-size", "8", "--hidden-size", "16", "--val-fraction", "0.25", "--test-fraction", "0.25")
    assert result.returncode == 0, result.stderr
    return tmp / "save" / "gru_classification_best.bin"

"""Nothing lost, nothing crashes: every way a user can trip the scripts ends in one readable line on stderr,
a non-zero exit and no traceback; interrupted training resumes to the very weights of an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, TINY, TINY_FRACTIONS, run_script, write_tiny
from models import checkpoint as ckpt
from utils.data import check_name, normalise
from utils.errors import InvalidNameError


def one_clear_line(result: subprocess.CompletedProcess) -> str:
    """The stderr of a failed run: exactly one line that starts with 'error:', and no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("model: ")]
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def tampered(tiny_checkpoint, tmp_path, change) -> str:
    payload = torch.load(tiny_checkpoint, weights_only=True)
    change(payload)
    path = tmp_path / "tampered.bin"
    torch.save(payload, path)
    return str(path)


def set_nan(payload):
    weight = next(k for k in payload["model_state"] if k.endswith("weight"))
    payload["model_state"][weight] = torch.full_like(payload["model_state"][weight], float("nan"))


# (what the user does, the command's arguments, a word the one line must contain); {ckpt} and {tmp} are filled in
CASES = {
    "a huge hidden size in the checkpoint": ("predict", lambda p: p["model_args"].update(hidden_size=10**9), "range"),
    "NaN weights": ("predict", set_nan, "NaN"),
    "the alphabet an int": ("predict", lambda p: p.update(alphabet=57), "alphabet"),
    "the data record missing keys": ("predict", lambda p: p["data"].pop("seed"), "seed"),
    "a family nobody knows": ("predict", lambda p: p.update(family="quantum"), "family"),
    "countries not a list": ("predict", lambda p: p.update(countries="English"), "countries"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_damaged_checkpoint_is_refused_with_one_line(case, tiny_checkpoint, tmp_path):
    _, change, word = CASES[case]
    result = run_script("predict.py", "Smith", "--checkpoint", tampered(tiny_checkpoint, tmp_path, change))
    assert word in one_clear_line(result)


def test_a_checkpoint_with_huge_sizes_is_refused_before_anything_is_allocated(tiny_checkpoint, tmp_path):
    """Sizes within range but not matching the stored weights: refused from the meta-device build, fast."""
    path = tampered(tiny_checkpoint, tmp_path, lambda p: p["model_args"].update(hidden_size=60_000))
    started = time.perf_counter()
    result = run_script("predict.py", "Smith", "--checkpoint", path)
    assert "do not match" in one_clear_line(result)
    assert time.perf_counter() - started < 30  # a real 60,000-wide GRU would take minutes and gigabytes


@pytest.mark.parametrize("args, stdin, word", [
    (["\U0001F600"], None, "no letters"),  # an emoji-only name
    (["-"], "x" * 1_000_000 + "\n", "at most"),  # a million characters (stdin: too long for an argument)
    (["Smith", "--device", "cuda"], None, "cuda"),
    (["Smith", "--checkpoint", "/nonexistent/model.bin"], None, "no checkpoint"),
    (["Smith", "--prior", "/nonexistent/prior.json"], None, "prior"),
])
def test_predict_refuses_bad_input_with_one_line(args, stdin, word, tiny_checkpoint):
    if "--checkpoint" not in args:
        args = [*args, "--checkpoint", str(tiny_checkpoint)]
    if "--device" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert word in one_clear_line(run_script("predict.py", *args, stdin=stdin))


def test_predict_with_closed_stdin_says_so(tiny_checkpoint):
    result = subprocess.run([sys.executable, str(ROOT / "predict.py"), "-", "--checkpoint", str(tiny_checkpoint)],
                            capture_output=True, text=True, cwd=ROOT.parent, timeout=120,
                            preexec_fn=lambda: os.close(0))  # `<&-`: the child starts with no stdin at all
    assert "stdin" in one_clear_line(result)


def test_predict_into_a_closed_pipe_ends_quietly(tiny_checkpoint):
    """`predict.py - | head -1`: the reader leaves after one line; no BrokenPipeError traceback."""
    names = "\n".join(["Smith", "Tanaka", "Ivanov"] * 20_000)
    result = subprocess.run(f"{sys.executable} {ROOT / 'predict.py'} - --checkpoint {tiny_checkpoint} | head -1",
                            shell=True, input=names, capture_output=True, text=True, timeout=300)
    assert len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_unreadable_data_is_one_error(tmp_path, monkeypatch):
    from utils.data import load_samples
    from utils.errors import DataError

    data = write_tiny(tmp_path / "tiny.tsv")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)  # root reads a chmod 000 file, so the refusal is simulated
    with pytest.raises(DataError, match="cannot read it .Permission denied"):
        load_samples(data)


def test_train_refuses_an_unwritable_save_folder_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    data = write_tiny(tmp_path / "tiny.tsv")
    result = run_script("train.py", "--data", str(data), "--save-dir", str(blocker / "save"), *TINY_FRACTIONS)
    assert "cannot write" in one_clear_line(result)


@pytest.mark.parametrize("names_in_rare_country", [1, 2])
def test_a_country_with_too_few_names_is_refused_by_name(names_in_rare_country, tmp_path):
    rows = [(n, c) for c, names in TINY.items() for n in names] + [(f"Rare{i}", "Atlantean")
                                                                    for i in range(names_in_rare_country)]
    result = run_script("train.py", "--data", str(write_tiny(tmp_path / "d.tsv", rows)),
                        "--save-dir", str(tmp_path / "s"), *TINY_FRACTIONS)
    line = one_clear_line(result)
    assert "Atlantean" in line and "at least" in line


def test_a_huge_name_in_the_training_data_is_refused_by_line(tmp_path):
    rows = [(n, c) for c, names in TINY.items() for n in names] + [("y" * 100_000, "English")]
    started = time.perf_counter()
    result = run_script("train.py", "--data", str(write_tiny(tmp_path / "d.tsv", rows)),
                        "--save-dir", str(tmp_path / "s"), *TINY_FRACTIONS)
    assert "d.tsv:49" in one_clear_line(result)
    assert time.perf_counter() - started < 60


def test_a_second_run_on_a_busy_save_folder_is_refused(tmp_path):
    data = write_tiny(tmp_path / "tiny.tsv")
    with ckpt.SaveDirLock(tmp_path / "save"):
        result = run_script("train.py", "--data", str(data), "--save-dir", str(tmp_path / "save"), *TINY_FRACTIONS)
    assert f"pid {os.getpid()}" in one_clear_line(result)


def test_stale_temp_files_are_cleaned_by_the_next_run(tmp_path):
    save = tmp_path / "save"
    save.mkdir()
    stale = save / ".gru_classification_best.bin.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    with ckpt.SaveDirLock(save):
        pass
    assert not stale.exists()


# --- interruption and resume ---

RESUME_FLAGS = ("--model", "gru", "--epochs", "3", "--batch-size", "4", "--hidden-size", "16", *TINY_FRACTIONS)


def test_an_interrupted_run_resumes_to_the_weights_and_history_of_an_uninterrupted_one(tmp_path):
    data = write_tiny(tmp_path / "tiny.tsv")
    whole = run_script("train.py", "--data", str(data), "--save-dir", str(tmp_path / "whole"), *RESUME_FLAGS)
    assert whole.returncode == 0, whole.stderr

    # the same run, sent SIGINT as soon as it has started training
    command = [sys.executable, str(ROOT / "train.py"), "--data", str(data), "--save-dir", str(tmp_path / "cut"),
               *RESUME_FLAGS]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT.parent)
    for line in process.stdout:
        if line.startswith("model:"):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "python train.py --resume" in out
    [resume_file] = (tmp_path / "cut").glob("runs/gru-*/gru_resume.bin")  # in the run's own folder
    assert not (tmp_path / "cut" / "gru_classification_best.bin").exists()  # nothing published

    resumed = run_script("train.py", "--resume", "--save-dir", str(tmp_path / "cut"))
    assert resumed.returncode == 0, resumed.stderr
    a = ckpt.load(tmp_path / "whole" / "gru_classification_best.bin")
    b = ckpt.load(tmp_path / "cut" / "gru_classification_best.bin")
    assert a["model_state"].keys() == b["model_state"].keys()
    assert all(torch.equal(a["model_state"][k], b["model_state"][k]) for k in a["model_state"])
    history_a = json.loads((tmp_path / "whole" / "gru_history.json").read_text())
    history_b = json.loads((tmp_path / "cut" / "gru_history.json").read_text())
    for key in ("samples", "loss", "accuracy", "test"):
        assert history_a[key] == history_b[key]
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in history_a["epochs"]]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"} for e in history_b["epochs"]]
    assert not resume_file.exists()  # a finished run leaves nothing to resume


def test_resume_with_nothing_to_resume_says_so(tmp_path):
    assert "nothing to resume" in one_clear_line(run_script("train.py", "--resume", "--save-dir", str(tmp_path)))


# --- any text a user can type ---

@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_normalising_any_text_gives_a_name_or_a_clear_refusal(text):
    assert isinstance(normalise(text), str)
    try:
        name = check_name(text)
    except InvalidNameError as e:
        assert str(e)
    else:
        assert name and len(name) <= 64 and name.isascii()
        assert any(ch.isalpha() for ch in name)


@pytest.fixture(scope="module")
def tiny_predictor(tiny_checkpoint):
    from models.predictor import Predictor

    return Predictor.from_checkpoints([tiny_checkpoint])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=5))
def test_predicting_any_text_gives_a_known_country_or_a_clear_refusal(tiny_predictor, names):
    for name in names:
        try:
            (prediction,) = tiny_predictor.predict([name], topk=2)
        except InvalidNameError as e:
            assert str(e)
        else:
            assert prediction.country in tiny_predictor.countries
            assert all(0 <= p <= 1 for _, p in prediction.top)

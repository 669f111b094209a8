"""Nothing lost, nothing crashes: every way a user can trip the scripts ends in one readable line on stderr,
a non-zero exit and no traceback; interrupted training resumes to the very weights of an uninterrupted run.

The scripts' main() runs in this process; a real SIGINT and a closed pipe, which need a process of their own, are in
the slow tier."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import predict
import train
import utils.training
from tests.conftest import ROOT, TINY, TINY_FRACTIONS, run_script, write_tiny
from tests.test_cli import run_main
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


def one_line_in_process(main, argv: list[str], capsys) -> str:
    """A script's main() run here as its __main__ runs it: the one 'error:' line it ends with (said on stderr or
    as the exit message), a non-zero exit and no traceback."""
    code = run_main(main, argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("model: ")]
    lines += [code] if isinstance(code, str) else []
    assert code != 0 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "\n" not in lines[0], lines
    return lines[0]


# Damaged checkpoints, field by field: tests/test_checkpoint.py (BAD); predict.py's one line for them: tests/test_cli.py

def test_a_checkpoint_with_huge_sizes_is_refused_before_anything_is_allocated(tiny_checkpoint, tmp_path, capsys):
    """Sizes within range but not matching the stored weights: refused from the meta-device build, fast."""
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["model_args"]["hidden_size"] = 60_000
    torch.save(payload, tmp_path / "huge.bin")
    started = time.perf_counter()
    line = one_line_in_process(predict.main, ["Smith", "--checkpoint", str(tmp_path / "huge.bin")], capsys)
    assert "do not match" in line
    assert time.perf_counter() - started < 30  # a real 60,000-wide GRU would take minutes and gigabytes


@pytest.mark.parametrize("args, stdin, word", [
    (["\U0001F600"], None, "no letters"),  # an emoji-only name
    (["-"], "x" * 1_000_000 + "\n", "at most"),  # a million characters (stdin: too long for an argument)
    (["-"], "closed", "stdin"),  # `<&-`: no sys.stdin (a real process: the next test)
    (["Smith", "--device", "cuda"], None, "cuda"),
    (["Smith", "--device", "vulkan"], None, "not a device these models run on"),
    (["Smith", "--device", "meta"], None, "not a device these models run on"),
    (["Smith", "--checkpoint", "/nonexistent/model.bin"], None, "no checkpoint"),
    (["Smith", "--prior", "/nonexistent/prior.json"], None, "prior"),
])
def test_predict_refuses_bad_input_with_one_line(args, stdin, word, tiny_checkpoint, monkeypatch, capsys):
    if "--checkpoint" not in args:
        args = [*args, "--checkpoint", str(tiny_checkpoint)]
    if "--device" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", None if stdin == "closed" else io.StringIO(stdin))
    assert word in one_line_in_process(predict.main, args, capsys)


def test_predict_with_closed_stdin_says_so(tiny_checkpoint):
    """A real process (it ends before torch is imported, so it is quick)."""
    result = subprocess.run([sys.executable, str(ROOT / "predict.py"), "-", "--checkpoint", str(tiny_checkpoint)],
                            capture_output=True, text=True, cwd=ROOT.parent, timeout=120,
                            preexec_fn=lambda: os.close(0))  # `<&-`: the child starts with no stdin at all
    assert "stdin" in one_clear_line(result)


def test_a_script_freezes_the_collector_for_the_interpreters_exit_after_its_own_exit_handlers():
    # the interpreter's last collector passes over torch's objects took most of a script's 0.6 s exit; frozen,
    # they are skipped. A handler the script registers while running runs before the freeze, one from before it after.
    script = ("import atexit, gc\n"
              "from utils.errors import run_script\n"
              "atexit.register(lambda: print('before run_script, frozen:', gc.get_freeze_count() > 0))\n"
              "def main():\n"
              "    atexit.register(lambda: print('from main, frozen:', gc.get_freeze_count() > 0))\n"
              "    return 3\n"
              "run_script(main)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == ["from main, frozen: False", "before run_script, frozen: True"]


@pytest.mark.slow
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


def test_train_refuses_an_unwritable_save_folder_before_training(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    data = write_tiny(tmp_path / "tiny.tsv")
    line = one_line_in_process(train.main, ["--data", str(data), "--save-dir", str(blocker / "save"), *TINY_FRACTIONS],
                               capsys)
    assert "cannot write" in line


@pytest.mark.parametrize("names_in_rare_country", [1, 2])
def test_a_country_with_too_few_names_is_refused_by_name(names_in_rare_country, tmp_path, capsys):
    rows = [(n, c) for c, names in TINY.items() for n in names] + [(f"Rare{i}", "Atlantean")
                                                                    for i in range(names_in_rare_country)]
    line = one_line_in_process(train.main, ["--data", str(write_tiny(tmp_path / "d.tsv", rows)),
                                            "--save-dir", str(tmp_path / "s"), *TINY_FRACTIONS], capsys)
    assert "Atlantean" in line and "at least" in line


def test_a_huge_name_in_the_training_data_is_refused_by_line(tmp_path, capsys):
    rows = [(n, c) for c, names in TINY.items() for n in names] + [("y" * 100_000, "English")]
    started = time.perf_counter()
    line = one_line_in_process(train.main, ["--data", str(write_tiny(tmp_path / "d.tsv", rows)),
                                            "--save-dir", str(tmp_path / "s"), *TINY_FRACTIONS], capsys)
    assert "d.tsv:49" in line
    assert time.perf_counter() - started < 60


def test_a_second_run_on_a_busy_save_folder_is_refused(tmp_path, capsys):
    data = write_tiny(tmp_path / "tiny.tsv")
    with ckpt.SaveDirLock(tmp_path / "save"):  # an flock of its own open file: refused in this process too
        line = one_line_in_process(train.main, ["--data", str(data), "--save-dir", str(tmp_path / "save"),
                                                *TINY_FRACTIONS], capsys)
    assert f"pid {os.getpid()}" in line


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


def same_run(whole: Path, cut: Path) -> None:
    """Two save folders hold the same finished gru: the same weights and history, but for the seconds."""
    a = ckpt.load(whole / "gru_classification_best.bin")
    b = ckpt.load(cut / "gru_classification_best.bin")
    assert a["model_state"].keys() == b["model_state"].keys()
    assert all(torch.equal(a["model_state"][k], b["model_state"][k]) for k in a["model_state"])
    history_a = json.loads((whole / "gru_history.json").read_text())
    history_b = json.loads((cut / "gru_history.json").read_text())
    for key in ("samples", "loss", "accuracy", "test"):
        assert history_a[key] == history_b[key]
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in history_a["epochs"]]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"} for e in history_b["epochs"]]


def test_a_run_stopped_midway_through_an_epoch_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch, capsys):
    """In this process: Ctrl-C's flag raised after the third step of epoch 1 (of six), then --resume."""
    data = write_tiny(tmp_path / "tiny.tsv")
    assert isinstance(train.main(["--data", str(data), "--save-dir", str(tmp_path / "whole"), *RESUME_FLAGS]), dict)

    flags, real_step = [], utils.training.train_step

    class Stop(train.StopFlag):
        def __enter__(self):
            flags.append(self)
            return super().__enter__()

    def step_then_stop(*args, **kwargs):
        result = real_step(*args, **kwargs)
        flags[-1].steps = getattr(flags[-1], "steps", 0) + 1
        flags[-1].requested = flags[-1].steps == 3
        return result

    with monkeypatch.context() as patch:
        patch.setattr(train, "StopFlag", Stop)
        patch.setattr(utils.training, "train_step", step_then_stop)
        assert train.main(["--data", str(data), "--save-dir", str(tmp_path / "cut"), *RESUME_FLAGS]) == 130
    assert "interrupted at epoch 1, step 3; continue with: python train.py --resume" in capsys.readouterr().out
    [resume_file] = (tmp_path / "cut").glob("runs/gru-*/gru_resume.bin")  # in the run's own folder
    assert not (tmp_path / "cut" / "gru_classification_best.bin").exists()  # nothing published

    assert isinstance(train.main(["--resume", "--save-dir", str(tmp_path / "cut")]), dict)
    same_run(tmp_path / "whole", tmp_path / "cut")
    assert not resume_file.exists()  # a finished run leaves nothing to resume


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_weights_and_history_of_an_uninterrupted_one(tmp_path):
    """The same with a real SIGINT to a child process, and --resume in another."""
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
    same_run(tmp_path / "whole", tmp_path / "cut")
    assert not resume_file.exists()  # a finished run leaves nothing to resume


def test_resume_with_nothing_to_resume_says_so(tmp_path, capsys):
    assert "nothing to resume" in one_line_in_process(train.main, ["--resume", "--save-dir", str(tmp_path)], capsys)


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


@pytest.mark.parametrize("kind", ["file", "link", "device", "unwritable"])
def test_evaluate_out_that_is_no_writable_folder_is_one_line_before_the_work(kind, tiny_checkpoint, tmp_path, capsys,
                                                                             monkeypatch):
    import evaluate

    out = {"file": tmp_path / "t.csv", "link": tmp_path / "link", "device": Path("/dev/null"),
           "unwritable": tmp_path / "ro" / "ev"}[kind]
    if kind == "file":
        out.write_text("kept")
    elif kind == "link":
        out.symlink_to(tmp_path / "t.csv")
    elif kind == "unwritable":  # what a read-only mount answers, even to root
        def refuse(self, *args, **kwargs):
            raise OSError(30, "Read-only file system")
        monkeypatch.setattr(Path, "mkdir", refuse)
    monkeypatch.setattr(evaluate, "test_split_rows", lambda *a: pytest.fail("evaluated before checking --out"))
    line = one_line_in_process(evaluate.main, ["--checkpoint", str(tiny_checkpoint), "--out", str(out)], capsys)
    expected = {"file": "is a file, not a folder", "link": "is a symbolic link, not a folder",
                "device": "is a device, not a folder", "unwritable": "(Read-only file system)"}[kind]
    assert expected in line
    assert kind != "file" or out.read_text() == "kept"

"""A run owns its files until it finishes: an interrupted, failed or mixed run never replaces what a finished run
published, resume takes only its own members, and every numeric flag has a range. In this process, tiny sizes."""
import pytest
import torch

import train
import utils.training
from models import checkpoint as ckpt
from tests.conftest import TINY_FRACTIONS, write_tiny
from utils.errors import DataError, UserError

SMALL = ("--epochs", "2", "--batch-size", "8", "--hidden-size", "8", "--no-feminine-forms", *TINY_FRACTIONS)


def interrupt_after_first_epoch(monkeypatch):
    """Make the next run stop as Ctrl-C would, at the end of its first gradient-trained epoch."""
    real_evaluate = utils.training.evaluate
    flags = []

    class Stop(train.StopFlag):
        def __enter__(self):
            flags.append(self)
            return super().__enter__()

    def evaluate_then_stop(*args, **kwargs):
        result = real_evaluate(*args, **kwargs)
        flags[-1].requested = True
        return result

    monkeypatch.setattr(train, "StopFlag", Stop)
    monkeypatch.setattr(utils.training, "evaluate", evaluate_then_stop)


def test_an_interrupted_run_and_a_mix_leave_the_published_models_byte_identical(tmp_path, monkeypatch):
    data, save = write_tiny(tmp_path / "tiny.tsv"), tmp_path / "save"
    common = ["--data", str(data), "--save-dir", str(save), *SMALL]
    assert isinstance(train.main([*common, "--model", "gru"]), dict)
    assert isinstance(train.main([*common, "--model", "ngram"]), dict)
    published = {p.name: p.read_bytes() for p in save.iterdir() if p.is_file() and p.name != ".lock"}
    assert ckpt.default_checkpoint(save) == save / "ngram_classification_best.bin"

    # a second gru run and a gru+ngram mix, each stopped after the first epoch of its gru
    with monkeypatch.context() as patch:
        interrupt_after_first_epoch(patch)
        assert train.main([*common, "--model", "gru", "--seed", "7"]) == 130
    with monkeypatch.context() as patch:
        interrupt_after_first_epoch(patch)
        assert train.main([*common, "--model", "ngram+gru", "--seed", "7"]) == 130
    assert {p.name: p.read_bytes() for p in save.iterdir() if p.is_file() and p.name != ".lock"} == published
    assert ckpt.default_checkpoint(save) == save / "ngram_classification_best.bin"

    # the mix, resumed to the end, publishes its own name only; its members stay in its run folder
    result = train.main(["--resume", "--save-dir", str(save)])
    assert result["best_path"] == save / "ngram+gru_classification_best.bin" and ckpt.load(result["best_path"])["finished"]
    assert (save / "ngram_classification_best.bin").read_bytes() == published["ngram_classification_best.bin"]
    assert (save / "gru_classification_best.bin").read_bytes() == published["gru_classification_best.bin"]
    assert {p.name for p in result["run_dir"].glob("*_best.bin")} == {"ngram_classification_best.bin",
                                                                       "gru_classification_best.bin"}
    assert ckpt.default_checkpoint(save) == result["best_path"]


def test_resume_refuses_a_member_that_is_not_the_runs_own(tmp_path, monkeypatch):
    data, save = write_tiny(tmp_path / "tiny.tsv"), tmp_path / "save"
    other = write_tiny(tmp_path / "other.tsv", [(n + "a", c) for n, c in
                                                 (line.split("\t") for line in data.read_text().splitlines())])
    with monkeypatch.context() as patch:
        interrupt_after_first_epoch(patch)
        assert train.main(["--data", str(data), "--save-dir", str(save), "--model", "ngram+gru", *SMALL]) == 130
    [run] = (save / "runs").iterdir()
    # another run's n-gram, trained on other data, where the mix keeps its member
    foreign = train.main(["--data", str(other), "--save-dir", str(tmp_path / "elsewhere"), "--model", "ngram", *SMALL])
    (run / "ngram_classification_best.bin").write_bytes(foreign["best_path"].read_bytes())
    with pytest.raises(UserError, match="not the ngram this run trained"):
        train.main(["--resume", "--save-dir", str(save)])
    assert not (save / "ngram+gru_classification_best.bin").exists()


def test_a_loss_that_becomes_nan_stops_the_run_and_publishes_nothing(tmp_path, monkeypatch):
    real_step = utils.training.train_step

    def nan_step(*args, **kwargs):
        loss, correct = real_step(*args, **kwargs)
        return torch.tensor(float("nan")), correct

    monkeypatch.setattr(utils.training, "train_step", nan_step)
    save = tmp_path / "save"
    with pytest.raises(UserError, match="training loss became nan at step 1"):
        train.main(["--data", str(write_tiny(tmp_path / "tiny.tsv")), "--save-dir", str(save), "--model", "gru",
                    *SMALL])
    assert not list(save.glob("*_best.bin")) and not (save / "latest").exists()


def test_training_memory_is_checked_against_this_machine(tmp_path, capsys, monkeypatch):
    """The default sizes need about 0.02 GB: refused where the machine has less; where it has more, the run goes on
    (to find that its data file is missing)."""
    for available, refused in ((10_000_000, True), (300_000_000, False)):
        monkeypatch.setattr(train, "available_memory", lambda: available)
        with pytest.raises(SystemExit if refused else DataError):
            train.main(["--data", str(tmp_path / "nowhere.tsv"), "--save-dir", str(tmp_path / "s")])
        err = capsys.readouterr().err
        assert ("needs about 0.0 GB to train" in err and "has 0.0 GB available" in err) is refused, err


@pytest.mark.parametrize("flags, message", [
    (["--lr", "inf"], "--lr must be between"),
    (["--lr", "nan"], "--lr must be between"),
    (["--balance-power", "inf"], "--balance-power must be between"),
    (["--balance-power", "nan"], "--balance-power must be between"),
    (["--posthoc-adjust", "nan"], "--posthoc-adjust must be between"),
    (["--hidden-size", "1000000000"], "--hidden-size must be between 1 and 8192"),
    (["--ngram-order", "1000"], "--ngram-order must be between 1 and 10"),
    (["--n-head", "0"], "--n-head must be between"),
    (["--n-head", "3"], "--n-head (3) must divide --n-embd (64)"),
    (["--n-embd", "0"], "--n-embd must be between"),
    (["--seed", "-1"], "--seed must be between 0"),
    (["--threads", "100000"], "--threads must be between 0 and 256"),
    (["--model", "transformer", "--n-layer", "1000000"], "--n-layer must be between"),
    (["--model", "gru", "--num-layers", "1000000"], "--num-layers must be between"),
    (["--model", "gru", "--num-layers", "64", "--hidden-size", "4096"], "parameters; at most 100,000,000"),
    (["--model", "transformer", "--n-layer", "256", "--n-embd", "8192"], "parameters; at most 100,000,000"),
    # few parameters, but a batch's activations need about 65 GB: more than a machine that runs these tests has
    (["--model", "gru", "--hidden-size", "2048", "--batch-size", "65536"], "GB available (lower --batch-size"),
])
def test_every_numeric_flag_has_a_range(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as e:
        train.main(["--data", str(tmp_path / "nowhere.tsv"), "--save-dir", str(tmp_path / "s"), *flags])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("device", ["meta", "vulkan"])
def test_a_device_these_models_cannot_run_on_is_one_line_and_no_run_folder(tmp_path, device):
    data = write_tiny(tmp_path / "tiny.tsv")
    with pytest.raises(UserError, match=f"--device {device}: not a device these models run on"):
        train.main(["--data", str(data), "--save-dir", str(tmp_path / "s"), "--device", device])
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").rglob("*"))

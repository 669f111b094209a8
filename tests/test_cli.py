"""The scripts as a user runs them: train -> predict -> evaluate, the exact answers of a checkpoint whose answers are
known, output formats, exit codes and one-line errors.

Subprocesses cost a Python and torch start-up each, so these tests call the scripts' main() here, wrapped as their
`__main__` wraps it (utils.errors.run_script); the same commands run as a user runs them, in child processes from
another folder, in the slow tier (`python -m pytest -m slow`).
"""
import io
import json
import subprocess
import sys
from collections import Counter

import pytest
import torch

import evaluate
import predict
import train
from tests.conftest import (ROOT, TINY, TINY_COUNTRIES, TINY_FRACTIONS, TRAIN_FLAGS, last_letter_country,
                            last_letter_probabilities, run_script, write_tiny)
from models import checkpoint as ckpt
from utils.data import SurnameData
from utils.errors import run_script as wrap_main


def run_main(main, argv: list[str]) -> int | str:
    """A script's exit code (or the "error: ..." line it exits with), run in this process."""
    with pytest.raises(SystemExit) as e:
        wrap_main(lambda: main(argv))
    return e.value.code


# --- end to end ---

def test_train_predict_evaluate_end_to_end(tiny_run, tmp_path, capsys):
    save, checkpoint = tiny_run["save"], str(tiny_run["checkpoint"])
    assert tiny_run["stdout"].startswith("config: {") and "test (12 names, best epoch" in tiny_run["stdout"]
    assert {p.name for p in save.iterdir()} >= {"gru_classification_best.bin", "gru_history.json", "gru_curves.png"}
    assert {p.name for p in save.glob("runs/gru-*/*.bin")} == {f"gru_classification_{e}.bin" for e in (1, 2, 3, 4)} | {
        "gru_classification_best.bin"}  # the run's own files
    history = json.loads((save / "gru_history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3, 4] and "accuracy" in history["test"]

    # names of its training split (Petrov, not Ivanov): the model has learnt them
    assert run_main(predict.main, ["Nakamura", "Petrov", "Smith", "--checkpoint", checkpoint]) == 0
    out = capsys.readouterr()
    assert out.out == "Nakamura\tJapanese\nPetrov\tRussian\nSmith\tEnglish\n"
    assert out.err == f"model: {checkpoint}\n"

    # the test split train.py held out, rebuilt from the tiny data, scored as train.py scored it
    assert run_main(evaluate.main, ["--checkpoint", checkpoint, "--split-data", str(tiny_run["data"]),
                                    "--out", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    metrics = ckpt.load(checkpoint)["metrics"]
    assert report["set"] == "test split" and report["rows"] == 12 and report["sha256"] == ckpt.load(checkpoint)["data"]["sha256"]
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert report["balanced_accuracy"] == pytest.approx(metrics["test_balanced_accuracy"])
    assert report["macro_f1"] == pytest.approx(metrics["test_macro_f1"])
    stem = tmp_path / "gru_classification_best_eval_test"
    assert json.loads(stem.with_suffix(".json").read_text())["rows"] == 12
    assert "balanced accuracy" in stem.with_suffix(".md").read_text()
    assert (tmp_path / (stem.name + "_confusion.png")).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_train_predict_evaluate_as_a_user_runs_them(tmp_path):
    """The three commands in child processes from another folder, names piped into predict.py."""
    data, save = write_tiny(tmp_path / "tiny.tsv"), tmp_path / "save"
    trained = run_script("train.py", "--data", str(data), "--save-dir", str(save), *TRAIN_FLAGS)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.startswith("config: {") and "test (12 names, best epoch" in trained.stdout
    checkpoint = str(save / "gru_classification_best.bin")
    predicted = run_script("predict.py", "-", "--checkpoint", checkpoint, stdin="Nakamura\nPetrov\n\nSmith\n")
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout == "Nakamura\tJapanese\nPetrov\tRussian\nSmith\tEnglish\n"
    evaluated = run_script("evaluate.py", "--checkpoint", checkpoint, "--split-data", str(data), "--out",
                           str(tmp_path), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(ckpt.load(checkpoint)["metrics"]["test_accuracy"])
    refused = run_script("predict.py", "", "42", "--checkpoint", checkpoint)
    assert refused.returncode == 1 and refused.stderr.splitlines() == [
        f"model: {checkpoint}", "error: empty name ''", "error: name '42' has no letters"]


def test_predict_gives_the_known_answers_of_a_hand_built_model(hand_checkpoint, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("nakamura\n\n  White \n"))
    code = run_main(predict.main, ["-", "Smith", "123", "Maxa/B", "Ivanov", "--json", "--topk", "3",
                                   "--checkpoint", str(hand_checkpoint)])
    out = capsys.readouterr()
    assert code == 1  # one name could not be classified; the others were answered
    assert "error: name '123' has no letters" in out.err and "Traceback" not in out.err
    assert "warning: 'Maxa/B' has characters outside the alphabet ['/']" in out.err
    records = [json.loads(line) for line in out.out.splitlines()]
    assert [r["name"] for r in records] == ["nakamura", "White", "Smith", "Maxa/B", "Ivanov"]
    assert [r["country"] for r in records] == ["Japanese", "Japanese", "English", "English", "Russian"]
    for r in records:
        assert r["country"] == last_letter_country(r["normalised"]) == r["top"][0]["country"]
        expected = last_letter_probabilities(r["normalised"])
        assert {t["country"]: t["probability"] for t in r["top"]} == pytest.approx(expected, abs=2e-6)
    assert records[0]["normalised"] == "Nakamura"


def test_predict_output_formats(hand_checkpoint, tiny_checkpoint, capsys):
    hand = str(hand_checkpoint)
    assert run_main(predict.main, ["nakamura", "--checkpoint", hand]) == 0
    out = capsys.readouterr()
    assert out.out == "Japanese\n" and out.err == f"model: {hand}\n"
    assert run_main(predict.main, ["Ivanov", "Jones", "--checkpoint", hand]) == 0
    assert capsys.readouterr().out == "Ivanov\tRussian\nJones\tEnglish\n"
    assert run_main(predict.main, ["Ivanov", "--topk", "2", "--checkpoint", hand]) == 0
    p = last_letter_probabilities("Ivanov")
    assert capsys.readouterr().out.startswith(f"Ivanov: Russian {p['Russian']:.3f}, ")
    assert run_main(predict.main, ["Ivanov", "--checkpoint", hand, str(tiny_checkpoint)]) == 0
    assert capsys.readouterr().err == f"model: {hand} + {tiny_checkpoint}\n"  # says which models answer


def test_predict_without_a_checkpoint_says_to_train_first(tmp_path, capsys):
    code = run_main(predict.main, ["lucy", "--checkpoint", str(tmp_path / "missing.bin")])
    assert code == f"error: no checkpoint at {tmp_path / 'missing.bin'}; run `python train.py` first"
    assert capsys.readouterr().out == ""


def test_predict_refuses_bad_checkpoints_in_one_line(hand_checkpoint, tmp_path):
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x80\x04garbage")
    huge = ckpt.load(hand_checkpoint)
    huge = ckpt.save({**huge, "model_args": {**huge["model_args"], "hidden_size": 10**6}}, tmp_path / "huge.bin")
    for path, message in ((corrupt, "not a readable checkpoint"), (huge, "hidden_size=1000000 is out of range")):
        code = run_main(predict.main, ["lucy", "--checkpoint", str(path)])
        assert isinstance(code, str) and code.startswith(f"error: {path}") and message in code and "\n" not in code


def test_train_on_malformed_data_names_the_line(tmp_path):
    data = tmp_path / "bad.tsv"
    data.write_text("Abe\tJapanese\nSmith English\n", encoding="utf-8")
    code = run_main(train.main, ["--data", str(data), "--save-dir", str(tmp_path / "s")])
    assert code.startswith(f"error: {data}:2: expected 'name<TAB>country'") and "\n" not in code


def test_each_checkpoint_file_is_read_once(hand_checkpoint, tiny_tsv, tmp_path, monkeypatch, capsys):
    """predict.py choosing the default checkpoint, and evaluate.py, torch.load each checkpoint file once."""
    save = tmp_path / "save"
    default = ckpt.publish(save, "rnn", ckpt.load(hand_checkpoint))
    monkeypatch.setattr(ckpt, "SAVE_DIR", save)
    real_load, reads = torch.load, Counter()
    monkeypatch.setattr(torch, "load", lambda f, *a, **kw: reads.update([str(f)]) or real_load(f, *a, **kw))
    assert run_main(predict.main, ["Ivanov"]) == 0
    assert capsys.readouterr() == ("Russian\n", f"model: {default}\n")
    assert reads == {str(default): 1}
    reads.clear()
    assert run_main(evaluate.main, ["--checkpoint", str(default), "--split-data", str(tiny_tsv), "--out", str(tmp_path),
                                    "--json"]) == 0
    assert reads == {str(default): 1}


# --- evaluate.py, in this process ---

def test_evaluate_scores_the_hand_built_model_exactly(hand_checkpoint, tiny_tsv, tmp_path, capsys):
    code = run_main(evaluate.main, ["--checkpoint", str(hand_checkpoint), "--split-data", str(tiny_tsv),
                                    "--out", str(tmp_path), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    data = SurnameData.build(tiny_tsv, 0.25, 0.25, 0)
    truth = [(data.names[r], data.countries[data.labels[r]]) for r in data.split.test]
    right = sum(last_letter_country(name) == country for name, country in truth)
    assert report["rows"] == len(truth) == 12 and right < 12  # 'White' ends in a vowel, so one is wrong
    assert report["accuracy"] == pytest.approx(right / 12)
    assert report["checkpoint"] == [str(hand_checkpoint)]


def test_evaluate_domains_prints_one_table_for_each_side_and_external_file(hand_checkpoint, tiny_tsv, tmp_path, capsys):
    external = write_tiny(tmp_path / "external.tsv", [("Kato", "Japanese"), ("Smith", "English"), ("Rossi", "Italian")])
    code = run_main(evaluate.main, ["--checkpoint", str(hand_checkpoint), "--split-data", str(tiny_tsv), "--domains",
                                    "--external", str(external), "--json"])
    assert code == 0
    table = json.loads(capsys.readouterr().out)
    assert list(table) == ["test split, all sources", "external.tsv"]  # one file: no per-origin rows
    data = SurnameData.build(tiny_tsv, 0.25, 0.25, 0)
    truth = [(data.names[r], data.countries[data.labels[r]]) for r in data.split.test]
    assert table["test split, all sources"]["accuracy"] == pytest.approx(
        sum(last_letter_country(n) == c for n, c in truth) / len(truth))
    assert table["external.tsv"]["rows"] == 2  # Italian is not a country of the checkpoint
    assert table["external.tsv"]["accuracy"] == pytest.approx(
        sum(last_letter_country(n) == c for n, c in [("Kato", "Japanese"), ("Smith", "English")]) / 2)
    assert run_main(evaluate.main, ["--checkpoint", str(hand_checkpoint), "--split-data", str(tiny_tsv), "--domains",
                                    "--split", "val", "--external"]) == 0
    assert "| val split, all sources | 12 |" in capsys.readouterr().out


def test_evaluate_data_with_unknown_countries(hand_checkpoint, tmp_path, capsys):
    rows = [(name, country) for country, names in TINY.items() for name in names[:3]]
    rows += [("Dupont", "French"), ("Martin", "French"), ("Rossi", "Italian")]
    data = write_tiny(tmp_path / "mine.tsv", rows)
    assert run_main(evaluate.main, ["--checkpoint", str(hand_checkpoint), "--data", str(data), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "French (2), Italian (1)" in out.err
    assert "| 9 |" in out.out  # the table counts the 9 known rows
    report = json.loads((tmp_path / "rnn_classification_best_eval_data_mine.json").read_text())
    assert report["rows"] == 9 and report["left_out"]["unknown_countries"] == {"French": 2, "Italian": 1}
    right = sum(last_letter_country(name) == country for name, country in rows[:9])
    assert report["accuracy"] == pytest.approx(right / 9)
    assert {r["country"] for r in report["per_country"]} <= set(TINY_COUNTRIES)


def test_evaluate_refuses_other_data_for_the_split(hand_checkpoint, tmp_path):
    other = write_tiny(tmp_path / "other.tsv", [("Ivanov", "Russian"), ("Smith", "English")])
    code = run_main(evaluate.main, ["--checkpoint", str(hand_checkpoint), "--split-data", str(other)])
    assert code.startswith("error:") and "not the data this checkpoint was trained on" in code and "\n" not in code
    code = run_main(evaluate.main, ["--checkpoint", str(hand_checkpoint)])  # the embedded data set is not it either
    assert "not the data this checkpoint was trained on" in code


# --- start-up cost ---

def imported_packages(*args: str) -> set[str]:
    """Top-level packages a Python command imports, from `python -X importtime`."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True,
                            cwd=ROOT.parent, timeout=300)
    assert result.returncode == 0, result.stderr
    return {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()
            if line.startswith("import time:")}


@pytest.mark.slow
def test_predict_cli_imports_nothing_beyond_torch_that_it_does_not_need(hand_checkpoint):
    """`python predict.py NAME` stays near `import torch`: no matplotlib, scikit-learn, scipy or openai, and tqdm
    and numpy only where torch itself loads them."""
    predict_imports = imported_packages(str(ROOT / "predict.py"), "lucy", "--checkpoint", str(hand_checkpoint))
    torch_itself = imported_packages("-c", "import torch")
    assert "torch" in predict_imports and "models" in predict_imports  # the import log was really read
    assert not predict_imports & {"matplotlib", "sklearn", "scipy", "pandas", "openai"}
    assert not (predict_imports - torch_itself) & {"tqdm", "numpy"}


def test_the_default_model_is_a_mix_that_trains_predicts_and_explains(tmp_path, capsys):
    """`python train.py` with no model flag: an n-gram and a GRU, mixed with weights fitted on validation."""
    data = write_tiny(tmp_path / "tiny.tsv")
    result = train.main(["--data", str(data), "--save-dir", str(tmp_path / "save"), "--epochs", "2",
                         "--hidden-size", "8", *TINY_FRACTIONS])
    assert "mix weights, fitted on validation: ngram" in capsys.readouterr().out
    checkpoint = tmp_path / "save" / "ngram+gru_classification_best.bin"
    assert result["best_path"] == checkpoint
    payload = torch.load(checkpoint, weights_only=True)
    assert payload["family"] == "mix" and [m["family"] for m in payload["model_args"]["members"]] == ["ngram", "gru"]
    assert payload["finished"] and payload["temperature"] > 0

    split = SurnameData.build(data, 0.25, 0.25, 0)
    side = {split.names[r]: part for part in ("train", "val") for r in getattr(split.split, part)}
    assert side["Nakamura"] == "train" and side["Yamamoto"] == "val"  # one name the model was trained on, one not
    assert run_main(predict.main, ["Nakamura", "Yamamoto", "--json", "--explain", "--checkpoint", str(checkpoint)]) == 0
    nakamura, yamamoto = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert nakamura["country"] == yamamoto["country"] == "Japanese"
    assert nakamura["seen_in_training"] == ["Japanese"] and yamamoto["seen_in_training"] == []
    assert [e["letter"] for e in yamamoto["explanation"]] == list("Yamamoto")

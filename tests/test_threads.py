"""The thread policy: predict.py and evaluate.py run torch on --threads threads (default 1)."""
import pytest
import torch

import evaluate
import predict


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_predict_and_evaluate_set_torch_threads(tiny_checkpoint, tiny_tsv, tmp_path, torch_threads, capsys):
    torch.set_num_threads(2)
    assert predict.main(["Nakamura", "--checkpoint", str(tiny_checkpoint)]) == 0
    assert torch.get_num_threads() == 1  # the default
    assert predict.main(["Nakamura", "--checkpoint", str(tiny_checkpoint), "--threads", "3"]) == 0
    assert torch.get_num_threads() == 3
    evaluate.main(["--checkpoint", str(tiny_checkpoint), "--data", str(tiny_tsv), "--out", str(tmp_path), "--json"])
    assert torch.get_num_threads() == 1
    evaluate.main(["--checkpoint", str(tiny_checkpoint), "--data", str(tiny_tsv), "--out", str(tmp_path), "--json",
                   "--threads", "2"])
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("script", [predict, evaluate])
@pytest.mark.parametrize("threads", ["100000", "-1"])
def test_a_thread_count_out_of_range_is_one_line(script, threads, tiny_checkpoint, torch_threads, capsys):
    """torch given 100,000 threads ends the process with a segmentation fault: refused as an argument error."""
    with pytest.raises(SystemExit) as e:
        script.main(["--checkpoint", str(tiny_checkpoint), "--threads", threads] + (["Nakamura"] if script is predict else []))
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"--threads: must be between 0 and 256, not {threads}" in err

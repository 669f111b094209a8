"""The fast inference path answers as the reference does: the GRU's inference recurrence against nn.GRU, and whole
predictions within the tolerance the project holds it to (bench/check_fast_path.py: every probability within
0.002, the same top country for at least 99.5% of names), on the data set's names and, where present, real ones."""
import pickle
import subprocess
import sys
from collections import Counter

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from bench.check_fast_path import SAME_TOP, TOLERANCE, compare, reference_probabilities
from models import fast_rnn, native
from models.predictor import Predictor
from tests.conftest import ROOT
from utils.data import check_name

EXTERNAL = ROOT.parent / "shared" / "data" / "external_val.tsv"  # real surnames, outside the project: may be absent


@pytest.fixture(params=["C kernel", "torch"])
def gates(request, monkeypatch):
    """Each GRU step's element-wise part by models/gru_gates.c (where this machine builds it) and by torch."""
    if request.param == "C kernel" and native.gru_children() is None:
        pytest.skip("no C compiler here: the torch path is the one in use")
    monkeypatch.setattr(fast_rnn, "NATIVE_GATES", request.param == "C kernel")
    return request.param


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("batch, steps", [(1, 1), (5, 3), (64, 12)])
def test_gru_inference_path_equals_nn_gru(bidirectional, batch, steps, gates):
    torch.manual_seed(steps)
    gru = torch.nn.GRU(11, 8, batch_first=True, bidirectional=bidirectional)
    letters = torch.randint(0, 11, (batch, steps))
    with torch.inference_mode():
        assert fast_rnn.can_run_gru(gru, letters)
        _, hidden = gru(torch.nn.functional.one_hot(letters, 11).float())
        fast = fast_rnn.gru_last_states(gru, letters, torch.full((batch,), steps))
    assert torch.allclose(fast, torch.cat(list(hidden), 1), atol=1e-6)


@pytest.mark.parametrize("block", [fast_rnn.BLOCK, 7])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_gru_inference_path_equals_nn_gru_on_names_of_every_length(bidirectional, block, gates, monkeypatch):
    """Names of many lengths in one call, sharing first and last letters, from a letters array that is a view (every
    other row of a larger one), read as nn.GRU reads them packed. Blocks of 7 prefixes (or parents) make a level
    span several blocks, as levels of 20,000 names span blocks of 1,024."""
    monkeypatch.setattr(fast_rnn, "BLOCK", block)
    torch.manual_seed(1)
    gru = torch.nn.GRU(4, 8, batch_first=True, bidirectional=bidirectional)
    letters = torch.randint(0, 4, (120, 9))[::2]  # few letters: many shared prefixes and endings
    lengths = torch.randint(1, 10, (60,))
    with torch.inference_mode():
        one_hot = torch.nn.functional.one_hot(letters, 4).float()
        _, hidden = gru(pack_padded_sequence(one_hot, lengths, batch_first=True, enforce_sorted=False))
        fast = fast_rnn.gru_last_states(gru, letters, lengths)
    assert not letters.is_contiguous()
    assert torch.allclose(fast, torch.cat(list(hidden), 1), atol=1e-6)


def test_gru_kernel_agrees_with_torch_where_the_gates_saturate(monkeypatch):
    """Weights that put the gates' inputs far past where a sigmoid saturates (±1e4, ±100, ±88), near zero, and a
    NaN: the kernel's exp is clamped to float's range, so it gives what torch gives, and NaN stays NaN."""
    if native.gru_children() is None:
        pytest.skip("no C compiler here")
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 16, batch_first=True, bidirectional=True)
    extremes = torch.tensor([1e4, -1e4, 100.0, -100.0, 88.5, -88.5, 87.0, -87.0, 1e-3, 0.0])
    with torch.no_grad():
        for name, weight in gru.named_parameters():
            weight.copy_(extremes[torch.randint(0, len(extremes), weight.shape)])
        gru.weight_ih_l0[0, 5] = float("nan")  # letter 5 makes the forward direction's first r unit NaN
    letters, lengths = torch.randint(0, 6, (300, 7)), torch.randint(1, 8, (300,))
    results = []
    for native_gates in (True, False):
        monkeypatch.setattr(fast_rnn, "NATIVE_GATES", native_gates)
        with torch.no_grad():
            results.append(fast_rnn.gru_last_states(gru, letters, lengths))
    assert torch.equal(results[0].isnan(), results[1].isnan()) and results[0].isnan().any()
    assert not results[0].isnan().all()
    assert torch.allclose(results[0].nan_to_num(), results[1].nan_to_num(), atol=1e-5)


def test_gru_kernel_is_built_where_a_c_compiler_is_found():
    """So that where CI has a compiler, the tests above check the kernel the product runs, not only torch's path."""
    if native.compiler() is None:
        pytest.skip("no C compiler here")
    assert native.gru_children() is not None


def test_gru_kernel_is_built_once_into_the_cache_folder_and_reused(empty_kernel_cache):
    if native.compiler() is None:
        pytest.skip("no C compiler here")
    assert native.gru_children() is not None
    [library] = empty_kernel_cache.iterdir()
    built = library.stat().st_mtime_ns
    native.gru_children.cache_clear()
    assert native.gru_children() is not None
    assert list(empty_kernel_cache.iterdir()) == [library]
    assert library.stat().st_mtime_ns == built


def test_a_failed_kernel_build_leaves_no_file_and_the_torch_path_in_use(empty_kernel_cache, monkeypatch):
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    assert native.gru_children() is None
    assert list(empty_kernel_cache.rglob("*")) == []
    torch.manual_seed(0)
    gru, letters = torch.nn.GRU(5, 4, batch_first=True), torch.randint(0, 5, (3, 4))
    with torch.no_grad():
        fast = fast_rnn.gru_last_states(gru, letters, torch.full((3,), 4))
        assert torch.allclose(fast, gru(torch.nn.functional.one_hot(letters, 5).float())[1][0], atol=1e-6)


@pytest.mark.parametrize("batch", [1, 40])
def test_gru_inference_path_with_a_head_gives_the_heads_logits_and_leaves_the_head_as_it_was(batch):
    """With a head the path adds each direction's part of the logits as its names end, instead of keeping every
    name's states: the same logits, and the head's own bias is not the array they are added into."""
    torch.manual_seed(batch)
    gru, head = torch.nn.GRU(11, 8, batch_first=True, bidirectional=True), torch.nn.Linear(16, 5)
    letters, lengths = torch.randint(0, 11, (batch, 9)), torch.randint(1, 10, (batch,))
    bias = head.bias.detach().clone()
    with torch.inference_mode():
        expected = head(fast_rnn.gru_last_states(gru, letters, lengths))
        for _ in range(2):
            assert torch.allclose(fast_rnn.gru_last_states(gru, letters, lengths, head=head), expected, atol=1e-6)
    assert torch.equal(head.bias, bias)


def test_gru_inference_path_follows_changed_weights_and_is_never_used_for_training():
    gru = torch.nn.GRU(5, 4, batch_first=True)
    letters = torch.randint(0, 5, (3, 4))
    assert not fast_rnn.can_run_gru(gru, letters)  # gradients on: nn.GRU, which autograd knows
    with torch.no_grad():
        before = fast_rnn.gru_last_states(gru, letters, torch.full((3,), 4))
        gru.weight_hh_l0.mul_(2)  # an optimiser step: the cached tables are rebuilt
        after = fast_rnn.gru_last_states(gru, letters, torch.full((3,), 4))
        assert not torch.allclose(before, after)
        assert torch.allclose(after, gru(torch.nn.functional.one_hot(letters, 5).float())[1][0], atol=1e-6)


def test_gru_inference_path_follows_the_training_optimisers_updates():
    """Adam's fused kernel updates the weights in place without moving their version counters: validation during
    training must still read the weights as they are."""
    from utils.training import make_optimizer

    torch.manual_seed(0)
    gru = torch.nn.GRU(5, 4, batch_first=True, bidirectional=True)
    letters, lengths = torch.randint(0, 5, (6, 4)), torch.full((6,), 4)
    optimizer = make_optimizer(gru, 0.1, torch.device("cpu"))
    for _ in range(2):
        with torch.no_grad():
            fast = fast_rnn.gru_last_states(gru, letters, lengths)
            _, hidden = gru(torch.nn.functional.one_hot(letters, 5).float())
        assert torch.allclose(fast, torch.cat(list(hidden), 1), atol=1e-6)
        gru(torch.nn.functional.one_hot(letters, 5).float())[1].sum().backward()
        optimizer.step()


def distinct_data_names() -> list[str]:
    lines = (ROOT / "data" / "names.tsv").read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(check_name(line.split("\t")[0]) for line in lines if line.strip()))


def test_fast_predictions_within_tolerance_on_the_data_set(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    names = distinct_data_names()  # 17,000 names of every length, none of them seen by the tiny model
    diff, same = compare(reference_probabilities(predictor, names), predictor.probabilities(names))
    assert diff <= TOLERANCE and same >= SAME_TOP
    assert diff < 1e-5  # in fact float32 rounding


@pytest.mark.skipif(not EXTERNAL.exists(), reason="../shared/data/external_val.tsv is not here")
def test_fast_predictions_within_tolerance_on_real_surnames(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    lines = EXTERNAL.read_text(encoding="utf-8").splitlines()
    names = list(dict.fromkeys(check_name(line.split("\t")[0]) for line in lines if line.strip()))
    diff, same = compare(reference_probabilities(predictor, names), predictor.probabilities(names))
    assert diff <= TOLERANCE and same >= SAME_TOP


def test_a_repeated_name_is_computed_once_and_answered_alike(tiny_checkpoint, monkeypatch):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    calls = []
    member = predictor.members[0]
    original = member.log_probabilities
    monkeypatch.setattr(member, "log_probabilities", lambda letters, lengths: calls.append(len(letters)) or
                        original(letters, lengths))
    probs = predictor.probabilities(["Tanaka", "Smith", "Tanaka", "Tanaka"])
    assert sum(calls) == 2
    assert torch.equal(probs[0], probs[2]) and torch.equal(probs[0], probs[3])
    assert torch.allclose(probs[1], predictor.probabilities(["Smith"])[0])


def test_distinct_names_are_distinct_and_made_from_the_data():
    from bench.bench_tables import distinct_names

    names = distinct_names(ROOT / "data" / "names.tsv", 5000, seed=1)
    assert len(set(names)) == 5000 and names == distinct_names(ROOT / "data" / "names.tsv", 5000, seed=1)


def test_the_population_column_repeats_common_names_as_zipf_says():
    """The k-th spelling is drawn in proportion to 1/k: the first about twice as often as the second, most of the
    pool's tail never, so a column has far fewer distinct names than rows but far more than a data set's."""
    from bench.bench_tables import population_source

    spellings = [f"Name{i}" for i in range(100_000)]
    column = population_source(spellings, seed=0)(0, 100_000)
    counts = Counter(column)
    assert 1.7 < counts["Name0"] / counts["Name1"] < 2.3
    assert 20_000 < len(counts) < 50_000
    assert column == population_source(spellings, seed=0)(0, 100_000)


@pytest.mark.slow
def test_bench_tables_measures_the_three_columns(tiny_checkpoint, tmp_path):
    from tests.conftest import run_script

    result = run_script("bench/bench_tables.py", "--checkpoint", str(tiny_checkpoint), "--rows", "300",
                        "--baseline-rows", "0", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert all(f"{kind}: names/s" in result.stdout for kind in ("repeated", "population", "distinct"))
    assert "| `predict.py --input` --workers 1 | 300 |" in result.stdout


@pytest.mark.parametrize("enabled", [True, False])
def test_answering_many_names_pauses_the_garbage_collector_and_leaves_it_as_it_was(tiny_checkpoint, enabled):
    """Predictor.predict and compute_fields (Spark's executors) pause the cyclic collector: 20,000 names make ~100,000
    objects, which set off about 220 passes of the collector, one over every live object (a fifth of the call's
    time). Paused, it makes one pass when it resumes (which may bring an older generation's due), none if it
    was off."""
    import gc

    from bulk.labeller import compute_fields

    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    names = [f"Name{'abcdefghij'[i % 10]}{i:05d}" for i in range(20_000)]
    collections = []
    (gc.enable if enabled else gc.disable)()
    gc.callbacks.append(lambda phase, info: collections.append(info["generation"]) if phase == "start" else None)
    try:
        predictions = predictor.predict(names, topk=3)
        fields = compute_fields(predictor, names, topk=3, text=False)
        assert gc.isenabled() is enabled
    finally:
        gc.callbacks.pop()
        gc.enable()
    # at most the pass when it resumes after each call, and the older generations that pass may bring due
    assert len(collections) <= (6 if enabled else 0), collections
    assert len(predictions) == len(fields) == 20_000 and predictions[0].top[0][0] == fields[0][0]


CHURN = """
import resource, sys
import torch
from models.predictor import Predictor

if sys.argv[1] == "pickled":  # a table run's pool process receives its Predictor pickled
    import pickle
    pickle.loads(sys.stdin.buffer.read())
elif sys.argv[1] != "none":  # a process that answers names
    Predictor.from_checkpoint(sys.argv[1])

def churn():  # many arrays of 100 KB alive at once, then freed together
    arrays = [torch.ones(25_000) for _ in range(400)]  # 40 MB
    del arrays

churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator")
def test_a_predictors_process_reuses_the_memory_it_frees_instead_of_faulting_it_in_again(tiny_checkpoint):
    pickled = pickle.dumps(Predictor.from_checkpoint(tiny_checkpoint))
    runs = {how: subprocess.Popen([sys.executable, "-c", CHURN, how], cwd=ROOT, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for how in (str(tiny_checkpoint), "pickled", "none")}  # side by side: each pays torch's import
    faults = {}
    for how, run in runs.items():
        out, err = run.communicate(pickled if how == "pickled" else b"", timeout=120)
        assert run.returncode == 0, err.decode()[-2000:]
        faults[how] = int(out)
    assert max(faults[str(tiny_checkpoint)], faults["pickled"]) < 1_000 < 5_000 < faults["none"]  # measured: 2-24 and about 9,700 (40 MB is 9,766 pages)


GRU_CALL_PEAK = """
import ctypes, sys, torch
from bench.bench_tables import distinct_names
from models import fast_rnn
from tests.conftest import ROOT
from utils.data import Alphabet

torch.set_num_threads(1)
names = distinct_names(ROOT / "data" / "names.tsv", 20_000)
names[0] = (names[0] * 64)[:64]  # one name as long as a name may be sets the width of the call's letters
alphabet = Alphabet("".join(sorted(set("".join(names)))))
letters, lengths = alphabet.encode_many(names)
gru = torch.nn.GRU(alphabet.size, 128, batch_first=True, bidirectional=True)  # the default model's sizes
head = torch.nn.Linear(256, 18)
with torch.inference_mode():
    fast_rnn.gru_last_states(gru, letters[:100], lengths[:100], head=head)
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # what the small call freed goes back: the peak below is the call's own
    open("/proc/self/clear_refs", "w").write("5")  # resets the peak resident size
    before = int(open("/proc/self/statm").read().split()[1]) * 4096
    fast_rnn.gru_last_states(gru, letters, lengths, head=head)
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
print((peak - before) / 2**20)
"""


@pytest.mark.slow  # 6 s: torch's import and 20,000 made-up names in a fresh process
@pytest.mark.skipif(sys.platform != "linux", reason="reads the peak from /proc")
def test_a_gru_call_on_20000_names_holds_their_states_not_copies_of_their_letters():
    """The call's memory is two levels' states (two [N, 128] arrays, 20 MB) and the letters as bytes, whatever the
    longest name: int64 copies of the [N, 64] letters and a new array per level took 39-46 MiB."""
    run = subprocess.run([sys.executable, "-c", GRU_CALL_PEAK], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout) < 33  # measured: 26.0-28.2 MiB

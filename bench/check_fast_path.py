"""How far the fast inference path's answers are from the reference's, on a checkpoint's test split and labelled files.

    python -m bench.check_fast_path --checkpoint save_model/ngram+gru_classification_best.bin \\
        --external ../shared/data/external_val.tsv [--int8]

The reference is nn.GRU as trained (models/fast_rnn.GRU_INFERENCE off); the fast path is what
Predictor uses: with the C kernel of each step's gates where this machine builds it (models/native.py),
and then also with torch's passes instead (models/fast_rnn.NATIVE_GATES off), the path where there is
no C compiler. Prints, per set: names, the largest absolute difference of any probability, and the
share of names with the same top country. The tolerance the project holds the fast path to:
at most 0.002 and at least 99.5%. With --int8 it also measures torch's dynamic int8 quantisation
of the GRU (quantize_dynamic), which is not used: see docs/speed.md.
"""
import argparse
import copy
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from models import checkpoint as ckpt
from models import fast_rnn, native
from models.predictor import Predictor
from utils.data import SurnameData, read_labelled

TOLERANCE = 0.002  # largest absolute difference of a probability
SAME_TOP = 0.995  # least share of names with the same top country


def compare(reference: torch.Tensor, other: torch.Tensor) -> tuple[float, float]:
    """(max |difference| of any probability, share of rows with the same argmax) of two [N, C] tensors."""
    return float((reference - other).abs().max()), float((reference.argmax(1) == other.argmax(1)).double().mean())


@contextmanager
def fast_rnn_switches(**switches):
    """models/fast_rnn's switches (GRU_INFERENCE, NATIVE_GATES) set for the block, then as they were."""
    before = {name: getattr(fast_rnn, name) for name in switches}
    for name, value in switches.items():
        setattr(fast_rnn, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(fast_rnn, name, value)


def reference_probabilities(predictor: Predictor, names: list[str]) -> torch.Tensor:
    with fast_rnn_switches(GRU_INFERENCE=False):
        return predictor.probabilities(names)


def torch_gates_probabilities(predictor: Predictor, names: list[str]) -> torch.Tensor:
    with fast_rnn_switches(NATIVE_GATES=False):
        return predictor.probabilities(names)


def int8_predictor(path: Path) -> Predictor:
    """The checkpoint with every nn.GRU replaced by torch's dynamically quantised int8 GRU."""
    predictor = Predictor.from_checkpoint(path)
    model = predictor.members[0].model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation
        for module in list(model.modules()):
            if isinstance(getattr(module, "rnn", None), torch.nn.GRU):
                module.rnn = torch.ao.quantization.quantize_dynamic(
                    torch.nn.Sequential(copy.deepcopy(module.rnn)), {torch.nn.GRU}, dtype=torch.qint8)[0]
    return predictor


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--external", type=Path, nargs="*", default=[], help="labelled name<TAB>country files")
    parser.add_argument("--int8", action="store_true", help="also measure dynamic int8 quantisation of the GRU")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    predictor = Predictor.from_checkpoint(args.checkpoint)
    data = SurnameData.from_record(ckpt.load(args.checkpoint)["data"])
    sets = {"test split": [data.names[r] for r in data.split.test]}
    for path in args.external:
        if path.exists():
            sets[str(path)] = read_labelled(path, predictor.countries)[1]
    variants = {"fast path": predictor.probabilities}
    if native.gru_children() is not None:
        variants = {"fast path, C gates": predictor.probabilities,
                    "fast path, torch's gates": lambda names: torch_gates_probabilities(predictor, names)}
    if args.int8:
        variants["int8 GRU"] = int8_predictor(args.checkpoint).probabilities
    print("| set | names | variant | max abs diff | same top-1 | s (variant) | s (reference) | within tolerance |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    ok = True
    for what, names in sets.items():
        start = time.perf_counter()
        reference = reference_probabilities(predictor, names)
        reference_s = time.perf_counter() - start
        for variant, other in variants.items():
            start = time.perf_counter()
            probs = other(names)
            seconds = time.perf_counter() - start
            diff, same = compare(reference, probs)
            within = diff <= TOLERANCE and same >= SAME_TOP
            ok &= within or variant.startswith("int8")
            print(f"| {what} | {len(names):,} | {variant} | {diff:.2e} | {same:.2%} | {seconds:.2f} | {reference_s:.2f} "
                  f"| {'yes' if within else 'no'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

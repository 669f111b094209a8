"""What each step of classifying names costs when every name is new (no answer cache can help), in one process.

    python -m bench.profile_distinct --checkpoint save_model/ngram+gru_classification_best.bin --names 100000

Times, on --names distinct spellings (bench_tables.distinct_names: the data set's names with endings added),
one torch thread unless --threads says: normalisation (check_name), encoding (Alphabet.encode_many), each
member's forward over the length-bucketed batches (for a mix: each of its members, then the mix itself), the
whole `Predictor.probabilities`, `compute_fields` (normalise, model, table cells), and the csv module reading
and writing a table of as many rows (id, first name, surname, city, amount). Prints a Markdown table:
seconds, microseconds per name, names/s, share of `compute_fields` + CSV.
"""
import argparse
import csv
import inspect
import io
import os
import sys
import time
from pathlib import Path

import torch

from bench.bench_tables import CITIES, FIRST, ROOT, distinct_names
from bulk.labeller import compute_fields
from models.predictor import Predictor
from utils.data import check_name


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="the checkpoint to profile")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "names.tsv", help="names the spellings come from")
    parser.add_argument("--names", type=int, default=100_000, help="distinct names to classify")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=None, help="Predictor batch size (default: its own)")
    return parser.parse_args(argv)


def timed(results: list, what: str, fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    results.append((what, time.perf_counter() - start))
    return out


def bucketed(fn, letters: torch.Tensor, lengths: torch.Tensor, batch_size: int) -> None:
    """fn(letters, lengths) over the same one-length batches Predictor.log_probabilities makes."""
    order = torch.argsort(lengths, stable=True)
    start = 0
    for length, count in zip(*(t.tolist() for t in torch.unique_consecutive(lengths[order], return_counts=True))):
        for rows in order[start:start + count].split(batch_size):
            fn(letters[rows, :length], lengths[rows])
        start += count


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    predictor = Predictor.from_checkpoint(args.checkpoint)
    batch = {"batch_size": args.batch_size} if args.batch_size else {}
    batch_size = args.batch_size or inspect.signature(Predictor.log_probabilities).parameters["batch_size"].default
    raw = distinct_names(args.data, args.names)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {len(raw):,} distinct names, "
          f"mean length {sum(map(len, raw)) / len(raw):.1f}; torch {torch.__version__}, {args.threads} thread(s)",
          flush=True)
    predictor.probabilities([check_name(n) for n in raw[:2000]], **batch)  # warm-up: the tables built on first use
    steps = []
    names = timed(steps, "normalise (check_name)", lambda: [check_name(n) for n in raw])
    member = predictor.members[0]
    letters, lengths = timed(steps, "encode (encode_many)", member.alphabet.encode_many, names)
    model = member.model
    parts = list(model.members) if hasattr(model, "members") else []
    with torch.inference_mode():
        for part in parts:
            timed(steps, f"  member forward: {type(part).__name__}", bucketed, part, letters, lengths, batch_size)
        timed(steps, "model forward (whole)", bucketed, model, letters, lengths, batch_size)
    timed(steps, "Predictor.probabilities (encode + forward + calibration)", lambda: predictor.probabilities(names, **batch))
    timed(steps, "compute_fields (normalise + probabilities + cells)", compute_fields, predictor, raw, 1)
    rows = [[str(i), FIRST[i % len(FIRST)], name, CITIES[i % len(CITIES)], f"{i % 1000}.25"]
            for i, name in enumerate(raw)]
    text = io.StringIO()
    timed(steps, "CSV write (csv.writer, 8 columns)", csv.writer(text, lineterminator="\n").writerows,
          [row + ["German", "0.912345", ""] for row in rows])
    source = io.StringIO(text.getvalue())
    timed(steps, "CSV read (csv.reader)", lambda: list(csv.reader(source)))
    total = dict(steps)["compute_fields (normalise + probabilities + cells)"] + sum(
        s for what, s in steps if what.startswith("CSV"))
    print(f"load average at end: {os.getloadavg()[0]:.2f}\n")
    print("| step | s | µs / name | names/s | share of compute_fields + CSV |")
    print("|---|---:|---:|---:|---:|")
    for what, seconds in steps:
        print(f"| {what} | {seconds:.2f} | {seconds / len(raw) * 1e6:.1f} | {len(raw) / seconds:,.0f} "
              f"| {seconds / total:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

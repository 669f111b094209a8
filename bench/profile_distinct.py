"""What each step of classifying names costs when every name is new (no answer cache can help), in one process.

    python -m bench.profile_distinct --checkpoint save_model/ngram+gru_classification_best.bin --names 100000

Prints the names/s of Predictor.predict over every row of the data set (median of 3), then times, on --names
distinct spellings (bench_tables.distinct_names: the data set's names with endings added),
one torch thread unless --threads says: normalisation (check_name), encoding (Alphabet.encode_many), each
member's forward over the batches Predictor gives it (for a mix: each of its members, then the mix itself), the
whole `Predictor.probabilities`, `compute_fields` (normalise, model, table cells), and reading and writing a
table of as many rows (id, first name, surname, city, amount): the csv module reading, the rows written as
their lines plus cells (as a table run writes rows on one line) and by csv.writer (as it writes the others).
Prints a Markdown table: seconds, microseconds per name, names/s, share of what one process does per row
(`compute_fields`, reading, writing the lines).
"""
import argparse
import csv
import io
import os
import sys
import time
from pathlib import Path

import torch

from bench.bench_tables import CITIES, FIRST, ROOT, distinct_names
from bulk.labeller import compute_fields
from bulk.tables import lines_with_cells
from models import fast_rnn
from models.predictor import BATCH, BATCH_ANY_LENGTH, Predictor, reads_any_length
from utils.data import check_name


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="the checkpoint to profile")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "names.tsv", help="names the spellings come from")
    parser.add_argument("--names", type=int, default=100_000, help="distinct names to classify")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=None, help="Predictor batch size (default: its own)")
    parser.add_argument("--reference", action="store_true",
                        help="also time every step with nn.GRU (models/fast_rnn.GRU_INFERENCE off), for a ratio")
    return parser.parse_args(argv)


def timed(results: list, what: str, fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    results.append((what, time.perf_counter() - start))
    return out


def batched(fn, letters: torch.Tensor, lengths: torch.Tensor, model, batch_size: int) -> None:
    """fn(letters, lengths) over the batches Predictor.log_probabilities gives `model`: whole batches to a model that
    reads any lengths at once, else one-length batches."""
    if reads_any_length(model):
        for i in range(0, len(lengths), BATCH_ANY_LENGTH):
            fn(letters[i:i + BATCH_ANY_LENGTH], lengths[i:i + BATCH_ANY_LENGTH])
        return
    order = torch.argsort(lengths, stable=True)
    start = 0
    for length, count in zip(*(t.tolist() for t in torch.unique_consecutive(lengths[order], return_counts=True))):
        for rows in order[start:start + count].split(batch_size):
            fn(letters[rows, :length], lengths[rows])
        start += count


def profile(predictor: Predictor, raw: list[str], batch: dict) -> list[tuple[str, float]]:
    """(step, seconds) of each step on the names `raw`."""
    batch_size = batch.get("batch_size", BATCH)
    predictor.probabilities([check_name(n) for n in raw[:2000]], **batch)  # warm-up: the tables built on first use
    steps = []
    names = timed(steps, "normalise (check_name)", lambda: [check_name(n) for n in raw])
    member = predictor.members[0]
    letters, lengths = timed(steps, "encode (encode_many)", member.alphabet.encode_many, names)
    model = member.model
    parts = list(model.members) if isinstance(getattr(model, "members", None), torch.nn.ModuleList) else []
    with torch.inference_mode():
        for part in parts:
            timed(steps, f"member forward: {type(part).__name__}", batched, part, letters, lengths, model, batch_size)
        timed(steps, "model forward (whole)", batched, model, letters, lengths, model, batch_size)
    timed(steps, "Predictor.probabilities (encode + forward + calibration)", lambda: predictor.probabilities(names, **batch))
    timed(steps, "compute_fields (normalise + probabilities + cells)", compute_fields, predictor, raw, 1)
    return steps


def predict_rate(predictor: Predictor, data: Path, repeats: int = 3) -> tuple[int, float]:
    """(names, names/s: median of `repeats`) of Predictor.predict over every row of the data set (the issue's
    measure: normalisation included, repeated names included)."""
    raw = [line.split("\t")[0] for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    predictor.predict(raw[:1000])  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(raw)
        seconds.append(time.perf_counter() - start)
    return len(raw), len(raw) / sorted(seconds)[len(seconds) // 2]


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    predictor = Predictor.from_checkpoint(args.checkpoint)
    batch = {"batch_size": args.batch_size} if args.batch_size else {}
    raw = distinct_names(args.data, args.names)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {len(raw):,} distinct names, "
          f"mean length {sum(map(len, raw)) / len(raw):.1f}; torch {torch.__version__}, {args.threads} thread(s)",
          flush=True)
    count, rate = predict_rate(predictor, args.data)
    print(f"Predictor.predict over the {count:,} names of {args.data.name}: {rate:,.0f} names/s", flush=True)
    steps = profile(predictor, raw, batch)
    reference = {}
    if args.reference:
        fast_rnn.GRU_INFERENCE = False
        _, reference_rate = predict_rate(predictor, args.data)
        print(f"  with nn.GRU: {reference_rate:,.0f} names/s ({rate / reference_rate:.1f}x)", flush=True)
        reference = dict(profile(predictor, raw, batch))
        fast_rnn.GRU_INFERENCE = True
    rows = [[str(i), FIRST[i % len(FIRST)], name, CITIES[i % len(CITIES)], f"{i % 1000}.25"]
            for i, name in enumerate(raw)]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    lines = text.getvalue().splitlines(keepends=True)
    cells = [("German", "0.912345", "")] * len(rows)
    source = io.StringIO(text.getvalue())
    timed(steps, "CSV read (csv.reader)", lambda: list(csv.reader(source)))
    timed(steps, "CSV write (each row's line + its cells)", lines_with_cells, lines, map(",".join, cells), ",")
    timed(steps, "CSV write (csv.writer, 8 columns; rows over several lines)",
          csv.writer(io.StringIO(), lineterminator="\n").writerows, [row + list(c) for row, c in zip(rows, cells)])
    total = sum(s for what, s in steps if what.startswith(("compute_fields", "CSV read", "CSV write (each")))
    print(f"load average at end: {os.getloadavg()[0]:.2f}\n")
    print("| step | s | µs / name | names/s | share of a row |" + (" nn.GRU s | × |" if reference else ""))
    print("|---|---:|---:|---:|---:|" + ("---:|---:|" if reference else ""))
    for what, seconds in steps:
        line = (f"| {what} | {seconds:.2f} | {seconds / len(raw) * 1e6:.1f} | {len(raw) / seconds:,.0f} "
                f"| {seconds / total:.0%} |")
        if reference:
            line += f" {reference[what]:.2f} | {reference[what] / seconds:.1f} |" if what in reference else " | |"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

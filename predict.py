"""Tell the country of origin of surnames with a trained model.

    python predict.py Nakamura                  # -> Japanese
    python predict.py lucy Müller --topk 3      # the 3 likeliest countries with probabilities
    cat names.txt | python predict.py -         # one name per line from stdin
    python predict.py Nakamura --json           # one JSON object per name
    python predict.py Garcia --prior my_customers.json   # the class mix of your own population
    python predict.py Smith --min-probability 0.6        # answer "unknown" below 60%
    python predict.py Nakamura --explain        # which letters drove the answer
    python predict.py --input people.csv --column surname --output out.csv --workers 2   # a table, streamed
    python predict.py --input - --column surname --output - < people.tsv   # "-": stdin / stdout
    python predict.py Nakamura --checkpoint save_model/gru_classification_best.bin save_model/ngram_classification_best.bin
                                                # several models predict together (mean probability)
    python predict.py lucy --backend llm --shots 5   # ask a chat model instead (needs OPENAI_API_KEY)

The model is the newest finished run's best checkpoint in save_model/ unless --checkpoint says;
which one is used is said on stderr. A name that cannot be classified gets one line on stderr
and the exit code is 1; the other names are still answered. With --input, every row of a CSV/TSV
(or Parquet) file is copied to --output with country, probability and error columns added
(bulk/tables.py); a row whose name cannot be classified says why in its error column.
"""
import argparse
import json
import os
import signal
import sys
from pathlib import Path

from llm.cli import add_llm_arguments, llm_config
from utils.cli import add_model_arguments
from utils.errors import UserError, run_script


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="surnames to classify; '-' reads one name per line from stdin")
    parser.add_argument("--input", type=Path, default=None, help="classify a column of this CSV/TSV/Parquet file")
    parser.add_argument("--column", default=None, help="with --input: the column holding the names")
    parser.add_argument("--output", type=Path, default=None,
                        help="with --input: the file to write (its rows, plus country, probability and error)")
    parser.add_argument("--workers", type=int, default=1,
                        help="with --input: processes sharing the table's rows (default: 1; two take about 90 MiB "
                             "more and run 1.7-1.8x as fast on two cores)")
    parser.add_argument("--topk", type=int, default=1, help="print the K likeliest countries with probabilities")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    add_model_arguments(parser)
    parser.add_argument("--min-probability", type=float, default=0.0, metavar="P",
                        help="answer 'unknown' when the top probability is below P (default: 0, always answer)")
    parser.add_argument("--explain", action="store_true",
                        help="show how much each letter adds to the answer's probability (its drop when hidden)")
    add_llm_arguments(parser, "model: the trained checkpoint(s); llm: an OpenAI-compatible chat model")
    parser.add_argument("--data", default=None,
                        help="llm with --shots: the training data, if not the embedded data set")
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error("--topk must be at least 1")
    if args.input is None and (not args.names or args.column or args.output):
        parser.error("give names to classify, or --input FILE --column NAME --output FILE")
    if args.input is not None and (args.names or not args.column or not args.output or args.backend == "llm"
                                   or args.explain or args.json):
        parser.error("--input needs --column and --output, and no names, --json, --explain nor --backend llm")
    if not 1 <= args.workers <= max_workers():
        parser.error(f"--workers must be between 1 and {max_workers()} (the cores of this machine)")
    if args.backend == "llm" and args.topk > 1:
        parser.error("--topk is for a trained model: the language model names one country and gives no probabilities")
    if args.shots < 0:
        parser.error("--shots must be at least 0")
    if not 0 <= args.min_probability <= 1:
        parser.error("--min-probability must be between 0 and 1")
    if args.backend == "llm" and (args.explain or args.min_probability or args.prior != "model"):
        parser.error("--explain, --min-probability and --prior need probabilities: not for --backend llm")
    return args


def max_workers() -> int:
    """At most one model process per core (two on a smaller machine): more only wait for each other."""
    return max(2, os.cpu_count() or 1)


def read_names(args_names: list[str]) -> list[str]:
    names = []
    for name in args_names:
        if name != "-":
            names.append(name)
        elif sys.stdin is None or sys.stdin.closed:
            raise UserError("'-' reads names from stdin, but stdin is closed")
        else:
            names += [line.strip() for line in sys.stdin if line.strip()]
    if not names:
        raise UserError("no names given")
    return names


def classifiable(names: list[str]) -> tuple[list[tuple[str, str]], int]:
    """(name, normalised name) of the names that can be classified, and how many could not (each said on stderr)."""
    from utils.data import check_name

    valid, failed = [], 0
    for name in names:
        try:
            valid.append((name, check_name(name)))
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    return valid, failed


def main(argv=None) -> int:
    args = parse_args(argv)
    names = read_names(args.names) if args.input is None else []
    if args.backend == "llm":
        return predict_llm(args, names)
    from models.inference import model_from_args

    predictor = model_from_args(args).predictor
    if args.input is not None:
        return predict_table(args, predictor)
    valid, failed = classifiable(names)
    for p in predictor.predict([name for name, _ in valid], topk=args.topk):
        if p.unknown_chars:
            print(f"warning: {p.name!r} has characters outside the alphabet {p.unknown_chars}, read as 'unknown'",
                  file=sys.stderr)
        abstained = p.top[0][1] < args.min_probability
        answer = "unknown" if abstained else p.country
        explanation = predictor.explain(p.normalised, p.country) if args.explain else []
        if args.json:
            print(json.dumps(predictor.record(p, args.min_probability, explanation if args.explain else None),
                             ensure_ascii=False))
            continue
        line = answer if len(names) == 1 and args.topk == 1 else f"{p.name}\t{answer}"
        if args.topk > 1:
            line = f"{p.name}: " + ("unknown; " if abstained else "") + ", ".join(f"{c} {prob:.3f}" for c, prob in p.top)
        if args.explain:
            line += f"  ({p.country} {p.top[0][1]:.3f}; letters: " + " ".join(
                f"{letter}{effect:+.2f}" for letter, effect in explanation) + ")"
        print(line)
    return 1 if failed else 0


def predict_table(args: argparse.Namespace, predictor) -> int:
    """Classify --column of --input into --output; the summary on stderr. Rows whose name cannot be
    classified are not a failure of the file: their error column says why."""
    from bulk.tables import classify_file
    from models import native

    import dataclasses
    import shutil
    import tempfile

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill`: unwind, so no temp file is left
    topk = min(args.topk, len(predictor.countries))  # no columns for countries the model does not have
    with tempfile.TemporaryDirectory(prefix="predict-") as tmp:
        # "-" is stdin / stdout, through a file in a private folder: a table is read and written whole, so stdout
        # gets nothing at all when a row of the input is malformed or the run is stopped
        source, target = args.input, args.output
        if str(args.input) == "-":
            source = Path(tmp) / "stdin"  # no extension: the delimiter is sniffed
            with open(source, "wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f)
        if str(args.output) == "-":
            target = Path(tmp) / ("stdout" + (source.suffix if source.suffix.lower() in (".csv", ".tsv", ".tab", ".parquet", ".pq") else ""))
        summary = classify_file(source, target, args.column, predictor, topk=topk, workers=args.workers,
                                threads=args.threads, min_probability=args.min_probability)
        if target != args.output:
            sys.stdout.flush()
            with open(target, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
            sys.stdout.flush()
    print(dataclasses.replace(summary, input=args.input, output=args.output), file=sys.stderr)
    if native.unavailable:  # the GRU ran on torch's passes: say so, a column of new names takes about 1.3x as long
        print(f"note: the GRU's C kernel is not in use ({native.unavailable}); the model ran on torch alone, about "
              "1.3x slower on new names", file=sys.stderr)
    return 0


def predict_llm(args: argparse.Namespace, names: list[str]) -> int:
    """Ask the chat model; a name it answers outside the country list gets "no answer" (and exit 1), never a guess."""
    from llm.classify import LLMClassifier
    from models.inference import read_checkpoints

    cfg = llm_config(args)
    # the first checkpoint's countries and split: the chat model answers
    [(_, checkpoint)] = read_checkpoints(args.checkpoint[:1] if args.checkpoint else None)
    classifier = LLMClassifier.from_checkpoint(checkpoint, cfg, data=args.data)
    valid, failed = classifiable(names)
    answers = classifier.classify([norm for _, norm in valid]) if valid else []
    failed += sum(a.country is None for a in answers)
    for (name, _), a in zip(valid, answers):
        if a.country is None:
            said = "nothing" if a.raw is None else repr(a.raw)
            print(f"warning: {cfg.model} answered {said} for {name!r}, not one of the {len(classifier.countries)} "
                  "countries: no answer", file=sys.stderr)
        if args.json:
            print(json.dumps({"name": name, "normalised": a.name, "country": a.country, "answer": a.raw,
                              "backend": "llm", "model": cfg.model}, ensure_ascii=False))
        else:
            country = a.country or "no answer"
            print(country if len(names) == 1 else f"{name}\t{country}")
    return 1 if failed else 0


if __name__ == "__main__":
    run_script(main)

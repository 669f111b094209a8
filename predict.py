"""Tell the country of origin of surnames with a trained checkpoint.

    python predict.py Nakamura                  # -> Japanese
    python predict.py lucy Müller --topk 3      # the 3 likeliest countries with probabilities
    cat names.txt | python predict.py -         # one name per line from stdin
    python predict.py Nakamura --json           # machine-readable

The checkpoint (default: the newest *_classification_best.bin in save_model/) carries the
model, its alphabet and its country list; nothing else is read.
"""
import argparse
import json
import sys
from pathlib import Path

from config.config import SAVE_DIR
from utils.errors import CheckpointError, UserError


def default_checkpoint(save_dir: Path = SAVE_DIR) -> Path:
    """The most recently written best checkpoint."""
    candidates = sorted(save_dir.glob("*_classification_best.bin"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise CheckpointError(f"no checkpoint in {save_dir}; run `python train.py` first")
    return candidates[-1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="surnames to classify; '-' reads one name per line from stdin")
    parser.add_argument("--topk", type=int, default=1, help="print the K likeliest countries with probabilities")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint file (default: newest *_classification_best.bin in save_model/)")
    parser.add_argument("--device", default="cpu", help="torch device to run on")
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error("--topk must be at least 1")
    return args


def read_names(args_names: list[str]) -> list[str]:
    names = []
    for name in args_names:
        if name == "-":
            names += [line.strip() for line in sys.stdin if line.strip()]
        else:
            names.append(name)
    return names


def main(argv=None) -> int:
    args = parse_args(argv)
    from models.predictor import Predictor  # torch is imported here, after argument errors are out of the way
    from utils.text import check_name

    names = read_names(args.names)
    if not names:
        raise UserError("no names given")
    predictor = Predictor.from_checkpoint(args.checkpoint or default_checkpoint(), device=args.device)

    valid, failed = [], 0
    for name in names:
        try:
            check_name(name)
            valid.append(name)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    for p in predictor.predict(valid, topk=args.topk):
        if p.unknown_chars:
            print(f"warning: {p.name!r} has characters outside the alphabet {p.unknown_chars}, read as 'unknown'",
                  file=sys.stderr)
        if args.json:
            print(json.dumps({"name": p.name, "normalised": p.normalised, "country": p.country,
                              "top": [{"country": c, "probability": round(prob, 6)} for c, prob in p.top]},
                             ensure_ascii=False))
        elif args.topk == 1:
            print(p.country if len(names) == 1 else f"{p.name}\t{p.country}")
        else:
            print(f"{p.name}: " + ", ".join(f"{c} {prob:.3f}" for c, prob in p.top))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        sys.exit(f"error: {e}")

"""Tell the country of origin of surnames with a trained checkpoint.

    python predict.py Nakamura                  # -> Japanese
    python predict.py lucy Müller --topk 3      # the 3 likeliest countries with probabilities
    cat names.txt | python predict.py -         # one name per line from stdin
    python predict.py Nakamura --json           # machine-readable
    python predict.py lucy --backend llm --shots 5   # ask a chat model instead (needs OPENAI_API_KEY)

The checkpoint (default: the newest *_classification_best.bin in save_model/) carries the
model, its alphabet and its country list; nothing else is read. With --backend llm the model
answers from the checkpoint's country list, and --shots K shows it K names of the checkpoint's
training split, which is rebuilt from the training data for that.
"""
import argparse
import json
import sys
from pathlib import Path

from config.config import SAVE_DIR
from llm.cli import add_llm_arguments, llm_config
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
    add_llm_arguments(parser, "rnn: the trained checkpoint; llm: an OpenAI-compatible chat model")
    parser.add_argument("--data", default=None,
                        help="llm with --shots: the training data, if not where the checkpoint says it was")
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error("--topk must be at least 1")
    if args.backend == "llm" and args.topk > 1:
        parser.error("--topk is for the rnn backend: the language model names one country and gives no probabilities")
    if args.shots < 0:
        parser.error("--shots must be at least 0")
    return args


def read_names(args_names: list[str]) -> list[str]:
    names = []
    for name in args_names:
        if name == "-":
            names += [line.strip() for line in sys.stdin if line.strip()]
        else:
            names.append(name)
    return names


def classifiable(names: list[str]) -> tuple[list[tuple[str, str]], int]:
    """(name, normalised name) of the names that can be classified, and how many could not (each said on stderr)."""
    from utils.text import check_name

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
    from models.predictor import Predictor  # torch is imported here, after argument errors are out of the way

    names = read_names(args.names)
    if not names:
        raise UserError("no names given")
    if args.backend == "llm":
        return predict_llm(args, names)
    predictor = Predictor.from_checkpoint(args.checkpoint or default_checkpoint(), device=args.device)

    valid, failed = classifiable(names)
    for p in predictor.predict([name for name, _ in valid], topk=args.topk):
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


def predict_llm(args: argparse.Namespace, names: list[str]) -> int:
    """Ask the chat model; a name it answers outside the country list gets "no answer", never a near guess."""
    from llm.classify import LLMClassifier
    from utils.checkpoint import load_checkpoint

    cfg = llm_config(args)
    checkpoint = load_checkpoint(args.checkpoint or default_checkpoint())
    classifier = LLMClassifier.from_checkpoint(checkpoint, cfg, data=args.data)
    valid, failed = classifiable(names)
    answers = classifier.classify([norm for _, norm in valid]) if valid else []
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
    try:
        sys.exit(main())
    except UserError as e:
        sys.exit(f"error: {e}")

"""Evaluate a checkpoint on names it has never seen.

    python evaluate.py                          # the newest finished run, on the test split its training held out
    python evaluate.py --checkpoint save_model/lstm_classification_best.bin
    python evaluate.py --checkpoint a.bin b.bin  # several models predicting together (mean probability)
    python evaluate.py --data my_names.tsv      # every row of any labelled file or <Country>.txt folder
    python evaluate.py --json                   # the JSON on stdout instead of the tables
    python evaluate.py --domains                # one table: the test split per source, and external_val.tsv
    python evaluate.py --backend llm --limit 200 --shots 5   # a chat model beside the RNN on 200 test names

Prints accuracy, balanced accuracy (mean per-country recall), macro-F1, top-3 accuracy, a
per-country table and the most confused country pairs; saves them as <checkpoint>_eval_<set>.json
and .md, and a row-normalised confusion matrix as <checkpoint>_eval_<set>_confusion.png, beside
the checkpoint (or in --out).
"""
import argparse
import json
import sys
import time
from pathlib import Path

from llm.cli import add_llm_arguments, llm_config
from utils.cli import add_model_arguments
from utils.errors import DataError, run_script


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--data", type=Path, default=None,
                        help="evaluate on every row of this names.tsv or <Country>.txt folder instead of the test split")
    parser.add_argument("--split-data", type=Path, nargs="+", default=None,
                        help="the data file(s) the checkpoint was trained on, if not the ones in data/ it names "
                             "(checked by their sha256)")
    parser.add_argument("--domains", action="store_true",
                        help="print one table across domains instead: the test split of each data source (the "
                             "tutorial's names, each corpus source) and each --external file")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="which held-out side of the training data --domains reads: test, or val for tuning")
    parser.add_argument("--external", type=Path, nargs="*", default=None,
                        help="labelled files of names for --domains (default: ../shared/data/external_val.tsv "
                             "where it exists)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON, markdown and PNG (default: the checkpoint's)")
    parser.add_argument("--json", action="store_true", help="print the JSON report on stdout instead of the tables")
    parser.add_argument("--limit", type=int, default=0, help="evaluate a seeded sample of this many rows (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default: 0)")
    add_llm_arguments(parser, "llm: also ask an OpenAI-compatible chat model about the same rows, side by side")
    args = parser.parse_args(argv)
    if args.limit < 0 or args.shots < 0:
        parser.error("--limit and --shots must be at least 0")
    return args


def test_split_rows(checkpoint: dict, data) -> tuple[list[str], list[str], list[str], dict]:
    """(raw names, normalised names, true countries, description) of the test split the checkpoint's training held
    out, from `data`, the checkpoint's data set rebuilt (utils.data.SurnameData.from_record)."""
    if data.countries != list(checkpoint["countries"]):
        raise DataError(f"{data.path}: its countries differ from the checkpoint's")
    rows = data.split.test
    about = {"set": "test split", **checkpoint["data"], "data": str(data.path)}
    return ([data.samples[r].name for r in rows], [data.names[r] for r in rows],
            [data.countries[data.labels[r]] for r in rows], about)


def labelled_file_rows(path: Path, countries: list[str]) -> tuple[list[str], list[str], list[str], dict]:
    """Every row of a labelled file whose country the checkpoint knows and whose name can be read; the rest counted."""
    from utils.data import read_labelled

    raw, normalised, truth, left_out = read_labelled(path, countries)
    unknown, invalid = left_out["unknown_countries"], left_out["invalid_names"]
    if unknown:
        print(f"note: left out {sum(unknown.values())} rows of countries the checkpoint does not know: "
              + ", ".join(f"{c} ({n})" for c, n in unknown.items()), file=sys.stderr)
    if invalid:
        print(f"note: left out {len(invalid)} rows with no letters in the name, first at {invalid[0]}", file=sys.stderr)
    if not raw:
        raise DataError(f"{path}: no rows left to evaluate (none of its countries is known to the checkpoint)")
    about = {"set": "data", "data": str(path), "left_out": {"unknown_countries": unknown, "invalid_names": len(invalid)}}
    return raw, normalised, truth, about


def domains_report(predictor, data, externals: list[Path], split: str = "test") -> dict[str, dict]:
    """The across-domains table's rows: the test (or val) split, whole and by each row's origin (a data file, or a
    corpus source), then every row of each external file whose country the model knows."""
    from utils.data import read_labelled
    from utils.metrics import domain_row

    label_of = {country: i for i, country in enumerate(predictor.countries)}

    def row(normalised: list[str], truth: list[str]) -> dict:
        probs = predictor.probabilities(normalised)
        return domain_row(probs, [label_of[c] for c in truth], [bool(predictor.seen_in_training(n)) for n in normalised])

    held_out = data.rows(split)
    rows = {f"{split} split, all sources": row([data.names[r] for r in held_out],
                                               [data.countries[data.labels[r]] for r in held_out])}
    origins = sorted({data.samples[r].origin for r in held_out}, key=lambda o: (o != data.path.name, o))
    for origin in origins if len(origins) > 1 else []:
        mine = [r for r in held_out if data.samples[r].origin == origin]
        rows[f"{split} split: {origin}"] = row([data.names[r] for r in mine],
                                               [data.countries[data.labels[r]] for r in mine])
    for path in externals:
        _, normalised, truth, _ = read_labelled(path, predictor.countries)
        rows[path.name] = row(normalised, truth)
    return rows


def trust_report(predictor, probs, normalised: list[str], truth: list[str], predicted: list[str],
                 known_countries: dict[str, list[str]]) -> dict:
    """How far the probabilities can be trusted (calibration, abstention), and accuracy counting any of a
    name's data-set countries as right, and on names seen and unseen in training."""
    from utils.metrics import probability_metrics

    label_of = {country: i for i, country in enumerate(predictor.countries)}
    report = probability_metrics(probs, [label_of[c] for c in truth])
    any_right = [p == t or p in known_countries.get(n, []) for n, t, p in zip(normalised, truth, predicted)]
    seen = [bool(predictor.seen_in_training(n)) for n in normalised]
    report["accuracy_any_country"] = sum(any_right) / len(any_right)
    for label, keep in (("seen", True), ("unseen", False)):
        rows = [p == t for p, t, s in zip(predicted, truth, seen) if s == keep]
        report[f"{label}_in_training"] = {"rows": len(rows), "accuracy": sum(rows) / len(rows) if rows else None}
    return report


def trust_markdown(trust: dict) -> str:
    def num(x):
        return "n/a" if x is None else f"{x:.3f}"

    coverage = trust["accuracy_at_coverage"]
    return "\n".join([
        "## Probabilities", "",
        "| ECE (15 bins) | NLL | Brier | mean top-1 probability |" + "".join(f" accuracy at {c} answered |" for c in coverage),
        "|---:|---:|---:|---:|" + "---:|" * len(coverage),
        f"| {trust['ece']:.3f} | {trust['nll']:.3f} | {trust['brier']:.3f} | {trust['mean_confidence']:.3f} |"
        + "".join(f" {v:.3f} |" for v in coverage.values()), "",
        f"Accuracy counting any of a name's data-set countries as right: {trust['accuracy_any_country']:.3f}. "
        f"Names seen in training: {trust['seen_in_training']['rows']} rows, accuracy "
        f"{num(trust['seen_in_training']['accuracy'])}; unseen: {trust['unseen_in_training']['rows']} rows, "
        f"accuracy {num(trust['unseen_in_training']['accuracy'])}.", ""])


def llm_side_by_side(args, checkpoint: dict, normalised: list[str], truth: list[str], rnn_predicted: list[str],
                     rnn_seconds: float) -> dict:
    """The chat model on the same names as the RNN: the same metrics, plus no-answers, tokens and time per name."""
    from llm.classify import LLMClassifier
    from llm.evaluate import evaluate_llm
    from utils.metrics import classification_metrics

    cfg = llm_config(args)
    classifier = LLMClassifier.from_checkpoint(checkpoint, cfg, data=args.split_data)
    label_of = {country: i for i, country in enumerate(classifier.countries)}
    y_true = [label_of[c] for c in truth]
    llm = evaluate_llm(classifier, normalised, y_true)
    rnn = classification_metrics(y_true, [label_of[c] for c in rnn_predicted])
    return {
        "rows": len(normalised),
        "rnn": {**rnn, "no_answer": 0, "seconds_per_name": rnn_seconds},
        "llm": {**llm["metrics"], **{k: v for k, v in llm.items() if k not in ("metrics", "y_pred")},
                "predicted": [None if p is None else classifier.countries[p] for p in llm["y_pred"]]},
    }


def side_by_side_markdown(side: dict) -> str:
    rnn, llm = side["rnn"], side["llm"]
    lines = [f"## The RNN and {llm['model']} ({llm['shots']} shots) on the same {side['rows']} names", "",
             "| backend | accuracy | balanced accuracy | macro-F1 | no answer | tokens | seconds per name |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, m, tokens in (("RNN checkpoint", rnn, "–"), (f"llm {llm['model']}", llm, f"{llm['tokens']:,}")):
        lines.append(f"| {label} | {m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | {m['macro_f1']:.3f} | "
                     f"{m['no_answer']} | {tokens} | {m['seconds_per_name']:.4f} |")
    lines += ["", f"{llm['from_cache']} of the language model's answers came from its cache; "
              f"this run paid {llm['tokens_this_run']:,} tokens."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    from models.checkpoint import write_text  # after argument errors are out of the way: these load torch
    from models.inference import model_from_args
    from utils.data import SurnameData
    from utils.files import output_folder
    from utils.metrics import evaluation_report, report_markdown
    from utils.plot import plot_confusion, plot_reliability, plot_risk_coverage

    model = model_from_args(args)
    paths, predictor, countries = model.paths, model.predictor, model.predictor.countries
    checkpoint_path, checkpoint = paths[0], model.payloads[0]  # the test split is the first's
    out = None if args.domains else output_folder(args.out or Path(checkpoint_path).parent)  # before the work
    try:  # the training data: the test split, and the countries it files each name under
        data_set = SurnameData.from_record(checkpoint["data"], args.split_data)
    except DataError as e:
        if args.data is None:
            raise
        print(f"note: accuracy counting any country of a name's is left out ({e})", file=sys.stderr)
        data_set = None
    if args.domains:
        from config.config import EXTERNAL_VAL
        from utils.metrics import domain_markdown

        if data_set is None:
            raise DataError("--domains needs the training data of the checkpoint")
        externals = args.external if args.external is not None else [EXTERNAL_VAL] if EXTERNAL_VAL.exists() else []
        table = domains_report(predictor, data_set, externals, args.split)
        print(json.dumps(table) if args.json else domain_markdown(table))
        return 0
    if args.data is not None:
        raw, normalised, truth, about = labelled_file_rows(args.data, countries)
        tag = f"data_{args.data.stem}"
    else:
        raw, normalised, truth, about = test_split_rows(checkpoint, data_set)
        tag = "test"

    if args.limit:
        from llm.evaluate import seeded_subset

        keep = seeded_subset(list(range(len(raw))), args.limit, args.seed)
        raw, normalised, truth = ([column[i] for i in keep] for column in (raw, normalised, truth))
        about = {**about, "limit": args.limit, "limit_seed": args.seed}

    started = time.perf_counter()
    probs = predictor.probabilities(normalised)  # [N, n_countries]
    rnn_seconds = (time.perf_counter() - started) / len(normalised)
    top = [[countries[i] for i in row] for row in probs.topk(min(3, len(countries)), dim=1).indices.tolist()]
    predicted = [ranked[0] for ranked in top]
    known = data_set.countries_by_name() if data_set is not None else {}
    report = {"checkpoint": [str(p) for p in paths], "backend": "checkpoint", "prior": args.prior, **about,
              **evaluation_report(raw, truth, predicted, top, countries),
              "probabilities": trust_report(predictor, probs, normalised, truth, predicted, known)}
    if args.backend == "llm":
        report["side_by_side"] = llm_side_by_side(args, checkpoint, normalised, truth, predicted, rnn_seconds)

    stem = out / (Path(checkpoint_path).stem + (f"_and_{len(paths) - 1}_more" if len(paths) > 1 else "") + f"_eval_{tag}")
    title = f"{Path(checkpoint_path).name} on the {about['set']} ({about['data']})"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    write_text(json_path, json.dumps(report, indent=1, ensure_ascii=False))
    markdown = report_markdown(report, title) + "\n" + trust_markdown(report["probabilities"])
    if "side_by_side" in report:
        markdown += "\n" + side_by_side_markdown(report["side_by_side"])
    write_text(md_path, markdown)
    name = f"{Path(checkpoint_path).name}, {about['set']}"
    png_path = plot_confusion(report["confusion"], stem.with_name(stem.name + "_confusion.png"),
                              title=f"{name}: row-normalised confusion")
    plot_reliability(probs, [countries.index(c) for c in truth], stem.with_name(stem.name + "_reliability.png"),
                     title=f"{name}: reliability")
    plot_risk_coverage(report["probabilities"]["risk_coverage"], stem.with_name(stem.name + "_coverage.png"),
                       title=f"{name}: accuracy of the answers kept")
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(markdown)
    print(f"saved {json_path}, {md_path}, {png_path} and its _reliability.png and _coverage.png",
          file=sys.stderr if args.json else sys.stdout)
    return 0


if __name__ == "__main__":
    run_script(main)

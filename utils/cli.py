"""The command-line flags of the scripts that run a trained model (predict.py, evaluate.py, spark_predict.py,
serve.py), their help said once; models/inference.py turns them into the model. Importing this loads no torch, so
a script's argument errors come first and fast.
"""
import argparse
from pathlib import Path

DEFAULT_CHECKPOINT = "the newest finished run's best checkpoint in save_model/"


MAX_THREADS = 256  # torch's CPU thread pool; far more crashes the process (100,000: a segmentation fault)


def thread_count(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_THREADS}, not {text}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, several: bool = True, prior: bool = True,
                        device: bool = True) -> None:
    """--checkpoint (one file, or `several` predicting together), --prior, --device and --threads."""
    if several:
        parser.add_argument("--checkpoint", type=Path, nargs="+", default=None,
                            help="checkpoint file(s); several predict together (mean probability; the first's "
                                 f"training data and test split stand for all) (default: {DEFAULT_CHECKPOINT})")
    else:
        parser.add_argument("--checkpoint", type=Path, default=None,
                            help=f"checkpoint file (default: {DEFAULT_CHECKPOINT})")
    if prior:
        parser.add_argument("--prior", default="model",
                            help="the class mix of the names: model (as trained; the default model assumes the data's "
                                 "mix moved halfway to equal countries), data (the training data's own mix), uniform, "
                                 "or a JSON / TSV file of country shares (default: model)")
    if device:
        parser.add_argument("--device", default="cpu", help="torch device to run the model on: cpu, cuda, cuda:1, mps "
                                                            "or auto (default: cpu)")
    parser.add_argument("--threads", type=thread_count, default=1,
                        help="CPU threads for torch in each process running the model (default: 1; 0: torch's choice)")

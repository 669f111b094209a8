"""Side-by-side speed benchmark: the original batch-size-1 loop against the project, in one run.

    python bench/bench.py                      # from any folder, on the embedded data set
    python -m bench.bench                      # the same, from the repo root
    python bench/bench.py --epochs 10 --device cuda

Measures on this machine, in this one run, and prints a Markdown table:
1. training names/s of the baseline (the original project's loop, reimplemented below: a Dataset
   whose __getitem__ builds a one-hot tensor per name, DataLoader batch_size=1, nn.RNN + Linear,
   Adam, cross-entropy) and of the project's training step (NamesDataset + make_loader +
   the recurrent family, utils.training.train_step: the step train.py runs) for each cell; the same --names training names for
   every row, one warm-up pass excluded, median of --repeats passes;
2. held-out test accuracy of both after the same --epochs epochs on the grouped split;
3. peak memory of each training (peak RSS of its process; the CUDA allocator's peak on a GPU);
4. batch inference names/s through Predictor.predict over the whole data set, for each cell;
5. start-up wall time of `python predict.py lucy` against `python -c "import torch"`.
Each training runs in its own child process, so its peak memory is its own.
"""
import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_LR = 1e-3  # the original project's Adam learning rate


def parse_args(argv=None) -> argparse.Namespace:
    from config.config import TrainConfig

    defaults = TrainConfig()
    cells = ("rnn", "lstm", "gru")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=defaults.data, help="names.tsv or a folder of <Country>.txt files")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both paths run there)")
    parser.add_argument("--cells", default=",".join(cells), help="project cells to train and serve, comma-separated")
    parser.add_argument("--hidden-size", type=int, default=128, help="recurrent state size of every model")
    parser.add_argument("--batch-size", type=int, default=128,
                        help=f"the project's training batch size (default: 128, where docs/speed.md's figures were "
                             f"measured; train.py's GRU default is {defaults.batch_size})")
    parser.add_argument("--lr", type=float, default=3e-3,
                        help="the project's Adam learning rate (default: 3e-3, where a one-way RNN trains well at "
                             f"batch 128; the baseline always uses the original project's {BASELINE_LR})")
    parser.add_argument("--names", type=int, default=4000, help="training names per timed pass (default: 4000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the median is reported (default: 3)")
    parser.add_argument("--epochs", type=int, default=1,
                        help="epochs both train before the held-out accuracy is taken (default: 1)")
    parser.add_argument("--startup-runs", type=int, default=5, help="runs of each start-up command (default: 5)")
    parser.add_argument("--threads", type=int, default=defaults.threads,
                        help=f"torch threads of the project's runs (default: train.py's, {defaults.threads}; 0: torch's choice)")
    parser.add_argument("--baseline-threads", type=int, default=0,
                        help="torch threads of the baseline (default 0: torch's choice, as the original project ran)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the split, weights and batch order")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    args.cells = [c for c in args.cells.split(",") if c]
    if not args.cells or any(c not in cells for c in args.cells):
        parser.error(f"--cells takes a comma-separated subset of {','.join(cells)}")
    for flag in ("hidden_size", "batch_size", "names", "repeats", "epochs", "startup_runs"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    return args


# --- the baseline: the original project's loop ---

def baseline_parts(n_letters: int, hidden_size: int, n_countries: int):
    import torch
    import torch.nn as nn
    from torch.utils.data import Dataset

    class OneHotNames(Dataset):
        """The original Dataset: a one-hot tensor [T, n_letters] built letter by letter per item."""

        def __init__(self, names, labels, letters):
            self.names, self.labels, self.index = names, labels, {ch: i for i, ch in enumerate(letters)}

        def __len__(self):
            return len(self.names)

        def __getitem__(self, i):
            name = self.names[i]
            tensor = torch.zeros(len(name), n_letters)
            for li, letter in enumerate(name):
                if letter in self.index:  # the original lit slot -1 for an unknown letter; here it stays dark
                    tensor[li][self.index[letter]] = 1
            return tensor, torch.tensor(self.labels[i])

    class BaselineRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(n_letters, hidden_size, batch_first=True)
            self.out = nn.Linear(hidden_size, n_countries)

        def forward(self, line):  # line: [1, T, n_letters]
            _, hidden = self.rnn(line)  # [1, 1, H]
            return self.out(hidden[0])  # [1, n_countries]

    return OneHotNames, BaselineRNN


# --- one training process: throughput, accuracy after --epochs, peak memory ---

def _rss_peak_mb() -> float:
    try:
        import resource
    except ImportError:  # not on Unix
        return float("nan")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def train_worker(kind: str, cell: str, args: dict, save_path: str | None) -> dict:
    """Train `kind` ('baseline' or 'project'), time it and test it; runs in a child process."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from config.config import ALPHABET, TrainConfig
    from models import build_model, model_args
    from utils import training
    from utils.data import Alphabet, NamesDataset, SurnameData, make_loader
    from utils.metrics import classification_metrics

    threads = args["baseline_threads"] if kind == "baseline" else args["threads"]
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(args["device"])
    defaults = TrainConfig()
    data = SurnameData.build(args["data"], defaults.val_fraction, defaults.test_fraction, args["seed"])  # train.py's
    names, labels, countries, split = data.names, data.labels, data.countries, data.split
    timed_rows = [split.train[i] for i in torch.randperm(len(split.train), generator=torch.Generator().manual_seed(
        args["seed"]))[: args["names"]].tolist()]
    alphabet = Alphabet(ALPHABET)

    def subset(rows):
        return [names[r] for r in rows], [labels[r] for r in rows]

    if kind == "baseline":
        OneHotNames, BaselineRNN = baseline_parts(len(ALPHABET), args["hidden_size"], len(countries))

        def make_model():
            return BaselineRNN().to(device)

        def make_optimizer(model):  # the original project's plain Adam
            return torch.optim.Adam(model.parameters(), lr=BASELINE_LR)

        def loader(rows, shuffle):
            return DataLoader(OneHotNames(*subset(rows), ALPHABET), batch_size=1, shuffle=shuffle)

        def step(model, optimizer, batch):
            line, label = batch[0].to(device), batch[1].to(device)
            loss = F.cross_entropy(model(line), label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss.item()

        def predict(model, rows):
            with torch.inference_mode():
                return [int(model(line.to(device)).argmax()) for line, _ in loader(rows, False)]
    else:
        config = replace(defaults, hidden_size=args["hidden_size"], bidirectional=False, dropout=0.0)
        family_args = asdict(model_args(cell, config, alphabet.letters, len(countries)))
        no_offset = torch.zeros(len(countries))

        def make_model():
            return build_model(cell, family_args).to(device)

        def make_optimizer(model):  # train.py's, with a constant rate: the schedule is not what is timed
            optimizer = training.make_optimizer(model, args["lr"], device)
            return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

        def loader(rows, shuffle):
            return make_loader(NamesDataset(*subset(rows), alphabet), args["batch_size"], shuffle, args["seed"])

        def step(model, optimizer, batch):  # train.py's step, with its per-step loss and accuracy bookkeeping
            loss, correct = training.train_step(model, batch, *optimizer, None, 0.0, alphabet.unknown_index, device)
            correct.item()
            return loss.item()

        def predict(model, rows):
            loader = make_loader(NamesDataset(*subset(rows), alphabet), 1024, False)
            y_true, logits, _ = training.evaluate(model, loader, no_offset, device)
            return y_true, logits.argmax(dim=1).tolist()

    def one_pass(model, optimizer, data) -> tuple[float, int]:
        model.train()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, count = time.perf_counter(), 0
        for batch in data:
            step(model, optimizer, batch)
            count += len(batch[-1])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, count

    training.seed_everything(args["seed"])
    model = make_model()
    optimizer = make_optimizer(model)
    timed = loader(timed_rows, True)
    one_pass(model, optimizer, timed)  # warm-up: first calls, allocator, kernel choices per length
    rates = []
    for _ in range(args["repeats"]):
        seconds, count = one_pass(model, optimizer, timed)
        rates.append(count / seconds)

    # accuracy at equal budget: fresh weights, --epochs over the whole training split, then the test split
    training.seed_everything(args["seed"])
    model = make_model()
    optimizer = make_optimizer(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_peak_mb()
    train = loader(split.train, True)
    epoch_seconds = sum(one_pass(model, optimizer, train)[0] for _ in range(args["epochs"]))
    model.eval()
    if kind == "baseline":
        y_true, y_pred = [labels[r] for r in split.test], predict(model, split.test)
    else:
        y_true, y_pred = predict(model, split.test)
    metrics = classification_metrics(y_true, y_pred)
    result = {"kind": kind, "cell": cell, "names_per_s": statistics.median(rates), "rates": rates,
              "epoch_names_per_s": args["epochs"] * len(split.train) / epoch_seconds,
              "accuracy": metrics["accuracy"], "balanced_accuracy": metrics["balanced_accuracy"],
              "rss_peak_mb": _rss_peak_mb(), "rss_before_training_mb": rss_before,
              "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
              "n_train": len(split.train), "n_test": len(split.test)}
    if save_path:  # a real checkpoint, in train.py's format, for the inference and start-up measurements
        from models import checkpoint

        uniform = [1 / len(countries)] * len(countries)
        checkpoint.save({"family": cell, "model_args": family_args, "model_state": model.cpu().state_dict(),
                         "alphabet": alphabet.letters, "countries": countries, "train_prior": uniform,
                         "logit_offset": [0.0] * len(countries), "temperature": 1.0, "data": data.record(),
                         "config": args, "epoch": args["epochs"], "metrics": {"test_accuracy": metrics["accuracy"]},
                         "finished": True}, save_path)
    return result


def in_child(*call_args) -> dict:
    """train_worker in a fresh process, so that its peak memory and warm-up are its own."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(train_worker, call_args)


# --- inference and start-up, in this process ---

def inference_rate(checkpoint: Path, raw_names: list[str], device: str, repeats: int) -> float:
    """Names per second of Predictor.predict over the whole data set (normalisation included)."""
    from models.predictor import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, device=device)
    predictor.predict(raw_names)  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(raw_names)
        rates.append(len(raw_names) / (time.perf_counter() - start))
    return statistics.median(rates)


def wall_times(commands: dict[str, list[str]], runs: int, env: dict) -> dict[str, float]:
    """Median wall time of each command, the commands taking turns so that load drifts hit all alike."""
    times = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=ROOT, env=env)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def machine() -> dict:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "load_avg_1min": load_average()}


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main(argv=None) -> None:
    args = parse_args(argv)
    from utils.data import load_samples
    from utils.errors import UserError

    raw_names = [s.name for s in load_samples(args.data)]  # fails early, with one line, on bad data
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device here")
    setup = machine()
    print("machine:", json.dumps(setup))
    print("command: python -m bench.bench", " ".join(sys.argv[1:]))
    worker_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "json"}

    with tempfile.TemporaryDirectory() as tmp:
        rows = [in_child("baseline", "rnn", worker_args, None)]
        print(f"baseline rnn: {rows[-1]['names_per_s']:,.0f} names/s", flush=True)
        checkpoints = {}
        for cell in args.cells:
            checkpoints[cell] = Path(tmp) / f"{cell}.bin"
            rows.append(in_child("project", cell, worker_args, str(checkpoints[cell])))
            print(f"project {cell}: {rows[-1]['names_per_s']:,.0f} names/s", flush=True)
        inference = {cell: inference_rate(path, raw_names, args.device, args.repeats) for cell, path in checkpoints.items()}
        serving = "rnn" if "rnn" in checkpoints else args.cells[0]
        env = {**os.environ, "PYTHONPATH": ""}
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        startup = wall_times({"import torch": [sys.executable, "-c", "import torch"],
                              "predict.py lucy": [sys.executable, str(ROOT / "predict.py"), "lucy",
                                                  "--checkpoint", str(checkpoints[serving])]},
                             args.startup_runs, env)
    setup["load_avg_1min_end"] = load_average()

    base = rows[0]
    print(f"\n## Training, {args.epochs} epoch(s), hidden {args.hidden_size}, device {args.device}; torch threads: "
          f"baseline {args.baseline_threads or 'default'}, project {args.threads or 'default'}")
    print("| path | batch | names/s (median) | × baseline | held-out accuracy | balanced accuracy | peak RSS MB | RSS growth in training MB |"
          + (" CUDA peak MB |" if args.device != "cpu" else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if args.device != "cpu" else ""))
    for row in rows:
        label = "baseline: one-hot per item, batch 1, nn.RNN" if row["kind"] == "baseline" else f"project {row['cell']}"
        ratio = f"{row['names_per_s'] / base['names_per_s']:.1f}×" if row["cell"] == "rnn" else "(other cell)"
        print(f"| {label} | {1 if row['kind'] == 'baseline' else args.batch_size} | {row['names_per_s']:,.0f} | "
              f"{ratio} | {row['accuracy']:.3f} | {row['balanced_accuracy']:.3f} | {row['rss_peak_mb']:.0f} | "
              f"{row['rss_peak_mb'] - row['rss_before_training_mb']:.0f} |"
              + (f" {row['cuda_peak_mb']:.0f} |" if row["cuda_peak_mb"] is not None else ""))
    print(f"\n## Batch inference: Predictor.predict over all {len(raw_names):,} names")
    print("| cell | names/s |\n|---|---|")
    for cell, rate in inference.items():
        print(f"| {cell} | {rate:,.0f} |")
    print(f"\n## Start-up (median of {args.startup_runs} runs)")
    print("| command | seconds | × import torch |\n|---|---|---|")
    for name, seconds in startup.items():
        print(f"| `{name}` | {seconds:.2f} | {seconds / startup['import torch']:.2f}× |")
    print(f"\nload average (1 min): {setup['load_avg_1min']:.2f} at start, {setup['load_avg_1min_end']:.2f} at end; "
          "peak RSS is the whole training process (torch included); its growth is from the start of the "
          f"{args.epochs}-epoch training to its end")
    if args.json:
        args.json.write_text(json.dumps({"machine": setup, "args": worker_args, "training": rows,
                                         "inference": inference, "startup": startup}, indent=1))


if __name__ == "__main__":
    if not __package__:  # run as a file: run the module instead, with the repo root importable
        sys.exit(subprocess.run([sys.executable, "-m", "bench.bench", *sys.argv[1:]],
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                    [str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}).returncode)
    from utils.errors import UserError

    try:
        main()
    except UserError as e:
        sys.exit(f"error: {e}")

"""Train a surname -> country classifier and report its score on a held-out test split.

    python train.py                                   # the embedded data set, the default model
    python train.py --model lstm --hidden-size 256    # another family or size
    python train.py --data my_names.tsv               # name<TAB>country lines, or a folder of <Country>.txt
    python train.py --resume                          # continue the interrupted run in save_model/
    python train.py --help                            # every flag, with its default

A run writes into its own folder, save_model/runs/<model>-<date>-<time>/: <family>_classification_<epoch>.bin
after every epoch and <family>_classification_best.bin (best on validation so far) for each family it trains.
Only when it has finished does it publish save_model/<model>_classification_best.bin (with its test score),
<model>_history.json and <model>_curves.png, and point save_model/latest at it; an interrupted or failed run
never replaces what a finished run published. The test split is read once, at the end, with the
best-on-validation weights. Ctrl-C stops at the next step and leaves <family>_resume.bin in the run's folder,
from which --resume continues to exactly the weights and history an uninterrupted run would have. One run at a
time owns a save folder.
"""
import argparse
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from config.config import ALPHABET, PRESET_SETTINGS, TrainConfig
from utils.cli import MAX_THREADS
from utils.errors import UserError, run_script


def parse_args(argv=None) -> tuple[TrainConfig, Path | None]:
    """TrainConfig's defaults, overridden by flags (each flag's help is its field's); or, with --resume,
    the interrupted run's own config and its resume checkpoint."""
    from models import TRAINABLE

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
                        help="continue an interrupted run from its <model>_resume.bin (default: the one in "
                             "--save-dir); the run's own config is used, so no other flag but --save-dir is taken")
    for field in fields(TrainConfig):
        flag, default, help = "--" + field.name.replace("_", "-"), getattr(defaults, field.name), field.metadata["help"]
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help)
        elif isinstance(default, tuple):
            parser.add_argument(flag, nargs="+", default=default, help=f"{help} (default: {' '.join(default)})")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"{help} (default: {default})")
    early, _ = parser.parse_known_args(argv)  # a data preset brings the settings its size calls for; flags still win
    for entry in early.data:
        parser.set_defaults(**PRESET_SETTINGS.get(entry, {}))
    given = vars(parser.parse_args(argv))
    given["data"] = tuple(given["data"])
    resume = given.pop("resume")
    cfg = TrainConfig(**given)
    if resume is not None:
        return resumed_config(parser, cfg, resume, argv)
    parts = cfg.model.split("+")
    if any(part not in TRAINABLE for part in parts) or len(set(parts)) != len(parts):
        parser.error(f"--model takes one of {', '.join(sorted(TRAINABLE))}, or several joined by '+' (gru+ngram)")
    for name in ("epochs", "batch_size", "hidden_size", "num_layers", "log_every", "ngram_order"):
        if getattr(cfg, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if cfg.lr <= 0 or not (0 <= cfg.dropout < 1 and 0 <= cfg.letter_dropout < 1):
        parser.error("--lr must be positive, --dropout and --letter-dropout in [0, 1)")
    if min(cfg.max_steps, cfg.threads, cfg.balance_power, cfg.posthoc_adjust) < 0:
        parser.error("--max-steps, --threads, --balance-power and --posthoc-adjust must not be negative")
    if not (0 < cfg.val_fraction < 0.5 and 0 < cfg.test_fraction < 0.5):
        parser.error("--val-fraction and --test-fraction must be between 0 and 0.5")
    for name, (low, high) in RANGES.items():
        value = getattr(cfg, name)
        if not (math.isfinite(value) and low <= value <= high):  # NaN and infinity fail every comparison but !=
            parser.error(f"--{name.replace('_', '-')} must be between {low} and {high} (got {value})")
    if cfg.n_embd % cfg.n_head:
        parser.error(f"--n-head ({cfg.n_head}) must divide --n-embd ({cfg.n_embd})")
    counts = {part: parameter_count(part, cfg) for part in parts}
    too_big = [(part, n) for part, n in counts.items() if n > MAX_PARAMETERS]
    if too_big:
        parser.error(f"--model {too_big[0][0]} with these sizes has {too_big[0][1]:,} parameters; at most "
                     f"{MAX_PARAMETERS:,} fit in memory with the optimiser's state (lower --hidden-size, --num-layers, "
                     "--n-embd or --n-layer)")
    needed = max(training_memory(part, cfg, n) for part, n in counts.items())  # members train in turn
    available = available_memory()
    if available is not None and needed > available:
        parser.error(f"--model {cfg.model} with these sizes needs about {needed / 1e9:,.1f} GB to train (parameters, "
                     f"the optimiser's state and a batch's activations); this machine has {available / 1e9:,.1f} GB "
                     "available (lower --batch-size, --hidden-size, --num-layers, --n-embd or --n-layer)")
    return cfg, None


# The range of every numeric flag (after the checks above for the usual mistakes): finite, and small enough to fit
RANGES = {"epochs": (1, 100_000), "batch_size": (1, 1 << 16), "hidden_size": (1, 8192), "num_layers": (1, 64),
          "ngram_order": (1, 10), "n_layer": (1, 256), "n_head": (1, 256), "n_embd": (1, 8192), "lr": (1e-12, 10.0),
          "dropout": (0.0, 1.0), "letter_dropout": (0.0, 1.0), "balance_power": (0.0, 10.0),
          "posthoc_adjust": (0.0, 1.0), "seed": (0, 2 ** 32 - 1), "threads": (0, MAX_THREADS), "max_steps": (0, 10 ** 12),
          "log_every": (1, 10 ** 12), "val_fraction": (0.0, 0.5), "test_fraction": (0.0, 0.5)}
MAX_PARAMETERS = 100_000_000  # a family's trainable size: 1.6 GB in float32 with Adam's two moments and the gradient


def parameter_count(family: str, cfg: TrainConfig) -> int:
    """How many parameters `family` has with cfg's sizes (two countries), counted on the meta device: no memory."""
    import torch

    from models import build_model, model_args

    with torch.device("meta"):
        model = build_model(family, asdict(model_args(family, cfg, ALPHABET, 2)))
    return sum(p.numel() for p in model.parameters())


PLANNING_LENGTH = 12  # letters of a full batch's names: a batch holds names of one length, and longer ones are too
                      # few to fill one (for batch 4096, hidden 512 the estimate says 1.0 GB; the process peaked at 0.55)
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def training_memory(family: str, cfg: TrainConfig, n_parameters: int) -> int:
    """Bytes a training step of `family` needs, roughly: the parameters four times over (weights, gradient and
    Adam's two moments, float32) and the activations the backward pass keeps for a full batch (for a
    recurrent layer its gates and states at every letter; for a transformer block its attention and MLP)."""
    if family == "ngram":  # counted, not trained: its tables are sized by the data, a few MB
        return 0
    if family in GATES:
        per_letter = cfg.num_layers * (1 + cfg.bidirectional) * cfg.hidden_size * (GATES[family] + 2)
    else:
        per_letter = cfg.n_layer * (20 * cfg.n_embd + 2 * cfg.n_head * PLANNING_LENGTH)
    return 16 * n_parameters + 4 * cfg.batch_size * PLANNING_LENGTH * per_letter


def available_memory() -> int | None:
    """Bytes of memory this machine can give a new process now (Linux's MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def resumed_config(parser, cfg: TrainConfig, resume: str, argv) -> tuple[TrainConfig, Path]:
    import sys

    from models import checkpoint as ckpt

    flags = [a.split("=")[0] for a in (sys.argv[1:] if argv is None else argv) if a.startswith("--")]
    if set(flags) - {"--resume", "--save-dir"}:
        parser.error("--resume continues a run with its own config: give no other flag but --save-dir")
    path = Path(resume) if resume else None
    if path is None:
        found = ckpt.resume_files(cfg.save_dir)
        if not found:
            raise UserError(f"nothing to resume in {cfg.save_dir}: no *_resume.bin (a finished run leaves none)")
        path = found[-1]
    payload = ckpt.load(path)
    if "resume" not in payload:
        raise UserError(f"{path}: not a resume checkpoint (train.py writes <model>_resume.bin)")
    return TrainConfig(**{**payload["config"], "save_dir": cfg.save_dir if "--save-dir" in flags
                          else payload["config"]["save_dir"]}), path


def published_name(cfg: TrainConfig) -> str:
    """The name a run's files are published under: the model, and the data preset unless it is the tutorial's
    (ngram+gru, ngram+gru-real), so the course's model and the real-surname model live side by side."""
    from utils.data import is_preset

    presets = [entry for entry in cfg.data if is_preset(entry) and entry != "tutorial"]
    return "-".join([cfg.model, *presets])


def portable_config(cfg: TrainConfig) -> dict:
    """The run's config as published for others to read: data files and the save folder by name, never this
    machine's paths (a run's own resume and member files keep the paths, which --resume needs)."""
    from utils.data import is_preset

    data = [entry if is_preset(entry) else Path(entry).name for entry in cfg.data]
    return {**asdict(cfg), "data": data, "save_dir": Path(cfg.save_dir).name}


class StopFlag:
    """Ctrl-C asks the training loop to stop at the next step; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self) -> "StopFlag":
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self.previous)


def main(argv=None) -> dict | int:
    cfg, resume_path = parse_args(argv)
    from contextlib import nullcontext

    from models.checkpoint import SaveDirLock
    from utils.training import Distributed

    dist, device = Distributed.from_env(cfg.device)  # one process, or one of a torchrun job
    if dist.world > 1 and resume_path is not None:
        raise UserError("--resume continues a single-process run; run it without torchrun")
    try:
        with SaveDirLock(cfg.save_dir) if dist.main else nullcontext(), StopFlag() as stop:
            return train(cfg, resume_path, stop, dist, device)
    finally:
        dist.close()


def train(cfg: TrainConfig, resume_path: Path | None, stop: StopFlag, dist, device) -> dict | int:
    import torch

    from models import checkpoint as ckpt
    from utils.calibration import fit_temperature
    from utils.class_mix import assumed_prior, posthoc_offset
    from utils.data import Alphabet, SurnameData, make_loader
    from utils.metrics import classification_metrics, probability_metrics
    from utils.training import evaluate, seed_everything

    say = print if dist.main else lambda *args, **kwargs: None  # only the main process speaks
    say("config:", json.dumps(asdict(cfg)))
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    save_dir = Path(cfg.save_dir)
    start = time.perf_counter()

    # --- data: read, normalise, split by name, encode ---
    data = SurnameData.build(cfg.data, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    alphabet = Alphabet(ALPHABET)
    val_loader = make_loader(data.dataset("val", alphabet), 1024, shuffle=False)
    test_loader = make_loader(data.dataset("test", alphabet), 1024, shuffle=False)
    odd = sorted({ch for name in data.names for ch in alphabet.unknown_chars(name)})
    say(f"data: {len(data.names)} names, {len(data.countries)} countries from {data.description}; split train/val/test "
        f"{len(data.split.train)}/{len(data.split.val)}/{len(data.split.test)} rows, grouped by name"
        + (f"; characters read as unknown: {''.join(odd)}" if odd else ""))

    # --- each family of the model in turn (one, or the members of a mix), best on validation, in the run's folder ---
    resumed = ckpt.load(resume_path) if resume_path is not None else None
    if not dist.main:
        run_dir = save_dir  # only the main process writes
    else:
        run_dir = resume_path.parent if resume_path is not None else ckpt.new_run_dir(save_dir, published_name(cfg))
    members, histories = [], {}
    for family in cfg.model.split("+"):
        if resumed is not None and family in resumed["resume"]["members_done"]:
            members.append(trained_member(run_dir, family, cfg, data))  # trained before the interruption
            continue
        resume = resumed if resumed is not None and resumed["family"] == family else None
        try:
            best, histories[family] = train_family(family, cfg, data, alphabet, val_loader, resume,
                                                   [m["family"] for m in members], stop, dist, device, say, run_dir)
        except Interrupted as e:
            say(e)
            return 130
        members.append(best)
    history = dict(histories[list(histories)[-1]]) if histories else {}  # the last family trained: the curves
    final = members[0] if len(members) == 1 else combine(members, cfg, data, alphabet, val_loader, device, say)

    # --- the class-mix adjustment and calibration on validation, then the untouched test split, once ---
    model = ckpt.build_model(final).to(device)
    train_shares = data.class_shares("train")
    offset = torch.tensor(final["logit_offset"]) + posthoc_offset(train_shares, cfg.posthoc_adjust)
    y_val, val_logits, _ = evaluate(model, val_loader, offset, device)
    temperature = fit_temperature(val_logits, torch.tensor(y_val))
    y_true, logits, _ = evaluate(model, test_loader, offset, device)
    test = {**classification_metrics(y_true, logits.argmax(dim=1).tolist()),
            "ece": probability_metrics(torch.softmax(logits / temperature, dim=1), y_true)["ece"]}
    assumed = assumed_prior(train_shares, cfg.posthoc_adjust)
    final = {**final, "logit_offset": offset.tolist(), "temperature": temperature, "assumed_prior": assumed.tolist(),
             "metrics": {**final["metrics"], **{f"test_{k}": v for k, v in test.items()}},
             "seen": data.countries_by_name("train"), "finished": True, "config": portable_config(cfg)}
    if not dist.main:
        return {"history": history}
    ckpt.validate(final, f"the trained {cfg.model}")  # finite weights and numbers, or nothing is published
    n_params = sum(t.numel() for t in final["model_state"].values())
    history = {**history, "members": histories if len(members) > 1 else None,
               "test": {"epoch": final["epoch"], **test}, "seconds": time.perf_counter() - start,
               "parameters": n_params, "config": portable_config(cfg)}
    history_path = ckpt.write_text(ckpt.history_path(save_dir, published_name(cfg)), json.dumps(history, indent=1))

    from utils.plot import plot_history  # matplotlib only here, at the end

    curved = list(histories)[-1] if histories else cfg.model  # a mix's curves are its last-trained member's
    title = f"{curved} on {data.record()['file']}" + (f" (in {cfg.model})" if curved != cfg.model else "")
    drawn = plot_history(history, ckpt.curves_path(run_dir, published_name(cfg)), title=title)
    curves_path = ckpt.write_atomic(save_dir / drawn.name, lambda f: f.write(drawn.read_bytes()))
    best_path = ckpt.publish(save_dir, published_name(cfg), final)  # last: the finished run becomes the default model
    for family in cfg.model.split("+"):
        ckpt.resume_path(run_dir, family).unlink(missing_ok=True)
    say(f"test ({len(y_true)} names, best epoch {final['epoch']}): accuracy {test['accuracy']:.3f}  "
        f"balanced accuracy {test['balanced_accuracy']:.3f}  macro-F1 {test['macro_f1']:.3f}  "
        f"calibration error {test['ece']:.3f} (temperature {temperature:.2f}, fitted on validation)")
    say(f"saved {best_path}, {history_path}, {curves_path}  ({time.perf_counter() - start:.1f}s)")
    return {"history": history, "best_path": best_path, "history_path": history_path, "run_dir": run_dir}


def trained_member(run_dir: Path, family: str, cfg: TrainConfig, data) -> dict:
    """A member of a mix that an interrupted run finished training, from the run's own folder, checked to be
    that run's: the same family, data, countries and config (another run's model is never taken)."""
    from models import checkpoint as ckpt

    path = ckpt.best_path(run_dir, family)
    member = ckpt.load(path)
    config = {k: v for k, v in member["config"].items() if k != "save_dir"}
    if member["family"] != family or member["data"] != data.record() or member["countries"] != data.countries \
            or config != {k: v for k, v in asdict(cfg).items() if k != "save_dir"}:
        raise UserError(f"{path}: not the {family} this run trained (its data or config differ); cannot resume, "
                        "start the run again")
    return member


class Interrupted(Exception):
    """Ctrl-C stopped training; the message says how to continue (the resume file is saved)."""


@dataclass
class Progress:
    """Where the training of one family stands, all that --resume needs besides the weights, the optimiser, the
    schedule, the running log and the random state: the steps taken, the epoch to run and how many of its batches
    are done, the best epoch so far, and the batch-order generator's state at the start of the epoch."""
    steps: int = 0
    epoch: int = 1
    batches_done: int = 0
    best: dict | None = None
    best_accuracy: float = -1.0
    epoch_generator: object = None  # torch.ByteTensor

    @classmethod
    def from_resume(cls, resume: dict, epoch: int) -> "Progress":
        return cls(resume["steps"], epoch, resume["batches_done"], resume["best"], resume["best_accuracy"],
                   resume["epoch_generator"])


def train_family(family: str, cfg: TrainConfig, data, alphabet, val_loader, resumed: dict | None,
                 members_done: list[str], stop: StopFlag, dist, device, say, run_dir: Path) -> tuple[dict, dict]:
    """Train one model of `family` on the training split, its files in `run_dir`; returns its best-on-validation
    checkpoint payload and its history. Ctrl-C saves <family>_resume.bin and raises Interrupted."""
    import torch

    from models import build_model, is_counted, model_args
    from models import checkpoint as ckpt
    from utils.data import LengthBucketSampler
    from utils.metrics import classification_metrics
    from utils.training import RunningLog, class_weights, evaluate, make_optimizer, make_scheduler
    from utils.class_mix import row_offset

    countries = data.countries
    train_set = data.dataset("train", alphabet, dedupe=True, feminine=cfg.feminine_forms)  # distinct pairs
    sampler = LengthBucketSampler(train_set.lengths, cfg.batch_size, shuffle=True, seed=cfg.seed)
    args = model_args(family, cfg, alphabet.letters, len(countries))
    model = build_model(family, asdict(args)).to(device)
    row_labels = torch.tensor([data.labels[r] for r in data.split.train])  # [training rows]
    offset = row_offset(train_set.labels, row_labels, len(countries))  # [n_countries]: the rows' class mix
    loss_weight = class_weights(train_set.labels, len(countries), cfg.balance_power).to(device)  # [n_countries]
    counted = is_counted(model)
    epochs = 1 if counted else cfg.epochs  # counting needs one pass
    trained = model  # what takes the steps: the model, or under torchrun its DistributedDataParallel wrapper
    optimizer = scheduler = None
    if not counted:
        if dist.world > 1:  # the same initial weights everywhere (DDP broadcasts rank 0's), its own letter dropout
            trained = torch.nn.parallel.DistributedDataParallel(model)
            torch.manual_seed(cfg.seed + 1000 * dist.rank)
        optimizer = make_optimizer(model, cfg.lr, device)
        total_steps = epochs * (len(sampler) // dist.world)
        scheduler = make_scheduler(optimizer, min(total_steps, cfg.max_steps or total_steps))
    n_params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    say(f"model: {family}, " + ("counted from the training names" if counted else f"{n_params:,} parameters")
        + f", on {device}"
        + (f", {dist.world} processes" if dist.world > 1 else ""))
    base = {"family": family, "model_args": asdict(args), "alphabet": alphabet.letters, "countries": countries,
            "train_prior": data.class_shares("train").tolist(), "logit_offset": offset.tolist(),
            "temperature": 1.0, "data": data.record(), "config": asdict(cfg)}
    resume_file = ckpt.resume_path(run_dir, family)

    # --- where to start: the beginning, or where an interrupted run stopped ---
    log = RunningLog(cfg.log_every)
    progress = Progress(epoch_generator=sampler.generator.get_state())
    if resumed is not None:
        if resumed["data"] != base["data"] or resumed["model_args"] != base["model_args"]:
            raise UserError("the resume checkpoint's data or model differ from this run's; cannot resume")
        r = resumed["resume"]
        model.load_state_dict(resumed["model_state"])
        optimizer.load_state_dict(r["optimizer"])
        scheduler.load_state_dict(r["scheduler"])
        log.load_state(r["log"])
        progress = Progress.from_resume(r, resumed["epoch"])
        torch.set_rng_state(r["rng"])
        say(f"resuming {family}: epoch {progress.epoch}, {progress.batches_done} steps into it, "
            f"{progress.steps} steps in all")

    def save_resume(epoch: int, batches_done: int) -> None:
        ckpt.save({**base, "model_state": model.state_dict(), "epoch": epoch, "metrics": {}, "finished": False,
                   "resume": {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                              "steps": progress.steps, "batches_done": batches_done,
                              "epoch_generator": progress.epoch_generator, "rng": torch.get_rng_state(),
                              "log": log.state(), "best": progress.best, "best_accuracy": progress.best_accuracy,
                              "members_done": members_done}}, resume_file)

    # --- training: every epoch is checked on validation and saved; the best is kept ---
    start = time.perf_counter() - (log.history["epochs"][-1]["seconds"] if log.history["epochs"] else 0.0)
    for epoch in range(progress.epoch, epochs + 1):
        model.train()
        if progress.batches_done == 0:
            log.start_epoch()
        if counted:
            model.fit(train_set.letters, train_set.lengths, train_set.labels)
        else:
            stopped_at = train_epoch(family, epoch, epochs, cfg, trained, optimizer, scheduler, loss_weight, train_set,
                                     sampler, progress, log, stop, dist, device, alphabet.unknown_index)
            if stopped_at is not None:
                save_resume(epoch, stopped_at)
                raise Interrupted(f"interrupted at epoch {epoch}, step {progress.steps}; continue with: "
                                  f"python train.py --resume {resume_file}")
        y_true, logits, val_loss = evaluate(model, val_loader, offset, device)
        val = classification_metrics(y_true, logits.argmax(dim=1).tolist())
        log.epoch = dist.sum(log.epoch)  # the epoch's loss and accuracy over every process's batches
        train_loss, train_accuracy = log.epoch_means()
        record = {"epoch": epoch, "samples": log.seen, "train_loss": train_loss, "train_accuracy": train_accuracy,
                  "val_loss": val_loss, **{f"val_{k}": v for k, v in val.items()},
                  "seconds": time.perf_counter() - start}
        log.history["epochs"].append(record)
        trained_by = "counted" if counted else f"loss {train_loss:.4f}  train acc {train_accuracy:.3f}"
        say(f"{family} epoch {epoch:2d}/{epochs}  {trained_by}  val acc {val['accuracy']:.3f}  "
            f"val bal acc {val['balanced_accuracy']:.3f}  {record['seconds']:.1f}s")
        weights = {key: value.detach().clone() for key, value in model.state_dict().items()}  # not the live tensors,
        payload = {**base, "model_state": weights, "epoch": epoch, "metrics": record, "finished": False}  # kept as best
        if dist.main:
            ckpt.save(payload, ckpt.epoch_path(run_dir, family, epoch))
        if val["accuracy"] >= progress.best_accuracy:  # of equally good epochs, the later: trained longer
            progress.best, progress.best_accuracy = payload, val["accuracy"]
            if dist.main:
                ckpt.save(payload, ckpt.best_path(run_dir, family))
        out_of_steps = progress.steps == cfg.max_steps > 0
        last = out_of_steps or epoch == epochs
        if not counted and not last and dist.main:
            save_resume(epoch + 1, 0)
        if out_of_steps:
            say(f"stopped after {progress.steps} steps (--max-steps)")
        if last:
            break
        if dist.sum([float(stop.requested)])[0]:  # every process stops after the same epoch
            raise Interrupted(f"interrupted after epoch {epoch}; continue with: python train.py --resume {resume_file}")
    return progress.best, log.history


def train_epoch(family: str, epoch: int, epochs: int, cfg: TrainConfig, trained, optimizer, scheduler, loss_weight,
                train_set, sampler, progress: Progress, log, stop: StopFlag, dist, device,
                unknown_index: int) -> int | None:
    """One epoch's gradient steps, from progress.batches_done on; `progress` and `log` follow every step. Returns
    None when the epoch (or --max-steps) is done, or the number of its batches done when Ctrl-C asked to stop."""
    from tqdm import tqdm

    from utils.training import train_step

    # the epoch's batch order comes from the sampler's generator as it stood at the epoch's start, so a resumed
    # run draws the same order and skips the batches already done
    sampler.generator.set_state(progress.epoch_generator)
    batches = dist.shard(sampler.batches())
    for i in tqdm(range(progress.batches_done, len(batches)), desc=f"{family} epoch {epoch}/{epochs}", leave=False,
                  disable=not dist.main, initial=progress.batches_done, total=len(batches)):
        batch = train_set.__getitems__(batches[i])
        loss, correct = train_step(trained, batch, optimizer, scheduler, loss_weight, cfg.letter_dropout,
                                   unknown_index, device)
        if not math.isfinite(loss_value := loss.item()):
            raise UserError(f"{family}: the training loss became {loss_value} at step {progress.steps + 1} (epoch "
                            f"{epoch}); nothing was published. Try a lower --lr")
        log.add(loss_value * len(batch[2]), correct.item(), len(batch[2]))
        progress.steps += 1
        if progress.steps == cfg.max_steps:  # never true for 0, "no limit"
            break
        if stop.requested and dist.world == 1 and i + 1 < len(batches):
            return i + 1
    progress.batches_done = 0
    progress.epoch_generator = sampler.generator.get_state()
    return None


def combine(members: list[dict], cfg: TrainConfig, data, alphabet, val_loader, device, say) -> dict:
    """One mix checkpoint payload from the members' payloads, its log-linear weights fitted on validation."""
    import torch

    from models import build_model
    from models import checkpoint as ckpt
    from models.mix import mix_state
    from utils.calibration import fit_mix_weights
    from utils.training import evaluate

    log_probs = []
    for member in members:
        y_val, logits, _ = evaluate(ckpt.build_model(member).to(device), val_loader,
                                    torch.tensor(member["logit_offset"]), device)
        log_probs.append(torch.log_softmax(logits, dim=1))
    weights = fit_mix_weights(torch.stack(log_probs), y_val)
    say("mix weights, fitted on validation: " + ", ".join(f"{m['family']} {w:.2f}" for m, w in zip(members, weights)))
    args = {"n_letters": alphabet.size, "n_countries": len(data.countries),
            "members": [{"family": m["family"], "args": m["model_args"]} for m in members], "weights": weights}
    mix = build_model("mix", args)
    mix.load_state_dict(mix_state([m["model_state"] for m in members], weights, [m["logit_offset"] for m in members]))
    return {**members[-1], "family": "mix", "model_args": args, "model_state": mix.state_dict(),
            "logit_offset": [0.0] * len(data.countries), "epoch": members[-1]["epoch"],
            "metrics": {"members": [m["metrics"] for m in members]}}


if __name__ == "__main__":
    run_script(lambda: 0 if isinstance(code := main(), dict) else code)

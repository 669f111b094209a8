"""Throughput and peak memory of `predict.py --input FILE` on three kinds of surname column, against the old
`predict.py - < names.txt`, in one run.

    python bench/bench_tables.py --checkpoint save_model/ngram+gru_classification_best.bin
    python bench/bench_tables.py --checkpoint CK --rows 1000000 --workers 1 2 --baseline-rows 100000

Writes synthetic CSVs (id, first name, surname, city, amount) into --dir, of three kinds:
  repeated    surnames drawn from the data set's rows (so common ones repeat) mixed with --external share of
              made-up, external-looking names drawn from a Zipf-weighted pool, and a few empty or letter-less
              ones: about 38,000 distinct names in a million rows;
  population  surnames drawn from a million distinct spellings with Zipf weights (the k-th most common drawn
              in proportion to 1/k, as surnames are spread in a population): about 220,000 distinct names in a
              million rows, where a country's million people hold 100,000-300,000;
  distinct    every row a spelling no other row has (distinct_names: the data set's names with endings added),
              so no answer is ever reused: every row costs a model call.
Then runs each command as a child process, one after another (the machine has 2 cores: never two
measurements at once), and prints a Markdown table with a column group per kind: wall seconds of the
whole process (start-up included), names/s, and peak memory: the largest single process's RSS (from
wait4), and with --workers also the peak over the process tree, sampled every 0.1 s, both as the sum of
RSS (which counts torch's shared libraries once per process) and of PSS (which shares them out). The
baseline reads one name per line from stdin, every name held in memory, on --baseline-rows names of the
repeated kind (0: no baseline).
"""
import argparse
import csv
import functools
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYLLABLES = ["ka", "lo", "mi", "ren", "zu", "tar", "vel", "qui", "bro", "sen", "dah", "ix", "ou", "nak", "sto",
             "wen", "gri", "fal", "ody", "pe", "har", "lin", "jo", "bec", "mar", "tsu", "vik", "el", "rho", "dun"]
FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Ines", "José", "Kai", "Lena"]
KINDS = ("repeated", "population", "distinct")
POPULATION_POOL = 1_000_000  # distinct spellings the population column draws from
CITIES = ["Paris", "Osaka", "São Paulo", "New York, NY", "Zürich", "Lagos", "Hanoi", "Perth"]
# endings and prefixes that turn the data set's ~17,000 distinct names into a million distinct spellings
ENDINGS = ["", "a", "e", "i", "o", "s", "y", "an", "as", "el", "en", "er", "es", "et", "ez", "ic", "in", "is", "ko",
           "ov", "ot", "on", "os", "ou", "ak", "ek", "uk", "da", "ta", "no", "ini", "ian", "ich", "ing", "man", "son",
           "sen", "ton", "ley", "ova", "ski", "sky", "ska", "aro", "ero", "ado", "ito", "ino", "eau", "kin", "yan",
           "dze", "ura", "enko", "ovic", "elli", "escu", "mann", "berg", "wood", "ford", "oglu", "akis", "ides", "moto",
           "yama", "gawa", "stein", "field", "nikov", "zadeh", "poulos", "shvili"]
PREFIXES = ["", "Mc", "O'", "Van ", "De "]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint predict.py loads")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "names.tsv",
                        help="names.tsv whose names the surnames are drawn from")
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="rows of each table to classify")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="--workers values to measure")
    parser.add_argument("--predict", type=Path, default=ROOT / "predict.py",
                        help="the predict.py to run (another checkout's, to compare versions in one run)")
    parser.add_argument("--threads", type=int, default=1, help="--threads of predict.py (torch threads per process)")
    parser.add_argument("--baseline-rows", type=int, default=200_000,
                        help="names the stdin baseline classifies (0: no baseline)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS,
                        help="which columns to measure: repeated names, all-distinct spellings, or both")
    parser.add_argument("--external", type=float, default=0.1, help="share of made-up external-looking surnames")
    parser.add_argument("--external-pool", type=int, default=100_000, help="distinct made-up surnames to draw from")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench_tables"), help="where the tables are written")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def surname_source(data: Path, external: float, pool: int, seed: int):
    """A function drawing n surnames: data-set rows, made-up names (Zipf-weighted) and a few invalid ones."""
    rng = random.Random(seed)
    known = [line.split("\t")[0] for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    made_up = list(dict.fromkeys("".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))).title() for _ in range(pool)))
    weights = [1 / (i + 1) for i in range(len(made_up))]

    def draw(n: int) -> list[str]:
        n_external = int(n * external)
        names = rng.choices(known, k=n - n_external) + rng.choices(made_up, weights, k=n_external)
        for i in rng.sample(range(n), k=n // 1000):  # 0.1% unclassifiable
            names[i] = rng.choice(["", "123", "  ", "?!"])
        rng.shuffle(names)
        return names

    return draw, rng


def distinct_names(data: Path, n: int, seed: int = 0) -> list[str]:
    """n spellings, all different: the data set's distinct names with an ending added (and a prefix, beyond
    1.3 million), shuffled: a column where every row is a name the answer cache has never seen."""
    known = sorted({line.split("\t")[0] for line in data.read_text(encoding="utf-8").splitlines() if line.strip()})
    names = {}
    for prefix in PREFIXES:
        names.update(dict.fromkeys(prefix + name + ending for ending in ENDINGS for name in known))
        if len(names) >= n:
            return random.Random(seed).sample(list(names), n)
    raise SystemExit(f"error: at most {len(names):,} distinct spellings can be made from {data}")


def population_source(spellings: list[str], seed: int):
    """A function drawing n surnames from `spellings`, the k-th with weight 1/k (Zipf's law, which surname
    frequencies follow): the most common names repeat often, most of the rest once or a few times."""
    rng = random.Random(seed)
    cumulative = list(itertools.accumulate(1 / k for k in range(1, len(spellings) + 1)))
    return lambda start, n: rng.choices(spellings, cum_weights=cumulative, k=n)


def write_table(path: Path, rows: int, names) -> None:
    """A CSV of `rows` rows whose surname column is `names(n)` drawn 100,000 at a time (skipped if it exists)."""
    if path.exists():
        return
    rng = random.Random(rows)
    temp = path.with_suffix(".partial")
    with open(temp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "first_name", "surname", "city", "amount"])
        for start in range(0, rows, 100_000):
            chunk = names(start, min(100_000, rows - start))
            writer.writerows((start + i, rng.choice(FIRST), name, rng.choice(CITIES), f"{rng.random() * 1000:.2f}")
                             for i, name in enumerate(chunk))
    os.replace(temp, path)


def tree_memory_kib(root: int) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in KiB over `root` and its descendants, from /proc."""
    children, pids = {}, []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    todo = [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss"):
                    kib = int(value.split()[0])
                    rss, pss = (rss + kib, pss) if key == "Rss" else (rss, pss + kib)
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss


def measure(command: list[str], stdin_path: Path | None = None, ok=(0,)) -> tuple[float, int, int, int]:
    """(wall seconds, peak RSS KiB of the process or its largest descendant, peak tree RSS KiB, peak tree PSS KiB)
    of one run."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    stderr_file = tempfile.TemporaryFile()  # a pipe could fill up with warnings and stall the child
    start = time.perf_counter()
    child = subprocess.Popen(command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr_file, cwd=ROOT)
    peak_rss = peak_pss = 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        rss, pss = tree_memory_kib(child.pid)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.1)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr_file.seek(0)
    stderr = stderr_file.read().decode(errors="replace")
    if child.returncode not in ok:
        sys.exit(f"error: {' '.join(command)} failed ({child.returncode}): {stderr.strip().splitlines()[-1:]}")
    return wall, usage.ru_maxrss, max(peak_rss, usage.ru_maxrss), max(peak_pss, 1)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    draw, _ = surname_source(args.data, args.external, args.external_pool, args.seed)
    predict = [sys.executable, str(args.predict), "--checkpoint", str(args.checkpoint),
               "--threads", str(args.threads)]
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    columns = {"repeated": lambda start, n: draw(n)}
    spellings = functools.cache(lambda n: distinct_names(args.data, n, args.seed))  # one list for both kinds at 1M rows
    if "distinct" in args.kinds:
        columns["distinct"] = lambda start, n: spellings(max(args.rows))[start:start + n]
    if "population" in args.kinds:
        columns["population"] = population_source(spellings(POPULATION_POOL), args.seed)
    results = {}  # (command, names) -> {kind: (wall, names/s, rss, tree rss, tree pss)}
    baseline = None
    if args.baseline_rows:
        names_txt = args.dir / f"names_{args.baseline_rows}.txt"
        if not names_txt.exists():
            names_txt.write_text("".join(f"{n}\n" for n in draw(args.baseline_rows)), encoding="utf-8")
        wall, rss, _, _ = measure(predict + ["-"], stdin_path=names_txt, ok=(0, 1))  # 1: some names had no letters
        baseline = args.baseline_rows / wall
        results[("`predict.py - < names.txt` (baseline)", args.baseline_rows)] = {
            "repeated": (wall, baseline, rss, rss, None)}
        print(f"baseline: {baseline:,.0f} names/s, {rss / 1024:.0f} MiB", flush=True)

    for rows in args.rows:
        for kind in args.kinds:
            table = args.dir / f"table_{kind}_{rows}_{args.seed}.csv"
            write_table(table, rows, columns[kind])
            for workers in args.workers:
                out = args.dir / f"out_{kind}_{rows}_{workers}.csv"
                wall, rss, tree, pss = measure(predict + ["--input", str(table), "--column", "surname", "--output",
                                                          str(out), "--workers", str(workers)])
                out.unlink()
                results.setdefault((f"`predict.py --input` --workers {workers}", rows), {})[kind] = (
                    wall, rows / wall, rss, tree, pss)
                print(f"{kind}: {rows:,} rows, {workers} worker(s): {rows / wall:,.0f} names/s, {rss / 1024:.0f} MiB "
                      f"(tree: RSS {tree / 1024:.0f} MiB, PSS {pss / 1024:.0f} MiB); load {os.getloadavg()[0]:.2f}",
                      flush=True)

    print(f"\nload average at end: {os.getloadavg()[0]:.2f}\n")
    per_kind = ["wall s", "names/s"] + (["× baseline"] if baseline else []) + ["peak MiB: process / tree RSS / tree PSS"]
    print("| command | names |" + "".join(f" {kind}: {column} |" for kind in args.kinds for column in per_kind))
    print("|---|---:|" + "---:|" * (len(per_kind) * len(args.kinds)))
    for (what, n), by_kind in results.items():
        cells = []
        for kind in args.kinds:
            if kind not in by_kind:
                cells.append(" |" * len(per_kind))
                continue
            wall, rate, rss, tree, pss = by_kind[kind]
            memory = f"{rss / 1024:.0f}" + (f" / {tree / 1024:.0f} / {pss / 1024:.0f}" if pss else "")
            cells.append(f" {wall:.1f} | {rate:,.0f} |" + (f" {rate / baseline:.1f} |" if baseline else "") + f" {memory} |")
        print(f"| {what} | {n:,} |" + "".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

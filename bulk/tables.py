"""Classify a column of a table file, streaming: CSV or TSV (stdlib csv), or Parquet (pyarrow, optional).

    from bulk.tables import classify_file
    summary = classify_file("people.csv", "people_countries.csv", "surname", "save_model/gru_classification_best.bin")

The output holds every input row once, in order, with its columns untouched, followed by
`country`, `probability` (`country_2`, `probability_2`, ... with topk > 1) and `error`: the reason
a row's name could not be classified (its answers then empty). A CSV/TSV row that sits on one line is
copied as it was written (its quotes and spaces kept) when the output has the input's delimiter, unless a
row of its chunk spans several lines; other rows are written by the csv module, and read back the same.
Rows are read `chunk_rows` at a time and at most `cache_size` answers are kept (100,000 by default, about
25 MB; a cache that answers almost nothing rests, bulk/labeller.FieldCache), so memory stays flat whatever
the file's length and however many of its names differ (docs/speed.md).

With workers > 1, this process and a pool of workers - 1 share the work. A CSV/TSV file is cut into ranges of
about two chunks (bulk/csv_ranges.py): each process takes the next range not yet taken, reads, classifies and
writes it to a part file, and this one joins the parts in order. A Parquet file, or a CSV whose ranges cannot be
cut (a header over several lines, fewer than two ranges, a quote that misleads the cut), is read and written
by this one, the pool classifying chunks' new names. On Linux with one torch thread the pool's processes
are forked and share this one's model. The output is written to a hidden temp file beside the target
and renamed at the end, so an interrupted run leaves no output file (nor, unless killed outright, a
temp file).
"""
import csv
import errno
import gc
import glob
import io
import multiprocessing
import multiprocessing.util
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import chain, compress, islice, repeat, tee
from operator import itemgetter
from pathlib import Path

from models.predictor import cyclic_gc_paused
from utils.errors import UserError
from utils.files import cannot_write, check_target, file_mode, kind_of
from bulk.csv_ranges import SENTINEL, EndsAtARecord, NotARecordEnd, range_text, record_ranges
from bulk.labeller import (FieldCache, compute_fields, complete, error_fields, output_columns, text_names, warm_up,
                           wrong_width)

DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
PARQUET = (".parquet", ".pq")
MAX_FIELD = 1 << 24  # characters in one CSV field; the csv module's default, 128 KiB, fails the whole file
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


@dataclass
class Summary:
    input: Path
    output: Path
    rows: int  # data rows written (blank lines are skipped, not rows)
    classified: int
    errors: int  # rows whose name could not be classified; the reason is in their `error` cell
    computed: int  # distinct names that were not in the cache (normalised and run through the model)
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (f"{self.output}: {self.rows:,} rows, {self.classified:,} classified, {self.errors:,} not "
                f"(see their error column); {self.computed:,} distinct names computed; {self.seconds:.1f} s, "
                f"{self.rows_per_second:,.0f} rows/s")


# ---- the model side: in this process, or in each pool process -------------------------------------------

_worker = {}  # the pool process's predictor and settings, set once by _init_worker


def _init_worker(predictor, threads: int, topk: int, text: bool, min_probability: float = 0.0, shared=None) -> None:
    """Set up a pool process. `predictor` is the Predictor itself in a forked process (it shares the parent's copy),
    or in a spawned one the path of a file holding it pickled. `shared`: the ranges' counter and table, for a pool
    that classifies ranges of a CSV file (shared memory is handed over only as a process starts)."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as it was born (a process the pool restarts was not)
    if threads:
        torch.set_num_threads(threads)
    if isinstance(predictor, str):
        with open(predictor, "rb") as f:  # written by the process that started this one, in its private folder
            predictor = pickle.load(f)
        warm_up(predictor)
    gc.disable()  # as cyclic_gc_paused in classify_file; this process does nothing else
    csv.field_size_limit(MAX_FIELD)  # as _write_csv sets it (a spawned process starts from the module's default)
    _worker.update(predictor=predictor, topk=topk, text=text, min_probability=min_probability, shared=shared)


def _pool_context(threads: int):
    """How the pool's processes start: by fork where that is safe, else by spawn.

    A forked process shares this one's torch, model and tables, copy on write, and is ready at once; a spawned one
    imports torch and reads the model itself (about 200 MiB more over two workers, and seconds before its first
    chunk). Fork is safe on Linux for a process that runs torch on one thread, as torch's DataLoader workers do:
    with more, a parent's OpenMP threads are missing in the child, whose next parallel region can hang; and
    macOS's system libraries do not survive a fork."""
    if sys.platform.startswith("linux") and threads == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


@contextmanager
def _shipped(predictor):
    """The path of a file holding `predictor` pickled, for the pool's processes to load, in a private temporary
    folder removed on leaving. Handed over with a process at its start instead, its 12 MB would hold this
    process until the new one had imported torch and read them all (2.4 s). UserError if it cannot be written."""
    folder = None
    try:
        folder = tempfile.TemporaryDirectory(prefix="surname-pool-")
        path = Path(folder.name) / "predictor.pickle"
        path.write_bytes(pickle.dumps(predictor, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError as e:
        if folder is not None:
            folder.cleanup()
        raise UserError(f"--workers: cannot write the model for the pool's processes to a temporary folder "
                        f"({e.strerror or e}); point TMPDIR at a writable folder with space") from None
    with folder:
        yield str(path)


def _started() -> bool:
    """A job a pool process runs once it has loaded the model: until it is done, no chunk waits for the pool."""
    return True


def _compute_in_worker(names: list[str]) -> list[tuple]:
    return compute_fields(_worker["predictor"], names, _worker["topk"], _worker["text"], _worker["min_probability"])


def labelled_chunks(chunks, predictor, topk: int, text: bool, workers: int, threads: int, cache_size: int,
                    min_probability: float = 0.0, cache: FieldCache | None = None):
    """(rows, fields of each row's name, how many names were computed) for each (rows, names) of `chunks`, in order.

    Names already answered come from a bounded cache; the rest are computed here (workers=1), or with
    workers > 1 by a pool of workers - 1 processes and by this one: once a pool process has started, a chunk
    goes to the pool while it has fewer than two chunks per process in flight, else this process computes it
    between its reading and writing. At most 2 * workers chunks are in flight, so memory stays flat; and a run
    with 2 workers holds two copies of torch and the model, not three. `cache`: one to keep using (else a new one).
    The caller warms the predictor up first (bulk/labeller.warm_up), once: before the pool starts, so that its
    processes receive the built tables.
    """
    cache = FieldCache(cache_size) if cache is None else cache
    if workers == 1:
        for rows, names in chunks:
            found, missing = cache.lookup(names)
            computed = compute_fields(predictor, missing, topk, text, min_probability) if missing else []
            yield rows, complete(found, names, missing, computed, cache), len(missing)
        return
    context = _pool_context(threads)
    forked = context.get_start_method() == "fork"
    with (nullcontext(predictor) if forked else _shipped(predictor)) as shared, \
            _pool_leaving_ctrl_c_to_us(context, workers - 1, _init_worker,
                                       (shared, threads, topk, text, min_probability)) as pool:
        # a pool process takes seconds to start (torch, the model): until one has, this process computes every
        # chunk itself instead of waiting for the first it handed over
        started = pool.apply_async(_started)
        pending = deque()
        for rows, names in chunks:
            found, missing = cache.lookup(names)
            in_pool = sum(not isinstance(job, list) and not job.ready() for *_, job in pending if job is not None)
            if not missing:
                job = None
            elif in_pool < 2 * (workers - 1) and started.ready():
                job = pool.apply_async(_compute_in_worker, (missing,))
            else:  # the pool is busy or not started yet: this process computes the chunk itself
                job = compute_fields(predictor, missing, topk, text, min_probability)
            pending.append((rows, names, found, missing, job))
            while len(pending) > 2 * workers or (pending and _done(pending[0][-1])):
                yield _finish(pending.popleft(), cache)
        while pending:
            yield _finish(pending.popleft(), cache)


@contextmanager
def _pool_leaving_ctrl_c_to_us(context, processes: int, initializer, initargs):
    """A started pool (ended on leaving) whose processes are born ignoring SIGINT. A Ctrl-C at the terminal reaches
    every process of the group: this way it is this process's alone to handle (it ends the pool), and a pool
    process still importing torch prints no traceback. An ignored signal stays ignored through fork and exec
    (and Python then leaves it so), so SIGINT is ignored here for the instant of each fork and exec, by wrapping
    multiprocessing's one spawn function while the pool starts; a process the pool forks inherits the handler
    set for the start, which only notes the Ctrl-C, until its initializer ignores SIGINT. A Ctrl-C during the
    start is held until the pool is whole (stopped half way, a pool process would read half a pickle and print
    that) and then raised."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        with context.Pool(processes, initializer, initargs) as pool:
            yield pool
        return
    interrupted = []
    spawn = multiprocessing.util.spawnv_passfds

    def spawn_ignoring_ctrl_c(*args):
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # one arriving now waits, not dropped
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return spawn(*args)
        finally:
            signal.signal(signal.SIGINT, handler)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    multiprocessing.util.spawnv_passfds = spawn_ignoring_ctrl_c
    try:
        pool = context.Pool(processes, initializer, initargs)
    finally:
        multiprocessing.util.spawnv_passfds = spawn
        signal.signal(signal.SIGINT, handler)
    with pool:
        if interrupted:
            raise KeyboardInterrupt
        yield pool


def _done(job) -> bool:
    return job is None or isinstance(job, list) or job.ready()


def _finish(item, cache: FieldCache):
    rows, names, found, missing, job = item
    computed = [] if job is None else job if isinstance(job, list) else job.get()
    return rows, complete(found, names, missing, computed, cache), len(missing)


# ---- files ---------------------------------------------------------------------------------------------

def _delimiter(path: Path, sample: str | None = None) -> str:
    """The field delimiter: by extension (.csv, .tsv, .tab), else sniffed from a sample of the text."""
    if path.suffix.lower() in DELIMITERS:
        return DELIMITERS[path.suffix.lower()]
    if sample is None:
        raise UserError(f"{path}: cannot tell the table format; name it .csv, .tsv or .parquet")
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        raise UserError(f"{path}: cannot tell the delimiter; name the file .csv or .tsv") from None


def _temp_beside(output: Path) -> Path:
    """A hidden temp file beside `output`, created here (never an existing path), named .<output>.<pid>.tmp so a
    later run can remove it (and the folder .<output>.<pid>.parts of --workers' ranges) once its process is gone."""
    for stale in output.parent.glob(f".{glob.escape(output.name)}.*.tmp"):  # left by a run killed outright
        pid = stale.name[len(output.name) + 2:-len(".tmp")]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
            shutil.rmtree(stale.with_name(stale.stem + ".parts"), ignore_errors=True)  # and its ranges' parts
    temp = output.parent / f".{output.name}.{os.getpid()}.tmp"
    try:
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode()))
    except OSError as e:
        raise cannot_write(output, e) from None
    return temp


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (on Windows always True: os.kill there would end the process, not ask about it)."""
    if sys.platform == "win32":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        pass
    return True


def _check_paths(input_path: Path, output_path: Path, column: str) -> None:
    if not input_path.exists():
        raise UserError(f"{input_path}: no such file")
    if not input_path.is_file():  # a folder, or a FIFO: the table is read twice (its delimiter sniffed first)
        kind = kind_of(input_path.stat().st_mode) or "an unusual file"
        raise UserError(f"{input_path} is {kind}, not a regular file; name a file, or pipe the table in with --input -")
    try:
        open(input_path, "rb").close()
    except OSError as e:
        raise UserError(f"cannot read {input_path} ({e.strerror})") from None
    if not output_path.parent.is_dir():
        raise UserError(f"{output_path.parent}: no such folder for the output")
    if output_path.exists() and output_path.resolve() == input_path.resolve():
        raise UserError(f"{output_path}: the output would replace the input; write it elsewhere")
    check_target(output_path)  # a regular file or nothing: never a folder, link, device or FIFO
    if not column:
        raise UserError("no column named: say which column holds the names")


def _check_header(header: list[str], column: str, topk: int, source: Path) -> int:
    """Index of `column` in the header; UserError if it is missing or the header already has an output column."""
    if column not in header:
        raise UserError(f"{source}: no column {column!r}; the columns are {', '.join(map(repr, header))}")
    if header.count(column) > 1:
        raise UserError(f"{source}: {header.count(column)} columns are named {column!r}; rename all but one")
    taken = sorted(set(header) & set(output_columns(topk)))
    if taken:
        raise UserError(f"{source}: already has column(s) {', '.join(taken)}, which the output adds; rename them")
    return header.index(column)


def classify_file(input_path, output_path, column: str, predictor, topk: int = 1, chunk_rows: int = 20_000,
                  workers: int = 1, threads: int = 1, progress: bool = True, cache_size: int = 100_000,
                  min_probability: float = 0.0) -> Summary:
    """Classify `column` of a CSV/TSV (or Parquet) file into `output_path`; see the module docstring.

    `predictor` is a Predictor (sent once to each pool process). `threads` are the
    torch threads of each pool process (workers > 1); this process keeps its own setting.
    CSV/TSV in gives CSV/TSV out (the delimiter from the output's extension, else the input's);
    Parquet in gives Parquet out. A name whose top probability is below `min_probability` gets the
    country "unknown". UserError for a missing file or column, a malformed or non-UTF-8 file, an
    output that is not a regular file or cannot be written; a name that cannot be classified is never
    an error of the file.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    _check_paths(input_path, output_path, column)
    if min(topk, chunk_rows, workers, cache_size) < 1 or threads < 0:
        raise ValueError("topk, chunk_rows, workers and cache_size must be at least 1, threads at least 0")
    parquet_in, parquet_out = (p.suffix.lower() in PARQUET for p in (input_path, output_path))
    if parquet_in != parquet_out:
        raise UserError("Parquet in, Parquet out: both files must be .parquet, or neither")
    write = _write_parquet if parquet_in else _write_csv
    settings = dict(topk=topk, chunk_rows=chunk_rows, workers=workers, threads=threads, cache_size=cache_size,
                    delimiter=DELIMITERS.get(output_path.suffix.lower()),  # None: the input's
                    min_probability=min_probability)
    temp = _temp_beside(output_path)
    start = time.perf_counter()
    try:
        # a run's rows, cells and cache entries make no reference cycles, but so many objects that the collector
        # would scan every live object again and again: a third of the run's time on a column of distinct names
        with cyclic_gc_paused():
            counts = write(input_path, temp, column, predictor, progress, settings)
        check_target(output_path)  # still: it may have changed while the rows were written
        os.replace(temp, output_path)
    except OSError as e:
        temp.unlink(missing_ok=True)
        if e.errno in WRITE_ERRORS:  # the disk filled, the folder went read-only
            raise cannot_write(output_path, e) from None
        raise
    except BaseException:  # Ctrl-C, SystemExit from SIGTERM, a bad row: no half file, no temp file
        temp.unlink(missing_ok=True)
        raise
    return Summary(input_path, output_path, *counts, seconds=time.perf_counter() - start)


def _progress_bar(path: Path, total: int, unit: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, unit_divisor=1024 if unit == "B" else 1000,
                desc=path.name, file=sys.stderr, mininterval=1.0, disable=not enabled, smoothing=0.1)


def _write_csv(input_path: Path, temp: Path, column: str, predictor, progress: bool, settings: dict):
    """Stream the CSV/TSV into `temp`; (rows, classified, errors, computed)."""
    topk = settings["topk"]
    raw = open(input_path, "rb")
    # utf-8-sig drops a BOM; newline="" lets csv read CRLF and line breaks inside quoted fields
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    reader = None
    with raw, text, _csv_read_errors(input_path, lambda: reader.line_num if reader else 0):
        sample = text.read(65536)
        delimiter = _delimiter(input_path, sample)
        text.seek(0)
        csv.field_size_limit(MAX_FIELD)  # a longer field is one row's error (its name is too long), not the file's
        out_delimiter = settings["delimiter"] or delimiter
        reader, lines = _reader_and_lines(text, delimiter, out_delimiter)
        header = next(reader, None)
        if header is None:
            raise UserError(f"{input_path}: empty file; expected a header row naming the columns")
        index = _check_header(header, column, topk, input_path)
        warm_up(predictor)  # once, before any pool starts: its processes receive the built tables
        job = _range_job(input_path, sample, header, reader, delimiter, out_delimiter, index, temp, settings)
        with open(temp, "w", encoding="utf-8", newline="") as out, \
                _progress_bar(input_path, input_path.stat().st_size, "B", progress) as bar:
            writer = csv.writer(out, delimiter=out_delimiter, lineterminator="\n")
            writer.writerow(header + output_columns(topk))
            if job is not None:
                try:
                    return _classify_ranges(job, out, predictor, settings, bar)
                except NotARecordEnd:  # a quote in an unquoted field misled the cut: read the file whole
                    bar.reset()
            start = time.perf_counter()
            return _copy_csv_rows(reader, lines, out, writer, len(header), index, predictor, settings,
                                  lambda counts: _show_progress(bar, raw.tell(), counts[0], start))


def _reader_and_lines(text, delimiter: str, out_delimiter: str):
    """A csv.reader of `text`, and its lines as read where they can be copied out (None with another delimiter out):
    a row read from one line is written as that line with its cells added, as the csv module's writer costs more
    than reading the row did."""
    parsed, lines = tee(text) if out_delimiter == delimiter else (text, None)
    return csv.reader(parsed, delimiter=delimiter), lines


@contextmanager
def _csv_read_errors(path: Path, line_num):
    """UserError for text that is not UTF-8 and for what the csv module cannot read (at line `line_num()`)."""
    try:
        yield
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason}); save it as UTF-8") from None
    except csv.Error as e:
        raise UserError(f"{path}, line {line_num()}: {e}") from None


def _show_progress(bar, position: int, rows: int, start: float) -> None:
    bar.update(position - bar.n)
    bar.set_postfix_str(f"{rows:,} rows, {rows / (time.perf_counter() - start):,.0f} rows/s", refresh=False)


def _copy_csv_rows(reader, lines, out, writer, width: int, index: int, predictor, settings: dict, report,
                   cache: FieldCache | None = None):
    """Read, classify and write every data row; (rows, classified, errors, computed), also given to `report` after
    each chunk. `lines`, if not None, gives the text of the rows `reader` parses, line by line, and `writer` writes
    with the reader's delimiter into `out`."""
    topk = settings["topk"]
    rows = classified = errors = computed = 0
    chunks = _csv_chunks(reader, lines, width, index, settings["chunk_rows"])
    labelled = labelled_chunks(chunks, predictor, topk, True, settings["workers"], settings["threads"],
                               settings["cache_size"], settings["min_probability"], cache)
    delimiter = writer.dialect.delimiter
    for (chunk, malformed, texts), fields, missing in labelled:
        for i, reason in malformed.items():
            fields[i] = error_fields(topk, reason)
        bad = sum(map(bool, map(itemgetter(-1), fields)))  # rows with an error
        cells = None if texts is None else _cell_texts(fields, writer.dialect)
        if cells is not None:
            out.write(lines_with_cells(texts, cells, delimiter))
        else:
            if chunk is None:  # only the lines were kept: the rows again, parsed as they were the first time
                chunk = list(csv.reader(texts, reader.dialect))
            deque(map(list.extend, chunk, fields), maxlen=0)  # row.extend(fields) for each row, in C
            writer.writerows(chunk)
        rows, errors, computed = rows + len(fields), errors + bad, computed + missing
        classified += len(fields) - bad
        report((rows, classified, errors, computed))
    return rows, classified, errors, computed


# ---- --workers > 1 on a CSV file: each process reads, classifies and writes ranges of its rows ---------------
# Handing chunks to a pool left this process all the reading, writing and handing over, on top of its share of
# the chunks: it finished seconds after the pool's. Here every process takes the next range not yet taken, reads
# it from the file itself and writes its rows to a part file; this one joins the parts in order at the end.

@dataclass
class _RangeJob:
    """What a process needs to classify ranges of a CSV file (sent to the pool's processes)."""
    path: Path
    ranges: list[tuple[int, int, int]]  # bulk/csv_ranges.record_ranges's
    parts: Path  # the folder of the ranges' output files, each named by its range's number
    delimiter: str
    out_delimiter: str
    width: int
    index: int
    settings: dict


SLOT = 7  # a range's numbers in the shared table: rows, classified, errors, computed, bytes read, its process, done
COUNTS, BYTES, TAKER, DONE = 4, 4, 5, 6  # the first COUNTS are _copy_csv_rows's


def _range_job(path: Path, sample: str, header: list[str], reader, delimiter: str, out_delimiter: str, index: int,
               temp: Path, settings: dict) -> _RangeJob | None:
    """The ranges for --workers > 1, about two chunks of rows each; None (the file read whole, the pool classifying
    chunks) for one worker, a header of more than one line, or a file too short for two ranges."""
    lines = sample.count("\n")
    if settings["workers"] == 1 or reader.line_num != 1 or lines < 2:
        return None
    with open(path, "rb") as f:
        first = f.readline(len(sample.encode()))
        size = os.fstat(f.fileno()).st_size
    try:
        if not first.endswith(b"\n") or list(csv.reader(io.StringIO(first.decode("utf-8-sig"), newline=""),
                                                        delimiter=delimiter)) != [header]:
            return None
    except (UnicodeDecodeError, csv.Error):
        return None
    line_bytes = len(sample.encode()) / lines
    ranges = record_ranges(path, len(first), size, round(2 * settings["chunk_rows"] * line_bytes))
    if len(ranges) < 2:
        return None
    return _RangeJob(path, ranges, temp.with_name(temp.stem + ".parts"), delimiter, out_delimiter, len(header),
                     index, dict(settings, workers=1))


def _classify_ranges(job: _RangeJob, out, predictor, settings: dict, bar):
    """Classify every range of `job`, in this process and a pool of workers - 1, and append the parts to `out`;
    (rows, classified, errors, computed). NotARecordEnd (nothing appended) if a range did not end at a record."""
    context = _pool_context(settings["threads"])
    taken, table = context.Value("q", 0), context.Array("q", SLOT * len(job.ranges), lock=False)
    forked = context.get_start_method() == "fork"
    try:
        job.parts.mkdir(mode=0o700)
    except OSError as e:
        raise cannot_write(job.parts, e) from None
    try:
        with (nullcontext(predictor) if forked else _shipped(predictor)) as shared, \
                _pool_leaving_ctrl_c_to_us(context, settings["workers"] - 1, _init_worker,
                                           (shared, settings["threads"], settings["topk"], True,
                                            settings["min_probability"], (taken, table))) as pool:
            pool_jobs = [pool.apply_async(_take_ranges_in_worker, (job,)) for _ in range(settings["workers"] - 1)]
            start = time.perf_counter()

            def show_progress():
                for pool_job in pool_jobs:
                    if pool_job.ready() and not pool_job.successful():
                        pool_job.get()  # raises what ended it
                for i in range(len(job.ranges)):  # a pool process killed half way (out of memory) would be waited for
                    if not table[SLOT * i + DONE] and table[SLOT * i + TAKER] and not _alive(table[SLOT * i + TAKER]):
                        raise UserError("a --workers process ended before writing its rows (killed, or out of "
                                        "memory?); run again, with fewer workers if memory is short")
                _show_progress(bar, job.ranges[0][0] + sum(table[BYTES::SLOT]), sum(table[0::SLOT]), start)

            _take_ranges(job, predictor, FieldCache(settings["cache_size"]), taken, table, show_progress)
            while not all(table[DONE::SLOT]):  # the pool's last ranges; a pool process may never have started
                show_progress()
                time.sleep(0.02)
        out.flush()
        for i in range(len(job.ranges)):
            with open(job.parts / str(i), "rb") as part:
                shutil.copyfileobj(part, out.buffer, 1 << 20)
            (job.parts / str(i)).unlink()
        out.buffer.flush()
        return tuple(sum(table[k::SLOT]) for k in range(COUNTS))
    finally:
        shutil.rmtree(job.parts, ignore_errors=True)


def _take_ranges_in_worker(job: _RangeJob) -> None:
    cache = _worker.setdefault("cache", FieldCache(job.settings["cache_size"]))
    _take_ranges(job, _worker["predictor"], cache, *_worker["shared"])


def _take_ranges(job: _RangeJob, predictor, cache: FieldCache, taken, table, on_chunk=None) -> None:
    """Classify the next range no process has taken, until none is left; each into its part file, its numbers into
    its slot of `table`."""
    while True:
        with taken.get_lock():
            i = taken.value
            taken.value += 1
        if i >= len(job.ranges):
            return
        table[SLOT * i + TAKER] = os.getpid()
        start, end, breaks_before = job.ranges[i]
        last, reader = i == len(job.ranges) - 1, None
        text, position = range_text(job.path, start, end)

        def report(counts):
            table[SLOT * i:SLOT * i + TAKER] = [*counts, position()]
            if on_chunk is not None:
                on_chunk()

        with text, open(job.parts / str(i), "w", encoding="utf-8", newline="") as out, \
                _csv_read_errors(job.path, lambda: 1 + breaks_before + (reader.line_num if reader else 0)):
            source = text if last else chain(text, [SENTINEL])
            reader, lines = _reader_and_lines(source, job.delimiter, job.out_delimiter)
            reader = reader if last else EndsAtARecord(reader)
            writer = csv.writer(out, delimiter=job.out_delimiter, lineterminator="\n")
            _copy_csv_rows(reader, lines, out, writer, job.width, job.index, predictor, job.settings, report, cache)
        table[SLOT * i + DONE] = 1


def lines_with_cells(lines: list[str], cells, delimiter: str) -> str:
    """Each line (a row as read, its line break dropped) followed by its cells, as written (`cells`: each row's,
    joined and quoted where they need it): the output of rows on one line."""
    as_written = "{}" + delimiter.replace("{", "{{").replace("}", "}}") + "{}\n"
    return "".join(map(as_written.format, map(str.rstrip, lines, repeat("\r\n")), cells))


def _cell_texts(fields: list[tuple], dialect):
    """Each row's cells as a csv.writer of `dialect` writes them: joined by the delimiter where no cell holds the
    delimiter, a quote or a line break (nearly always), else written by one. None where a cell spans lines."""
    cells = "".join(map("".join, fields))
    if not any(map(cells.__contains__, (dialect.delimiter, dialect.quotechar, "\r", "\n"))):
        return map(dialect.delimiter.join, fields)
    if "\r" in cells or "\n" in cells:
        return None
    written = io.StringIO()
    csv.writer(written, dialect, lineterminator="\n").writerows(fields)
    return written.getvalue().split("\n")[:-1]


def _ends_in_quotes(line: str, row: list[str]) -> bool:
    """Whether the file may have ended inside a quoted field of `row`, read from `line`: the reader then gives
    the field as it stands, without its closing quote. Only the file's last line can lack a line break, and
    only the reader's taking a line break into a field at the end of the file puts one in a row of one line."""
    return not line.endswith(("\n", "\r")) or any("\n" in field or "\r" in field for field in row)


def _csv_chunks(reader, lines, width: int, index: int, chunk_rows: int):
    """((rows, {row: reason}, texts), names) of `chunk_rows` rows at a time (rows None where texts stand for them);
    blank lines skipped. A row with another number of fields than the header is padded or cut to its width and
    not classified: the reason says why.
    `texts` are the rows' lines as read (from `lines`, which follows `reader`), or None: without `lines`, where a
    row of the chunk spans several lines (a quoted line break), or where a row was padded or cut."""
    read = reader.line_num  # lines `reader` has parsed; as many are taken from `lines`, so `tee` holds no more
    if lines is not None:
        deque(islice(lines, read), maxlen=0)  # the header's
    while True:
        chunk = list(islice(reader, chunk_rows))
        if not chunk:
            return
        texts = None
        if lines is not None:
            texts = list(islice(lines, reader.line_num - read))
            read = reader.line_num
            if len(texts) != len(chunk) or _ends_in_quotes(texts[-1], chunk[-1]):
                texts = None
        if not all(chunk):
            if texts is not None:
                texts = list(compress(texts, chunk))
            chunk = [row for row in chunk if row]  # blank lines
        if set(map(len, chunk)) <= {width}:
            # with its lines kept, a chunk's parsed rows are dropped: they would wait with it in flight, and are
            # needed only where an added cell holds a line break (then parsed again from the lines)
            names = list(map(itemgetter(index), chunk))
            yield (None if texts is not None else chunk, {}, texts), names
            continue
        names, malformed = [], {}
        for i, row in enumerate(chunk):
            if len(row) == width:
                names.append(row[index])
                continue
            names.append(None)
            malformed[i] = wrong_width(len(row), width)
            chunk[i] = (row + [""] * width)[:width]
        yield (chunk, malformed, None), names


def _names(batch, column: str, source: Path) -> list[str | None]:
    """The batch's names as text, None for a null; UserError (one line, naming the file) for bytes not UTF-8."""
    try:
        return text_names(batch, column)
    except UserError as e:
        raise UserError(f"{source}: {e}") from None


def _write_parquet(input_path: Path, temp: Path, column: str, predictor, progress: bool, settings: dict):
    """Stream the Parquet file into `temp`, batch by batch, keeping its schema; (rows, classified, errors, computed)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("Parquet needs pyarrow: pip install -r requirements-spark.txt (or just pyarrow)") from None
    topk = settings["topk"]
    try:
        source = pq.ParquetFile(input_path)
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{input_path}: not a readable Parquet file ({e})") from None
    _check_header(source.schema_arrow.names, column, topk, input_path)
    kind = source.schema_arrow.field(column).type
    if pa.types.is_nested(kind):
        raise UserError(f"{input_path}: column {column!r} holds {kind} values, not one name a row; pick a text column")
    added = [pa.field(name, pa.float64() if name.startswith("probability") else pa.string())
             for name in output_columns(topk)]
    schema = pa.schema(list(source.schema_arrow) + added)
    rows = classified = errors = computed = 0
    batches = ((batch, _names(batch, column, input_path))  # None for a null
               for batch in source.iter_batches(batch_size=settings["chunk_rows"]))
    warm_up(predictor)
    labelled = labelled_chunks(batches, predictor, topk, False, settings["workers"], settings["threads"],
                               settings["cache_size"], settings["min_probability"])
    with open(temp, "wb") as out, pq.ParquetWriter(out, schema) as writer, \
            _progress_bar(input_path, source.metadata.num_rows, "rows", progress) as bar:
        for batch, fields, missing in labelled:
            cells = list(zip(*fields))
            arrays = batch.columns + [pa.array(list(c), type=f.type) for c, f in zip(cells, added)]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            bad = sum(map(bool, map(itemgetter(-1), fields)))
            rows, errors, computed = rows + batch.num_rows, errors + bad, computed + missing
            classified += batch.num_rows - bad
            bar.update(batch.num_rows)
    return rows, classified, errors, computed

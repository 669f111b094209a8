"""Classify a surname column of a Parquet (or CSV) data set on a Spark cluster; writes Parquet (or CSV).

    # on a cluster: every node has the pip requirements (requirements.txt + requirements-spark.txt),
    # the project's code is shipped by the script itself, the checkpoint is read on the driver and broadcast
    spark-submit --master yarn --deploy-mode client --num-executors 20 --executor-cores 4 \\
        --conf spark.sql.execution.arrow.maxRecordsPerBatch=50000 \\
        spark_predict.py --input hdfs:///data/people.parquet --column surname \\
        --output hdfs:///data/people_countries.parquet --checkpoint save_model/gru_classification_best.bin

    # on this machine, two cores
    python spark_predict.py --input people.parquet --column surname --output out.parquet --master "local[2]"

Adds country, probability (country_2, probability_2, ... with --topk K) and error columns, as
`predict.py --input` does, with the same Predictor (bulk/spark.py). The output is written by
Spark's committer: a folder of part files that appears whole at the end (`_SUCCESS` marks it
complete). --format csv reads and writes CSV with a header instead, read as predict.py --input reads it
(RFC 4180: "" escapes a quote, a quoted field may hold line breaks; a row with another number of fields
than the header is not classified, and its error says so).

--mode overwrite replaces only an earlier output of a Spark job: a local output folder (no scheme, or file://)
that holds anything else (a trained model, the input itself) is refused, as is an output that is the input.
Other schemes (hdfs://, s3a://) are left to Spark. A run that fails leaves no output folder behind.
"""
import argparse
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

from utils.cli import add_model_arguments
from utils.errors import UserError, run_script

CSV_OPTIONS = {"header": "true", "escape": '"', "multiLine": "true"}  # as Python's csv module reads a file
MALFORMED = "_surname_classifier_malformed_row"  # where Spark's CSV reader puts the text of a malformed row


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="the Parquet (or CSV) data set to classify; any Spark path")
    parser.add_argument("--column", required=True, help="the column holding the names")
    parser.add_argument("--output", required=True, help="where to write the result (a folder of part files)")
    add_model_arguments(parser, several=False, prior=False, device=False)  # --checkpoint (on the driver), --threads
    parser.add_argument("--topk", type=int, default=1, help="also the 2nd..K-th likeliest countries")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet", help="input and output format")
    parser.add_argument("--mode", choices=["error", "overwrite"], default="error",
                        help="when the output exists: error (default) or overwrite")
    parser.add_argument("--master", default=None, help="Spark master when not run by spark-submit, e.g. local[2]")
    parser.add_argument("--batch-rows", type=int, default=50_000, help="rows per Arrow batch handed to the model")
    args = parser.parse_args(argv)
    if args.topk < 1 or args.batch_rows < 1:
        parser.error("--topk and --batch-rows must be at least 1")
    return args


def local_path(path: str) -> Path | None:
    """`path` on this machine's file system (no scheme, or file://), None for another scheme (hdfs://, s3a://)."""
    parsed = urlparse(path)
    if len(parsed.scheme) <= 1:  # none, or a Windows drive letter
        return Path(path)
    return Path(parsed.path) if parsed.scheme == "file" else None


def spark_output(name: str, is_dir: bool) -> bool:
    """Whether a folder entry is what Spark's committers write: part files, _SUCCESS and other `_`-prefixed files,
    their hidden .crc checksums, and the committers' work folders (_temporary, .spark-staging-*). Other hidden
    files (.env, .gitignore) are a user's."""
    if is_dir:
        return name.startswith(("_temporary", ".spark-staging"))
    return name.startswith(("part-", "_")) or (name.startswith(".") and name.endswith(".crc"))


def foreign_entries(folder: Path) -> list[str]:
    """The entries of `folder` that are not an earlier Spark job's output."""
    return sorted(entry.name for entry in folder.iterdir() if not spark_output(entry.name, entry.is_dir()))


def check_paths(args: argparse.Namespace) -> None:
    """UserError, before Spark starts, when writing the output would destroy the input or a folder that is not an
    earlier Spark output (local paths only: Spark's own overwrite clears the folder before it reads the input)."""
    output, source = local_path(args.output), local_path(args.input)
    if output is None or not output.exists():
        return
    if source is not None and source.exists():
        target, read = output.resolve(), source.resolve()
        if target == read or (args.mode == "overwrite" and target in read.parents):
            raise UserError(f"{args.output}: the output would replace the input; write it elsewhere")
    if args.mode != "overwrite":
        return  # Spark refuses an existing output itself
    if not output.is_dir():
        raise UserError(f"{args.output}: is a file, not an earlier Spark output; --mode overwrite replaces only "
                        "such a folder: write it elsewhere")
    foreign = foreign_entries(output)
    if foreign:
        shown = ", ".join(map(repr, foreign[:3])) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UserError(f"{args.output}: holds {shown}, not only an earlier Spark output (part-* files, _SUCCESS); "
                        "--mode overwrite replaces only such a folder: write it elsewhere")


def snapshot(folder: Path | None):
    """What is in a local output folder now (names and times), None if there is none (or it is not local)."""
    if folder is None or not folder.is_dir():
        return None
    return sorted((entry.name, entry.stat().st_mtime_ns) for entry in folder.iterdir())


def remove_partial_output(folder: Path | None, before) -> None:
    """After a failed run: remove the local output folder it left (empty or half written), if the run changed
    it and it holds only Spark's files. An untouched folder (the job failed before writing) stays as it was."""
    if folder is None or not folder.is_dir() or snapshot(folder) == before or foreign_entries(folder):
        return
    shutil.rmtree(folder, ignore_errors=True)


def read_csv(spark, path: str):
    """The CSV's columns (every one text) and MALFORMED, which holds the raw text of a row whose number of fields
    differs from the header's (null elsewhere): Spark would otherwise pad or cut such a row and classify it."""
    from pyspark.sql.types import StringType, StructField, StructType

    header = spark.read.options(**CSV_OPTIONS).csv(path).schema  # without inferSchema, every column is a string
    schema = StructType(header.fields + [StructField(MALFORMED, StringType())])
    return (spark.read.options(**CSV_OPTIONS, mode="PERMISSIVE", columnNameOfCorruptRecord=MALFORMED)
            .schema(schema).csv(path))


def main(argv=None) -> int:
    args = parse_args(argv)
    from models.inference import read_checkpoints, warn_if_unfinished

    # read on the driver: a missing or damaged file is one line here, before Spark starts
    [(checkpoint, payload)] = read_checkpoints([args.checkpoint] if args.checkpoint else None)
    warn_if_unfinished(checkpoint, payload)
    topk = min(args.topk, len(payload["countries"]))  # no columns for countries the model does not have
    check_paths(args)
    try:
        from pyspark.sql import SparkSession
        from pyspark.errors import AnalysisException
    except ImportError:
        raise UserError("Spark needs pyspark: pip install -r requirements-spark.txt") from None
    from bulk.spark import classify_dataframe, worker_error

    builder = SparkSession.builder.appName("surname-countries")
    if args.master:  # run from here: the workers use this Python (with spark-submit, set PYSPARK_PYTHON)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # and its stderr is the user's terminal: a failed task is one line (below), not Spark's log of tracebacks
        builder = builder.master(args.master).config("spark.log.level", "FATAL")
    spark = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.batch_rows)).getOrCreate()
    output, before, failed = local_path(args.output), snapshot(local_path(args.output)), True
    try:
        try:
            df = read_csv(spark, args.input) if args.format == "csv" else spark.read.parquet(args.input)
        except AnalysisException as e:
            raise UserError(f"{args.input}: cannot read it as {args.format} ({str(e).splitlines()[0]})") from None
        columns = [c for c in df.columns if c != MALFORMED]
        if args.column not in columns:
            raise UserError(f"{args.input}: no column {args.column!r}; the columns are {', '.join(columns)}")
        if args.format == "csv":  # Spark reads an empty field as null; a CSV has no nulls: it is an empty name
            df = df.fillna("", subset=[args.column])
        try:  # a column of lists, structs or maps, or one the output adds: refused before a job runs
            out = classify_dataframe(df, args.column, checkpoint, topk=topk, threads=args.threads,
                                     malformed=MALFORMED if args.format == "csv" else None)
        except ValueError as e:
            raise UserError(f"{args.input}: {e}") from None
        writer = out.write.mode(args.mode)
        if args.format == "csv":
            writer = writer.options(header="true", escape='"')
        try:
            writer.format(args.format).save(args.output)
        except AnalysisException as e:
            raise UserError(f"{args.output}: {str(e).splitlines()[0]}") from None
        except Exception as e:  # the job failed: a UserError in a Python worker (names not UTF-8) is one line
            message = worker_error(e)
            if message is None:
                raise
            raise UserError(f"{args.input}: {message}") from None
        failed = False
    finally:
        spark.stop()
        if failed:  # after stop: no task is still writing
            remove_partial_output(output, before)
            # a failed stage leaves Spark's console progress bar on the line: clear it, as Spark does, for the error
            width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else 80
            print("\r" + " " * width + "\r", end="", file=sys.stderr, flush=True)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_script(main)

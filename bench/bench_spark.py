"""Names/s per core: Spark local[1] (bulk/spark.py) against `predict.py --input` (one process) on the same rows.

    python -m bench.bench_spark --checkpoint save_model/ngram+gru_classification_best.bin --rows 200000  # repo root

Draws the rows as bench/bench_tables.py does (same surnames, same repetition), writes them once as
CSV (for predict.py) and once as Parquet (for Spark), then, one after another: predict.py --input
--workers 1 --threads 1 as a child process (whole process, start-up included), and the Spark job
reading the Parquet and writing Parquet on local[1] with one torch thread (the job's time, after
the session has started; the session's start-up is printed apart). Needs requirements-spark.txt.
"""
import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_tables import ROOT, surname_source


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "names.tsv")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench_spark"))
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    draw, _ = surname_source(args.data, 0.1, 100_000, 0)
    names = draw(args.rows)
    table = args.dir / f"table_{args.rows}.csv"
    with open(table, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("id", "surname")] + list(enumerate(names)))
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)

    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "predict.py"), "--input", str(table), "--column", "surname", "--output",
                    str(args.dir / "out.csv"), "--checkpoint", str(args.checkpoint), "--threads", "1"],
                   check=True, stderr=subprocess.DEVNULL)
    local = args.rows / (time.perf_counter() - start)
    print(f"predict.py --input, 1 process: {local:,.0f} names/s", flush=True)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from bulk.spark import classify_dataframe

    start = time.perf_counter()
    spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50000").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spark.createDataFrame([(i, n) for i, n in enumerate(names)], "id long, surname string") \
        .write.mode("overwrite").parquet(str(args.dir / "in.parquet"))
    print(f"Spark session start and Parquet written: {time.perf_counter() - start:.1f} s", flush=True)
    start = time.perf_counter()
    df = spark.read.parquet(str(args.dir / "in.parquet"))
    classify_dataframe(df, "surname", args.checkpoint).write.mode("overwrite").parquet(str(args.dir / "out.parquet"))
    rate = args.rows / (time.perf_counter() - start)
    spark.stop()
    print(f"Spark local[1] job: {rate:,.0f} names/s per core, {local / rate:.2f}x slower than predict.py "
          f"(load average at end {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Classify a column of a Spark DataFrame with the same Predictor as predict.py, partition by partition.

    from bulk.spark import classify_dataframe
    out = classify_dataframe(spark.read.parquet("people/"), "surname", "save_model/gru_classification_best.bin")

Adds country, probability (country_2, probability_2, ... with topk > 1) and error, as
bulk/tables.py does, through Arrow (DataFrame.mapInArrow: record batches in, record batches
out, no per-row Python objects beyond the names). The checkpoint is read once on the driver and
broadcast; each executor's Python worker loads it once and keeps it, with a bounded cache of
answers, for every task it runs. The project's own code (config, models, utils) is zipped and
shipped with SparkContext.addPyFile, so executors need only its pip requirements installed.
"""
import csv
import hashlib
import io
import re
import tempfile
import zipfile
from pathlib import Path

from bulk.labeller import FieldCache, complete, compute_fields, error_fields, output_columns, text_names, wrong_width

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "models", "utils", "bulk")
_loaded = {}  # per Python worker: checkpoint sha256 -> (Predictor, FieldCache)


def project_zip(folder: Path) -> Path:
    """A zip of the project's packages (the .py files of config, models, utils, bulk) in `folder`, for addPyFile."""
    path = folder / "surname_classifier_code.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in PACKAGES:
            for source in sorted((ROOT / package).rglob("*.py")):
                archive.write(source, source.relative_to(ROOT).as_posix())
    return path


def ship_project_code(spark) -> None:
    """Make the project's packages importable on the executors (once per SparkContext)."""
    context = spark.sparkContext
    if getattr(context, "_surname_code_shipped", False):
        return
    folder = Path(tempfile.mkdtemp(prefix="surname_code_"))
    context.addPyFile(str(project_zip(folder)))
    context._surname_code_shipped = True


def output_schema(schema, topk: int):
    """The input schema plus the added columns: country* strings, probability* doubles, error string."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    taken = sorted(set(schema.names) & set(output_columns(topk)))
    if taken:
        raise ValueError(f"already has column(s) {', '.join(taken)}, which the output adds; rename them")
    added = [StructField(name, DoubleType() if name.startswith("probability") else StringType(), True)
             for name in output_columns(topk)]
    return StructType(list(schema.fields) + added)


def nested_type(df, column: str) -> str | None:
    """The Spark type of `column` (e.g. array<string>) when it holds lists, structs or maps, not one value a row;
    None for a column of single values (text, binary, numbers: each read as text)."""
    from pyspark.sql.types import ArrayType, MapType, StructType

    kind = df.schema[column].dataType
    nested = (ArrayType, MapType, StructType)
    try:
        from pyspark.sql.types import VariantType  # Spark 4: any JSON-like value
        nested += (VariantType,)
    except ImportError:
        pass
    return kind.simpleString() if isinstance(kind, nested) else None


def worker_error(error: BaseException) -> str | None:
    """The message of the UserError a Python worker raised, read from the failed job's error on the driver
    (a PythonException, or a Py4JJavaError with older Spark: the worker's traceback is in its text); None if
    the job failed for another reason."""
    found = re.findall(r"^(?:utils\.errors\.)?UserError: (.+)$", str(error), flags=re.MULTILINE)
    return found[-1].strip() if found else None


def _predictor_and_cache(key: str, broadcast, threads: int):
    """The worker's Predictor for this broadcast checkpoint, loaded on first use, and its answer cache."""
    if key not in _loaded:
        import torch

        from models.predictor import Predictor
        if threads:
            torch.set_num_threads(threads)
        with tempfile.NamedTemporaryFile(suffix=".bin") as f:  # the checkpoint loader reads a file
            f.write(broadcast.value)
            f.flush()
            _loaded[key] = (Predictor.from_checkpoint(f.name), FieldCache())
    return _loaded[key]


def classify_dataframe(df, column: str, checkpoint_path, topk: int = 1, threads: int = 1, malformed: str | None = None):
    """`df` with the output columns added (a lazy DataFrame: nothing runs until it is written or collected).

    ValueError for a missing `column`, one of lists, structs or maps, or an output column `df` already has.
    A null, empty or letter-less name gets empty answers and the reason in `error`; bytes that are not UTF-8 fail
    the job with a UserError (in the job's error: `worker_error` finds it). `threads` are
    the torch threads of each Python worker (1: Spark already runs one task per core). `malformed` names the
    column where Spark's CSV reader put the text of each row whose number of fields differs from the header's
    (its columnNameOfCorruptRecord): such a row is not classified, with the reason predict.py --input gives,
    and the column is left out of the output.
    """
    import pyarrow as pa

    if column not in df.columns:
        raise ValueError(f"no column {column!r}; the columns are {', '.join(df.columns)}")
    if topk < 1:
        raise ValueError("topk must be at least 1")
    kind = nested_type(df, column)
    if kind is not None:
        raise ValueError(f"column {column!r} holds {kind} values, not one name a row; pick a text column")
    spark = df.sparkSession
    ship_project_code(spark)
    data = Path(checkpoint_path).read_bytes()
    key, checkpoint = hashlib.sha256(data).hexdigest(), spark.sparkContext.broadcast(data)
    width = len(df.columns) - (malformed is not None)
    if malformed is not None:
        df = df.select(*(c for c in df.columns if c != malformed), malformed)  # last, so it is easy to leave out
    schema = output_schema(df.drop(malformed).schema if malformed else df.schema, topk)
    added = [pa.field(f.name, pa.float64() if f.name.startswith("probability") else pa.string())
             for f in schema.fields[width:]]

    def classify_batches(batches):
        predictor, cache = _predictor_and_cache(key, checkpoint, threads)
        for batch in batches:
            names = text_names(batch, column)  # None for a null; UserError for bytes not UTF-8
            found, missing = cache.lookup(names)
            computed = compute_fields(predictor, missing, topk, text=False) if missing else []
            fields = complete(found, names, missing, computed, cache)
            columns = batch.columns
            if malformed is not None:
                columns = columns[:-1]
                for i, row in enumerate(batch.column(malformed).to_pylist()):
                    if row is not None:
                        fields[i] = error_fields(topk, wrong_width(len(next(csv.reader(io.StringIO(row)))), width),
                                                 text=False)
            cells = list(zip(*fields)) or [[] for _ in added]
            arrays = columns + [pa.array(list(c), type=f.type) for c, f in zip(cells, added)]
            yield pa.RecordBatch.from_arrays(arrays, names=schema.names)

    return df.mapInArrow(classify_batches, schema)


"""Spark (bulk/spark.py, spark_predict.py) in local mode: the same answers as predict.py on the same rows."""
import csv
import sys

import pytest

from tests.conftest import run_script

pyspark = pytest.importorskip("pyspark", reason="pip install -r requirements-spark.txt (CI does)")
pytestmark = pytest.mark.slow  # a JVM and Python workers: the slow tier

ROWS = [(1, "Nakamura", "Tokyo, Japan"), (2, "Ivanov", None), (3, "", "empty"), (4, "123", "digits"),
        (5, "Müller", 'say "hi"'), (6, "Nakamura", "again"), (7, "O'Brien", "x"), (8, "Smith", "y"),
        (9, "Tanaka", "z"), (10, "Kobayashi", "w")]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYSPARK_PYTHON", sys.executable)  # the workers run this environment's Python
        session = (SparkSession.builder.master("local[2]").appName("test_spark")
                   .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
                   .config("spark.sql.execution.arrow.maxRecordsPerBatch", "3")  # several batches per partition
                   .getOrCreate())
    yield session
    session.stop()


def predict_py_answers(tmp_path, checkpoint, rows) -> dict[str, dict]:
    """predict.py --input --topk 2 on the same rows, by id."""
    with open(tmp_path / "in.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("id", "surname", "note")] + [(i, name, note or "") for i, name, note in rows])
    result = run_script("predict.py", "--input", str(tmp_path / "in.csv"), "--column", "surname", "--output",
                        str(tmp_path / "out.csv"), "--topk", "2", "--checkpoint", str(checkpoint))
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def test_classify_dataframe_equals_predict_py(spark, tiny_checkpoint, tmp_path):
    from bulk.spark import classify_dataframe

    df = spark.createDataFrame(ROWS + [(11, None, "null name")], "id long, surname string, note string")
    out = classify_dataframe(df.repartition(2), "surname", tiny_checkpoint, topk=2)
    assert out.columns == ["id", "surname", "note", "country", "probability", "country_2", "probability_2", "error"]
    got = {row["id"]: row.asDict() for row in out.collect()}
    assert sorted(got) == list(range(1, 12))
    with pytest.raises(ValueError, match="no column 'name'"):
        classify_dataframe(df, "name", tiny_checkpoint)

    expected = predict_py_answers(tmp_path, tiny_checkpoint, ROWS)
    for i, name, note in ROWS:
        row, want = got[i], expected[str(i)]
        assert (row["surname"], row["note"]) == (name, note)  # the input columns untouched
        assert (row["error"] or "") == want["error"]
        assert [row["country"] or "", row["country_2"] or ""] == [want["country"], want["country_2"]]
        for column in ("probability", "probability_2"):
            if want[column]:
                assert row[column] == pytest.approx(float(want[column]), abs=1e-6)
            else:
                assert row[column] is None
    assert got[11]["error"] == "missing name" and got[11]["country"] is None
    assert got[3]["error"] == "empty name ''" and got[4]["error"] == "name '123' has no letters"


def test_spark_predict_reads_and_writes_parquet(spark, tiny_checkpoint, tmp_path):
    spark.createDataFrame(ROWS, "id long, surname string, note string").write.parquet(str(tmp_path / "in.parquet"))
    result = run_script("spark_predict.py", "--input", str(tmp_path / "in.parquet"), "--column", "surname",
                        "--output", str(tmp_path / "out.parquet"), "--checkpoint", str(tiny_checkpoint),
                        "--master", "local[2]")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {r["id"]: r for r in spark.read.parquet(str(tmp_path / "out.parquet")).collect()}
    assert sorted(rows) == [i for i, _, _ in ROWS] and rows[4]["error"] == "name '123' has no letters"
    assert rows[1]["country"] == rows[6]["country"] and rows[1]["probability"] > 0



def test_spark_predict_csv_answers_each_row_as_predict_py(spark, tiny_checkpoint, tmp_path):
    """The same CSV through spark_predict.py --format csv and predict.py --input: the same answer and the same
    error for every row, a row with too few or too many fields included (Spark alone would pad or cut it)."""
    text = ('id,surname,note\n1,Nakamura,"Tokyo, Japan"\n2,,empty\n3,123,digits only\n'
            '4,"O\'Brien ""Jr""","two\nlines"\n5,Müller,"say ""hi"""\n6,Ivanov\n7,Smith,a,b\n8,Tanaka,last\n')
    (tmp_path / "in.csv").write_text(text, encoding="utf-8")
    result = run_script("predict.py", "--input", str(tmp_path / "in.csv"), "--column", "surname", "--output",
                        str(tmp_path / "predict.csv"), "--checkpoint", str(tiny_checkpoint))
    assert result.returncode == 0, result.stderr
    result = run_script("spark_predict.py", "--input", str(tmp_path / "in.csv"), "--column", "surname",
                        "--output", str(tmp_path / "spark"), "--format", "csv", "--checkpoint",
                        str(tiny_checkpoint), "--master", "local[2]")
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "predict.csv", encoding="utf-8", newline="") as f:
        expected = {row["id"]: row for row in csv.DictReader(f)}
    got = {}
    for part in sorted((tmp_path / "spark").glob("part-*.csv")):
        with open(part, encoding="utf-8", newline="") as f:
            got.update((row["id"], row) for row in csv.DictReader(f))
    assert sorted(got) == sorted(expected) == [str(i) for i in range(1, 9)]
    assert list(next(iter(got.values()))) == ["id", "surname", "note", "country", "probability", "error"]
    for i in expected:
        assert (got[i]["surname"], got[i]["error"], got[i]["country"]) == \
               (expected[i]["surname"], expected[i]["error"], expected[i]["country"]), i
        if expected[i]["probability"]:
            assert float(got[i]["probability"]) == pytest.approx(float(expected[i]["probability"]), abs=1e-6)
    assert expected["6"]["error"] == "row has 2 fields, the header 3: not classified"
    assert expected["7"]["error"] == "row has 4 fields, the header 3: not classified"

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


def last_line(result) -> str:
    """The line a refused run ends with, after Spark's own start-up lines (and progress bar, which ends in \\r)."""
    return result.stderr.strip().splitlines()[-1]


def test_spark_predict_refuses_what_would_lose_data(spark, tiny_checkpoint, tmp_path):
    """--mode overwrite clears the output folder before the input is read: an output that is (or holds) the input,
    or a folder holding anything but an earlier Spark output (here a trained model), is refused before Spark
    starts, and left as it was; a name column of lists is one line, with nothing written."""
    def spark_predict(source, output, *extra):
        result = run_script("spark_predict.py", "--input", str(source), "--column", "surname", "--output",
                            str(output), "--checkpoint", str(tiny_checkpoint), "--master", "local[2]", *extra)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        return last_line(result)

    inout = tmp_path / "inout"
    inout.mkdir()
    (inout / "a.csv").write_text("id,surname\n1,Smith\n", encoding="utf-8")
    assert spark_predict(inout, inout, "--format", "csv", "--mode", "overwrite") == \
        f"error: {inout}: the output would replace the input; write it elsewhere"
    assert (inout / "a.csv").read_text(encoding="utf-8") == "id,surname\n1,Smith\n"

    earlier = tmp_path / "earlier"  # an earlier Spark output, read as the input of the next run
    spark.createDataFrame(ROWS, "id long, surname string, note string").coalesce(1).write.parquet(str(earlier))
    [part] = earlier.glob("part-*.parquet")
    assert spark_predict(part, earlier, "--mode", "overwrite") == \
        f"error: {earlier}: the output would replace the input; write it elsewhere"
    assert part.exists()

    model = tmp_path / "save_model"
    model.mkdir()
    (model / "gru_classification_best.bin").write_bytes(tiny_checkpoint.read_bytes())
    assert spark_predict(part, f"file://{model}", "--mode", "overwrite") == \
        (f"error: file://{model}: holds 'gru_classification_best.bin', not only an earlier Spark output (part-* "
         "files, _SUCCESS); --mode overwrite replaces only such a folder: write it elsewhere")
    assert (model / "gru_classification_best.bin").read_bytes() == tiny_checkpoint.read_bytes()
    hidden = tmp_path / "project"  # hidden files only: a user's, not Spark's (which hides only .crc checksums)
    hidden.mkdir()
    (hidden / ".env").write_text("TOKEN=1\n", encoding="utf-8")
    assert spark_predict(part, hidden, "--mode", "overwrite") == \
        (f"error: {hidden}: holds '.env', not only an earlier Spark output (part-* files, _SUCCESS); --mode "
         "overwrite replaces only such a folder: write it elsewhere")
    assert (hidden / ".env").read_text(encoding="utf-8") == "TOKEN=1\n"

    lists = tmp_path / "lists.parquet"
    spark.createDataFrame([(1, ["Nakamura", "Tanaka"])], "id long, surname array<string>").write.parquet(str(lists))
    assert spark_predict(lists, tmp_path / "out") == \
        f"error: {lists}: column 'surname' holds array<string> values, not one name a row; pick a text column"
    assert not (tmp_path / "out").exists()

    from bulk.spark import classify_dataframe  # structs and maps too, refused before a job runs
    for kind in ("struct<first: string, last: string>", "map<string, string>"):
        df = spark.createDataFrame([], f"id long, surname {kind}")
        with pytest.raises(ValueError, match=r"column 'surname' holds (struct|map)<.*> values, not one name a row"):
            classify_dataframe(df, "surname", tiny_checkpoint)


def test_spark_predict_overwrites_an_earlier_output_with_topk_capped(spark, tiny_checkpoint, tmp_path):
    """--mode overwrite replaces an earlier Spark output; --topk beyond the model's countries adds a column pair
    for each of its countries, no more (predict.py's cap), instead of building a schema of --topk columns."""
    from bulk.labeller import output_columns
    from models.checkpoint import load

    spark.createDataFrame(ROWS, "id long, surname string, note string").write.parquet(str(tmp_path / "in.parquet"))
    spark.createDataFrame([(1,)], "x long").write.parquet(str(tmp_path / "out"))  # part files, _SUCCESS, .crc
    result = run_script("spark_predict.py", "--input", str(tmp_path / "in.parquet"), "--column", "surname",
                        "--output", str(tmp_path / "out"), "--mode", "overwrite", "--topk", "1000",
                        "--checkpoint", str(tiny_checkpoint), "--master", "local[2]")
    assert result.returncode == 0, result.stderr[-2000:]
    countries = len(load(tiny_checkpoint)["countries"])
    assert 1 < countries < 1000
    out = spark.read.parquet(str(tmp_path / "out"))
    assert out.columns == ["id", "surname", "note"] + output_columns(countries)
    rows = {r["id"]: r for r in out.collect()}
    assert sorted(rows) == [i for i, _, _ in ROWS] and rows[1][f"country_{countries}"]


def test_spark_predict_names_not_utf8_are_one_line(spark, tiny_checkpoint, tmp_path):
    """Bytes that are not UTF-8 fail the job in a Python worker: one line (predict.py --input's), no traceback,
    and no output folder left behind, empty or half written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = pa.array([b"Nakamura", b"Sm\xffith", b"Tanaka"], pa.binary())
    pq.write_table(pa.table({"id": [1, 2, 3], "surname": names}), tmp_path / "in.parquet")
    result = run_script("spark_predict.py", "--input", str(tmp_path / "in.parquet"), "--column", "surname",
                        "--output", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint), "--master", "local[2]")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert last_line(result) == (f"error: {tmp_path / 'in.parquet'}: column 'surname' cannot be read as text "
                                 "(Invalid UTF8 payload); store the names as UTF-8 strings")
    assert not (tmp_path / "out").exists()

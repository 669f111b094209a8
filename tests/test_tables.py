"""Classifying a column of a table file (bulk/tables.py, predict.py --input): rows, order, errors, atomicity."""
import csv
import errno
import io
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
from contextlib import nullcontext
from itertools import chain
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models import native
from models.predictor import Predictor
from tests.conftest import ROOT, run_script
from utils.errors import UserError
from bulk.labeller import FieldCache, complete, compute_fields
from bulk.csv_ranges import SENTINEL, EndsAtARecord, NotARecordEnd, range_text, record_ranges
from bulk.tables import _classify_ranges as classify_ranges, classify_file

# a BOM, CRLF line ends, commas and quotes inside fields, a line break inside a quoted field, a blank
# line, an empty, a letter-less and a non-ASCII name, a short and a long row
AWKWARD_CSV = ('\ufeffid,surname,note\r\n'
               '1,Nakamura,"Tokyo, Japan"\r\n'
               '2,,empty\r\n'
               '3,123,digits only\r\n'
               '\r\n'
               '4,"O\'Brien ""Jr""","two\r\nlines"\r\n'
               '5,Müller,"say ""hi"""\r\n'
               '6,Ivanov\r\n'
               '7,Smith,a,b\r\n'
               '8,Tanaka,last\r\n')


FIELD = st.text(alphabet='aB é,;"\r\n', max_size=5)  # as it stands, quoted, or with a quote left open
CSV_FIELD = FIELD | FIELD.map(lambda f: '"' + f.replace('"', '""') + '"') | FIELD.map(lambda f: '"' + f)
CSV_LINES = st.lists(st.tuples(st.lists(CSV_FIELD, max_size=4).map(",".join), st.sampled_from(["\n", "\r\n", "\r", ""])),
                     max_size=8).map(lambda rows: "".join(fields + end for fields, end in rows))


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint) -> Predictor:
    return Predictor.from_checkpoint(tiny_checkpoint)


def read_csv(path, delimiter=",") -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter=delimiter))


def write_distinct_csv(path: Path, rows: int) -> Path:
    """An id,surname CSV whose every name differs: every row runs through the model."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["id", "surname"]] + [[i, f"Name{'abcdefghij'[i % 10]}{i:07d}x"] for i in range(rows)])
    return path


def table_command(source: Path, output: Path, checkpoint: Path, workers: int) -> list[str]:
    """predict.py classifying the surname column of `source` into `output`, as a user runs it."""
    return [sys.executable, str(ROOT / "predict.py"), "--input", str(source), "--column", "surname",
            "--output", str(output), "--checkpoint", str(checkpoint), "--workers", str(workers)]


def test_csv_round_trip_keeps_every_row_in_order_with_its_columns(tmp_path, predictor):
    source = tmp_path / "in.csv"
    source.write_bytes(AWKWARD_CSV.encode("utf-8"))
    summary = classify_file(source, tmp_path / "out.csv", "surname", predictor, topk=2, chunk_rows=3, progress=False)

    rows = read_csv(tmp_path / "out.csv")
    expected = [row for row in csv.reader(io.StringIO(AWKWARD_CSV[1:], newline="")) if row]
    assert rows[0] == ["id", "surname", "note", "country", "probability", "country_2", "probability_2", "error"]
    assert len(rows) == len(expected) == 9
    for row, given in zip(rows[1:], expected[1:]):  # every row once, in order, its fields untouched
        assert row[:3] == (given + ["", ""])[:3]  # (a short row padded, a long one cut to the header)
    assert rows[4][1:3] == ["O'Brien \"Jr\"", "two\r\nlines"] and rows[5][1:3] == ["Müller", 'say "hi"']

    by_id = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert by_id["2"]["error"] == "empty name ''" and by_id["3"]["error"] == "name '123' has no letters"
    assert by_id["6"]["error"] == "row has 2 fields, the header 3: not classified" and by_id["6"]["note"] == ""
    assert by_id["7"]["error"].startswith("row has 4 fields")
    for bad in "2367":
        assert [by_id[bad][c] for c in ("country", "probability", "country_2", "probability_2")] == ["", "", "", ""]
    for good, name in [("1", "Nakamura"), ("4", "O'Brien \"Jr\""), ("5", "Müller"), ("8", "Tanaka")]:
        (answer,) = predictor.predict([name], topk=2)
        row = by_id[good]
        assert row["error"] == "" and [row["country"], row["country_2"]] == [c for c, _ in answer.top]
        assert float(row["probability"]) == pytest.approx(answer.top[0][1], abs=2e-6)
        assert float(row["probability_2"]) == pytest.approx(answer.top[1][1], abs=2e-6)
    assert (summary.rows, summary.classified, summary.errors) == (8, 4, 4)


@pytest.mark.parametrize("text", [True, False])
@pytest.mark.parametrize("topk, min_probability", [(1, 0.0), (2, 0.6), (100, 0.0)])
def test_a_names_cells_are_its_own_whatever_names_come_with_it(predictor, text, topk, min_probability):
    names = ["Nakamura", "lucy", "Nakamura", "Müller", "Ivanov", "NAKAMURA"]  # repeated, and two reading as one
    together = compute_fields(predictor, names, topk, text, min_probability)
    with_errors = compute_fields(predictor, names[:3] + [None, "123"] + names[3:], topk, text, min_probability)
    alone = [compute_fields(predictor, [name], topk, text, min_probability)[0] for name in names]
    for a, b, c in zip(together, alone, with_errors[:3] + with_errors[5:]):  # the same to float32 rounding
        assert a[0::2] == b[0::2] == c[0::2]  # countries and the error
        assert [float(x or 0) for x in a[1::2]] == pytest.approx([float(x or 0) for x in b[1::2]], abs=2e-6) \
            == [float(x or 0) for x in c[1::2]]
    assert with_errors[3][-1] == "missing name" and with_errors[4][-1] == "name '123' has no letters"
    k = len(predictor.countries)
    for name, cells in zip(names, together):
        (answer,) = predictor.predict([name], topk)
        countries, probabilities = list(cells[0:-1:2]), list(cells[1:-1:2])
        expected = [c for c, _ in answer.top]
        if answer.top[0][1] < min_probability:
            expected[0] = "unknown"
        empty = "" if text else None
        assert countries == expected + [empty] * (topk - len(expected)) and cells[-1] == empty
        assert probabilities[len(answer.top):] == [empty] * (topk - len(answer.top)) and len(answer.top) == min(topk, k)
        for cell, (_, p) in zip(probabilities, answer.top):
            assert isinstance(cell, str) == text and float(cell) == pytest.approx(p, abs=2e-6)


def test_cached_and_new_names_come_back_in_their_rows_order(predictor):
    cache = FieldCache(10)
    first = ["Nakamura", "Ivanov", "Nakamura"]
    found, missing = cache.lookup(first)
    assert found == [None] * 3 and missing == ["Nakamura", "Ivanov"]
    fields = complete(found, first, missing, compute_fields(predictor, missing, 1), cache)
    assert fields[0] == fields[2] != fields[1]
    second = ["Tanaka", "Ivanov", "Smith"]  # one answered from the cache, two new
    found, missing = cache.lookup(second)
    assert missing == ["Tanaka", "Smith"]
    computed = compute_fields(predictor, missing, 1)
    assert complete(found, second, missing, computed, cache) == [computed[0], fields[1], computed[1]]
    third = ["Moreau", "Dubois"]  # every name new and distinct
    found, missing = cache.lookup(third)
    computed = compute_fields(predictor, missing, 1)
    assert complete(found, third, missing, computed, cache) == computed


def test_the_answer_cache_holds_at_most_its_size_and_the_newest_answers():
    cache = FieldCache(10)
    names = [f"Name{i}" for i in range(37)]
    for i in range(0, len(names), 3):  # chunks of three new names
        chunk = names[i:i + 3]
        found, missing = cache.lookup(chunk)
        assert missing == chunk and found == [None] * len(chunk)
        cache.add(missing, [(name,) for name in missing])
        assert len(cache) <= 10
        newest = names[max(i + 3 - 5, 0):i + 3]  # half the size, at least, is always kept
        assert cache.lookup(newest) == ([(name,) for name in newest], [])
    cache = FieldCache(10)
    cache.add(names, [(name,) for name in names])  # more than the whole cache at once
    assert len(cache) <= 10 and cache.lookup(names[-5:])[1] == [] and cache.lookup(names[:5])[1] == names[:5]


def test_an_answer_cache_that_answers_almost_nothing_rests_then_starts_again():
    cache = FieldCache(10, rest_rows=20)
    names = iter(f"Name{i}" for i in range(1000))
    for _ in range(2):  # ten rows never seen: 0 of 10 answered, under MIN_ANSWERED
        chunk = [next(names) for _ in range(5)]
        found, missing = cache.lookup(chunk)
        cache.add(missing, [(name,) for name in missing])
    assert cache.resting and len(cache) == 0
    for _ in range(4):  # resting for 20 rows: not asked (a name just added is not answered), not filled
        chunk = [next(names) for _ in range(5)]
        cache.add(chunk, [(name,) for name in chunk])
        assert cache.lookup(chunk) == ([None] * 5, chunk) and len(cache) == 0
    assert not cache.resting
    chunk = [next(names) for _ in range(5)]
    cache.add(chunk, [(name,) for name in chunk])
    assert cache.lookup(chunk) == ([(name,) for name in chunk], [])


def test_an_answer_cache_that_answers_enough_never_rests():
    cache = FieldCache(10, rest_rows=20)
    for i in range(100):  # every chunk of new names comes again once: half the rows answered
        chunk = [f"Name{i}-{j}" for j in range(5)]
        for again in (False, True):
            found, missing = cache.lookup(chunk)
            cache.add(missing, [(name,) for name in missing])
            assert not cache.resting and (missing == [] if again else missing == chunk)


def test_a_resting_answer_cache_writes_the_same_table(tmp_path, predictor):
    """Names never seen for a while (the small cache rests), then names seen before: the same file as a cache that
    holds every answer."""
    names = [f"Nakamura{'son' * i}" for i in range(60)] + ["Ivanov", "Nakamura", "Smith", "Nakamurason"] * 30
    source = tmp_path / "in.csv"
    source.write_text("id,name\n" + "".join(f"{i},{name}\n" for i, name in enumerate(names)), encoding="utf-8")
    resting = classify_file(source, tmp_path / "resting.csv", "name", predictor, chunk_rows=7, cache_size=10,
                            progress=False)
    whole = classify_file(source, tmp_path / "whole.csv", "name", predictor, chunk_rows=7, progress=False)
    assert (tmp_path / "resting.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert resting.computed > whole.computed  # the rest cost model calls, not answers


@pytest.mark.slow
def test_workers_write_the_same_file_as_one_process(tmp_path, predictor, tiny_checkpoint):
    names = ["Nakamura", "Ivanov", "", "Smith", "Kobayashi", "Petrov", "x1", "Müller", "Tanaka"] * 40
    source = tmp_path / "in.csv"
    with open(source, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["n", "name"]] + [[i, name and f"{name}{'son' * (i % 3)}"]
                                                         for i, name in enumerate(names)])
    one = classify_file(source, tmp_path / "one.csv", "name", predictor, chunk_rows=25, progress=False)
    two = classify_file(source, tmp_path / "two.csv", "name", predictor, chunk_rows=25, workers=2,
                        progress=False)
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert one.rows == two.rows == len(names) and one.errors == two.errors == 40


def rows_of_ranges(path: Path, start: int, piece_bytes: int) -> list[list[str]]:
    """The rows of bytes start: of `path` read range by range, as each process of --workers reads its ranges."""
    ranges = record_ranges(path, start, path.stat().st_size, piece_bytes)
    assert [r[0] for r in ranges[1:]] == [r[1] for r in ranges[:-1]] and ranges[0][0] == start  # no gap, no overlap
    rows = []
    for i, (begin, end, _) in enumerate(ranges):
        text, _ = range_text(path, begin, end)
        with text:
            last = i == len(ranges) - 1
            reader = csv.reader(text if last else chain(text, [SENTINEL]))
            rows += list(reader if last else EndsAtARecord(reader))
    return rows


@settings(max_examples=200, deadline=None)
@given(body=CSV_LINES, piece_bytes=st.integers(1, 30))
@example(body='1,O"Brien\n2,"a\nb"\n3,c\n', piece_bytes=12)  # a quote in an unquoted field: the count is odd
def test_ranges_read_one_by_one_give_the_file_s_rows_or_say_they_cannot(tmp_path_factory, body, piece_bytes):
    path = tmp_path_factory.mktemp("ranges") / "in.csv"
    path.write_bytes(("h\n" + body).encode("utf-8"))
    whole = list(csv.reader(io.StringIO(body, newline="")))
    try:
        assert rows_of_ranges(path, 2, piece_bytes) == whole
    except NotARecordEnd:
        assert '"' in body


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(FIELD, min_size=1, max_size=4), max_size=10), piece_bytes=st.integers(1, 30),
       end=st.sampled_from(["\n", "\r\n"]))
@example(rows=[["1", "a\nb"], ["2", 'say "hi"\r\n'], ["3", ""]], piece_bytes=1, end="\n")
def test_ranges_of_a_file_the_csv_module_wrote_always_end_at_a_record(tmp_path_factory, rows, piece_bytes, end):
    """Quotes as the csv module writes them (a field with a quote, delimiter or line break quoted, its quotes
    doubled) never mislead the cut, line breaks inside fields and all."""
    text = io.StringIO()
    csv.writer(text, lineterminator=end).writerows(rows)
    path = tmp_path_factory.mktemp("ranges") / "in.csv"
    path.write_bytes(("h\n" + text.getvalue()).encode("utf-8"))
    assert rows_of_ranges(path, 2, piece_bytes) == list(csv.reader(io.StringIO(text.getvalue(), newline="")))


class NoPool:
    """A pool whose processes never start: this process takes every range (or every chunk)."""

    def apply_async(self, *args):
        return mock.Mock(ready=lambda: False)


@settings(max_examples=100, deadline=None)
@given(body=CSV_LINES, chunk_rows=st.integers(1, 3))
@example(body='1,O"Brien,x\n2,"a\nb",c\n3,Ab,c\n4,Cd,e\n', chunk_rows=1)  # a misleading quote: read whole
def test_ranges_write_the_rows_of_the_file_read_whole(tmp_path_factory, predictor, body, chunk_rows):
    """Whatever the quotes, line breaks and blank lines, the rows written range by range (in this process) read back
    as those of the file read whole, or the file is read whole."""
    folder = tmp_path_factory.mktemp("ranges")
    source = folder / "in.csv"
    source.write_bytes(("id,surname,note\n" + body).encode("utf-8"))
    classify_file(source, folder / "whole.csv", "surname", predictor, chunk_rows=chunk_rows, progress=False)
    with mock.patch("bulk.tables._pool_leaving_ctrl_c_to_us", lambda *args: nullcontext(NoPool())):
        classify_file(source, folder / "ranges.csv", "surname", predictor, chunk_rows=chunk_rows, workers=2,
                      threads=1, progress=False)
    assert read_csv(folder / "ranges.csv") == read_csv(folder / "whole.csv")


def classify_in_ranges(source: Path, output: Path, predictor, chunk_rows: int) -> bool:
    """classify_file with two workers; whether the file was classified in ranges (False: read whole)."""
    outcome = []

    def spy(*args):
        try:
            outcome.append(True)
            return classify_ranges(*args)
        except NotARecordEnd:
            outcome[-1] = False
            raise

    with mock.patch("bulk.tables._classify_ranges", spy):
        classify_file(source, output, "surname", predictor, chunk_rows=chunk_rows, workers=2, threads=1,
                      progress=False)
    return outcome == [True]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool forks on Linux only")
def test_two_workers_classify_ranges_and_write_what_one_process_writes(tmp_path, predictor):
    """Each process reads, classifies and writes ranges of rows; the parts joined are the file one process writes:
    quoted commas, doubled quotes, a cell that needs quotes, blank lines, rows too short or too long, CRLF and a BOM."""
    rows = ["1,Nakamura,plain", '2,"Tanaka, Jr",quoted comma', '3,"O""Brien",doubled quote', "4,Ivanov,a,b", "5",
            "", '6,Mül"ler,a quote inside', "7,Smith,last"]
    source = tmp_path / "in.csv"
    source.write_bytes(("\ufeffid,surname,note\r\n" + "\r\n".join(rows * 30) + "\r\n").encode("utf-8"))
    classify_file(source, tmp_path / "one.csv", "surname", predictor, chunk_rows=4, progress=False)
    assert classify_in_ranges(source, tmp_path / "two.csv", predictor, chunk_rows=4)
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "one.csv", "two.csv"]  # no part left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool forks on Linux only")
def test_rows_over_several_lines_in_ranges_and_a_misleading_quote_read_whole(tmp_path, predictor):
    """Quoted line breaks as the csv module writes them are cut around; a quote inside an unquoted field, which
    puts a cut inside a quoted field, sends the file to be read whole. Either way the rows are one process's."""
    written = io.StringIO()
    csv.writer(written, lineterminator="\n").writerows(
        [["id", "surname", "note"]] + [[i, f"Name{i}", "two\nlines" if i % 3 else "one"] for i in range(60)])
    misleading = written.getvalue().replace("Name7,", 'O"Name7,')
    for text, in_ranges in ((written.getvalue(), True), (misleading, False)):
        source = tmp_path / "in.csv"
        source.write_text(text, encoding="utf-8")
        classify_file(source, tmp_path / "one.csv", "surname", predictor, chunk_rows=3, progress=False)
        assert classify_in_ranges(source, tmp_path / "two.csv", predictor, chunk_rows=3) is in_ranges
        assert read_csv(tmp_path / "two.csv") == read_csv(tmp_path / "one.csv")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool forks on Linux only")
def test_an_unreadable_row_in_a_later_range_is_the_same_one_line_error(tmp_path, predictor, monkeypatch):
    monkeypatch.setattr("bulk.tables.MAX_FIELD", 40)
    source = tmp_path / "in.csv"
    source.write_text("id,surname\n" + "".join(f"{i},{'Long' * 20 if i == 150 else 'Tanaka'}\n" for i in range(200)))
    errors = []
    for workers in (1, 2):
        with pytest.raises(UserError) as e:
            classify_file(source, tmp_path / "out.csv", "surname", predictor, chunk_rows=5, workers=workers,
                          threads=1, progress=False)
        errors.append(str(e.value))
    assert errors[0] == errors[1] == f"{source}, line 152: field larger than field limit (40)"
    source.write_bytes(b"id,surname\n" + b"".join(b"%d,Tanaka\n" % i for i in range(150)) + b"151,Sa\xefto\n")
    with pytest.raises(UserError, match="not UTF-8"):
        classify_file(source, tmp_path / "out.csv", "surname", predictor, chunk_rows=5, workers=2, threads=1,
                      progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


class SlowToStart(Predictor):
    """A Predictor that takes two minutes to load in a pool process."""

    def __setstate__(self, state: dict) -> None:
        time.sleep(120)
        super().__setstate__(state)


@pytest.mark.slow
def test_a_pool_process_slow_to_start_holds_no_row_up(tmp_path, predictor):
    slow = SlowToStart.__new__(SlowToStart)
    slow.__dict__.update(predictor.__dict__)
    source = tmp_path / "in.csv"
    source.write_text("n,name\n" + "".join(f"{i},{name}\n" for i, name in enumerate(["Nakamura", "Ivanov", "Li"] * 100)))
    start = time.perf_counter()
    # two threads: the pool's process is spawned and loads the model itself (a forked one shares it at once)
    classify_file(source, tmp_path / "two.csv", "name", slow, chunk_rows=25, workers=2, threads=2, progress=False)
    assert time.perf_counter() - start < 60  # this process answered every row while the pool's was loading
    classify_file(source, tmp_path / "one.csv", "name", predictor, chunk_rows=25, progress=False)
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


def test_workers_without_a_writable_temporary_folder_is_one_line_and_no_file(tmp_path, predictor, monkeypatch):
    source = tmp_path / "in.csv"
    source.write_text("n,name\n1,Nakamura\n")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # where a spawned pool's model file would go
    with pytest.raises(UserError, match="TMPDIR"):  # two threads: the pool's processes are spawned
        classify_file(source, tmp_path / "out.csv", "name", predictor, workers=2, threads=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool forks on Linux only")
def test_a_forked_pool_shares_the_model_instead_of_a_file(tmp_path, predictor, monkeypatch):
    """With one torch thread on Linux the pool's processes are forked: they answer with this process's model, so
    no temporary file is written for them, and the rows come out as one process writes them."""
    source = tmp_path / "in.csv"
    source.write_text("n,name\n" + "".join(f"{i},Name{'abcdefghij'[i % 10]}{i:05d}\n" for i in range(3000)))
    classify_file(source, tmp_path / "one.csv", "name", predictor, workers=1, progress=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    classify_file(source, tmp_path / "two.csv", "name", predictor, workers=2, threads=1, chunk_rows=200,
                  progress=False)
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


def classify_text(predictor, text: str, chunk_rows: int, name: str = "in.csv", output: str = "out.csv") -> str:
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / name, Path(folder) / output
        source.write_text(text, encoding="utf-8", newline="")
        classify_file(source, target, "surname", predictor, chunk_rows=chunk_rows, progress=False)
        return target.read_bytes().decode("utf-8")  # line breaks as written



@settings(max_examples=150, deadline=None)
@given(body=CSV_LINES, chunk_rows=st.integers(1, 4))
@example(body='1,"a\nb",c\n2,Ab,c\n', chunk_rows=1)  # a line break in a field straddling two chunks
@example(body='1,"Ab",c\r\n2,A"b,c\n\n3,"A""b"\n', chunk_rows=3)  # quotes written beyond need, a blank line
@example(body='1," ,",c\n2,"""",c\n', chunk_rows=2)  # errors that quote the name: "name ' ,' has no letters"
@example(body='1,Ab,"c\n', chunk_rows=2)  # the file ends inside a quoted field: its line break is in the field
@example(body='1,Ab,"c', chunk_rows=2)  # ... and without a line break
def test_rows_copied_as_written_read_back_as_the_csv_writer_writes_them(predictor, body, chunk_rows):
    """A row read from one line is written as that line plus its cells; read back, every file is what the csv
    module's writer makes of the rows as parsed, whatever the quotes, line breaks and chunks."""
    text = "id,surname,note\n" + body
    as_written = classify_text(predictor, text, chunk_rows)
    with mock.patch("bulk.tables._ends_in_quotes", return_value=True):  # every row through csv.writer
        rewritten = classify_text(predictor, text, chunk_rows)
    assert list(csv.reader(io.StringIO(as_written, newline=""))) == list(csv.reader(io.StringIO(rewritten, newline="")))


def test_a_row_on_one_line_keeps_its_bytes_and_a_tsv_written_as_csv_is_rewritten(predictor):
    text = 'id,surname,note\r\n1,"Nakamura", spaced \r\n2,"O\'Brien ""Jr""",x\r\n'
    lines = classify_text(predictor, text, chunk_rows=10).splitlines()
    assert lines[1].startswith('1,"Nakamura", spaced ,') and lines[2].startswith('2,"O\'Brien ""Jr""",x,')
    quoted = classify_text(predictor, 'id,surname,note\n3,"""",x\n', chunk_rows=10).splitlines()
    assert quoted[1] == '3,"""",x,,,"name \'""\' has no letters"'  # a cell with a quote is quoted, as csv.writer does
    tsv = text.replace(",", "\t")
    assert classify_text(predictor, tsv, 10, "in.tsv", "out.tsv").splitlines()[1].startswith('1\t"Nakamura"\t spaced \t')
    rewritten = classify_text(predictor, tsv, 10, "in.tsv", "out.csv")  # another delimiter: the csv module writes it
    assert rewritten.splitlines()[1].startswith("1,Nakamura, spaced ,")
    quoted_tsv = classify_text(predictor, 'id\tsurname\n1\tTanaka\n3\t""""\n', 10, "in.tsv", "out.tsv")
    assert [row[:2] + row[-1:] for row in csv.reader(io.StringIO(quoted_tsv), delimiter="\t")] == [
        ["id", "surname", "error"], ["1", "Tanaka", ""], ["3", '"', "name '\"' has no letters"]]


def test_tsv_in_tsv_out_and_a_sniffed_delimiter(tmp_path, predictor):
    (tmp_path / "in.tsv").write_text("surname\tcity\nTanaka\tOsaka, Japan\nIvanov\t\n", encoding="utf-8")
    classify_file(tmp_path / "in.tsv", tmp_path / "out.tsv", "surname", predictor, progress=False)
    rows = read_csv(tmp_path / "out.tsv", "\t")
    assert [row[:2] for row in rows] == [["surname", "city"], ["Tanaka", "Osaka, Japan"], ["Ivanov", ""]]
    assert rows[1][2] == predictor.predict(["Tanaka"])[0].country

    (tmp_path / "in.txt").write_text("id;surname\n1;Tanaka\n2;Ivanov\n", encoding="utf-8")
    classify_file(tmp_path / "in.txt", tmp_path / "out.txt", "surname", predictor, progress=False)
    assert [row[:2] for row in read_csv(tmp_path / "out.txt", ";")] == [["id", "surname"], ["1", "Tanaka"],
                                                                        ["2", "Ivanov"]]


def test_memory_stays_flat_as_the_file_grows(tmp_path, predictor):
    """Peak Python memory of a 4x longer file is about the same: rows are streamed, not held."""
    peaks = []
    for rows in (5_000, 20_000):
        source = tmp_path / f"in_{rows}.csv"
        with open(source, "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([["id", "name", "pad"]] + [[i, ("Sato", "Popov", "Green")[i % 3], "x" * 50]
                                                              for i in range(rows)])
        tracemalloc.start()
        classify_file(source, tmp_path / f"out_{rows}.csv", "name", predictor, chunk_rows=1_000, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_parquet_round_trip_and_a_clear_error_without_pyarrow(tmp_path, predictor, monkeypatch):
    pa = pytest.importorskip("pyarrow", reason="pip install -r requirements-spark.txt (CI does)")
    import pyarrow.parquet as pq

    table = pa.table({"id": [1, 2, 3, 4], "surname": ["Tanaka", None, "Ivanov", "?"]})
    pq.write_table(table, tmp_path / "in.parquet")
    summary = classify_file(tmp_path / "in.parquet", tmp_path / "out.parquet", "surname", predictor, chunk_rows=3,
                            progress=False)
    out = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert out["id"] == [1, 2, 3, 4] and out["surname"] == ["Tanaka", None, "Ivanov", "?"]
    assert out["country"][0] == predictor.predict(["Tanaka"])[0].country and out["country"][1] is None
    assert out["probability"][1] is None and isinstance(out["probability"][2], float)
    assert out["error"] == [None, "missing name", None, "name '?' has no letters"] and summary.errors == 2

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    with pytest.raises(UserError, match="pip install"):
        classify_file(tmp_path / "in.parquet", tmp_path / "again.parquet", "surname", predictor, progress=False)
    assert not (tmp_path / "again.parquet").exists()


@pytest.mark.parametrize("content, message", [
    (b"id,name\n1,Tanaka\n", "no column 'surname'; the columns are 'id', 'name'"),
    (b"", "empty file"),
    (b"surname\nM\xfcller\n", "not UTF-8"),
    (b"surname\n" + b"Tanaka\n" * 20_000 + b"M\xfcller\n", "not UTF-8"),  # found mid-file: the temp file goes
    (b"surname,country\nTanaka,x\n", "already has column(s) country"),
    (None, "no such file"),
])
def test_bad_input_says_why_and_leaves_no_file(tmp_path, predictor, content, message):
    source = tmp_path / "in.csv"
    if content is not None:
        source.write_bytes(content)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        classify_file(source, tmp_path / "out.csv", "surname", predictor, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["in.csv"] if content is not None else [])


def test_predict_input_bad_file_is_one_line_without_traceback(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "in.csv").write_bytes(b"surname\nM\xfcller\n")
    code = run_predict(["--input", str(tmp_path / "in.csv"), "--column", "surname", "--output",
                        str(tmp_path / "out.csv"), "--checkpoint", str(tiny_checkpoint)])
    err = capsys.readouterr().err
    assert isinstance(code, str) and code.startswith("error: ") and "not UTF-8" in code and "\n" not in code
    assert "Traceback" not in err and [line for line in err.splitlines() if not line.startswith("model: ")] == []
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]


def test_predict_input_writes_the_file_and_a_summary(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "in.csv").write_text("surname\nTanaka\n\n123\n", encoding="utf-8")
    assert run_predict(["--input", str(tmp_path / "in.csv"), "--column", "surname", "--output",
                        str(tmp_path / "out.csv"), "--checkpoint", str(tiny_checkpoint), "--threads", "1"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "2 rows, 1 classified, 1 not" in out.err
    assert [row[0] for row in read_csv(tmp_path / "out.csv")] == ["surname", "Tanaka", "123"]
    assert run_predict(["--input", str(tmp_path / "in.csv"), "--checkpoint", str(tiny_checkpoint)]) == 2
    assert "--input needs --column and --output" in capsys.readouterr().err


def rows_written(folder: Path) -> bool:
    """Whether a file other than big.csv under `folder` holds bytes: the output's temp file, or with --workers a
    range's part file (one may vanish while looked at)."""
    for path in folder.rglob("*"):
        try:
            if path.name != "big.csv" and path.is_file() and path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
    return False


@pytest.mark.slow
@pytest.mark.parametrize("sig, workers", [(signal.SIGINT, 1), (signal.SIGKILL, 1), (signal.SIGTERM, 2)])
def test_an_interrupted_run_leaves_no_output_file(tmp_path, tiny_checkpoint, sig, workers):
    source = write_distinct_csv(tmp_path / "big.csv", 300_000)
    out = tmp_path / "out.csv"
    child = subprocess.Popen(table_command(source, out, tiny_checkpoint, workers),
                             stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not rows_written(tmp_path):
        assert child.poll() is None and time.monotonic() < deadline, "the run ended before it could be interrupted"
        time.sleep(0.05)
    pool = [pid for pid in os.listdir("/proc") if pid.isdigit() and _parent(pid) == child.pid]
    child.send_signal(sig)
    stderr = child.communicate(timeout=60)[1]
    assert not out.exists()
    assert child.returncode == {signal.SIGINT: 130, signal.SIGKILL: -9, signal.SIGTERM: 143}[sig]
    if sig != signal.SIGKILL:  # a killed process cannot tidy up; the others leave nothing behind
        assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]
        assert "Traceback" not in stderr
    if sig != signal.SIGKILL:  # the pool's processes end with the run
        assert len(pool) >= workers - 1  # the pool's processes (and a spawned pool's resource tracker)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pool) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pool if _alive(pid)]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool forks on Linux only")
def test_a_pool_process_killed_half_way_ends_the_run_with_one_line_not_a_wait(tmp_path, tiny_checkpoint):
    """A pool process killed (as the out-of-memory killer would) while its range is half done: the run says so and
    ends, leaving no output and no part, instead of waiting for rows that will never come."""
    source = write_distinct_csv(tmp_path / "big.csv", 300_000)
    out = tmp_path / "out.csv"
    child = subprocess.Popen(table_command(source, out, tiny_checkpoint, 2), stderr=subprocess.PIPE, text=True,
                             cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not rows_written(tmp_path):
        assert child.poll() is None and time.monotonic() < deadline, "the run ended before a worker could be killed"
        time.sleep(0.05)
    pool = [pid for pid in os.listdir("/proc") if pid.isdigit() and _parent(pid) == child.pid]
    assert len(pool) == 1
    os.kill(int(pool[0]), signal.SIGKILL)
    try:
        stderr = child.communicate(timeout=60)[1]
    finally:
        child.kill()  # still waiting: the bug this test is for
    assert child.returncode == 1 and stderr.strip().splitlines()[-1].startswith(
        "error: a --workers process ended before writing its rows")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool forks on Linux only")
def test_two_workers_share_torch_and_the_model_instead_of_holding_two_copies(tmp_path, tiny_checkpoint):
    """The peak PSS summed over a --workers 2 run's processes stays well under twice a one-worker run's: the forked
    pool process shares torch and the model (1.2x one worker here; a spawned one, holding its own, 1.6x here and
    1.7-1.8x with the default model)."""
    from bench.bench_tables import measure

    source = write_distinct_csv(tmp_path / "big.csv", 200_000)  # both processes run the model
    peaks = {}
    for workers in (1, 2):
        command = table_command(source, tmp_path / f"out{workers}.csv", tiny_checkpoint, workers)
        peaks[workers] = measure(command)[3]  # KiB
    assert (tmp_path / "out1.csv").read_bytes() == (tmp_path / "out2.csv").read_bytes()
    assert peaks[2] < 1.4 * peaks[1], peaks


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PSS is read from Linux's /proc")
def test_the_default_model_on_distinct_names_with_two_workers_stays_under_500_mb(tmp_path):
    """What README promises for a column of names never seen: `--workers 2` with the default model, summed over both
    processes, under 500 MB at the peak. A model of the default's sizes (one epoch: the sizes, not the weights, set
    the memory) on 200,000 distinct spellings, past where the answer cache is full (and then rests): 394-399 MiB here,
    408-421 MiB for the default model on a million rows. A spawned pool (563 MiB) or chunks and model calls of twice
    the size (518 MiB) go over."""
    from bench.bench_tables import distinct_names, measure, write_table

    trained = run_script("train.py", "--epochs", "1", "--save-dir", str(tmp_path / "model"))
    assert trained.returncode == 0, trained.stderr[-2000:]
    checkpoint = tmp_path / "model" / "ngram+gru_classification_best.bin"
    names = distinct_names(ROOT / "data" / "names.tsv", 200_000)
    write_table(tmp_path / "distinct.csv", len(names), lambda start, n: names[start:start + n])
    peak_pss_mib = measure(table_command(tmp_path / "distinct.csv", tmp_path / "out.csv", checkpoint, 2))[3] / 1024
    assert peak_pss_mib < 500e6 / 2**20, f"{peak_pss_mib:.0f} MiB"


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["while the pool starts", "while rows are written"])
def test_ctrl_c_at_the_terminal_with_workers_ends_quietly(tmp_path, tiny_checkpoint, moment):
    """A terminal's Ctrl-C reaches every process of the group: the run still ends with one line and exit 130, no
    traceback from a pool process (even one still importing torch), no "leaked semaphore" warning, no files."""
    source = write_distinct_csv(tmp_path / "big.csv", 300_000)
    child = subprocess.Popen(table_command(source, tmp_path / "out.csv", tiny_checkpoint, 2),
                             stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                             start_new_session=True)  # its own process group, as a terminal's job is
    deadline = time.monotonic() + 120
    while True:
        assert child.poll() is None and time.monotonic() < deadline, "the run ended before it could be interrupted"
        pool = [pid for pid in os.listdir("/proc") if pid.isdigit() and _parent(pid) == child.pid]
        written = any(p.name != "big.csv" and p.stat().st_size > 0 for p in tmp_path.iterdir())
        if (moment == "while rows are written" and written) or (moment == "while the pool starts" and pool):
            break
        time.sleep(0.02)
    os.killpg(child.pid, signal.SIGINT)
    stderr = child.communicate(timeout=60)[1]  # also waits for every process that shares the stderr pipe
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr and "leaked" not in stderr, stderr
    assert stderr.rstrip().endswith("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pool) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pool if _alive(pid)]


def _stat(pid: str) -> list[str]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _parent(pid: str) -> int:
    fields = _stat(pid)
    return int(fields[1]) if fields else -1


def _alive(pid: str) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


# --- the output is only ever a regular file; every refusal is one line ---

def run_predict(argv: list[str]) -> int | str:
    """predict.py's exit code (or its "error: ..." line), run in this process as its __main__ runs it."""
    import predict
    from utils.errors import run_script as wrap_main

    with pytest.raises(SystemExit) as e:
        wrap_main(lambda: predict.main(argv))
    return e.value.code


@pytest.mark.parametrize("kind", ["folder", "symlink", "fifo", "device"])
def test_the_output_is_never_a_folder_link_fifo_or_device(tmp_path, hand_checkpoint, kind):
    source, out, aim = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "aim.csv"
    source.write_text("surname\nTanaka\n", encoding="utf-8")
    aim.write_text("kept", encoding="utf-8")
    if kind == "folder":
        out.mkdir()
    elif kind == "symlink":
        out.symlink_to(aim)
    elif kind == "fifo":
        os.mkfifo(out)
    else:  # a device node of its own (never a real one: as root a rename would replace it with a file)
        if os.geteuid() != 0:
            pytest.skip("only root makes device nodes")
        os.mknod(out, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    code = run_predict(["--input", str(source), "--column", "surname", "--output", str(out),
                        "--checkpoint", str(hand_checkpoint)])
    assert code.startswith("error: ") and "not a regular file: refusing to replace it" in code and "\n" not in code
    assert not stat.S_ISREG(os.lstat(out).st_mode) and aim.read_text() == "kept"
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("error", [errno.EACCES, errno.EROFS])
def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, hand_checkpoint, monkeypatch, error):
    (tmp_path / "in.csv").write_text("surname\nTanaka\n", encoding="utf-8")
    real_open = os.open

    def refuse_temp(path, *args, **kwargs):  # a folder the user cannot write, or a read-only mount (even for root)
        if str(path).endswith(".tmp"):
            raise OSError(error, os.strerror(error))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_temp)
    code = run_predict(["--input", str(tmp_path / "in.csv"), "--column", "surname", "--output",
                        str(tmp_path / "out.csv"), "--checkpoint", str(hand_checkpoint)])
    assert code == f"error: cannot write {tmp_path / 'out.csv'} ({os.strerror(error)}); write it to another folder"


def test_a_temp_file_of_a_killed_run_is_removed_by_the_next(tmp_path, hand_checkpoint):
    (tmp_path / "in.csv").write_text("surname\nTanaka\n", encoding="utf-8")
    dead, alive = tmp_path / ".out.csv.999999999.tmp", tmp_path / f".out.csv.{os.getppid()}.tmp"
    dead.write_bytes(b"half a table")
    alive.write_bytes(b"another run's, still writing")
    dead_parts, alive_parts = dead.with_suffix(".parts"), alive.with_suffix(".parts")  # --workers' ranges
    for parts in (dead_parts, alive_parts):
        parts.mkdir()
        (parts / "0").write_bytes(b"a range")
    assert run_predict(["--input", str(tmp_path / "in.csv"), "--column", "surname", "--output",
                        str(tmp_path / "out.csv"), "--checkpoint", str(hand_checkpoint)]) == 0
    assert not dead.exists() and alive.exists() and (tmp_path / "out.csv").is_file()
    assert not dead_parts.exists() and (alive_parts / "0").exists()


def test_a_table_run_says_when_the_gru_ran_without_its_c_kernel(tmp_path, tiny_checkpoint, empty_kernel_cache,
                                                                monkeypatch, capsys):
    (tmp_path / "in.csv").write_text("surname\nTanaka\n", encoding="utf-8")
    command = ["--input", str(tmp_path / "in.csv"), "--column", "surname", "--output", str(tmp_path / "out.csv"),
               "--checkpoint", str(tiny_checkpoint)]
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    assert run_predict(command) == 0
    assert ("note: the GRU's C kernel is not in use (building it with false failed: CalledProcessError); the model "
            "ran on torch alone") in capsys.readouterr().err
    monkeypatch.delenv("CC")  # the machine's compiler, if it has one: a note only where there is none
    native.gru_children.cache_clear()
    assert run_predict(command) == 0
    assert ("note:" in capsys.readouterr().err) is (native.gru_children() is None)


def test_a_process_is_never_probed_with_os_kill_on_windows(monkeypatch):
    """On Windows os.kill(pid, 0) ends the process: a stale temp file's owner or a pool process is taken as alive."""
    from bulk.tables import _alive

    assert not _alive(999_999_999)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", mock.Mock(side_effect=AssertionError("os.kill called")))
    assert _alive(999_999_999)


def test_min_probability_and_topk_hold_for_tables(tmp_path, hand_checkpoint):
    (tmp_path / "in.csv").write_text("surname\nTanaka\nIvanov\n123\n", encoding="utf-8")
    common = ["--input", str(tmp_path / "in.csv"), "--column", "surname", "--checkpoint", str(hand_checkpoint)]
    # the hand-built model gives its answer about 0.79
    assert run_predict([*common, "--output", str(tmp_path / "sure.csv"), "--min-probability", "0.9"]) == 0
    rows = read_csv(tmp_path / "sure.csv")
    assert [row[1] for row in rows[1:]] == ["unknown", "unknown", ""] and float(rows[1][2]) == pytest.approx(0.79, abs=0.01)
    assert run_predict([*common, "--output", str(tmp_path / "some.csv"), "--min-probability", "0.5"]) == 0
    assert [row[1] for row in read_csv(tmp_path / "some.csv")[1:]] == ["Japanese", "Russian", ""]
    assert run_predict([*common, "--output", str(tmp_path / "top.csv"), "--topk", "1000000000"]) == 0
    assert read_csv(tmp_path / "top.csv")[0] == ["surname", "country", "probability", "country_2", "probability_2",
                                                 "country_3", "probability_3", "error"]  # the model's 3 countries


@pytest.mark.parametrize("flags, message", [
    (["--min-probability", "1.005"], "--min-probability must be between 0 and 1"),
    (["--workers", "1000000"], "--workers must be between 1 and"),
])
def test_out_of_range_flags_are_refused(tmp_path, capsys, flags, message):
    assert run_predict(["--input", "in.csv", "--column", "surname", "--output", "out.csv", *flags]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("values, message", [
    ([["Tanaka"], ["Ivanov", "Sato"]], "values, not one name a row; pick a text column"),
    ([b"Tanaka", b"M\xfcller"], "cannot be read as text (Invalid UTF8 payload)"),
])
def test_parquet_columns_that_are_not_text_are_one_line(tmp_path, predictor, values, message):
    pa = pytest.importorskip("pyarrow", reason="pip install -r requirements-spark.txt (CI does)")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"surname": values}), tmp_path / "in.parquet")
    with pytest.raises(UserError) as e:
        classify_file(tmp_path / "in.parquet", tmp_path / "out.parquet", "surname", predictor, progress=False)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_a_huge_field_is_one_rows_error_and_a_duplicated_column_is_refused(tmp_path, predictor):
    huge = "x" * 200_000  # over the csv module's default field limit (128 KiB)
    (tmp_path / "in.csv").write_text(f"surname,note\nTanaka,{huge}\n{huge},short\nIvanov,ok\n", encoding="utf-8")
    summary = classify_file(tmp_path / "in.csv", tmp_path / "out.csv", "surname", predictor, progress=False)
    rows = read_csv(tmp_path / "out.csv")
    assert [row[0][:10] for row in rows[1:]] == ["Tanaka", "x" * 10, "Ivanov"] and rows[1][1] == huge
    assert rows[1][-1] == "" and "at most" in rows[2][-1] and summary.errors == 1 and summary.rows == 3

    (tmp_path / "dup.csv").write_text("surname,id,surname\nTanaka,1,Ivanov\n", encoding="utf-8")
    with pytest.raises(UserError, match="2 columns are named 'surname'; rename all but one"):
        classify_file(tmp_path / "dup.csv", tmp_path / "dup_out.csv", "surname", predictor, progress=False)
    assert not (tmp_path / "dup_out.csv").exists()


def test_an_unfinished_checkpoint_answers_with_a_warning(tmp_path, hand_checkpoint, tiny_tsv, capsys):
    from models import checkpoint as ckpt

    payload = {k: v for k, v in ckpt.load(hand_checkpoint).items() if k != "format"}
    unfinished = ckpt.save({**payload, "finished": False}, tmp_path / "rnn_classification_1.bin")
    assert run_predict(["Tanaka", "--checkpoint", str(unfinished)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {unfinished} is from a run that had not finished" in err
    assert run_predict(["Tanaka", "--checkpoint", str(hand_checkpoint)]) == 0
    assert "warning" not in capsys.readouterr().err
    import evaluate  # and every other script that loads a model through models.inference

    evaluate.main(["--checkpoint", str(unfinished), "--data", str(tiny_tsv), "--out", str(tmp_path), "--json"])
    assert f"warning: {unfinished} is from a run that had not finished" in capsys.readouterr().err


def test_a_dash_reads_the_table_from_stdin_and_writes_it_to_stdout(tmp_path, hand_checkpoint, monkeypatch, capsys):
    import io

    monkeypatch.chdir(tmp_path)  # a file named "-" would land here
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"id\tsurname\n1\tTanaka\n2\tIvanov\n")))
    assert run_predict(["--input", "-", "--column", "surname", "--output", "-", "--checkpoint",
                        str(hand_checkpoint)]) == 0
    out = capsys.readouterr()
    lines = [line.split("\t") for line in out.out.splitlines()]  # the input's delimiter, sniffed
    assert lines[0] == ["id", "surname", "country", "probability", "error"]
    assert [row[:3] for row in lines[1:]] == [["1", "Tanaka", "Japanese"], ["2", "Ivanov", "Russian"]]
    assert "\n-: 2 rows, 2 classified" in out.err and not (tmp_path / "-").exists()


@pytest.mark.parametrize("kind", ["folder", "fifo", "unreadable"])
def test_an_input_that_is_no_readable_file_is_named_so(tmp_path, hand_checkpoint, monkeypatch, kind):
    source = tmp_path / "in.csv"
    if kind == "folder":
        source.mkdir()
    elif kind == "fifo":
        os.mkfifo(source)
    else:  # what a file the user may not read answers (root reads any: the refusal is made here)
        source.write_text("surname\nTanaka\n", encoding="utf-8")
        real_open = open

        def refuse(path, *args, **kwargs):
            if str(path) == str(source):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            return real_open(path, *args, **kwargs)
        monkeypatch.setattr("builtins.open", refuse)
    code = run_predict(["--input", str(source), "--column", "surname", "--output", str(tmp_path / "out.csv"),
                        "--checkpoint", str(hand_checkpoint)])
    assert code == {"folder": f"error: {source} is a folder, not a regular file; name a file, or pipe the table in "
                              "with --input -",
                    "fifo": f"error: {source} is a FIFO, not a regular file; name a file, or pipe the table in with "
                            "--input -",
                    "unreadable": f"error: cannot read {source} (Permission denied)"}[kind]
    assert not (tmp_path / "out.csv").exists()

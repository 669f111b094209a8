"""Raw names -> the output columns of a classified table (country, probability, ..., error).

The one place that turns a Predictor's probabilities into table cells, shared by bulk/tables.py
(files, in one process or a pool) and bulk/spark.py (Spark partitions), so every path answers
alike. Surname columns repeat a lot, so answers are kept in a bounded cache keyed by the raw name:
a repeated name costs one dict look-up instead of normalisation and a model call.
"""
import operator
from collections.abc import Iterable
from itertools import compress, repeat

from models.predictor import cyclic_gc_paused
from utils.errors import InvalidNameError, UserError
from utils.data import check_name
from utils.memory import hand_back_freed_memory

Fields = tuple  # (country, probability, [country_2, probability_2, ...], error) of one name
UNKNOWN = "unknown"  # the country of a name answered less surely than the minimum probability asked for


def output_columns(topk: int) -> list[str]:
    """Names of the columns a classification adds: country, probability, country_2, probability_2, ..., error."""
    columns = []
    for k in range(1, topk + 1):
        suffix = "" if k == 1 else f"_{k}"
        columns += [f"country{suffix}", f"probability{suffix}"]
    return columns + ["error"]


def error_fields(topk: int, reason: str, text: bool = True) -> Fields:
    """Empty answers and the reason: the cells of a row whose name cannot be classified."""
    empty = "" if text else None
    return (empty,) * (2 * topk) + (reason,)


def text_names(batch, column: str) -> list[str | None]:
    """An Arrow record batch's names in `column` as text, None for a null (Parquet files, Spark's batches);
    UserError for bytes that are not UTF-8."""
    import pyarrow as pa

    try:
        return batch.column(column).cast(pa.string()).to_pylist()
    except pa.ArrowException as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"column {column!r} cannot be read as text ({reason}); store the names as UTF-8 strings") \
            from None


def wrong_width(fields: int, width: int) -> str:
    """The error of a CSV row with another number of fields than its header: it is not classified (a field may
    have slipped, so the name column may hold something else)."""
    return f"row has {fields} fields, the header {width}: not classified"


def compute_fields(predictor, names: list[str], topk: int, text: bool = True,
                   min_probability: float = 0.0) -> list[Fields]:
    """The output cells of each raw name, computed (no cache): one model call for the distinct normalised names.

    text=True gives strings ready for CSV (probability with 6 decimals, "" for none); text=False
    gives Python values (float probabilities, None for none) for Parquet and Spark. A name whose top
    probability is below `min_probability` gets the country "unknown" (its probabilities kept).
    """
    with cyclic_gc_paused():  # a table run has it off already; Spark's executors have not
        return _compute_fields(predictor, names, topk, text, min_probability)


def _compute_fields(predictor, names: list[str], topk: int, text: bool, min_probability: float) -> list[Fields]:
    if None not in names:
        try:  # the usual case, every name can be classified: no per-row bookkeeping
            normalised = list(map(check_name, names))
        except InvalidNameError:
            pass
        else:
            distinct = dict.fromkeys(normalised)
            answers = _answers(predictor, list(distinct), topk, text, min_probability)
            if len(distinct) == len(names):
                return answers
            answer_of = dict(zip(distinct, answers))
            return list(map(answer_of.__getitem__, normalised))
    fields: list[Fields | None] = [None] * len(names)
    rows_of: dict[str, list[int]] = {}  # normalised name -> the rows that read as it
    for i, name in enumerate(names):
        if name is None:
            fields[i] = error_fields(topk, "missing name", text)
            continue
        try:
            rows_of.setdefault(check_name(name), []).append(i)
        except InvalidNameError as e:
            fields[i] = error_fields(topk, str(e), text)
    if rows_of:
        for rows, answer in zip(rows_of.values(), _answers(predictor, list(rows_of), topk, text, min_probability)):
            for i in rows:
                fields[i] = answer
    return fields


def _answers(predictor, normalised_names: list[str], topk: int, text: bool, min_probability: float) -> list[Fields]:
    """The fields of each distinct normalised name: one model call, the cells built a column at a time (a Python
    loop per name and cell cost more than the rest of a row outside the model)."""
    k = min(topk, len(predictor.countries))
    best = predictor.probabilities(normalised_names).topk(k, dim=1)  # [D, k]
    columns = []
    for j in range(k):  # whole-column .tolist(): per-row tensor access costs microseconds a row
        countries = list(map(predictor.countries.__getitem__, best.indices[:, j].tolist()))
        probabilities = best.values[:, j].tolist()
        if j == 0 and min_probability > 0:
            countries = [UNKNOWN if p < min_probability else c for c, p in zip(countries, probabilities)]
        columns += [countries, list(map("{:.6f}".format, probabilities)) if text else probabilities]
    empty = "" if text else None
    columns += [repeat(empty)] * (2 * (topk - k) + 1)  # the countries beyond the model's, and the error: empty
    return list(zip(*columns))


def warm_up(predictor) -> None:
    """Run the model once, so that the tables it derives on first use (the n-gram's) are built, then hand back to
    the system the memory their building used and freed."""
    predictor.probabilities(["Warm"])
    hand_back_freed_memory()


class FieldCache:
    """Raw name -> Fields, at most `size` entries; the oldest entries go first when it is full.

    A cache costs every row a lookup and an insertion (on a million rows that never repeat, two workers took 8%
    longer with it than without: docs/speed.md) and saves a model call per row it answers. One that has answered
    fewer than MIN_ANSWERED of the last `size` rows looked up rests: it empties and, for the next `rest_rows` rows
    (4 * size by default), is neither asked nor filled; then it starts again. The answers are the same either way."""

    MIN_ANSWERED = 0.05  # a hit saves a model call (about 30 us), a row costs the cache about 2 us: it pays from ~7%

    def __init__(self, size: int = 200_000, rest_rows: int | None = None):
        if size < 1:
            raise ValueError("cache size must be at least 1")
        self.size, self._fields = size, {}
        self.rest_rows = 4 * size if rest_rows is None else rest_rows
        self._asked = self._answered = self._resting = 0  # rows looked up and answered since it (re)started; rest left

    def __len__(self) -> int:
        return len(self._fields)

    @property
    def resting(self) -> bool:
        return self._resting > 0

    def lookup(self, names: list[str]) -> tuple[list[Fields | None], list[str]]:
        """(cached fields of each name, None where unknown) and the distinct unknown names, in first-seen order."""
        if self._resting > 0:
            self._resting -= len(names)
            return [None] * len(names), list(dict.fromkeys(names))
        found = list(map(self._fields.get, names))
        unknown = found.count(None)
        self._asked, self._answered = self._asked + len(names), self._answered + len(names) - unknown
        if self._asked >= self.size:
            if self._answered < self.MIN_ANSWERED * self._asked:
                self._fields, self._resting = {}, self.rest_rows
            self._asked = self._answered = 0
        if not unknown:
            return found, []
        return found, list(dict.fromkeys(compress(names, map(operator.not_, found))))  # fields are never empty

    def add(self, names: Iterable[str], fields: Iterable[Fields]) -> None:
        if self._resting > 0:
            return
        self._fields.update(zip(names, fields))
        excess = len(self._fields) - self.size
        if excess > 0:  # dicts keep insertion order: drop the oldest, a tenth more to evict rarely
            for name in list(self._fields)[:excess + self.size // 10]:
                del self._fields[name]


def complete(found: list[Fields | None], names: list[str], missing: list[str], computed: list[Fields],
             cache: FieldCache) -> list[Fields]:
    """The fields of every name: `found` and `missing` from `cache.lookup(names)`, `computed` the fields of `missing`.
    The computed fields are remembered in `cache`."""
    cache.add(missing, computed)
    if not missing:
        return found
    if len(missing) == len(names):  # every name new and distinct: `computed` is in their order
        return computed
    answers = dict(zip(missing, computed))
    return [f if f is not None else answers[name] for f, name in zip(found, names)]

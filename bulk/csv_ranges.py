"""A CSV file's data rows cut into byte ranges that each parse on their own, so that several processes can each
read, classify and write some of them (bulk/tables.py with --workers > 1).

    ranges = record_ranges(path, body_start, end, piece_bytes)  # [(start, end, line breaks before start)]
    text, bytes_read = range_text(path, start, end)              # the range's text, UTF-8
    reader = EndsAtARecord(csv.reader(chain(text, [SENTINEL])))  # its rows; NotARecordEnd if it ends mid-record

A range ends just after a line break with an even number of quotes before it: with the csv module's quoting a line
break there ends a record, and the rows of the ranges read one by one are those of the file read whole. A quote
inside an unquoted field (O"Brien) is read as a plain character, and breaks that count. So each range but the last
is read with a sentinel line after it: where the range did not end with a record, the sentinel is taken into an
open quoted field instead of being read as a row of its own, and NotARecordEnd is raised (the caller then reads the
file whole). The last range ends where the file does, as the file read whole does.
"""
import io
from pathlib import Path

# a row of one field where the range ended with a record (\x1e, not NUL: csv refused NUL before Python 3.11)
SENTINEL = "\x1eend of range\n"
BLOCK = 1 << 20  # bytes read at a time


class NotARecordEnd(Exception):
    """A range ended inside a quoted field (a quote in an unquoted field misled the count)."""


def record_ranges(path: Path, start: int, end: int, piece_bytes: int, quote: str = '"') -> list[tuple[int, int, int]]:
    """Bytes start:end of the file cut into ranges of about `piece_bytes` (at least 1), each ending after a line
    break with an even number of `quote`s since `start`, or at `end`: [(first byte, byte after the last, line
    breaks between `start` and the range)]."""
    mark, cuts = quote.encode(), [(start, 0)]  # (offset, line breaks before it)
    target, odd, breaks = start + max(piece_bytes, 1), 0, 0
    with open(path, "rb") as f:
        f.seek(start)
        position = start
        while target < end and (block := f.read(min(BLOCK, end - position))):
            counted = 0  # block[:counted] is in `odd` and `breaks`
            while position + len(block) > target:
                at = block.find(b"\n", max(counted, target - position))
                if at < 0:
                    break
                odd ^= block.count(mark, counted, at) & 1
                breaks += block.count(b"\n", counted, at) + 1
                counted = at + 1
                if not odd and position + counted < end:
                    cuts.append((position + counted, breaks))
                    target = position + counted + max(piece_bytes, 1)
            odd ^= block.count(mark, counted) & 1
            breaks += block.count(b"\n", counted)
            position += len(block)
    return [(begin, stop, before) for (begin, before), (stop, _) in zip(cuts, cuts[1:] + [(end, 0)])]


class _Range(io.RawIOBase):
    """Bytes start:end of a file, read as a file of their own."""

    def __init__(self, path: Path, start: int, end: int):
        self._file = open(path, "rb", buffering=0)
        self._file.seek(start)
        self.left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._file.readinto(memoryview(buffer)[:min(len(buffer), self.left)]) if self.left > 0 else 0
        self.left -= n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def range_text(path: Path, start: int, end: int) -> tuple[io.TextIOWrapper, callable]:
    """The text of bytes start:end (UTF-8, line breaks kept as written, as csv wants them), and a function
    giving how many of its bytes have been read so far."""
    raw = _Range(path, start, end)
    text = io.TextIOWrapper(io.BufferedReader(raw, BLOCK), encoding="utf-8", newline="")
    return text, lambda: end - start - raw.left


class EndsAtARecord:
    """The rows of a csv.reader over a range's lines followed by SENTINEL, the sentinel's row left out; at the end,
    NotARecordEnd if the sentinel was not a row of its own. `line_num` and `dialect` are the reader's, as of the
    last row given (one row is read ahead)."""

    def __init__(self, reader):
        self._reader, self.dialect, self.line_num = reader, reader.dialect, reader.line_num
        self._ahead = next(reader, None), reader.line_num

    def __iter__(self):
        return self

    def __next__(self) -> list[str]:
        row, line_num = self._ahead
        if row is None:
            raise StopIteration
        following = next(self._reader, None)
        if following is None:
            if row != [SENTINEL.rstrip("\n")]:
                raise NotARecordEnd
            self._ahead = None, line_num
            raise StopIteration
        self._ahead = following, self._reader.line_num
        self.line_num = line_num
        return row

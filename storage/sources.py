"""Source files: finding them in the landing folder, reading them as rows, moving unreadable ones aside."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io as _io
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.normalize import RENAMED, ROW_COLUMN, JsonValue, column_name
from storage.atomic import write_json_atomic
from storage.layout import PathOutside, Paths, resolve_inside

SOURCE_KINDS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
SOURCE_SUFFIXES = tuple(SOURCE_KINDS)
MAX_FIELD_BYTES = 256 * 1024 * 1024  # one CSV value; longer ones are quarantined by the contract, not here


class UnreadableFile(Exception):
    """A source file that cannot be read at all; it is moved aside, never retried blindly."""


def display_name(path: Path | str) -> str:
    """A path as text that can be printed, logged and stored as UTF-8: bytes of a name that are not UTF-8
    (a latin-1 name from an SMB share or a Windows export) shown as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The producer protocol: write the file under a name the sweep ignores (hidden, `.orders.csv.tmp`, or
# `orders.csv.part`), then rename it into place in landing/ (atomic on one file system); optionally put
# an empty `orders.csv.done` beside it. Files written in place are taken only once they have held still
# for the settle time (see `read_complete`). A marker vouches only for the file as it was when the marker
# was made (it must be at least as new as the file's last change), and it is used once: removed when its
# file is ingested, skipped or rejected, so a producer that rewrites `orders.csv` in place is never
# taken mid-write on the word of yesterday's marker.
DONE_SUFFIX = ".done"
PRODUCER_SUFFIXES = (DONE_SUFFIX, ".part", ".tmp")  # never deliveries: never read, never reported


@dataclass
class LandingScan:
    """What the landing folder holds: files to consider, and entries refused (with why) that are left alone."""

    files: list[Path] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)


def source_kind(path: Path | str) -> str | None:
    """The format a file's name says it holds ("parquet", "csv", "jsonl"; a .gz suffix allowed), or None if
    ingest does not read such files. The one suffix test: the sweep, `churn ingest PATH` and the reader use it."""
    name = Path(path).name.lower().removesuffix(".gz")
    return next((kind for suffix, kind in SOURCE_KINDS.items() if name.endswith(suffix)), None)


def is_source_name(path: Path | str) -> bool:
    """Whether ingest reads a file of this name (its suffix is one of SOURCE_SUFFIXES, optionally + .gz)."""
    return source_kind(path) is not None


def landing_scan(paths: Paths, folder: Path | None = None) -> LandingScan:
    """Files waiting in the landing folder (or `folder`, e.g. `landing/contacts/`), oldest name first (hidden and
    temp files ignored; the contacts folder is no delivery of events).

    A file must resolve inside that folder: a symlink that leads out of it is refused, never
    read, copied or deleted.
    """
    scan = LandingScan()
    folder = paths.landing if folder is None else folder
    if not folder.exists():
        return scan
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.name.endswith(PRODUCER_SUFFIXES):
            continue  # the producer protocol's temp names and markers
        if p == paths.landing_contacts and p.is_dir() and not p.is_symlink():
            continue  # contact exports: read by `churn contacts ingest`
        if not is_source_name(p):  # a delivery in a form ingest does not read: said, never silently ignored
            kind = "a folder (ingest reads the files directly in landing/)" if p.is_dir() else (
                f"ingest does not read this file type; it reads {', '.join(SOURCE_SUFFIXES)}, optionally + .gz")
            scan.refused.append((p, f"refused, left in place: {kind}"))
            continue
        try:
            resolve_inside(folder, p, "landing file")
        except PathOutside as e:
            scan.refused.append((p, f"refused, left in place: {e}"))
            continue
        except (OSError, RuntimeError) as e:  # a symlink loop (ELOOP, or RuntimeError from pathlib)
            scan.refused.append((p, f"refused, left in place: cannot be resolved ({e})"))
            continue
        if p.is_file():
            scan.files.append(p)
        else:
            what = ("a dangling symlink" if p.is_symlink() and not p.exists() else "a folder" if p.is_dir()
                    else "a FIFO, socket or device")
            scan.refused.append((p, f"refused, left in place: not a regular file ({what})"))
    return scan


def landing_files(paths: Paths) -> list[Path]:
    """The files of `landing_scan` (refused entries left out)."""
    return landing_scan(paths).files


@dataclass
class Landed:
    """A file's bytes as read once (what is hashed is what is parsed), or why it was left for later."""

    data: bytes | None
    waiting: str | None = None  # e.g. "still being written"
    signature: tuple[int, int, int] | None = None  # the file's size, mtime and ctime when it was read
    marker: tuple[int, int] | None = None  # the NAME.done marker beside it then (inode, ctime), fresh or stale
    content: bytes | None = None  # a gzip file's decompressed bytes, if the completeness check made them


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def marker_path(path: Path) -> Path:
    return path.with_name(path.name + DONE_SUFFIX)


def _marker(path: Path, st: os.stat_result) -> tuple[bool, tuple[int, int] | None]:
    """Whether a NAME.done marker vouches for the file as it is now (the marker is at least as new as the
    file's last change, mtime and ctime), and the marker's identity (None: there is none)."""
    try:
        m = marker_path(path).stat()
    except OSError:
        return False, None
    return m.st_ctime_ns >= max(st.st_ctime_ns, st.st_mtime_ns), (m.st_ino, m.st_ctime_ns)


def consume_marker(path: Path, landed: Landed) -> None:
    """Remove the NAME.done marker seen when `path` was read, if it is still that marker: it said "complete"
    about that content only (a newer marker, made meanwhile for a new delivery, is left alone)."""
    if landed.marker is None:
        return
    try:
        m = marker_path(path).stat()
    except OSError:
        return
    if (m.st_ino, m.st_ctime_ns) == landed.marker:
        marker_path(path).unlink(missing_ok=True)


def cut_short(path: Path, data: bytes) -> tuple[str | None, bytes | None]:
    """Why `data` ends like a file whose writer has not finished (None if its end is a complete end), and
    the decompressed content of a gzip file (None if not gzip or not decompressible), which `read_source`
    then takes as it is instead of decompressing the file a second time.

    Text (CSV, JSON lines) must end with a line end, a gzip stream with its trailer, a Parquet file
    with its footer; what a paused writer leaves behind fails these checks. Never raises for a name
    ingest cannot read: the reader rejects that file, with its reason.
    """
    content = None
    if data[:2] == b"\x1f\x8b":
        try:
            data = content = gzip.decompress(data)
        except EOFError:
            return "its gzip stream is cut short", None
        except (OSError, ValueError):
            return None, None  # corrupt, not short: read_source says why
    if not data or data == b"\xef\xbb\xbf":
        return None, content  # empty, or a byte-order mark and nothing else: read as empty, like a zero-byte file
    if source_kind(path) == "parquet":
        return (None if data[-4:] == b"PAR1" else "it has no Parquet footer yet"), content
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\0" in data[-2:] or data[-4:] == b"PAR1":
        return None, content  # UTF-16 (its line end is "\n\0") or a Parquet file: not UTF-8, read_source says so
    return (None if data[-1:] in (b"\n", b"\r") else "its last line has no line end"), content


def read_complete(path: Path, settle_seconds: float, wait_seconds: float = 0.0, incomplete_seconds: float = 0.0,
                  clock=time.time, sleep=time.sleep) -> Landed:
    """The file's bytes if it is complete, else why not (it is then left in place for a later sweep).

    Complete: a `NAME.done` marker at least as new as the file's last change lies beside it (an older
    one is stale: it vouched for an earlier delivery under the same name); or its ctime (which every write moves and nobody can
    set) is `settle_seconds` old, its end is a complete end (`cut_short`) or it has
    held still for `incomplete_seconds` (a writer paused mid-line looks settled); and they did not
    change while it was read. Waits up to `wait_seconds` for a file still being written. A settle time
    of 0 takes every file at once (files are delivered whole, e.g. renamed into place).
    """
    deadline = clock() + wait_seconds
    while True:
        st = path.stat()
        # ctime only: every write moves it, and unlike mtime no one can set it (a copied file's mtime
        # may lie in the future and would keep the file waiting for ever)
        age = clock() - st.st_ctime
        marked, marker = _marker(path, st)
        if marked or settle_seconds <= 0 or age >= settle_seconds:
            data = path.read_bytes()
            after = path.stat()
            short, content = (None, None) if marked or settle_seconds <= 0 or age >= incomplete_seconds else (
                cut_short(path, data))
            if _signature(after) != _signature(st) or len(data) != after.st_size:
                reason = "changed while it was read"
            elif short is None:
                return Landed(data, signature=_signature(after), marker=marker, content=content)
            else:
                reason = (f"{short}: still being written? It is taken once a {path.name}{DONE_SUFFIX} marker newer "
                          f"than its last change lies beside it or it has not changed for {incomplete_seconds:g} s (now {age:.0f} s)")
        else:
            reason = f"still being written (changed {age:.1f} s ago; settle time {settle_seconds:g} s)"
        left = deadline - clock()
        if left <= 0:
            return Landed(None, reason, marker=marker)
        sleep(min(left, max(0.05, settle_seconds - max(age, 0.0)) if not marked else 0.05))


def source_format(path: Path) -> str:
    """`source_kind`, or UnreadableFile for a file type ingest does not read."""
    kind = source_kind(path)
    if kind is None:
        raise UnreadableFile(f"unsupported file type {path.suffix!r}: expected .parquet, .csv or .jsonl")
    return kind


def _raw_bytes(path: Path, data: bytes | None = None, content: bytes | None = None) -> bytes:
    if content is not None:  # decompressed already (by cut_short)
        return content
    data = path.read_bytes() if data is None else data
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise UnreadableFile(f"corrupt gzip stream: {e}") from e
    return data


@dataclass
class SourceRows:
    """A source file read as rows: `frame` keeps the source's own columns; `bad_lines` could not be parsed."""

    frame: pd.DataFrame
    bad_lines: list[tuple[int, str, str]]  # (row_number, original text, reason)
    fmt: str


def read_source(path: Path, data: bytes | None = None, content: bytes | None = None) -> SourceRows:
    """Read a landing file (or its bytes, already read; `content`: those bytes decompressed, if a gzip file's
    were already). CSV/JSON values stay strings (ids are opaque); row numbers start at 1."""
    fmt = source_format(path)
    data = _raw_bytes(path, data, content)
    bad: list[tuple[int, str, str]] = []
    if fmt == "parquet":
        try:
            frame = _nan_as_text(pq.read_table(pa.BufferReader(data)))
        except (pa.ArrowException, OSError, ValueError) as e:
            raise UnreadableFile(f"not a readable Parquet file: {e}") from e
        frame = with_row_numbers(frame, pd.RangeIndex(1, len(frame) + 1).to_numpy())
    else:
        if not data.strip():
            return SourceRows(pd.DataFrame(), [], fmt)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise UnreadableFile(f"not UTF-8 text (byte {e.start}): re-export the file as UTF-8") from e
        if fmt == "csv":
            import csv

            try:
                frame, bad = _csv_with_row_numbers(text)
            except csv.Error as e:
                raise UnreadableFile(f"not a readable CSV file: {e}") from e
        else:
            frame, bad = _jsonl(text)
    return SourceRows(frame.reset_index(drop=True), bad, fmt)




def with_row_numbers(frame: pd.DataFrame, numbers) -> pd.DataFrame:
    """`frame` with the source row numbers in `_row` first; a source column named `_row` becomes `_row (source)`."""
    names = [column_name(str(c)) for c in frame.columns]
    if len(set(names)) != len(names):
        clash = sorted({n for n in names if names.count(n) > 1})
        raise UnreadableFile(f"duplicate column names {clash} (names compared as they print: trimmed, invisible "
                             f"characters dropped): {[str(c) for c in frame.columns]}")
    frame = frame.set_axis(names, axis=1)
    if ROW_COLUMN in frame.columns:
        kept = f"{ROW_COLUMN} (source)"
        while kept in frame.columns:
            kept += "'"
        frame = frame.rename(columns={ROW_COLUMN: kept})
        frame.attrs[RENAMED] = {kept: ROW_COLUMN}
    frame.insert(0, ROW_COLUMN, numbers)
    return frame


def _nan_as_text(table: pa.Table) -> pd.DataFrame:
    """The table as pandas; in float columns holding NaN the NaN becomes the text "NaN" (the other values
    stay floats, nulls None), so NaN is judged "not a finite number" (or not an exact id), not "missing"."""
    import pyarrow.compute as pc

    nan_columns = [field.name for field in table.schema
                   if pa.types.is_floating(field.type) and pc.any(pc.is_nan(table[field.name])).as_py()]
    frame = table.to_pandas()
    for name in nan_columns:
        values = table[name].to_pylist()
        frame[name] = pd.Series([v if v is None or v == v else "NaN" for v in values], index=frame.index,
                                dtype=object)
    return frame


def _csv_with_row_numbers(text: str) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    """Parse CSV keeping each record's row number; records with the wrong field count are bad lines.

    A quote that is opened and never closed would make the rest of the file one record: its line is a
    bad line (an unclosed quote) and parsing goes on at the next line, so the rows after it are read.
    """
    import csv

    csv.field_size_limit(MAX_FIELD_BYTES)  # the default (128 KB) would reject a whole file for one long value
    reader = csv.reader(_io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return pd.DataFrame(), []
    separator = next((sep for sep in (";", "\t", "|") if len(header) == 1 and sep in header[0]), None)
    header = [column_name(h) for h in header]
    if separator is not None:  # every row would be "malformed": say why once, for the whole file
        raise UnreadableFile(f"the header is one column {header[0][:80]!r} holding {separator!r}: CSV files must be "
                             f"comma-separated; save it as CSV with commas (or as JSON Lines or Parquet)")
    if len(set(header)) != len(header):
        raise UnreadableFile(f"duplicate column names in header (compared as they print: trimmed, invisible "
                             f"characters dropped): {header}")
    rows, numbers, bad = [], [], []
    lines: list[str] | None = None  # the physical lines, split only once an unclosed quote is met
    base, i = 0, 0  # the physical line the current reader started at; records read so far
    while True:
        first = base + reader.line_num  # physical line index where the next record starts
        try:
            rec = next(reader)
        except StopIteration:
            break
        i += 1
        spanned = base + reader.line_num - first
        if any("\n" in f or "\r" in f for f in rec):  # a quoted line end, or an unclosed quote
            lines = lines if lines is not None else list(_io.StringIO(text, newline=""))
            if len(rec) != len(header) and spanned > 1 or _unclosed_quote(lines[first:first + spanned]):
                bad.append((i, lines[first].rstrip("\r\n")[:10_000],
                            "malformed CSV record: a quote opened in this row is never closed"))
                base = first + 1
                reader = csv.reader(iter(lines[base:]))
                continue
        if len(rec) != len(header):
            if not any(field.strip() for field in rec):
                continue  # blank line
            bad.append((i, json.dumps(rec), f"malformed CSV record: {len(rec)} fields, header has {len(header)}"))
            continue
        rows.append(rec)
        numbers.append(i)
    frame = pd.DataFrame(rows, columns=header, dtype=object).replace({"": None})
    return with_row_numbers(frame, numbers), bad


def _unclosed_quote(record_lines: list[str]) -> bool:
    """Whether these lines (one record as the lenient reader took it) end inside a quoted field."""
    import csv

    try:
        for _ in csv.reader(record_lines, strict=True):
            pass
    except csv.Error as e:
        return "unexpected end of data" in str(e)
    return False


def _jsonl(text: str) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    records, numbers, bad = [], [], []
    first = next((ln.strip() for ln in text.split("\n") if ln.strip()), "")
    if first.startswith("[") and not first.endswith("]"):
        # a JSON array written over several lines: its lines are no events, and counting them as source rows
        # (each one "malformed") would make the accounting count lines, not events
        raise UnreadableFile("a JSON array over several lines, not JSON Lines: write one JSON object per line "
                             "(e.g. `jq -c '.[]' file.json > file.jsonl`)")
    # split on line feeds only: str.splitlines() would also split inside JSON strings at U+2028, U+2029,
    # U+0085, form feeds, ... (valid unescaped there), cutting one event into two bad lines
    for i, line in enumerate((ln.removesuffix("\r") for ln in text.split("\n")), start=1):
        if not line.strip():
            continue
        try:
            rec, why = _json_record(line)
        except RecursionError:  # one line nested deeper than Python's parser goes: that line, not the file
            rec, why = None, "malformed JSON line: nested too deeply to read"
        if why is not None:
            bad.append((i, line[:10_000], why))
            continue
        records.append(rec)
        numbers.append(i)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return with_row_numbers(frame, numbers), bad


def _json_record(line: str) -> tuple[dict | None, str | None]:
    """One JSON line as a record (top-level keys as column names, nested values as their JSON text), or why not."""
    try:
        # a number's exact text: 1e20 stays "1e20" (not "1e+20"), -0 stays "-0" (not "0")
        rec = json.loads(line, parse_float=str, parse_int=str, parse_constant=str, object_pairs_hook=_object)
    except json.JSONDecodeError as e:
        return None, f"malformed JSON line: {e.msg}"
    except _DuplicateKey as e:
        return None, f"malformed JSON line: key {e} appears twice (which value is meant?)"
    if not isinstance(rec, dict):
        return None, "malformed JSON line: not an object"
    named = {column_name(k): v for k, v in rec.items()}
    if len(named) != len(rec):  # two keys that print the same: as ambiguous as one key twice
        twice = next(n for n in named if sum(column_name(k) == n for k in rec) > 1)
        return None, f"malformed JSON line: key {twice!r} appears twice (which value is meant?)"
    if "\\u" in line and _has_surrogate(named):  # only an escape can bring one into decoded UTF-8 text
        return None, ("malformed JSON line: a \\uD800-\\uDFFF escape that is not half of a surrogate pair (not a "
                      "character; cannot be stored as UTF-8)")
    return {k: (None if v is None else v if isinstance(v, str) else JsonValue(json.dumps(v)))
            for k, v in named.items()}, None


class _DuplicateKey(ValueError):
    """A JSON object with one key twice: json.loads would silently keep the last value."""


def _object(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(repr(next(k for k, _ in pairs if k in seen or seen.add(k))))
    return out


def _has_surrogate(value) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def needs_a_person(e: BaseException) -> bool:
    """An environment failure (disk full, read-only or forbidden folder, out of memory), not a bad file."""
    from storage.tracking import NEEDS_A_PERSON

    return isinstance(e, MemoryError) or isinstance(e, OSError) and e.errno in NEEDS_A_PERSON


MAX_NAME_BYTES = 255 - len(".tmp") - len(".error.json") - 1  # the longest name rejected/ can hold with its companions


def _fit_name(name: str) -> str:
    """`name` cut (in the middle, keeping its suffixes) to fit a file system's 255-byte names with room for
    `.NAME.tmp` and `NAME.error.json`: a long but legal landing name must not stop its own rejection."""
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = "".join(Path(name).suffixes[-2:])[-40:]
    head = name.encode()[: MAX_NAME_BYTES - len(keep.encode()) - len(digest) - 2].decode(errors="ignore")
    return f"{head}~{digest}{keep}"


def move_aside(paths: Paths, path: Path, error: str, when: pd.Timestamp,
               read: tuple[int, int, int] | None = None, landing: Path | None = None) -> Path | None:
    """Put an unreadable file in rejected/ with its error; a file of landing/ is moved there (its marker
    removed), any other file copied. Returns where it went, or None if it was left in landing/ because it
    changed since it was read (`read`: its size, mtime and ctime then): a writer still at work.

    A landing file is renamed, not copied and deleted: a writer still holding it open then writes on into
    the file in rejected/, never into an inode no folder names any more (the only copy of a delivery lost).
    """
    target = paths.rejected / _fit_name(f"{when.strftime('%Y%m%dT%H%M%S')}-{path.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.resolve() == (paths.landing if landing is None else landing).resolve():
        moved = False  # landing/ on another file system, or a symlink (it could dangle in rejected/): copied,
        if not path.is_symlink():  # and deleted only if unchanged
            try:
                os.rename(path, target)
                moved = True
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
        if moved:
            # size and mtime only: the rename itself moves the ctime
            if read is not None and _signature(target.stat())[:2] != read[:2] and not path.exists():
                os.rename(target, path)  # changed since it was read: not what was judged; read again later
                return None
        else:
            _copy_into(path, target)
            if read is not None and _signature(path.stat())[:2] != read[:2]:
                target.unlink()
                return None
            path.unlink()
        marker_path(path).unlink(missing_ok=True)
    else:
        _copy_into(path, target)
    write_json_atomic({"file": display_name(path), "error": error, "rejected_at": when.isoformat()},
                      target.with_name(target.name + ".error.json"))
    return target


def _copy_into(path: Path, target: Path) -> None:
    shutil.copy2(path, target.with_name(f".{target.name}.tmp"))
    os.replace(target.with_name(f".{target.name}.tmp"), target)

"""The bad-input corpus: one named case per row, every contract column and every file format.

Each case is a whole file through `ingest_file` (reader, normalisation, the real GX suite, dedupe,
commit) and asserts its exact outcome: the status, rows in = stored + quarantined + duplicates (+ identical rows),
the quarantine reasons with their counts, and for stored rows the values they were stored with.
"""

from __future__ import annotations

import gzip
import io as _io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.ingest import ingest_file
from ingestion.normalize import DRESSED_NUMBER
from storage import store
from tests.conftest import NOW, config

H = "event_id,customer_id,event_type,event_time,amount\n"
GOOD = "e1,c1,purchase,2024-03-01T10:00:00Z,12.50\n"
TYPES = "not one of visit, purchase, return, complaint"
BIG = 10 * 1024 * 1024  # a 10 MB single line


def parquet(table: dict | pa.Table) -> bytes:
    buf = _io.BytesIO()
    pq.write_table(table if isinstance(table, pa.Table) else pa.table(table), buf)
    return buf.getvalue()


def jsonl(*records) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records).encode() + b"\n"


ROW = {"event_id": "e1", "customer_id": "c1", "event_type": "purchase", "event_time": "2024-03-01T10:00:00Z",
       "amount": 12.5}


def case(name, file, content, counts, reasons=None, *, status="ingested", error=None, stored=None, tz="UTC",
         mapping=None):
    """counts = (rows_in, stored, quarantined, duplicates[, identical_rows]); stored = {event_id: {column: value}}.

    `mapping` is the text of a mapping file (TOML) used for this file only.
    """
    return pytest.param(file, content, counts, reasons or {}, status, error, stored or {}, tz, mapping, id=name)


def ids_through(fmt: str, column: str, values: list[str]) -> bytes:
    """One visit per value, with `values[i]` in `column` (the others fixed), as a CSV, JSONL or Parquet file."""
    rows = [{"event_id": f"e{i}", "customer_id": "c1", "order_id": "o1", "event_type": "visit",
             "event_time": "2024-03-02T10:00:00Z", column: v} for i, v in enumerate(values)]
    if fmt == "parquet":
        return parquet(pa.Table.from_pylist(rows))
    if fmt == "jsonl":
        return jsonl(*rows)
    buf = _io.StringIO()
    import csv

    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


# Unicode identifiers: surrounding whitespace of any kind is trimmed (str.strip()); any character of
# category Cc (C0 and C1 controls) or Cf (format: zero-width space, BOM, bidi controls) inside is refused
ID_WHITESPACE = ["\u00a0k1", "k2\u2007", "\u202fk3\u3000", "\u2003k4 \t"]
ID_FORMAT_OR_CONTROL = ["k\u0085x", "k\u009fx", "k\u200bx", "\ufeffkx", "k\u202ex", "k\u2066x", "k\u00adx",
                        # default-ignorable, rendered as nothing: variation selector, Hangul filler, CGJ, tag
                        "k\ufe0fx", "k\u3164x", "\uffa0kx", "k\u034fx", "k\U000e0041x",
                        # line and paragraph separators (Zl, Zp): a line break inside an id
                        "k\u2028x", "k\u2029x"]
# inside an id, a run of any Unicode space (Zs: space, NBSP, EN SPACE, NARROW NBSP, ideographic space, ...)
# prints as a space: it is one U+0020
ID_INNER_SPACES = ["k 5", "k\u00a05", "k\u20025", "k\u202f5", "k  5", "k \u3000 5"]


def id_cases() -> list:
    out = []
    for fmt in ("csv", "jsonl", "parquet"):
        for column in ("customer_id", "event_id", "order_id"):
            values = ID_WHITESPACE + ID_FORMAT_OR_CONTROL
            n_bad = len(ID_FORMAT_OR_CONTROL)
            stored = ({f"k{i + 1}": {"customer_id": "c1"} for i in range(len(ID_WHITESPACE))} if column == "event_id"
                      else {f"e{i}": {column: f"k{i + 1}"} for i in range(len(ID_WHITESPACE))})
            out.append(case(f"{column} unicode whitespace trimmed, Cc/Cf refused ({fmt})", f"uid.{fmt}",
                            ids_through(fmt, column, values), (len(values), len(ID_WHITESPACE), n_bad, 0),
                            {f"{column}: contains control or invisible characters": n_bad}, stored=stored))
        out.append(case(f"customer_id inner spaces of any kind are one space ({fmt})", f"sp.{fmt}",
                        ids_through(fmt, "customer_id", ID_INNER_SPACES), (6, 6, 0, 0),
                        stored={f"e{i}": {"customer_id": "k 5"} for i in range(len(ID_INNER_SPACES))}))
    return out


CASES = [
    # ---- file level: formats, encodings, framing
    case("zero-byte csv", "z.csv", b"", (0, 0, 0, 0)),
    case("zero-byte jsonl", "z.jsonl", b"", (0, 0, 0, 0)),
    case("header only csv", "h.csv", H.encode(), (0, 0, 0, 0)),
    case("utf-8 BOM", "bom.csv", b"\xef\xbb\xbf" + (H + GOOD).encode(), (1, 1, 0, 0),
         stored={"e1": {"customer_id": "c1", "amount": 12.5}}),
    case("CRLF line endings", "crlf.csv", (H + GOOD + "e2,c1,visit,2024-03-02T10:00:00Z,\n").replace("\n", "\r\n").encode(),
         (2, 2, 0, 0), stored={"e2": {"event_type": "visit"}}),
    case("gzip csv", "g.csv.gz", gzip.compress((H + GOOD).encode()), (1, 1, 0, 0)),
    case("gzip jsonl", "g.jsonl.gz", gzip.compress(jsonl(ROW)), (1, 1, 0, 0)),
    case("gzip parquet", "g.parquet.gz", gzip.compress(parquet({k: [v] for k, v in ROW.items()})), (1, 1, 0, 0)),
    case("corrupt gzip", "bad.csv.gz", b"\x1f\x8b\x08\x00garbage", (0, 0, 0, 0), status="rejected",
         error="corrupt gzip stream"),
    case("latin-1 bytes", "latin.csv", (H + "e1,Müller,purchase,2024-03-01T10:00:00Z,1\n").encode("latin-1"),
         (0, 0, 0, 0), status="rejected", error="not UTF-8 text"),
    case("duplicate header columns", "dup.csv", b"customer_id,customer_id,event_type,event_time\n", (0, 0, 0, 0),
         status="rejected", error="duplicate column names"),
    case("required column missing", "nocol.csv", b"customer_id,event_type\nc1,visit\n", (0, 0, 0, 0),
         status="rejected", error="event_time"),
    case("truncated parquet", "t.parquet", parquet({k: [v] for k, v in ROW.items()})[:-20], (0, 0, 0, 0),
         status="rejected", error="not a readable Parquet file"),
    case("unsupported extension", "x.xlsx", b"PK\x03\x04", (0, 0, 0, 0), status="rejected",
         error="unsupported file type"),
    case("too many and too few fields", "ragged.csv", (H + GOOD + "e2,c1,visit,2024-03-02T10:00:00Z,,extra\n"
                                                      + "e3,c1,visit\n").encode(), (3, 1, 2, 0),
         {"malformed CSV record: 6 fields, header has 5": 1, "malformed CSV record: 3 fields, header has 5": 1}),
    *[case(f"unclosed quote {where} swallows no rows", f"quote-{k}.csv", (H + text).encode(), counts,
           {"malformed CSV record: a quote opened in this row is never closed": counts[2]},
           stored={"e9": {"amount": 9.0}} if counts[1] == 3 else {})
      for k, (where, text, counts) in enumerate([
          ("mid-file", 'e2,"c2,visit,2024-03-02T10:00:00Z,\n' + GOOD + "e8,c8,visit,2024-03-03T10:00:00Z,\n"
           "e9,c9,purchase,2024-03-03T11:00:00Z,9\n", (4, 3, 1, 0)),
          ("twice, CRLF", 'e2,"c2,visit,2024-03-02T10:00:00Z,\r\n' + GOOD.replace("\n", "\r\n")
           + '"e7,c7,visit,2024-03-03T10:00:00Z,\r\ne8,c8,visit,2024-03-03T10:00:00Z,\r\n'
           "e9,c9,purchase,2024-03-03T11:00:00Z,9\r\n", (5, 3, 2, 0)),
          ("in the last row", GOOD + 'e2,c2,visit,2024-03-02T10:00:00Z,"5\n', (2, 1, 1, 0))])],
    case("a quoted line end inside a value is one row", "multiline.csv",
         (H + GOOD + 'e2,"c\n2",visit,2024-03-02T10:00:00Z,\n').encode(), (2, 1, 1, 0),
         {"customer_id: contains control or invisible characters": 1}),
    case("10 MB single line in an id", "long.csv", (H + GOOD + f"e2,{'c' * BIG},visit,2024-03-02T10:00:00Z,\n").encode(),
         (2, 1, 1, 0), {"customer_id: longer than 256 characters": 1}),
    case("10 MB single line in an unknown column", "longx.csv",
         ("note," + H).encode() + b"x" * BIG + b"," + GOOD.encode(), (1, 1, 0, 0),
         stored={"e1": {"customer_id": "c1"}}),
    case("10,000 extra columns", "wide.csv",
         (",".join(f"x{i}" for i in range(10_000)) + "," + H + ",".join("1" * 10_000) + "," + GOOD).encode(),
         (1, 1, 0, 0)),
    case("blank lines are not rows", "blank.csv", (H + "\n" + GOOD + "\n\n").encode(), (1, 1, 0, 0)),
    case("malformed and non-object json lines", "m.jsonl", jsonl(ROW, "{not json", "[1, 2]"), (3, 1, 2, 0),
         {"malformed JSON line: Expecting property name enclosed in double quotes": 1,
          "malformed JSON line: not an object": 1}),
    # ---- event_id
    case("event_id repeated in the file", "rep.csv", (H + GOOD + GOOD).encode(), (2, 1, 0, 1)),
    case("event_id with a newline inside quotes", "nl.csv", (H + '"e\n1",c1,visit,2024-03-02T10:00:00Z,\n').encode(),
         (1, 0, 1, 0), {"event_id: contains control or invisible characters": 1}),
    case("event_id absent: identical rows are one event, counted as identical rows, not duplicates", "noid.csv",
         b"customer_id,event_type,event_time\nc1,visit,2024-03-02T10:00:00Z\nc1,visit,2024-03-02T10:00:00Z\n",
         (2, 1, 0, 0, 1)),
    case("event_id absent in some rows: a repeated source id is a duplicate, identical id-less rows are not",
         "mixed.csv", (H + GOOD + GOOD + ",c2,purchase,2024-03-01T10:00:00Z,5\n,c2,purchase,2024-03-01T10:00:00Z,5\n"
                       ",c2,purchase,2024-03-01T10:00:00Z,5\n").encode(), (5, 2, 0, 1, 2)),
    # ---- customer_id
    case("customer_id with surrounding whitespace is trimmed", "ws.csv",
         (H + "e1,  c1\t ,visit,2024-03-02T10:00:00Z,\n").encode(), (1, 1, 0, 0), stored={"e1": {"customer_id": "c1"}}),
    case("customer_id with a control character", "ctl.csv", (H + "e1,c\x071,visit,2024-03-02T10:00:00Z,\n").encode(),
         (1, 0, 1, 0), {"customer_id: contains control or invisible characters": 1}),
    case("customer_id with a NUL byte", "nul.csv", (H + "e1,c\x001,visit,2024-03-02T10:00:00Z,\n").encode(),
         (1, 0, 1, 0), {"customer_id: contains control or invisible characters": 1}),
    case("customer_id blank", "blankid.csv", (H + 'e1," ",visit,2024-03-02T10:00:00Z,\n').encode(),
         (1, 0, 1, 0), {"customer_id: empty or blank": 1}),
    case("customer_id with leading zeros stays text", "zeros.jsonl",
         jsonl({**ROW, "customer_id": "000123"}, {**ROW, "event_id": "e2", "customer_id": 123}), (2, 2, 0, 0),
         stored={"e1": {"customer_id": "000123"}, "e2": {"customer_id": "123"}}),
    # ---- event_type
    case("event_type in another case and padded", "case.csv", (H + "e1,c1, PURCHASE ,2024-03-01T10:00:00Z,5\n").encode(),
         (1, 1, 0, 0), stored={"e1": {"event_type": "purchase"}}),
    case("event_type unknown", "type.csv", (H + "e1,c1,browse,2024-03-01T10:00:00Z,\n").encode(), (1, 0, 1, 0),
         {f"event_type: {TYPES}": 1}),
    # ---- event_time
    case("mixed time zones in one file", "zones.csv", (H + "e1,c1,visit,2024-03-01T10:00:00Z,\n"
                                                      "e2,c1,visit,2024-03-01T10:00:00+05:30,\n"
                                                      "e3,c1,visit,2024-03-01T10:00:00-08:00,\n"
                                                      "e4,c1,visit,2024-03-01 10:00:00,\n").encode(), (4, 4, 0, 0),
         stored={"e1": {"event_time": pd.Timestamp("2024-03-01T10:00Z")},
                 "e2": {"event_time": pd.Timestamp("2024-03-01T04:30Z")},
                 "e3": {"event_time": pd.Timestamp("2024-03-01T18:00Z")},
                 "e4": {"event_time": pd.Timestamp("2024-03-01T10:00Z")}}),
    case("compact ISO times with an offset beside naive times", "compact.csv",
         (H + "e1,c1,visit,20240301T100000Z,\ne2,c1,visit,2024-03-01,\ne3,c1,visit,20240301T100000+0200,\n"
          "e4,c1,visit,2024-03-01 09:00:00,\n").encode(), (4, 4, 0, 0),
         stored={"e1": {"event_time": pd.Timestamp("2024-03-01T10:00Z")},
                 "e2": {"event_time": pd.Timestamp("2024-03-01T00:00Z")},
                 "e3": {"event_time": pd.Timestamp("2024-03-01T08:00Z")},
                 "e4": {"event_time": pd.Timestamp("2024-03-01T09:00Z")}}),
    case("daylight-saving gap and repeated hour (Europe/London)", "dst.csv",
         (H + "e1,c1,visit,2024-03-31 01:30:00,\ne2,c1,visit,2024-10-27 01:30:00,\n").encode(), (2, 2, 0, 0),
         stored={"e1": {"event_time": pd.Timestamp("2024-03-31T01:00Z")},
                 "e2": {"event_time": pd.Timestamp("2024-10-27T00:30Z")}}, tz="Europe/London"),
    case("event_time unparseable, before 1990, in the future", "times.csv",
         (H + "e1,c1,visit,31/02/2024,\ne2,c1,visit,1989-12-31T23:59:59Z,\ne3,c1,visit,2025-06-03T00:00:00Z,\n"
          "e4,c1,visit,2025-06-02T11:00:00Z,\n").encode(), (4, 1, 3, 0),
         {"event_time: unparseable": 1, "event_time: before 1990-01-01": 1, "event_time: in the future": 1}),
    case("event_time as epoch integers in parquet", "epoch.parquet",
         parquet({"customer_id": ["c1"], "event_type": ["visit"], "event_time": pa.array([1709287200], pa.int64())}),
         (1, 0, 1, 0), {"event_time: unparseable": 1}),
    # ---- amount
    case("amount NaN, inf, -inf in parquet", "nan.parquet",
         parquet({"event_id": ["e1", "e2", "e3", "e4"], "customer_id": ["c1"] * 4, "event_type": ["purchase"] * 4,
                  "event_time": pa.array([pd.Timestamp("2024-03-01T10:00Z")] * 4, pa.timestamp("us", tz="UTC")),
                  "amount": [float("nan"), float("inf"), float("-inf"), 3.0]}), (4, 1, 3, 0),
         {"amount: not a finite number": 3}),
    case("amount NaN and inf as text", "nan.csv", (H + "e1,c1,purchase,2024-03-01T10:00:00Z,NaN\n"
                                                  "e2,c1,purchase,2024-03-01T10:00:00Z,Infinity\n").encode(),
         (2, 0, 2, 0), {"amount: not a finite number": 2}),
    case("amount with a thousands separator or currency sign", "fmt.csv",
         (H + 'e1,c1,purchase,2024-03-01T10:00:00Z,"1,234.50"\ne2,c1,purchase,2024-03-01T10:00:00Z,$5\n'
          'e3,c1,purchase,2024-03-01T10:00:00Z,1e3\n').encode(), (3, 1, 2, 0),
         {f"amount: {DRESSED_NUMBER}": 2}, stored={"e3": {"amount": 1000.0}}),
    case("amount missing on a purchase, present on a visit, negative", "amt.csv",
         (H + "e1,c1,purchase,2024-03-01T10:00:00Z,\ne2,c1,visit,2024-03-01T10:00:00Z,4\n"
          "e3,c1,return,2024-03-01T10:00:00Z,-1\n").encode(), (3, 0, 3, 0),
         {"amount: missing for purchase/return": 1, "amount: must be empty for visit/complaint": 1,
          "amount: below 0": 1}),
    case("amount beyond what the feature build sums exactly (one such row would stop every scoring run)",
         "huge.csv", (H + "e1,c1,purchase,2024-03-01T10:00:00Z,200000000000000\n"
                     "e2,c1,purchase,2024-03-01T10:00:00Z,1e308\ne3,c1,purchase,2024-03-01T10:00:00Z,999999999999\n"
                     ).encode(), (3, 1, 2, 0), {"amount: above 1e+12": 2}, stored={"e3": {"amount": 999999999999.0}}),
    case("amount too small for a float (1e-400) is never stored as 0", "tiny.csv",
         (H + "e1,c1,purchase,2024-03-01T10:00:00Z,1e-400\ne2,c1,purchase,2024-03-01T10:00:00Z,0e-400\n"
          "e3,c1,purchase,2024-03-01T10:00:00Z,0.000\n").encode(), (3, 2, 1, 0),
         {"amount: too small to hold (below about 1e-308 a float would store 0)": 1},
         stored={"e2": {"amount": 0.0}, "e3": {"amount": 0.0}}),
    case("amount too small for a float in JSON", "tiny.jsonl", jsonl('{"event_id": "e1", "customer_id": "c1", '
                                                                    '"event_type": "purchase", "event_time": '
                                                                    '"2024-03-01T10:00:00Z", "amount": 1e-400}'),
         (1, 0, 1, 0), {"amount: too small to hold (below about 1e-308 a float would store 0)": 1}),
    case("amount as a JSON object", "obj.jsonl", jsonl({**ROW, "amount": {"value": 1}}), (1, 0, 1, 0),
         {"amount: not a finite number": 1}),
    # ---- discount, quantity, order_id, channel, category
    case("discount and quantity out of range or not numbers", "dq.csv",
         (H.strip() + ",discount,quantity\n" + "e1,c1,purchase,2024-03-01T10:00:00Z,1,1.5,1\n"
          "e2,c1,purchase,2024-03-01T10:00:00Z,1,50%,1\ne3,c1,purchase,2024-03-01T10:00:00Z,1,0.1,-3\n"
          "e4,c1,purchase,2024-03-01T10:00:00Z,1,0.1,two\ne5,c1,purchase,2024-03-01T10:00:00Z,1,0.25,2\n").encode(),
         (5, 1, 4, 0), {"discount: above 1": 1, f"discount: {DRESSED_NUMBER}": 1, "quantity: below 0": 1,
                        "quantity: not a finite number": 1}, stored={"e5": {"discount": 0.25, "quantity": 2.0}}),
    case("order_id, channel, category: control characters and 10 KB labels", "labels.jsonl",
         jsonl({**ROW, "order_id": "o\x1b1"}, {**ROW, "event_id": "e2", "channel": "w" * 10_000},
               {**ROW, "event_id": "e3", "category": "=HYPERLINK(\"x\")", "channel": "web"}), (3, 1, 2, 0),
         {"order_id: contains control or invisible characters": 1, "channel: longer than 256 characters": 1},
         stored={"e3": {"category": "=HYPERLINK(\"x\")", "channel": "web"}}),
    # ---- files that used to crash the whole run: reserved column names, ids that are not exact text,
    # mapping files of the wrong shape or with an unknown time zone
    *[case(f"source column named {name!r} (used internally)", "reserved.csv",
           (f"{name}," + H + "x," + GOOD + "y,e2,c1,visit,2024-03-02T10:00:00Z,\n").encode(), (2, 2, 0, 0),
           stored={"e1": {"customer_id": "c1"}, "e2": {"event_type": "visit"}})
      for name in ("_row", "_rows", "__gx_row__", "ingest_batch", "event_month", "_inv", "_cust")],
    case("online-retail-like internal names in a parquet file", "reserved.parquet",
         parquet({**{k: [v] for k, v in ROW.items()}, "_row": [7], "_rows": ["x"], "__gx_row__": [None]}), (1, 1, 0, 0),
         stored={"e1": {"amount": 12.5}}),
    case("customer_id as a float that is not an exact whole number (parquet)", "fid.parquet",
         parquet({"event_id": ["e1", "e2", "e3", "e4", "e5", "e6"], "customer_id": [1e20, float("inf"), float("nan"),
                                                                                   1.5, 42.0, None],
                  "event_type": ["visit"] * 6, "event_time": ["2024-03-02T10:00:00Z"] * 6}), (6, 1, 5, 0),
         {"customer_id: a number that cannot be kept exactly as text (NaN, infinity, a fraction or beyond 2^53)": 4,
          "customer_id: missing": 1}, stored={"e5": {"customer_id": "42"}}),
    case("customer_id as huge, NaN and infinite JSON numbers", "fid.jsonl",
         b'{"event_id": "e1", "customer_id": 1e20, "event_type": "visit", "event_time": "2024-03-02T10:00:00Z"}\n'
         b'{"event_id": "e2", "customer_id": NaN, "event_type": "visit", "event_time": "2024-03-02T10:00:00Z"}\n'
         b'{"event_id": "e3", "customer_id": -Infinity, "event_type": "visit", "event_time": "2024-03-02T10:00:00Z"}\n'
         b'{"event_id": "e4", "customer_id": 12345678901234567891, "event_type": "visit", '
         b'"event_time": "2024-03-02T10:00:00Z"}\n', (4, 2, 2, 0),
         {"customer_id: a number that cannot be kept exactly as text (NaN, infinity, a fraction or beyond 2^53)": 2},
         stored={"e1": {"customer_id": "1e20"}, "e4": {"customer_id": "12345678901234567891"}}),
    case("ids in Unicode normal form NFC: composed and decomposed accents are one id", "nfc.csv",
         (H + "caf\u00e9-1,caf\u00e9,visit,2024-03-02T10:00:00Z,\n"
          "cafe\u0301-1,cafe\u0301,visit,2024-03-02T10:00:00Z,\n"
          "e3,cafe\u0301,visit,2024-03-03T10:00:00Z,\n").encode(), (3, 2, 0, 1),
         stored={"caf\u00e9-1": {"customer_id": "caf\u00e9"}, "e3": {"customer_id": "caf\u00e9"}}),
    case("JSON ids that are objects, arrays or booleans; -0 keeps its text", "jid.jsonl",
         jsonl(*[{**ROW, "event_id": f"e{i}", "customer_id": v}
                 for i, v in enumerate([{"id": 1}, [1, 2], True, False, 0, -0.0, 7])],
               '{"event_id": "e9", "customer_id": -0, "event_type": "visit", "event_time": "2024-03-02T10:00:00Z"}',
               {**ROW, "event_id": {"x": 1}}, {**ROW, "event_id": "e10", "order_id": True}), (10, 4, 6, 0),
         {"customer_id: not text or a number (a JSON object, array or boolean, or a binary value)": 4,
          "event_id: not text or a number (a JSON object, array or boolean, or a binary value)": 1,
          "order_id: not text or a number (a JSON object, array or boolean, or a binary value)": 1},
         stored={"e4": {"customer_id": "0"}, "e5": {"customer_id": "-0.0"}, "e6": {"customer_id": "7"},
                 "e9": {"customer_id": "-0"}}),
    case("Parquet ids that are booleans, bytes or lists", "pid.parquet",
         parquet(pa.table({"event_id": ["e1", "e2", "e3"], "customer_id": [True, False, None],
                           "order_id": pa.array([b"o1", None, None], pa.binary()),
                           "event_type": ["visit"] * 3, "event_time": ["2024-03-02T10:00:00Z"] * 3})), (3, 0, 3, 0),
         {"customer_id: not text or a number (a JSON object, array or boolean, or a binary value)": 2,
          "customer_id: missing": 1}),
    case("a lone surrogate escape in one JSON line rejects that line, not the file", "sur.jsonl",
         jsonl('{"event_id": "e9", "customer_id": "c\\ud800", "event_type": "visit", '
               '"event_time": "2024-03-02T10:00:00Z"}', ROW,
               '{"event_id": "e8", "customer_id": "c\\ud83d\\ude00", "event_type": "visit", '
               '"event_time": "2024-03-02T10:00:00Z"}'), (3, 2, 1, 0),
         {"malformed JSON line: a \\uD800-\\uDFFF escape that is not half of a surrogate pair (not a character; "
          "cannot be stored as UTF-8)": 1}, stored={"e8": {"customer_id": "c\U0001f600"}}),
    case("JSON strings holding U+2028, U+2029, U+0085 and a form feed stay one line", "ls.jsonl",
         jsonl({**ROW, "channel": "a\u2028b"}, {**ROW, "event_id": "e2", "category": "c\u2029d\u0085e\x0cf"}),
         (2, 2, 0, 0), stored={"e1": {"channel": "a\u2028b"}, "e2": {"category": "c\u2029d\u0085e\x0cf"}}),
    case("mapping with a time zone that does not exist", "tzm.csv", (H + GOOD).encode(), (0, 0, 0, 0),
         status="rejected", error="unknown time zone 'Mars/Olympus'", mapping='[time]\ntimezone = "Mars/Olympus"\n'),
    case("mapping [columns] is not a table", "m1.csv", (H + GOOD).encode(), (0, 0, 0, 0), status="rejected",
         error="[columns] must be a table", mapping='columns = "x"\n'),
    case("mapping [values] event_type is not a table", "m2.csv", (H + GOOD).encode(), (0, 0, 0, 0),
         status="rejected", error="[values.event_type] must be a table", mapping="[values]\nevent_type = 3\n"),
    case("mapping [time] format is not text", "m3.csv", (H + GOOD).encode(), (0, 0, 0, 0), status="rejected",
         error="[time] format must be a string", mapping="[time]\nformat = 5\n"),
    case("mapping [time] is not a table", "m4.csv", (H + GOOD).encode(), (0, 0, 0, 0), status="rejected",
         error="[time] must be a table", mapping='time = "UTC"\n'),
    case("mapping maps a contract column to a list", "m5.csv", (H + GOOD).encode(), (0, 0, 0, 0), status="rejected",
         error="[columns] customer_id must be a source column name", mapping='[columns]\ncustomer_id = ["a", "b"]\n'),
    case("mapping with an unknown [time] key", "m6.csv", (H + GOOD).encode(), (0, 0, 0, 0), status="rejected",
         error="unknown [time] keys ['zone']", mapping='[time]\nzone = "UTC"\n'),
    case("mapping with a time format that cannot be applied", "fmt2.csv",
         (H + "e1,c1,visit,2024-03-02 10:00,\n").encode(), (0, 0, 0, 0), status="rejected",
         error="'Q' is a bad directive", mapping='[time]\nformat = "%Q%Q"\n'),
    *id_cases(),
    # ---- header names follow the id rule (NFC, trimmed, invisible characters dropped): a source column is
    # recognised, never silently dropped (its ids replaced by derived ones); two names that print the same clash
    *[case(f"header name with {what} ({fmt})", f"hdr.{fmt}", content, (2, 2, 0, 0),
           stored={"e1": {"customer_id": "c1"}, "e2": {"customer_id": "c1"}})
      for what, header in (("a zero-width space", "\u200bevent_id"), ("a second BOM", "\ufeffevent_id"),
                           ("NBSP padding", "\u00a0event_id\u00a0"), ("a word joiner", "event\u2060_id"))
      for fmt, content in (
          ("csv", (("\ufeff" + header + "," + H.split(",", 1)[1]) + "e1,c1,purchase,2024-03-01T10:00:00Z,5\n"
                   "e2,c1,purchase,2024-03-01T10:00:00Z,5\n").encode()),
          ("jsonl", jsonl({**{k: v for k, v in ROW.items() if k != "event_id"}, header: "e1"},
                          {**{k: v for k, v in ROW.items() if k != "event_id"}, header: "e2"})),
          ("parquet", parquet({header: ["e1", "e2"], **{k: [v, v] for k, v in ROW.items() if k != "event_id"}})))],
    case("a JSON key given twice (or two keys that print the same) quarantines that line", "dupkey.jsonl",
         jsonl('{"event_id": "e1", "customer_id": "x", "customer_id": "c2", "event_type": "visit", '
               '"event_time": "2024-03-02T10:00:00Z"}',
               '{"event_id": "e2", "\\u200bevent_id": "e3", "customer_id": "c2", "event_type": "visit", '
               '"event_time": "2024-03-02T10:00:00Z"}', {**ROW, "event_id": "e4"}), (3, 1, 2, 0),
         {"malformed JSON line: key 'customer_id' appears twice (which value is meant?)": 1,
          "malformed JSON line: key 'event_id' appears twice (which value is meant?)": 1}),
    # ---- a problem of one line or of the file's name never rejects the whole file
    case("a file name that is not UTF-8 (latin-1 bytes, as from SMB or Windows exports)", "caf\udce9.csv",
         (H + GOOD + "e2,c2,explode,2024-03-01T10:00:00Z,\n").encode(), (2, 1, 1, 0), {f"event_type: {TYPES}": 1}),
    case("one JSON line nested 100,000 deep is that line quarantined", "deep.jsonl",
         jsonl('{"event_id": "k1", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", ROW), (2, 1, 1, 0),
         {"malformed JSON line: nested too deeply to read": 1}),
    case("two header names that print the same", "hdr2.csv",
         ("event_id,\u200bevent_id," + H.split(",", 1)[1] + "e1,e2,c1,visit,2024-03-01T10:00:00Z,\n").encode(),
         (0, 0, 0, 0), status="rejected", error="duplicate column names"),
]


@pytest.mark.parametrize("file, content, counts, reasons, status, error, stored, tz, mapping", CASES)
def test_bad_input_case(paths, file, content, counts, reasons, status, error, stored, tz, mapping):
    src = paths.landing / file
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(content)
    mapping_file = None
    if mapping is not None:
        mapping_file = paths.home / "mapping.toml"
        mapping_file.write_text(mapping)
    r = ingest_file(config(paths, "ingest"), src, now=NOW, timezone=tz, mapping=mapping_file)
    assert r["status"] == status, r.get("error")
    counts = (*counts, 0) if len(counts) == 4 else counts
    assert (r["rows_in"], r["stored"], r["quarantined"], r["duplicates"], r["identical_rows"]) == counts
    assert r["rows_in"] == r["stored"] + r["quarantined"] + r["duplicates"] + r["identical_rows"]
    assert r["reasons"] == reasons
    if status == "rejected":
        assert error in r["error"]
        moved = sorted(p.name for p in paths.rejected.iterdir())  # moved aside whole, with its error beside it
        assert not src.exists() and moved == [f"20250601T120000-{file}", f"20250601T120000-{file}.error.json"]
        assert not store.event_files(paths)
        return
    events = store.read_events(paths).set_index("event_id")
    assert len(events) == counts[1] and events.index.is_unique
    for event_id, values in stored.items():
        for column, value in values.items():
            assert events.loc[event_id, column] == value, (event_id, column)
    q = store.read_quarantine(paths) if counts[2] else None
    if q is not None:  # every quarantined row keeps its reason and its original values
        assert q["source_rows"].sum() == counts[2] and q["original"].str.len().gt(0).all()


def test_the_corpus_has_at_least_30_distinct_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 30


def test_files_that_used_to_crash_the_run_are_set_aside_and_the_good_file_of_the_same_run_is_stored(
        paths, prefect_harness, monkeypatch):
    """One sweep over a good file and files that each crashed the whole run: no traceback, the good file
    stored, each bad file rejected with its reason (or its bad rows quarantined)."""
    import errno

    import flows.ingest as ingest_module
    from flows.ingest import ingest_flow

    paths.landing.mkdir(parents=True)
    (paths.landing / "a-reserved.csv").write_text("_row," + H + "x,e1,c1,visit,2024-03-02T10:00:00Z,\n")
    (paths.landing / "b-float-ids.parquet").write_bytes(parquet({
        "event_id": ["f1", "f2", "f3"], "customer_id": [1e20, float("inf"), float("nan")],
        "event_type": ["visit"] * 3, "event_time": ["2024-03-02T10:00:00Z"] * 3}))
    (paths.landing / "c-explodes.csv").write_text(H + GOOD)
    (paths.landing / "z-good.csv").write_text(H + "g1,c9,visit,2024-03-05T10:00:00Z,\n")
    real = ingest_module.prepare_batch

    def prepare(source, *a, **kw):  # any unexpected error while preparing one file (c-explodes.csv's amount)
        if "amount" in source and "12.50" in set(source["amount"].dropna()):
            raise KeyError("something nobody expected")
        return real(source, *a, **kw)

    monkeypatch.setattr(ingest_module, "prepare_batch", prepare)
    s = ingest_flow(config(paths, "ingest"))
    by_name = {f["file"].rsplit("/", 1)[-1]: f for f in s["files"]}
    assert by_name["z-good.csv"]["stored"] == 1 and "g1" in set(store.read_events(paths)["event_id"])
    assert by_name["a-reserved.csv"]["stored"] == 1  # the source's own `_row` column is just another column
    assert by_name["b-float-ids.parquet"]["quarantined"] == 3
    assert by_name["c-explodes.csv"]["status"] == "rejected"
    assert "KeyError" in by_name["c-explodes.csv"]["error"] and "something nobody expected" in by_name[
        "c-explodes.csv"]["error"]
    assert (paths.rejected / "c-explodes.csv.error.json").exists() or any(
        p.name.endswith("c-explodes.csv.error.json") for p in paths.rejected.iterdir())
    assert s["rows_in"] == s["stored"] + s["quarantined"] + s["duplicates"] + s["identical_rows"]

    # a bad mapping rejects each file of the run with its reason; nothing crashes
    (paths.landing / "y-more.csv").write_text(H + "g2,c9,visit,2024-03-06T10:00:00Z,\n")
    bad_mapping = paths.home / "bad.toml"
    bad_mapping.write_text('[time]\ntimezone = "Nowhere/Land"\n')
    s = ingest_flow(config(paths, "ingest"), files=[str(paths.landing / "y-more.csv")],
                    mapping_path=str(bad_mapping))
    assert s["files"][0]["status"] == "rejected" and "unknown time zone 'Nowhere/Land'" in s["files"][0]["error"]

    # but an environment error (disk full) is not a bad file: it propagates as before, nothing moved aside
    (paths.landing / "x-full.csv").write_text(H + "g3,c9,visit,2024-03-07T10:00:00Z,\n")

    def disk_full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ingest_module, "prepare_batch", disk_full)
    with pytest.raises(OSError, match="No space left"):
        ingest_module.ingest_file(config(paths, "ingest"), paths.landing / "x-full.csv", now=NOW)
    assert (paths.landing / "x-full.csv").exists()

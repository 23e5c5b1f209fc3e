"""Ingest end to end on files: the bad-input corpus, idempotency, the Online Retail sample."""

import gzip
import json
import re
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.ingest import ingest_file
from storage import store
from tests.conftest import FIXTURES, NOW, config

HEADER = "event_id,customer_id,event_type,event_time,amount\n"


def write(paths, name, text: str | bytes):
    p = paths.landing / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def ingest(paths, file, **kw):
    r = ingest_file(config(paths, "ingest"), file, now=NOW, **kw)
    assert r["rows_in"] == r["stored"] + r["quarantined"] + r["duplicates"] + r["identical_rows"]
    return r


CORPUS = HEADER + "\n".join([
    "e1,c1,purchase,2024-01-01T10:00:00Z,10",         # good
    "e2,c1,visit,2024-01-02T10:00:00Z,",               # good
    "e3,c2,purchase,2024-01-03T10:00:00Z,abc",         # wrong type
    "e4,c2,purchase,2024-01-03T10:00:00Z,-5",          # negative amount
    "e5,c3,visit,2099-01-01T00:00:00Z,",               # far future
    "e6,c3,visit,1985-05-05T00:00:00Z,",               # before 1990
    "e7,,visit,2024-01-04T10:00:00Z,",                 # empty id
    "e8,c4,browse,2024-01-04T10:00:00Z,",              # unknown type
    "e1,c1,purchase,2024-01-01T10:00:00Z,10",         # duplicate id within the file
    "e9,c5,return,2024-01-05T10:00:00Z,3.5",           # good
    "e10,c5,complaint,2024-01-05T11:00:00Z,",          # good
    "e11,c6,visit,2024-01-05",                         # too few fields
]) + "\n"


def test_bad_input_corpus_exact_counts(paths):
    r = ingest(paths, write(paths, "corpus.csv", CORPUS))
    assert r["status"] == "ingested"
    assert (r["rows_in"], r["stored"], r["quarantined"], r["duplicates"]) == (12, 4, 7, 1)
    assert r["reasons"] == {
        "amount: not a finite number": 1, "amount: below 0": 1, "event_time: in the future": 1,
        "event_time: before 1990-01-01": 1, "customer_id: missing": 1,
        "event_type: not one of visit, purchase, return, complaint": 1,
        "malformed CSV record: 4 fields, header has 5": 1,
    }
    stored = store.read_events(paths)
    assert sorted(stored["event_id"]) == ["e1", "e10", "e2", "e9"]
    q = store.read_quarantine(paths)
    assert sorted(q["row_number"]) == [3, 4, 5, 6, 7, 8, 12]
    row7 = q[q["row_number"] == 7].iloc[0]
    assert json.loads(row7["original"])["event_id"] == "e7" and row7["source_file"].endswith("corpus.csv")


def test_reingesting_the_same_content_is_skipped_and_forced_reingest_stores_nothing_new(paths):
    f = write(paths, "corpus.csv", CORPUS)
    ingest(paths, f)
    assert ingest(paths, f)["status"] == "skipped"
    again = ingest(paths, f, force=True)
    assert (again["stored"], again["duplicates"], again["quarantined"]) == (0, 5, 7)
    assert len(store.read_events(paths)) == 4


def test_overlapping_files_store_each_event_once(paths):
    a = write(paths, "a.csv", HEADER + "x1,c1,visit,2024-01-01T10:00:00Z,\nx2,c1,visit,2024-01-02T10:00:00Z,\n")
    b = write(paths, "b.csv", HEADER + "x2,c1,visit,2024-01-02T10:00:00Z,\nx3,c1,visit,2024-01-03T10:00:00Z,\n")
    ra, rb = ingest(paths, a), ingest(paths, b)
    assert (ra["stored"], rb["stored"], rb["duplicates"]) == (2, 1, 1)
    assert sorted(store.read_events(paths)["event_id"]) == ["x1", "x2", "x3"]


def test_events_are_partitioned_by_utc_month_and_sorted_by_customer_and_time(paths):
    ingest(paths, write(paths, "a.csv", CORPUS))
    late = HEADER + "m2,c9,visit,2024-02-29T23:30:00-01:00,\nm1,c0,visit,2024-02-03T10:00:00Z,\n"
    ingest(paths, write(paths, "b.csv", late))
    parts = sorted(p.parent.name for p in store.event_files(paths))
    assert parts == ["event_month=2024-01", "event_month=2024-02", "event_month=2024-03"]
    assert [p.parent.name for p in store.event_files(paths, ["2024-03-01"])] == ["event_month=2024-03"]
    jan = pq.read_table(store.event_files(paths, ["2024-01-01"])[0]).to_pandas()
    assert jan[["customer_id", "event_time"]].equals(jan.sort_values(["customer_id", "event_time"])[
        ["customer_id", "event_time"]].reset_index(drop=True))


@pytest.mark.parametrize("name, content, error", [
    ("truncated.parquet", None, "not a readable Parquet file"),
    ("latin1.csv", (HEADER + "e1,Jos\xe9,visit,2024-01-01T00:00:00Z,\n").encode("latin-1"), "not UTF-8"),
    ("wrongcols.csv", "id,who,what,when\n1,2,3,4\n", "missing required columns"),
    ("bad.gz.csv", b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    ("casedup.csv", HEADER.rstrip("\n") + ",Amount\ne1,c1,purchase,2024-01-01T00:00:00Z,1,2\n", "differ only in letter case"),
    ("array.json", '[\n {"event_id": "a1", "customer_id": "c1", "event_type": "visit",\n  "event_time": "2024-01-01"}\n]\n',
     "not JSON Lines"),
    ("semicolons.csv", "Kunde;Zeit;Betrag\nK1;01.03.2024 10:00;12,50\n", "must be comma-separated"),
    ("tabs.csv", "customer_id\tevent_type\tevent_time\nc1\tvisit\t2024-01-01\n", "holding '\\t'"),
])
def test_unreadable_files_are_moved_aside_with_a_clear_error(paths, name, content, error):
    if content is None:
        buf = pa.BufferOutputStream()
        pq.write_table(pa.table({"customer_id": ["a"] * 100}), buf)
        content = buf.getvalue().to_pybytes()[:-40]
    f = write(paths, name, content)
    good = write(paths, "good.csv", HEADER + "g1,c1,visit,2024-01-01T10:00:00Z,\n")
    r = ingest_file(config(paths, "ingest"), f, now=NOW)
    assert r["status"] == "rejected" and error in r["error"]
    assert not f.exists() and (paths.rejected / r["moved_to"].split("/")[-1]).exists()
    assert ingest(paths, good)["stored"] == 1  # a bad file never blocks the others


def test_empty_file_is_ingested_as_zero_rows(paths):
    r = ingest(paths, write(paths, "empty.csv", b""))
    assert (r["status"], r["rows_in"]) == ("ingested", 0)


def test_bom_crlf_gzip_and_jsonl(paths):
    csv_text = ("\ufeff" + HEADER + "b1,c1,visit,2024-01-01T10:00:00Z,\n").replace("\n", "\r\n")
    assert ingest(paths, write(paths, "bom.csv", csv_text.encode("utf-8")))["stored"] == 1
    gz = gzip.compress((HEADER + "z1,c1,visit,2024-01-01T10:00:00Z,\n").encode())
    assert ingest(paths, write(paths, "z.csv.gz", gz))["stored"] == 1
    lines = [json.dumps({"event_id": "j1", "customer_id": "00017", "event_type": "purchase",
                         "event_time": "2024-01-01T10:00:00+01:00", "amount": 5}), "{not json", ""]
    r = ingest(paths, write(paths, "e.jsonl", "\n".join(lines)))
    assert (r["stored"], r["quarantined"]) == (1, 1)
    ev = store.read_events(paths).set_index("event_id")
    assert ev.loc["j1", "customer_id"] == "00017" and ev.loc["j1", "amount"] == 5.0
    assert ev.loc["j1", "event_time"] == pd.Timestamp("2024-01-01T09:00Z")


def test_online_retail_sample_is_accounted_row_by_row(paths):
    src = pd.read_parquet(FIXTURES / "online_retail_sample.parquet")
    f = paths.landing / "retail.parquet"
    f.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "online_retail_sample.parquet", f)
    r = ingest(paths, f, fmt="online-retail", timezone="Europe/London")

    # expected fates computed independently from the source rows
    dup = src.duplicated(keep="first")
    no_cust = ~dup & src["Customer ID"].isna()
    test_line = ~dup & ~no_cust & src["StockCode"].str.upper().str.startswith("TEST")
    live = src[~dup & ~no_cust & ~test_line]
    fees = {"POST", "DOT", "C2", "M", "m", "BANK CHARGES", "AMAZONFEE", "PADS", "S", "B", "CRUK", "ADJUST",
            "ADJUST2", "D"}
    goods_invoices = set(live.loc[~live["StockCode"].isin(fees), "Invoice"])
    fee_only = ~live["Invoice"].isin(goods_invoices)
    assert r["rows_in"] == len(src)
    assert r["duplicates"] == dup.sum()
    assert r["reasons"]["customer_id: missing"] == no_cust.sum()
    assert r["reasons"].get("test line, not a sale", 0) == test_line.sum()
    assert r["reasons"].get("invoice has no product lines (fees or adjustments only)", 0) == fee_only.sum()
    assert r["stored"] == len(live) - fee_only.sum()
    ev = store.read_events(paths)
    assert len(ev) == len(goods_invoices)
    assert set(ev["event_type"]) == {"purchase", "return"}
    assert (ev["event_type"] == "return").sum() == sum(str(i).startswith("C") for i in goods_invoices)
    assert (ev["amount"] >= 0).all()
    # one invoice checked by hand: amount = sum of quantity x price over its goods lines
    inv = live[live["Invoice"] == "489434"]
    assert ev.set_index("order_id").loc["489434", "amount"] == pytest.approx((inv["Quantity"] * inv["Price"]).sum())
    assert ev.set_index("order_id").loc["489434", "event_time"] == pd.Timestamp("2009-12-01T07:45Z")
    # a second ingest of the same content stores nothing new
    assert ingest(paths, f, fmt="online-retail", timezone="Europe/London", force=True)["stored"] == 0


def test_a_sudden_drop_in_daily_volume_is_reported(paths):
    rows = [f"v{d}-{i},c{i},visit,2024-03-{d:02d}T10:00:00Z," for d in range(1, 21) for i in range(30)]
    normal = ingest(paths, write(paths, "march.csv", HEADER + "\n".join(rows) + "\n"))
    assert normal["volume_drops"] == []
    thin = ingest(paths, write(paths, "day21.csv", HEADER + "t1,c1,visit,2024-03-21T10:00:00Z,\n"
                                                            "t2,c2,visit,2024-03-21T11:00:00Z,\n"))
    assert thin["volume_drops"] == [{"date": "2024-03-21", "events": 2, "typical": 30.0}]
    fine = ingest(paths, write(paths, "day22.csv", HEADER + "\n".join(
        f"u{i},c{i},visit,2024-03-22T10:00:00Z," for i in range(25)) + "\n"))
    assert fine["volume_drops"] == []


def test_an_event_id_is_stored_once_even_with_a_time_in_another_month(paths):
    """A corrected timestamp (another month), or --force with another time zone, is still the same event."""
    a = write(paths, "a.csv", "event_id,customer_id,event_type,event_time\ne1,c1,visit,2024-03-31T23:30:00Z\n")
    b = write(paths, "b.csv", "event_id,customer_id,event_type,event_time\ne1,c1,visit,2024-05-02T10:00:00Z\n")
    assert ingest(paths, a)["stored"] == 1
    rb = ingest(paths, b)
    assert (rb["stored"], rb["duplicates"]) == (0, 1)
    c = write(paths, "c.csv", "event_id,customer_id,event_type,event_time\ne2,c1,visit,2024-03-31 23:30:00\n")
    assert ingest(paths, c)["stored"] == 1
    rc = ingest(paths, c, force=True, timezone="America/New_York")  # now 2024-04-01 03:30 UTC: April
    assert (rc["stored"], rc["duplicates"]) == (0, 1)
    events = store.read_events(paths)
    assert sorted(events["event_id"]) == ["e1", "e2"]


def test_a_file_without_event_ids_forced_again_under_another_time_zone_stores_nothing_twice(paths):
    """Derived ids come from the values as written, before any time zone is applied to them."""
    text = ("customer_id,event_type,event_time,amount\n"
            "c1,purchase,2024-03-31 23:30:00,10\nc2,visit,2024-04-02 08:00:00,\n"
            "c3,visit,2024-04-02T08:00:00+02:00,\n")
    f = write(paths, "noids.csv", text)
    first = ingest(paths, f, timezone="Europe/London")
    assert first["stored"] == 3
    for tz in ("America/New_York", "Asia/Tokyo", "UTC"):
        again = ingest(paths, f, force=True, timezone=tz)
        assert (again["stored"], again["duplicates"]) == (0, 3), tz
    # the same rows under another spelling of the same wall-clock times are the same events too
    g = write(paths, "noids-iso.csv", text.replace("2024-03-31 23:30:00", "2024-03-31T23:30:00.000"))
    assert ingest(paths, g, timezone="Asia/Tokyo")["stored"] == 0
    assert len(store.read_events(paths)) == 3


def test_a_mapping_that_names_a_column_called_row_takes_the_source_column_not_the_row_number(paths):
    """`_row` is the reader's row number internally; a mapping naming `_row` means the source's own column."""
    m = write(paths, "../m.toml", '[columns]\ncustomer_id = "_row"\n')
    f = write(paths, "rowcol.csv", "_row,event_id,event_type,event_time\nalice,e1,visit,2024-03-02T10:00:00Z\n"
                                   "bob,e2,visit,2024-03-02T11:00:00Z\n")
    assert ingest(paths, f, mapping=m)["stored"] == 2
    assert dict(store.read_events(paths)[["event_id", "customer_id"]].values) == {"e1": "alice", "e2": "bob"}
    g = write(paths, "norowcol.csv", "event_id,event_type,event_time\ne3,visit,2024-03-02T10:00:00Z\n")
    r = ingest(paths, g, mapping=m)
    assert r["status"] == "rejected" and "source column '_row'" in r["error"], r


def test_the_original_uci_online_retail_naming_is_read_and_float_ids_keep_their_digits(paths):
    """The 2010-2011 "Online Retail" file: InvoiceNo, UnitPrice, CustomerID as a float (17850.0)."""
    src = pd.read_parquet(FIXTURES / "online_retail_sample.parquet")
    old = src.rename(columns={"Invoice": "InvoiceNo", "Price": "UnitPrice", "Customer ID": "CustomerID"})
    old["CustomerID"] = pd.to_numeric(old["CustomerID"], errors="coerce").astype("float64")
    f = paths.landing / "retail-original.parquet"
    f.parent.mkdir(parents=True)
    old.to_parquet(f, index=False)
    r = ingest(paths, f, fmt="online-retail", timezone="Europe/London")
    assert r["status"] == "ingested" and r["stored"] > 0
    ids = set(store.read_events(paths)["customer_id"])
    assert ids and not any(i.endswith(".0") for i in ids)
    expected = set(pd.to_numeric(src["Customer ID"], errors="coerce").dropna().astype(int).astype(str))
    assert ids <= expected


def test_a_mapping_renames_columns_in_front_of_a_format(paths):
    src = pd.read_parquet(FIXTURES / "online_retail_sample.parquet").head(200)
    variant = src.rename(columns={"Invoice": "Beleg", "Customer ID": "Kunde"})
    f = paths.landing / "variant.parquet"
    f.parent.mkdir(parents=True)
    variant.to_parquet(f, index=False)
    m = write(paths, "../rename.toml", '[rename]\nBeleg = "Invoice"\nKunde = "Customer ID"\n')
    assert ingest(paths, f, fmt="online-retail", timezone="Europe/London", mapping=m)["stored"] > 0
    g = paths.landing / "variant2.parquet"
    variant.head(150).to_parquet(g, index=False)
    r = ingest(paths, g, fmt="online-retail", timezone="Europe/London")
    assert r["status"] == "rejected" and "Invoice (or InvoiceNo)" in r["error"] and "[rename]" in r["error"]


def fold_mapping(paths, more_columns: str = ""):
    """A grocery line-item mapping: household, basket, ts and sales columns (and `more_columns`), folded by basket."""
    return write(paths, "../fold.toml", '[columns]\ncustomer_id = "household"\norder_id = "basket"\nevent_time = "ts"\n'
                 'amount = "sales"\n' + more_columns + '[constants]\nevent_type = "purchase"\n[fold]\nby = "order_id"\n')


def test_a_mapping_folds_line_items_into_one_purchase_per_basket_with_accounting_by_line(paths):
    """A grocery export: one row per product line. Lines of a basket become one purchase; every line is
    still accounted for (stored lines = lines folded into stored purchases)."""
    m = fold_mapping(paths, 'quantity = "qty"\n')
    f = write(paths, "lines.csv", "household,basket,ts,sales,qty\n"
              "h1,b1,2024-03-01 10:00:05,2.50,1\n"
              "h1,b1,2024-03-01 10:00:01,1.25,2\n"      # the basket's time is its earliest line
              "h2,b2,2024-03-02 11:00:00,4.00,1\n"
              "h1,b3,2024-03-03 12:00:00,1.00,1\n"
              "h2,b3,2024-03-03 12:00:00,1.00,1\n"      # b3 mixes two households: both lines quarantined
              "h2,,2024-03-04 12:00:00,1.00,1\n"        # no basket: cannot be folded
              "h2,b4,2024-03-05 12:00:00,-3.00,1\n"     # a basket whose lines sum below 0 is quarantined whole
              "h2,b4,2024-03-05 12:00:00,1.00,1\n"
              "h2,b5,not a time,1.00,1\n")              # unparseable: quarantined before folding
    r = ingest(paths, f, mapping=m)
    assert (r["rows_in"], r["stored"], r["quarantined"], r["duplicates"]) == (9, 3, 6, 0), r
    assert r["reasons"] == {"order_id has lines of several customers": 2,
                            "order_id: missing (lines are folded into one event per order_id)": 1,
                            "event_time: unparseable": 1, "amount: below 0": 2}
    ev = store.read_events(paths).set_index("order_id")
    assert sorted(ev.index) == ["b1", "b2"]
    assert ev.loc["b1", "amount"] == 3.75 and ev.loc["b1", "quantity"] == 3.0
    assert ev.loc["b1", "event_time"] == pd.Timestamp("2024-03-01T10:00:01Z")
    assert ev.loc["b1", "event_id"] == "order_id:b1" and ev.loc["b1", "customer_id"] == "h1"
    assert ingest(paths, f, mapping=m, force=True)["stored"] == 0  # a replay stores nothing twice


def test_a_fold_mapping_of_the_wrong_shape_is_refused():
    from ingestion.normalize import Mapping, MappingError

    for text, needle in (('[fold]\nby = "basket"\n', "[fold] by must be one of"),
                         ('[fold]\nby = "order_id"\nsum = "x"\n', "unknown [fold] keys"),
                         ('[rename]\nx = 3\n', "[rename] x must be a new column name")):
        with pytest.raises(MappingError, match=re.escape(needle)):
            Mapping.from_toml(text)


RETAIL = ("Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"
          "489434,85048,LED CUSHION,12,2009-12-01 07:45:00,6.95,13085,United Kingdom\n"
          "489434,79323P,PINK CHERRY LIGHTS,12,2009-12-01 07:45:00,6.75,13085,United Kingdom\n"
          "489434,POST,POSTAGE,1,2009-12-01 07:45:00,18.00,13085,United Kingdom\n"
          "489435,22350,CAT BOWL,12,2009-12-01 07:46:00,2.55,13085,United Kingdom\n")


def test_an_invoice_already_stored_from_a_partial_delivery_is_never_called_a_duplicate_of_other_lines(paths):
    """Invoice 489434 stored from a delivery cut after its first line; the complete file's lines for it are
    not duplicates of anything stored: they are quarantined with that reason, never counted as "duplicates".
    The same invoice read again with the same lines (the same sheet as Parquet) is a duplicate."""
    lines = RETAIL.splitlines(keepends=True)
    part = write(paths, "part1.csv", "".join(lines[:2]))
    r = ingest(paths, part, fmt="online-retail", timezone="Europe/London")
    assert (r["stored"], r["quarantined"], r["duplicates"]) == (1, 0, 0)
    full = write(paths, "full.csv", RETAIL)
    r = ingest(paths, full, fmt="online-retail", timezone="Europe/London")
    assert (r["rows_in"], r["stored"], r["quarantined"], r["duplicates"]) == (4, 1, 3, 0), r
    reason = "invoice or order already stored from another file with other lines (its lines belong in one file)"
    assert r["reasons"] == {reason: 3}
    q = store.read_quarantine(paths)
    assert q.loc[q["reason"] == reason, "source_rows"].sum() == 3 and "83.4" in q["original"].iloc[0]
    events = store.read_events(paths).set_index("order_id")
    assert events.loc["489434", "amount"] == 83.4  # what was stored stays; the report says it is partial

    again = paths.landing / "full.parquet"  # the same lines in another file: same invoices, true duplicates
    pd.read_csv(paths.landing / "full.csv", dtype=str).to_parquet(again, index=False)
    r = ingest(paths, again, fmt="online-retail", timezone="Europe/London")
    assert (r["rows_in"], r["stored"], r["quarantined"], r["duplicates"]) == (4, 0, 3, 1), r


def test_an_order_with_a_quarantined_line_is_quarantined_whole_and_its_corrected_delivery_is_stored(paths):
    """Adversarial round 4: a line of `1e400` was quarantined alone and the order stored short from the other
    lines; the corrected full order was then refused as "already stored with other lines"."""
    m = fold_mapping(paths)
    bad = write(paths, "day1.csv", "household,basket,ts,sales\n"
                "h1,b1,2024-03-01 10:00:00,2.00\n"
                "h1,b1,2024-03-01 10:00:01,1e400\n"      # not a finite amount: the whole basket waits
                "h2,b2,2024-03-01 11:00:00,4.00\n")
    r = ingest(paths, bad, mapping=m)
    assert (r["rows_in"], r["stored"], r["quarantined"]) == (3, 1, 2), r
    assert any(k.startswith("order_id: another line of this order_id (row 2) was quarantined") for k in r["reasons"]), r["reasons"]
    assert sorted(store.read_events(paths)["order_id"]) == ["b2"]
    fixed = write(paths, "day1-fixed.csv", "household,basket,ts,sales\n"
                  "h1,b1,2024-03-01 10:00:00,2.00\n"
                  "h1,b1,2024-03-01 10:00:01,5.00\n")
    r = ingest(paths, fixed, mapping=m)
    assert (r["stored"], r["quarantined"]) == (2, 0), r
    assert store.read_events(paths).set_index("order_id").loc["b1", "amount"] == 7.0


@pytest.mark.parametrize("line, reason", [
    ("489434,79323P,PINK CHERRY LIGHTS,twelve,2009-12-01 07:45:00,6.75,13085,United Kingdom\n", "quantity: not a number"),
    ("489434,79323P,PINK CHERRY LIGHTS,12,2009-12-01 07:45:00,n/a,13085,United Kingdom\n", "amount: price is not a number"),
    ("489434,79323P,PINK CHERRY LIGHTS,-12,2009-12-01 07:45:00,6.75,13085,United Kingdom\n",
     "quantity: negative on a sale invoice"),
    ("489434,79323P,PINK CHERRY LIGHTS,12,2009-12-01 07:45:00,6.75,,United Kingdom\n", "customer_id: missing"),
])
def test_an_online_retail_invoice_with_a_bad_line_is_quarantined_whole_and_its_corrected_delivery_is_stored(
        paths, line, reason):
    """Adversarial round 4: an invoice line with a data error was quarantined alone and the invoice stored short
    from its other lines (83.4 of 164.4); the corrected sheet was then refused as "already stored"."""
    lines = RETAIL.splitlines(keepends=True)
    bad = write(paths, "bad.csv", "".join([lines[0], lines[1], line, *lines[3:]]))
    r = ingest(paths, bad, fmt="online-retail", timezone="Europe/London")
    assert (r["rows_in"], r["stored"], r["quarantined"], r["duplicates"]) == (4, 1, 3, 0), r
    whole = "order_id: another line of this invoice (row 2) was quarantined, and an invoice is stored only whole"
    assert r["reasons"] == {reason: 1, whole: 2}, r["reasons"]
    assert sorted(store.read_events(paths)["order_id"]) == ["489435"]
    r = ingest(paths, write(paths, "fixed.csv", RETAIL), fmt="online-retail", timezone="Europe/London")
    assert (r["stored"], r["quarantined"], r["duplicates"]) == (3, 0, 1), r
    assert store.read_events(paths).set_index("order_id").loc["489434", "amount"] == 164.4

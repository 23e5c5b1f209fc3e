"""Random rows and random files into ingest: nothing crashes, and the counts add up
(rows in = stored + quarantined + duplicates + identical rows)."""

import string

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.ingest import ingest_file
from ingestion.batch import prepare_batch
from storage import layout
from tests.conftest import config

NOW = pd.Timestamp("2025-06-01T00:00Z")
TEXT = st.text(alphabet=string.printable + "éß\u200b\x00\x7f", max_size=12)
VALUE = st.one_of(st.none(), TEXT, st.sampled_from(["visit", "purchase", "return", "complaint", "PURCHASE", " visit "]),
                  st.sampled_from(["2024-01-01T10:00:00Z", "2024-13-45", "1970-01-01", "2024-03-31 01:30", "9999-12-31",
                                   "2024-06-01T00:00:00+05:30", ""]),
                  st.floats(allow_nan=True, allow_infinity=True).map(str), st.integers(-10**6, 10**6).map(str))
ROW = st.fixed_dictionaries({c: VALUE for c in ("event_id", "customer_id", "event_type", "event_time", "amount",
                                                "discount", "quantity", "order_id")})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, max_size=30))
def test_random_rows_are_all_accounted_for(rows):
    src = pd.DataFrame(rows, columns=["event_id", "customer_id", "event_type", "event_time", "amount", "discount",
                                      "quantity", "order_id"])
    src.insert(0, "_row", range(1, len(src) + 1))
    b = prepare_batch(src, [], max_event_time=NOW, timezone="Europe/London")
    assert b.rows_in == len(b.events) + int(b.quarantine["_rows"].sum()) + b.duplicates
    assert b.events["event_id"].is_unique
    assert b.quarantine["reason"].notna().all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), header=st.booleans())
def test_random_bytes_as_csv_never_crash_and_add_up(tmp_path_factory, data, header):
    paths = layout.Paths(tmp_path_factory.mktemp("fuzz"))
    f = paths.landing / "random.csv"
    f.parent.mkdir(parents=True)
    f.write_bytes((b"customer_id,event_type,event_time,amount\n" if header else b"") + data)
    r = ingest_file(config(paths, "ingest"), f, now=NOW)
    assert r["status"] in ("ingested", "rejected")
    assert r["rows_in"] == r["stored"] + r["quarantined"] + r["duplicates"] + r["identical_rows"]
    if r["status"] == "rejected":
        assert r["error"] and not f.exists()

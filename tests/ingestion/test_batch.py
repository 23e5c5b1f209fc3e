"""Every quarantine reason, one row at a time, through the real GX suite."""

import pandas as pd
import pytest

from ingestion.batch import prepare_batch
from ingestion.normalize import DRESSED_NUMBER
from tests.conftest import NOW

GOOD = {"customer_id": "00017", "event_type": "purchase", "event_time": "2024-03-01T10:00:00Z", "amount": "12.50"}


def one(**override):
    row = {**GOOD, **override}
    src = pd.DataFrame([row])
    src.insert(0, "_row", [1])
    return prepare_batch(src, [], max_event_time=NOW)


@pytest.mark.parametrize("override, reason", [
    ({"customer_id": None}, "customer_id: missing"),
    ({"customer_id": "   "}, "customer_id: empty or blank"),
    ({"customer_id": "ab\x07c"}, "customer_id: contains control or invisible characters"),
    ({"event_type": "purchased"}, "event_type: not one of visit, purchase, return, complaint"),
    ({"event_type": None}, "event_type: missing"),
    ({"event_time": None}, "event_time: missing"),
    ({"event_time": "yesterday"}, "event_time: unparseable"),
    ({"event_time": "1989-12-31T23:59:59Z"}, "event_time: before 1990-01-01"),
    ({"event_time": "2031-01-01T00:00:00Z"}, "event_time: in the future"),
    ({"amount": None}, "amount: missing for purchase/return"),
    ({"event_type": "visit"}, "amount: must be empty for visit/complaint"),
    ({"amount": "-0.01"}, "amount: below 0"),
    ({"amount": "12,50"}, f"amount: {DRESSED_NUMBER}"),
    ({"amount": "inf"}, "amount: not a finite number"),
    ({"amount": "NaN"}, "amount: not a finite number"),
    ({"discount": "1.5"}, "discount: above 1"),
    ({"discount": "-0.1"}, "discount: below 0"),
    ({"quantity": "-2"}, "quantity: below 0"),
    ({"event_id": "e\n1"}, "event_id: contains control or invisible characters"),
])
def test_each_contract_violation_is_quarantined_with_its_reason(override, reason):
    b = one(**override)
    assert b.events.empty
    assert b.quarantine["reason"].tolist() == [reason]
    assert b.rows_in == 1 and b.duplicates == 0


def test_a_good_row_is_kept_with_contract_types():
    b = one()
    assert b.quarantine.empty
    e = b.events.iloc[0]
    assert e["customer_id"] == "00017"  # opaque: leading zeros kept
    assert e["event_time"] == pd.Timestamp("2024-03-01T10:00:00Z")
    assert e["amount"] == 12.5
    assert e["event_id"].startswith("h:")


def test_all_reasons_of_a_row_are_kept_and_the_first_counts():
    b = one(event_type="visit", event_time="1980-01-01T00:00:00Z")
    assert b.quarantine["reason"].tolist() == ["event_time: before 1990-01-01"]
    assert b.quarantine["reasons"].tolist() == ["event_time: before 1990-01-01; amount: must be empty for visit/complaint"]


def test_duplicate_ids_within_a_file_are_counted_not_stored():
    src = pd.DataFrame([{**GOOD, "event_id": "a"}, {**GOOD, "event_id": "a", "amount": "99"}, {**GOOD, "event_id": "b"}])
    src.insert(0, "_row", [1, 2, 3])
    b = prepare_batch(src, [], max_event_time=NOW)
    assert b.events["event_id"].tolist() == ["a", "b"]
    assert b.events["amount"].tolist() == [12.5, 12.5]  # the first occurrence wins
    assert b.duplicates == 1


def test_identical_rows_without_ids_get_the_same_derived_id_and_are_counted_apart():
    src = pd.DataFrame([GOOD, GOOD, {**GOOD, "amount": "13"}])
    src.insert(0, "_row", [1, 2, 3])
    b = prepare_batch(src, [], max_event_time=NOW)
    assert len(b.events) == 2 and (b.duplicates, b.identical_rows) == (0, 1)
    again = prepare_batch(src, [], max_event_time=NOW)
    assert again.events["event_id"].tolist() == b.events["event_id"].tolist()


def test_bad_lines_from_the_reader_are_quarantined_and_counted():
    src = pd.DataFrame([GOOD])
    src.insert(0, "_row", [1])
    b = prepare_batch(src, [(2, "{oops", "malformed JSON line: Expecting value")], max_event_time=NOW)
    assert b.rows_in == 2 and len(b.events) == 1
    assert b.quarantine["original"].tolist() == ["{oops"]


def test_a_valid_row_is_kept_even_when_an_invalid_row_with_its_id_came_first():
    src = pd.DataFrame([{**GOOD, "event_id": "a", "amount": "-1"}, {**GOOD, "event_id": "a"}])
    src.insert(0, "_row", [1, 2])
    b = prepare_batch(src, [], max_event_time=NOW)
    assert b.events["_row"].tolist() == [2] and b.quarantine["_row"].tolist() == [1] and b.duplicates == 0


def test_validation_runs_on_in_a_process_without_a_main_file_after_pyspark_was_imported():
    """MLflow imports pyspark (when the spark extra is installed) before the first validation of a scoring run;
    GX then imported pyspark.sql.connect, which ends a process whose __main__ has no file (a forkserver child,
    `python -c`) with exit code 0 and no word: the scores were never written. Validation must run on there."""
    import subprocess
    import sys

    pytest.importorskip("pyspark")
    code = ("import pyspark.sql; from ingestion.validate import import_great_expectations; "
            "import_great_expectations(); import sys; "
            "print('connect imported' if 'pyspark.sql.connect' in sys.modules else 'validated on')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "validated on", done.stderr

"""Row accounting, run totals and volume-drop detection, without a store."""

import pandas as pd
import pytest

from ingestion.accounting import AccountingError, batch_days, file_summary, totals, volume_drops, volume_window
from ingestion.batch import PreparedBatch


def test_totals_add_up_over_files():
    files = [{"status": "ingested", "rows_in": 3, "stored": 1, "quarantined": 1, "duplicates": 1, "reasons": {"x": 1}},
             {"status": "rejected", "rows_in": 0, "stored": 0, "quarantined": 0, "duplicates": 0, "reasons": {}},
             {"status": "ingested", "rows_in": 2, "stored": 1, "quarantined": 1, "duplicates": 0, "reasons": {"x": 1}}]
    t = totals(files)
    assert (t["rows_in"], t["stored"], t["quarantined"], t["duplicates"]) == (5, 2, 2, 1)
    assert (t["files_ingested"], t["files_rejected"], t["reasons"]) == (2, 1, {"x": 2})


def test_a_batch_whose_counts_do_not_add_up_is_refused():
    events = pd.DataFrame({"_row": [1, 2], "_rows": [1, 1]})
    quarantine = pd.DataFrame({"_row": [3], "_rows": [1], "reason": ["x"], "reasons": ["x"], "original": ["{}"]})
    ok = PreparedBatch(events, quarantine, duplicates=1, rows_in=4)
    summary = file_summary({"file": "f"}, ok, stored_duplicates=0, batch_id="b", now=pd.Timestamp("2025-01-01T00:00Z"))
    assert (summary["stored"], summary["quarantined"], summary["duplicates"]) == (2, 1, 1)
    lost = PreparedBatch(events, quarantine, duplicates=0, rows_in=4)  # one row unaccounted for
    with pytest.raises(AccountingError, match="accounting bug"):
        file_summary({"file": "f"}, lost, stored_duplicates=0, batch_id="b", now=pd.Timestamp("2025-01-01T00:00Z"))


def test_volume_drop_is_a_day_ten_times_below_the_median_of_the_weeks_before():
    days = pd.date_range("2024-03-01", "2024-03-21").strftime("%Y-%m-%d")
    counts = pd.Series([30] * 20 + [2], index=days)
    assert volume_drops(counts, ["2024-03-21"]) == [{"date": "2024-03-21", "events": 2, "typical": 30.0}]
    assert volume_drops(counts.replace(2, 4), ["2024-03-21"]) == []  # 7.5x fewer: not a drop
    assert volume_drops(counts.tail(5), ["2024-03-21"]) == []  # under 7 days of history: nothing to judge


def test_volume_window_covers_four_weeks_before_and_skips_long_backfills():
    assert volume_window(["2024-03-21", "2024-03-22"]) == ("2024-02-22", "2024-03-22")
    long = pd.date_range("2024-01-01", periods=40).strftime("%Y-%m-%d").tolist()
    assert volume_window(long) is None and volume_window([]) is None
    ev = pd.DataFrame({"event_time": pd.to_datetime(["2024-03-02T23:59Z", "2024-03-01T00:00Z", "2024-03-02T01:00Z"])})
    assert batch_days(ev) == ["2024-03-01", "2024-03-02"]

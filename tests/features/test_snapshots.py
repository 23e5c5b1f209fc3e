"""The snapshot flag of customers contacted in the label window, and what training does with those rows."""

import pandas as pd
import pytest
from pandas.testing import assert_series_equal

from features.snapshots import CONTACTED, EXCLUDED, contacted_counts, contacted_in_label_window, split_by_plan
from models.snapshots import CutoffPlan

C1, C2 = pd.Timestamp("2024-01-01T12:00Z"), pd.Timestamp("2024-02-01T12:00Z")


def snapshot_rows() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ["A", "B", "C", "D", "E", "A", "B"],
                         "cutoff": [C1, C1, C1, C1, C1, C2, C2], "churned": [1, 0, 1, 0, 1, 0, 1]})


CONTACTS = pd.DataFrame({"customer_id": ["A", "B", "C", "D", "X"], "contacted_at": [
    "2024-01-01T12:00:01Z",  # A: one second after the first cutoff: inside its window, before the second cutoff
    "2024-01-01T12:00:00Z",  # B: at the cutoff itself: before the window (the cutoff's own features may see it)
    "2024-01-31T12:00:00Z",  # C: on the window's last instant (cutoff + 30 days): inside
    "2024-01-31T12:00:01Z",  # D: a second after the window ends: outside
    "2024-01-15T00:00:00Z",  # X: not in the snapshot
]})


def test_the_flag_is_set_exactly_for_a_stored_contact_inside_the_label_window():
    frame = snapshot_rows()
    got = contacted_in_label_window(frame, CONTACTS, horizon_days=30)
    assert_series_equal(got, pd.Series([True, False, True, False, False, False, False], name=CONTACTED))
    # A's second snapshot (cutoff C2) is after the contact: not flagged; B's contact at C1 is inside C2's lookback only
    assert contacted_counts(frame.assign(**{CONTACTED: got.to_numpy()})) == {"2024-01-01": 2, "2024-02-01": 0}
    assert not contacted_in_label_window(frame, None, 30).any()
    assert not contacted_in_label_window(frame, CONTACTS.iloc[:0], 30).any()


def test_flagged_rows_leave_training_only_when_the_setting_says_so_and_validation_always():
    plan = CutoffPlan(train=(C1,), validation=C2, horizon_days=30)
    frame = snapshot_rows()
    frame[CONTACTED] = [True, False, False, False, False, False, True]
    excluded = split_by_plan(frame, plan, "exclude")["split"].tolist()
    kept = split_by_plan(frame, plan, "keep")["split"].tolist()
    assert excluded == [EXCLUDED, "train", "train", "train", "train", "validation", EXCLUDED]
    assert kept == ["train", "train", "train", "train", "train", "validation", EXCLUDED]
    with pytest.raises(ValueError, match="contacted_in_training"):
        split_by_plan(frame, plan, "drop")

"""Snapshots that cannot train or evaluate a classifier (one class, or no rows) stop with one clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.errors import UntrainableSnapshots

FEATURES = ["a", "b"]


def _snapshot(churned, cutoff="2024-01-01", seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(churned)
    return pd.DataFrame({"customer_id": [f"c{seed}-{i}" for i in range(n)], "cutoff": pd.Timestamp(cutoff, tz="UTC"),
                         "a": rng.normal(size=n), "b": rng.normal(size=n), "churned": churned})


MIXED = [0, 1] * 100


@pytest.mark.parametrize("train, validation, message", [
    (_snapshot([1] * 200), _snapshot(MIXED, "2024-06-01"), r"every customer in the training snapshots \(cutoffs "
                                                           r"2024-01-01\) churned \(200 rows\): cannot train"),
    (_snapshot([0] * 200), _snapshot(MIXED, "2024-06-01"), "no customer in the training snapshots"),
    (_snapshot(MIXED), _snapshot([1] * 50, "2024-06-01"), "every customer in the validation snapshot .* ROC-AUC"),
    (_snapshot(MIXED), _snapshot([0] * 50, "2024-06-01"), "no customer in the validation snapshot"),
    (_snapshot([]), _snapshot(MIXED, "2024-06-01"), "the training snapshots hold no customers"),
    (_snapshot(MIXED), _snapshot([], "2024-06-01"), "the validation snapshot hold"),
    (_snapshot([True] * 200), _snapshot(MIXED), "every customer in the training snapshots"),
])
def test_single_class_or_empty_snapshots_stop_with_one_clear_message(train, validation, message):
    from models.train import check_labels, train_and_evaluate

    with pytest.raises(UntrainableSnapshots, match=message) as e:
        check_labels(train, validation)
    assert "longer history, another horizon or another as-of" in str(e.value)
    with pytest.raises(UntrainableSnapshots, match=message):  # before XGBoost or scikit-learn see the data
        train_and_evaluate(train, validation, FEATURES, seed=1, horizon_days=90, btyd=False, bootstrap=None)


def test_both_classes_pass():
    from models.train import check_labels

    check_labels(_snapshot(MIXED), _snapshot(MIXED, "2024-06-01"))


def test_prefect_does_not_retry_untrainable_snapshots():
    from storage.tracking import retry_transient

    class Failed:
        def __init__(self, e):
            self.e = e

        def result(self):
            raise self.e

    assert retry_transient(None, None, Failed(UntrainableSnapshots("every customer ... churned"))) is False
    assert retry_transient(None, None, Failed(ConnectionError("refused"))) is True  # the check still retries these


def test_churn_train_where_every_customer_churned_is_one_error_line(small_store, tmp_path):
    """A store where nobody bought anything in the last 200 days (they still visited): the training
    cutoff's label window holds no purchase, so everyone 'churned'."""
    import pyarrow as pa

    from expectations.contract import STORE_SCHEMA
    from expectations.quarantine import QUARANTINE_SCHEMA
    from storage import layout, store

    events = store.read_events(small_store)
    last = events["event_time"].max()
    kept = events[(events["event_type"] != "purchase") | (events["event_time"] < last - pd.Timedelta(days=200))]
    home = tmp_path / "home"
    store.commit_batch(layout.Paths(home), "b", pa.Table.from_pandas(kept, schema=STORE_SCHEMA, preserve_index=False),
                       QUARANTINE_SCHEMA.empty_table(), {}, None)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "CHURN_"))}
    env.update(CHURN_HOME=str(home), CHURN_N_TRAIN_CUTOFFS="1")
    as_of = last.date().isoformat()
    r = subprocess.run([str(Path(sys.executable).with_name("churn")), "train", "--as-of", as_of], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-3000:]
    # progress lines ("[  26.7 s] ...") come before it; the error itself is one line
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith(("INFO", "WARNING", "["))]
    assert len(lines) == 1 and lines[0].startswith("error: every customer in the training snapshots"), r.stderr
    assert "Traceback" not in r.stderr and "cannot train a classifier" in lines[0]
    assert not (home / "mlflow" / "artifacts").exists() or not any((home / "mlflow" / "artifacts").iterdir())

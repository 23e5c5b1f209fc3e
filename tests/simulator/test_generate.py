import hashlib

import numpy as np
import pandas as pd

from churn.generate import generate
from simulator.generate import SimulationConfig, simulate
from simulator.oracle import events_only_probability, no_purchase_probability
from storage import layout


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path):
    cfg = SimulationConfig(customers=300, days=200, seed=7, chunk_customers=100)
    digests = []
    for run in ("a", "b"):
        out = generate(layout.Paths(tmp_path / run), cfg)
        digests.append([hashlib.sha256(open(f, "rb").read()).hexdigest() for f in out["files"]])
    assert digests[0] == digests[1] and len(digests[0]) == 3
    other = generate(layout.Paths(tmp_path / "c"), SimulationConfig(customers=300, days=200, seed=8, chunk_customers=100))
    assert [hashlib.sha256(open(f, "rb").read()).hexdigest() for f in other["files"]] != digests[0]


def test_events_are_realistic():
    cfg = SimulationConfig(customers=3000, days=400, seed=1, chunk_customers=1000)
    evs, truths = zip(*simulate(cfg))
    ev, truth = pd.concat(evs), pd.concat(truths)
    assert set(ev["event_type"]) == {"visit", "purchase", "return", "complaint"}
    assert ev["event_id"].is_unique
    assert (ev.loc[ev["event_type"].isin(["purchase", "return"]), "amount"] >= 0).all()
    assert ev.loc[ev["event_type"].isin(["visit", "complaint"]), "amount"].isna().all()
    # nobody acts after churning, and nobody before arriving
    last = ev[ev["event_type"] != "return"].groupby("customer_id")["event_time"].max()
    t = truth.set_index("customer_id")
    churned = t["churn_time"].notna()
    assert (last[churned[churned].index.intersection(last.index)] < t.loc[churned, "churn_time"].reindex(
        churned[churned].index.intersection(last.index))).all()
    # new customers keep arriving; some never churn
    assert (truth["arrival_day"] > cfg.days / 2).sum() > 0.2 * cfg.customers
    assert 0.1 < (~truth["churner"]).mean() < 0.3
    # weekly seasonality: Saturdays are busier than Mondays
    dow = ev["event_time"].dt.dayofweek.value_counts()
    assert dow[5] > 1.2 * dow[0]


def test_oracle_matches_the_simulated_outcome_frequencies():
    cfg = SimulationConfig(customers=6000, days=500, seed=3, chunk_customers=2000)
    evs, truths = zip(*simulate(cfg))
    ev, truth = pd.concat(evs), pd.concat(truths)
    as_of = cfg.start_ts + pd.Timedelta(days=380)
    p = no_purchase_probability(truth, as_of, 90)
    window = ev[(ev["event_type"] == "purchase") & (ev["event_time"] > as_of)
                & (ev["event_time"] <= as_of + pd.Timedelta(days=90))]
    churned = ~p.index.isin(window["customer_id"].unique())
    # calibration by decile of the oracle: observed rate within a few points of the predicted one
    bins = pd.qcut(p.rank(method="first"), 10, labels=False)
    obs = pd.Series(churned, index=p.index).groupby(bins).mean()
    pred = p.groupby(bins).mean()
    assert np.abs(obs - pred).max() < 0.06
    assert abs(churned.mean() - p.mean()) < 0.02


def customer_days(ev: pd.DataFrame, start: pd.Timestamp, before: pd.Timestamp) -> pd.DataFrame:
    """The pandas twin of storage.store.customer_days (the store's SQL is checked in the train flow test)."""
    ev = ev[(ev["event_time"] < before) & ev["event_type"].isin(["purchase", "visit", "complaint"])]
    day = ((ev["event_time"] - start) // pd.Timedelta(days=1)).rename("day")
    kind = pd.get_dummies(ev["event_type"]).reindex(columns=["purchase", "visit", "complaint"], fill_value=False)
    frame = pd.DataFrame({"customer_id": ev["customer_id"], "day": day, "purchases": kind["purchase"].astype(int),
                          "visits": kind["visit"].astype(int), "complaints": kind["complaint"].astype(int),
                          "log_amount": np.where(kind["purchase"], np.log(ev["amount"].where(ev["amount"] > 0, 1)), 0)})
    return frame.groupby(["customer_id", "day"], as_index=False).sum().sort_values("day", kind="stable")


def test_the_events_only_oracle_is_calibrated_and_between_the_state_oracle_and_guessing():
    """It knows each customer's hidden rates but infers the state from the events only: calibrated like the oracle,
    less sharp than the oracle that knows the state, far sharper than the base rate."""
    from sklearn.metrics import roc_auc_score

    cfg = SimulationConfig(customers=6000, days=500, seed=3, chunk_customers=2000)
    evs, truths = zip(*simulate(cfg))
    ev, truth = pd.concat(evs), pd.concat(truths)
    as_of = cfg.start_ts + pd.Timedelta(days=380)
    p = events_only_probability(truth, customer_days(ev, cfg.start_ts, as_of), as_of, 90)
    state = no_purchase_probability(truth, as_of, 90)
    assert p.index.equals(state.index) and p.between(0, 1).all()
    window = ev[(ev["event_type"] == "purchase") & (ev["event_time"] > as_of)
                & (ev["event_time"] <= as_of + pd.Timedelta(days=90))]
    churned = ~p.index.isin(window["customer_id"].unique())
    bins = pd.qcut(p.rank(method="first"), 10, labels=False)
    assert np.abs(pd.Series(churned, index=p.index).groupby(bins).mean() - p.groupby(bins).mean()).max() < 0.06
    assert abs(churned.mean() - p.mean()) < 0.02
    auc, auc_state = roc_auc_score(churned, p), roc_auc_score(churned, state)
    assert 0.85 < auc < auc_state - 0.003, (auc, auc_state)

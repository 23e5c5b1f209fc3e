"""The oracle: the true probability that a simulated customer makes no purchase in the horizon.

It conditions on each customer's hidden parameters and hidden state (active, declining, churned)
on the cutoff day, and integrates the state chain and the daily Poisson purchase process of
`simulator.generate` exactly. No model that sees only events can do better on average.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.generate import DECLINE_PURCHASE_FACTOR, seasonality


def no_purchase_probability(truth: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int) -> pd.Series:
    """P(no purchase in (as_of, as_of + horizon]) per customer arrived by as_of, indexed by customer_id."""
    start = pd.Timestamp(truth["sim_start"].iloc[0])
    k = int(np.ceil((pd.Timestamp(as_of) - start) / pd.Timedelta(days=1)))
    t = truth[truth["arrival_day"].to_numpy() < k]
    lam = t["purchase_rate"].to_numpy()
    p_decline = -np.expm1(-t["decline_hazard"].to_numpy())
    p_churn = -np.expm1(-t["churn_hazard"].to_numpy())
    declining = (t["decline_start_day"].to_numpy() <= k) & (k < t["churn_day"].to_numpy())
    churned = t["churn_day"].to_numpy() <= k
    a = (~declining & ~churned).astype(float)
    d = declining.astype(float)
    c = churned.astype(float)
    for s in seasonality(start, k, horizon_days):
        a_np = a * np.exp(-lam * s)
        d_np = d * np.exp(-lam * s * DECLINE_PURCHASE_FACTOR)
        a, d, c = a_np * (1 - p_decline), a_np * p_decline + d_np * (1 - p_churn), c + d_np * p_churn
    return pd.Series(a + d + c, index=pd.Index(t["customer_id"].to_numpy(), name="customer_id"),
                     name="oracle_churn_probability")

"""BG/NBD and Pareto/NBD baselines: P(no purchase within the horizon | purchase history up to the cutoff).

The classical buy-till-you-die models, fitted by pymc-marketing (its CLV models, the maintained line
after lifetimes) with a point estimate (MAP, which with its default priors is close to maximum
likelihood; never MCMC here). They are unsupervised: a model is fitted on one cutoff's own purchase
histories (repeat purchase days, first-to-last purchase span, age since the first purchase; see
`features.purchase_history`) and predicts for the same customers, so it never sees an event after that
cutoff nor any label. Time is in days.

A customer who never bought (only visits, say) has no BTYD history: the model's clock starts at the
first purchase. Such customers get `never_bought_rate`, a constant the caller measures (train: the
churn rate of never-buyers in the training snapshots), the way the recency rule scores its groups.

The parameters are population-level (four or six numbers), so they are fitted on a deterministic
random sample of at most `sample_customers` buyers (chosen by a seeded hash of the customer id, so the
same customers and seed give the same sample whatever the row order) and applied to every customer.
Unsampled, the Pareto/NBD fit took about 2 min at 100k buyers and 20 min at 1M here.

pymc-marketing pulls pymc and pytensor (10-40 s to import, C compiled on first use): imported inside
`fit` only, so commands that fit no BTYD model (CLI start-up, ingest, score, win-back) never pay it.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from features.purchase_history import AGE, FREQUENCY, RECENCY


def _library_frame(X: pd.DataFrame) -> pd.DataFrame:
    """pymc-marketing's input: customer_id, frequency, recency, T (buyers only)."""
    return pd.DataFrame({"customer_id": np.arange(len(X)), "frequency": X[FREQUENCY].to_numpy(dtype=float),
                         "recency": X[RECENCY].to_numpy(dtype=float), "T": X[AGE].to_numpy(dtype=float)})


def fit_sample(index: pd.Index, n: int | None, seed: int) -> np.ndarray:
    """Positions of at most `n` rows, chosen by a seeded hash of their index values (the customer ids), in hash
    order: the same ids and seed give the same rows in the same order, whatever the order of `index`."""
    key = f"{seed % 10**16:016d}"  # pandas' hash key: 16 characters
    h = pd.util.hash_array(np.asarray(index, dtype=object), hash_key=key, categorize=False)
    order = np.argsort(h, kind="stable")
    return order if n is None else order[:n]


# A MAP fit whose parameters leave this range has run off to a boundary where the library's likelihood is no longer
# computed in float64 (seen: BG/NBD's dropout concentration at 1.9e20 on the grocery year, with a log posterior of
# +2.6e9, against a proper optimum near 4.7; the same histories in another row order converged)
MAX_PARAMETER = 1e8


def degenerate(params: dict[str, float]) -> bool:
    """True when a fit's parameters are not finite or beyond MAX_PARAMETER (see there)."""
    return any(not np.isfinite(v) or abs(v) > MAX_PARAMETER for v in params.values())


class _BTYD:
    library_class = ""  # the pymc_marketing.clv model
    # where the MAP fit starts again when the library's default start ends degenerate: the model's published
    # estimates on CDNOW (parameters of the library's own names)
    published_start: dict[str, float] = {}

    def __init__(self, horizon_days: float, never_bought_rate: float, sample_customers: int | None = None,
                 seed: int = 0):
        self.horizon_days = horizon_days
        self.never_bought_rate = never_bought_rate
        self.sample_customers = sample_customers
        self.seed = seed

    def fit(self, X: pd.DataFrame, y=None) -> "_BTYD":
        """Fit on (a sample of) the buyers of one cutoff's history, X indexed by customer id (`y` is ignored: the
        model needs no labels)."""
        buyers = X[X[FREQUENCY].notna()]
        if len(buyers) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two customers with a purchase, got {len(buyers)}")
        sample = buyers.iloc[fit_sample(buyers.index, self.sample_customers, self.seed)]
        with _quiet():  # its import logs which arviz previews are missing
            import pymc_marketing.clv as clv

            for start in (None, self.published_start):  # the second only when the first fit ran off (degenerate)
                model = getattr(clv, self.library_class)(data=_library_frame(sample))
                model.fit(method="map", progressbar=False, **({"start": dict(start)} if start else {}))
                params = {k: float(v) for k, v in model.fit_summary().items()}
                if not degenerate(params):
                    break
        if degenerate(params):
            logging.getLogger("churn.train").warning(
                "%s: the MAP fit stays degenerate from two starts (%s): its probabilities are unreliable",
                type(self).__name__, ", ".join(f"{k}={v:.3g}" for k, v in params.items()))
        self.model_ = model
        self.params_ = params
        self.n_buyers_ = len(buyers)
        self.n_fitted_ = len(sample)
        return self

    def _no_purchase(self, data: pd.DataFrame, days: float) -> np.ndarray:
        raise NotImplementedError

    def no_purchase_within(self, X: pd.DataFrame, days) -> np.ndarray:
        """P(no purchase in (cutoff, cutoff + t]) for every t of `days`: rows x days, NaN for never-buyers (the
        model has no clock for them)."""
        out = np.full((len(X), len(days)), np.nan)
        bought = X[FREQUENCY].notna().to_numpy()
        if bought.any():
            data = _library_frame(X[bought])
            with _quiet():
                for j, t in enumerate(days):
                    out[bought, j] = np.clip(self._no_purchase(data, float(t)), 0.0, 1.0)
        return out

    def churn_probability(self, X: pd.DataFrame) -> pd.Series:
        """P(churn) = P(no purchase in (cutoff, cutoff + horizon]) per row, indexed like X (every customer, not
        only the fitted sample)."""
        out = np.full(len(X), float(self.never_bought_rate))
        bought = X[FREQUENCY].notna().to_numpy()
        if bought.any():
            with _quiet():
                p = self._no_purchase(_library_frame(X[bought]), self.horizon_days)
            out[bought] = np.clip(p, 0.0, 1.0)
        return pd.Series(out, index=X.index)


class BGNBD(_BTYD):
    """Beta-geometric/NBD (Fader, Hardie & Lee 2005): drop-out possible after each repeat purchase."""

    library_class = "BetaGeoModel"
    # Fader, Hardie & Lee (2005): r 0.243, alpha 4.414, a 0.793, b 2.426 (phi = a / (a + b), kappa = a + b)
    published_start = {"r": 0.243, "alpha": 4.414, "phi_dropout": 0.793 / (0.793 + 2.426), "kappa_dropout": 3.219}

    def _no_purchase(self, data: pd.DataFrame, days: float) -> np.ndarray:
        p = self.model_.expected_probability_no_purchase(t=days, data=data)
        return _point(p)


    def point_in_time_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """P(alive) at the cutoff and expected purchases within the horizon per row, indexed like X (empty for
        customers who never bought): what the fitted model knows, as inputs for another model."""
        out = pd.DataFrame({f: np.nan for f in BTYD_FEATURES}, index=X.index)
        bought = X[FREQUENCY].notna().to_numpy()
        if bought.any():
            data = _library_frame(X[bought])
            with _quiet():
                out.loc[bought, BTYD_FEATURES[0]] = _point(self.model_.expected_probability_alive(data=data))
                out.loc[bought, BTYD_FEATURES[1]] = _point(
                    self.model_.expected_purchases(data=data, future_t=self.horizon_days))
        return out


# the point-in-time BG/NBD outputs, as feature columns
BTYD_FEATURES = ("btyd_p_alive", "btyd_expected_purchases_horizon")


class ParetoNBD(_BTYD):
    """Pareto/NBD (Schmittlein, Morrison & Colombo 1987): drop-out at any time, exponential lifetimes."""

    library_class = "ParetoNBDModel"
    # Fader, Hardie & Lee (2005), "A note on implementing the Pareto/NBD model": r 0.553, alpha 10.578, s 0.606,
    # beta 11.669
    published_start = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}

    def _no_purchase(self, data: pd.DataFrame, days: float) -> np.ndarray:
        p = self.model_.expected_purchase_probability(data=data, n_purchases=0, future_t=days)
        return _point(p)


def _point(p) -> np.ndarray:
    """The per-customer value of a MAP fit (its single chain and draw)."""
    return np.asarray(p.mean(dim=[d for d in p.dims if d in ("chain", "draw")]).values, dtype=float).reshape(-1)


class _quiet:
    """Silence pymc's and arviz's progress logging and warnings (a MAP fit, not a sampler run)."""

    def __enter__(self):
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._levels = {}
        for name in ("pymc", "pymc_marketing", "pytensor", "arviz", "arviz.preview"):
            lg = logging.getLogger(name)
            self._levels[name] = lg.level
            lg.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._warnings.__exit__(*exc)
        return False


def with_point_in_time_features(frame: pd.DataFrame, horizon_days: int, sample_customers: int | None,
                                seed: int) -> pd.DataFrame:
    """Stacked snapshots with the BTYD_FEATURES columns: at each cutoff a BG/NBD fitted on that cutoff's own purchase
    histories only (no labels, nothing after the cutoff), applied to the customers of that cutoff."""
    parts = []
    for _, rows in frame.groupby("cutoff", sort=True):
        history = rows.set_index("customer_id")
        fitted = BGNBD(horizon_days, 1.0, sample_customers=sample_customers, seed=seed).fit(history)
        values = fitted.point_in_time_features(history)
        parts.append(rows.assign(**{c: values[c].to_numpy() for c in BTYD_FEATURES}))
    return pd.concat(parts).loc[frame.index]

"""Win-back flow: a day's scores -> ranked list with reasons and actions, as Parquet and safe CSV."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, task

from models.winback import DEFAULT_ACTIONS, WinbackPolicy, pseudonymise, select_winback, spreadsheet_safe
from storage import catalog, layout

PSEUDONYM_KEY_ENV = "CHURN_PSEUDONYM_KEY"


def pseudonym_key() -> bytes:
    """The pseudonymisation key, from the environment only (never from files, never logged)."""
    key = os.environ.get(PSEUDONYM_KEY_ENV, "")
    if not key:
        raise RuntimeError(f"pseudonymised export needs a key: set {PSEUDONYM_KEY_ENV} (at least 16 characters)")
    return key.encode()


def winback(paths: layout.Paths, as_of_date: str | None, policy: WinbackPolicy, contacts_file: Path | None,
            pseudonymised: bool = False) -> dict:
    """Select and write the win-back list for a scored day (default: the latest)."""
    scores, day = catalog.read_scores(paths, as_of_date)
    contacts = catalog.read_contacts(contacts_file) if contacts_file else None
    chosen = select_winback(scores, policy, contacts)
    if pseudonymised:
        chosen["customer_id"] = pseudonymise(chosen["customer_id"], pseudonym_key())
    pq_path, csv_path = catalog.write_winback(paths, chosen, spreadsheet_safe(chosen), day)
    return {"as_of": day, "customers": len(chosen), "value_at_risk": float(chosen["value_at_risk"].sum()),
            "parquet": str(pq_path), "csv": str(csv_path),
            "by_action": {str(k): int(v) for k, v in chosen["reason_category"].value_counts().items()},
            "rows": chosen.head(20).to_dict("records")}


@task(name="write-winback-list", retries=2, retry_delay_seconds=[2, 10])
def winback_task(home: str, as_of: str | None, top_n: int | None, cooldown_days: int, max_inactive_days: int,
                 actions: dict[str, str], contacts: str | None, pseudonymised: bool) -> dict:
    policy = WinbackPolicy(top_n=top_n, cooldown_days=cooldown_days, max_inactive_days=max_inactive_days,
                           actions={**DEFAULT_ACTIONS, **actions})
    return winback(layout.Paths(Path(home)), as_of, policy, Path(contacts) if contacts else None, pseudonymised)


@flow(name="winback")
def winback_flow(home: str, as_of: str | None = None, top_n: int | None = None, cooldown_days: int = 30,
                 max_inactive_days: int = 180, actions: dict[str, str] | None = None,
                 contacts: str | None = None, pseudonymised: bool = False) -> dict:
    """Write the win-back list of a scored day."""
    return winback_task(home, as_of, top_n, cooldown_days, max_inactive_days, actions or {}, contacts,
                        pseudonymised)

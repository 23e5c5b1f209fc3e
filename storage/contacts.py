"""The contact store: who the CRM contacted, one Parquet file per ingest batch under `<home>/contacts/`, its
quarantine under `<home>/quarantine/contacts/` and its ledger of ingested file contents, committed through the
event store's journal (staged files, a COMMIT marker, renames; `store.recover` finishes or discards a batch a
crash left behind)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from expectations.contacts import CONTACT_COLUMN_NAMES, CONTACT_SCHEMA, CONTACT_STORE_SCHEMA
from expectations.quarantine import QUARANTINE_SCHEMA
from storage import store
from storage.layout import Paths


def ledger_entry(paths: Paths, sha: str) -> dict | None:
    """The record of a contact file content already ingested (None if not)."""
    p = paths.contacts_ledger / f"{sha}.json"
    return json.loads(p.read_text()) if p.exists() else None


def contact_files(paths: Paths) -> list[Path]:
    """Committed contact files (whole batches only, like `store.event_files`)."""
    if not paths.contacts.exists():
        return []

    def listing() -> list[Path]:
        unfinished = store.unfinished_targets(paths)
        return [f for f in sorted(paths.contacts.glob("*.parquet")) if f not in unfinished]

    if not paths.commit_lock_file.exists():
        return listing()
    with store.commit_lock(paths, exclusive=False):
        return listing()


def read_contacts(paths: Paths) -> pd.DataFrame:
    """Every stored contact (contract columns + ingest_batch); empty with the schema's columns when none."""
    files = contact_files(paths)
    if not files:
        return CONTACT_STORE_SCHEMA.empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(f, schema=CONTACT_STORE_SCHEMA) for f in files]).to_pandas()


def stored_ids_among(paths: Paths, candidate_ids) -> set[str]:
    """Which candidate contact ids are already stored (call under the store lock)."""
    files = contact_files(paths)
    if not files or len(candidate_ids) == 0:
        return set()
    wanted = {str(i) for i in candidate_ids}
    stored = set().union(*(pq.read_table(f, columns=["contact_id"]).column(0).to_pylist() for f in files))
    return wanted & stored


def read_quarantine(paths: Paths) -> pd.DataFrame:
    """Every quarantined contact row (the quarantine contract)."""
    return store.read_quarantine(paths, paths.contacts_quarantine)


def contacts_table(contacts: pd.DataFrame, batch_id: str) -> pa.Table:
    """A batch's contacts in the store's schema (contract columns + the batch id for lineage)."""
    return store.batch_table(contacts, CONTACT_COLUMN_NAMES, CONTACT_SCHEMA, batch_id)


def without_ids(contacts: pa.Table, ids: set[str]) -> pa.Table:
    """The contacts whose contact_id is not among `ids` (those already stored)."""
    return store.without_ids(contacts, ids, "contact_id")


def commit_batch(paths: Paths, batch_id: str, contacts: pa.Table, quarantine: pa.Table, ledger: dict,
                 ledger_sha: str) -> None:
    """Publish a contact batch atomically: its contacts file, its quarantine file and its ledger record, or none
    (call under the store lock), through the event store's journal."""
    def rel(folder: Path, name: str) -> str:
        return (folder / name).relative_to(paths.home).as_posix()

    store.commit_staged(paths, batch_id,
                        [(rel(paths.contacts, f"{batch_id}.parquet"), contacts, CONTACT_STORE_SCHEMA),
                         (rel(paths.contacts_quarantine, f"{batch_id}.parquet"), quarantine, QUARANTINE_SCHEMA)],
                        [(rel(paths.contacts_ledger, f"{ledger_sha}.json"), ledger)])


def contact_history(paths: Paths, extra_file: Path | None = None) -> pd.DataFrame | None:
    """What the win-back cooldown reads: customer_id, contacted_at (ISO 8601 text) and list_id (None when not
    given) of every stored contact, plus those of `extra_file` (a `--contacts` file, ids read by the store's
    rule); None when there are neither."""
    from storage.catalog import read_contacts as read_contact_file

    frames = []
    stored = read_contacts(paths)
    if len(stored):
        frames.append(pd.DataFrame({"customer_id": stored["customer_id"].astype(str).to_numpy(),
                                    "contacted_at": stored["contacted_at"].map(pd.Timestamp.isoformat).to_numpy(),
                                    "list_id": stored["list_id"].to_numpy()}))
    if extra_file is not None:
        extra = read_contact_file(extra_file)
        when = extra["contacted_at"]
        if pd.api.types.is_datetime64_any_dtype(when.dtype):
            when = when.map(lambda t: None if pd.isna(t) else pd.Timestamp(t).isoformat())
        frames.append(pd.DataFrame({"customer_id": extra["customer_id"].astype(str).to_numpy(),
                                    "contacted_at": when.to_numpy(),
                                    "list_id": (extra["list_id"].to_numpy() if "list_id" in extra.columns
                                                else [None] * len(extra))}))
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True)

"""The contact store: who the CRM contacted, one Parquet file per ingest batch under `<home>/contacts/`, its
quarantine under `<home>/quarantine/contacts/` and its ledger of ingested file contents, committed through the
event store's journal (staged files, a COMMIT marker, renames; `store.recover` finishes or discards a batch a
crash left behind)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from expectations.contacts import CONTACT_COLUMN_NAMES, CONTACT_SCHEMA, CONTACT_STORE_SCHEMA
from expectations.quarantine import QUARANTINE_SCHEMA
from storage import store
from storage.atomic import write_json_atomic, write_parquet_atomic
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
    folder = paths.contacts_quarantine
    unfinished = store.unfinished_targets(paths)
    files = [f for f in sorted(folder.glob("*.parquet")) if f not in unfinished] if folder.exists() else []
    if not files:
        return QUARANTINE_SCHEMA.empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(f, schema=QUARANTINE_SCHEMA) for f in files]).to_pandas()


def contacts_table(contacts: pd.DataFrame, batch_id: str) -> pa.Table:
    """A batch's contacts in the store's schema (contract columns + the batch id for lineage)."""
    table = pa.Table.from_pandas(contacts[list(CONTACT_COLUMN_NAMES)], schema=CONTACT_SCHEMA, preserve_index=False)
    return table.append_column("ingest_batch", pa.array([batch_id] * table.num_rows, pa.string()))


def without_ids(contacts: pa.Table, ids: set[str]) -> pa.Table:
    """The contacts whose contact_id is not among `ids` (those already stored)."""
    if not ids:
        return contacts
    import pyarrow.compute as pc

    return contacts.filter(pc.invert(pc.is_in(contacts["contact_id"], value_set=pa.array(sorted(ids), pa.string()))))


def commit_batch(paths: Paths, batch_id: str, contacts: pa.Table, quarantine: pa.Table, ledger: dict,
                 ledger_sha: str) -> None:
    """Publish a contact batch atomically: its contacts file, its quarantine file and its ledger record, or none
    (call under the store lock)."""
    stage = paths.staging / batch_id
    if stage.exists():
        shutil.rmtree(stage)
    moves: list[tuple[str, str]] = []
    try:
        for table, folder, schema in ((contacts, paths.contacts, CONTACT_STORE_SCHEMA),
                                      (quarantine, paths.contacts_quarantine, QUARANTINE_SCHEMA)):
            if table.num_rows:
                rel = (folder / f"{batch_id}.parquet").relative_to(paths.home).as_posix()
                write_parquet_atomic(table.cast(schema), stage / rel)
                moves.append((rel, rel))
        rel = (paths.contacts_ledger / f"{ledger_sha}.json").relative_to(paths.home).as_posix()
        write_json_atomic(ledger, stage / rel)
        moves.append((rel, rel))
        write_json_atomic({"batch_id": batch_id, "moves": moves}, stage / "COMMIT")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    store._roll_forward(paths, stage)


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

"""Everything the pipeline publishes or keeps besides events: landing files it generates, ground truth,
snapshots, scores and win-back lists."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn.errors import UserError
from storage.atomic import file_lock, fsync_dir, write_bytes_atomic, write_json_atomic, write_parquet_atomic
from storage.layout import (  # noqa: F401 - re-exported
    NoScores,
    Paths,
    require_scores,
    scored_days,
    scores_path,
    scores_success_path,
    success_records,
)

# ---------------------------------------------------------------- generated data

def write_landing_file(paths: Paths, frame: pd.DataFrame, name: str, schema: pa.Schema) -> Path:
    """A landing file written by the producer protocol: a hidden temp name renamed into place, then NAME.done."""
    from storage.sources import DONE_SUFFIX

    path = paths.landing / name
    write_parquet_atomic(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)
    path.with_name(path.name + DONE_SUFFIX).touch()  # complete now: no settle time to wait out
    return path


def write_truth(paths: Paths, frames: list[pd.DataFrame]) -> Path:
    path = paths.truth / "customers.parquet"
    write_parquet_atomic(pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False), path)
    return path


def read_truth(paths: Paths) -> pd.DataFrame | None:
    path = paths.truth / "customers.parquet"
    return pq.read_table(path).to_pandas() if path.exists() else None


def write_snapshots(paths: Paths, frame: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int) -> Path:
    """Store labelled training snapshots (one file per as-of date and horizon, replaced on re-run)."""
    path = paths.snapshots / f"as_of={as_of.date().isoformat()}" / f"h{horizon_days}.parquet"
    write_parquet_atomic(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def read_snapshots(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


# ---------------------------------------------------------------- scores and win-back lists

class ContactsError(UserError, ValueError):
    """A contact-history file that is missing or lacks its columns."""


CONTACT_COLUMNS = ("customer_id", "contacted_at")


def write_scores(paths: Paths, frame: pd.DataFrame, schema: pa.Schema, as_of_date: str,
                 currency: str | None = None, store_version: int | None = None) -> tuple[Path, dict]:
    """Publish one day's scores; returns the file and its record (what `_SUCCESS` and `_latest.json` hold).

    Under the scores lock, in this order: the Parquet file (temp file, then rename: readers see the old file
    or the new one whole), then the day's `_SUCCESS` holding its record (rows, sha256, model, schema
    version, `currency`, the label the reasons' amounts were written with, and `store_version`, the event table's
    Delta version the features were built from), then `_latest.json`, the
    record of the newest complete day. Re-scoring a day first takes its
    `_SUCCESS` away (and `_latest.json` off it), so a crash in between leaves a day without a marker, never a
    marker or pointer describing another file. Scoring the same day again replaces its file.
    """
    from storage.sources import file_sha256

    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    path, marker = scores_path(paths, as_of_date), scores_success_path(paths, as_of_date)
    with file_lock(paths.scores_lock_file):
        if marker.exists():
            marker.unlink()
            fsync_dir(marker.parent)
            _point_latest(paths)
        write_parquet_atomic(table, path)
        row = (table.slice(0, 1).to_pylist() or [{}])[0]  # the model and times are the same on every row
        record = {
            "as_of": as_of_date, "path": path.relative_to(paths.scores).as_posix(), "rows": table.num_rows,
            "bytes": path.stat().st_size, "sha256": file_sha256(path),
            "schema_version": int(schema.metadata[b"schema_version"]),
            "model_name": row.get("model_name"), "model_version": row.get("model_version"), "run_id": row.get("run_id"),
            **{k: row[k].isoformat() if row.get(k) else None for k in ("as_of_time", "scored_at")},
            "currency": currency, "store_version": store_version,
        }
        write_json_atomic(record, marker)
        _point_latest(paths)
    return path, record


def _point_latest(paths: Paths) -> None:
    """`_latest.json` := the record of the newest complete day (removed when no day is complete)."""
    records = success_records(paths)
    if not records:
        paths.scores_latest.unlink(missing_ok=True)
        return
    record = records[max(records)]
    if not paths.scores_latest.exists() or json.loads(paths.scores_latest.read_text()) != record:
        write_json_atomic(record, paths.scores_latest)


def latest_scores_date(paths: Paths) -> str | None:
    days = scored_days(paths)
    return days[-1] if days else None


def read_scores(paths: Paths, as_of_date: str | None = None) -> tuple[pd.DataFrame, str]:
    """A complete day's scores (default: the latest), with the folder key `as_of` as a date column, as a reader
    of the hive folder gets it."""
    day = require_scores(paths, as_of_date)
    return _with_day(pq.read_table(scores_path(paths, day)), day).to_pandas(), day


def _with_day(table: pa.Table, day: str) -> pa.Table:
    """A scores table with the folder key `as_of` appended as a date column, as a reader of the hive folder gets it."""
    from datetime import date

    from expectations.scores import PARTITION_FIELD

    return table.append_column(PARTITION_FIELD, pa.array([date.fromisoformat(day)] * table.num_rows, pa.date32()))


def write_winback(paths: Paths, name: str, frame: pd.DataFrame, csv_frame: pd.DataFrame, schema: pa.Schema,
                  as_of_date: str) -> tuple[Path, Path]:
    """One selection's win-back list (`name`: its file stem) as Parquet and CSV, published together.

    Both files are written into a hidden folder, beside hard links to the day's other lists (another
    selection's files stay as they were), and that folder then replaces the day's folder: a reader never
    sees the Parquet file of one run next to the CSV of another (a crash leaves the old folder, or, between
    the two renames, no folder; the next run clears what a crash left behind). One writer at a time per
    data folder, so two selections published at once both survive.
    """
    root = paths.winback
    folder = root / f"as_of={as_of_date}"
    root.mkdir(parents=True, exist_ok=True)
    pq_name, csv_name = f"{name}.parquet", f"{name}.csv"
    with file_lock(paths.winback_lock_file):
        for leftover in root.glob(f".as_of={as_of_date}.*"):
            shutil.rmtree(leftover, ignore_errors=True)
        token = os.urandom(6).hex()
        staged, old = root / f".as_of={as_of_date}.new-{token}", root / f".as_of={as_of_date}.old-{token}"
        staged.mkdir()
        if folder.is_dir():
            for other in folder.iterdir():
                if other.is_file() and other.name not in (pq_name, csv_name):
                    os.link(other, staged / other.name)
        write_parquet_atomic(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), staged / pq_name)
        # amounts with their cents (465.60, not 465.6); whole-number columns are integers and stay so
        write_bytes_atomic(staged / csv_name, csv_frame.to_csv(index=False, lineterminator="\n",
                                                               float_format="%.2f").encode("utf-8"))
        if folder.exists():
            os.rename(folder, old)
        os.rename(staged, folder)
        fsync_dir(root)
        shutil.rmtree(old, ignore_errors=True)
    return folder / pq_name, folder / csv_name


def record_list(paths: Paths, record: dict) -> None:
    """Append one written list to the campaign ledger (`campaigns/lists.jsonl`, one JSON record per line, under
    the win-back lock, flushed to disk): its id, settings, sizes, model and day. Writing a day's list again
    appends a new record; the newest record of a list id describes the files on disk."""
    paths.campaign_ledger.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
    with file_lock(paths.winback_lock_file):
        with open(paths.campaign_ledger, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def read_ledger(paths: Paths) -> list[dict]:
    """Every record of the campaign ledger, oldest first (a torn last line, from a crash mid-append, is skipped)."""
    if not paths.campaign_ledger.exists():
        return []
    out = []
    for line in paths.campaign_ledger.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class UnknownList(UserError, LookupError):
    """A list id that the campaign ledger does not hold (or whose files are gone)."""


def campaign_lists(paths: Paths) -> list[dict]:
    """The newest ledger record of each list id written with real customer ids, oldest list first (a
    pseudonymised copy has the same id and groups, but ids no event carries)."""
    newest: dict[str, dict] = {}
    for record in read_ledger(paths):
        if not record.get("pseudonymised"):
            newest.pop(record["list_id"], None)
            newest[record["list_id"]] = record
    return sorted(newest.values(), key=lambda r: (r["as_of"], r["list_id"]))


def list_record(paths: Paths, list_id: str) -> dict:
    """The newest ledger record of `list_id` (real ids); UnknownList naming the recorded lists."""
    records = {r["list_id"]: r for r in campaign_lists(paths)}
    if list_id not in records:
        raise UnknownList(f"no list {list_id!r} in the campaign ledger {paths.campaign_ledger}; lists: "
                          f"{', '.join(records) or 'none yet (run `churn winback`)'}")
    return records[list_id]


def read_list(paths: Paths, record: dict) -> pd.DataFrame:
    """A ledger record's win-back list (target and control rows), read from the day's folder of this data folder
    (the record's absolute paths may name a folder since moved)."""
    f = paths.winback / f"as_of={record['as_of']}" / f"{record['file_stem']}.parquet"
    if not f.is_file():
        raise UnknownList(f"list {record['list_id']}: its file {f} is gone")
    return pq.read_table(f).to_pandas()


def scores_currency(paths: Paths, as_of_date: str) -> str | None:
    """The currency a complete day's scores were written with (their reasons' money), None if not recorded."""
    return (success_records(paths).get(as_of_date) or {}).get("currency")


def list_groups(paths: Paths, as_of_date: str, file_stem: str) -> dict[str, str]:
    """Customer id -> group of the day's list `file_stem` as last written (real ids), {} if there is none or it
    predates the hold-out (no `group` column)."""
    f = paths.winback / f"as_of={as_of_date}" / f"{file_stem}.parquet"
    if not f.is_file():
        return {}
    table = pq.read_table(f)
    if "group" not in table.column_names:
        return {}
    return dict(zip(table.column("customer_id").to_pylist(), table.column("group").to_pylist()))


def list_cutoff(paths: Paths, record: dict) -> tuple[pd.Timestamp, int]:
    """The cutoff instant of a list (its scores' as_of_time) and the horizon its model predicts (the scores'
    horizon_days); UnknownList when the day's scores are gone or incomplete."""
    day = record["as_of"]
    rec = success_records(paths).get(day)
    if rec is None or not rec.get("as_of_time"):
        raise UnknownList(f"list {record['list_id']}: the scores of {day} it was drawn from are gone or incomplete, "
                          f"so its cutoff instant and horizon are unknown")
    horizon = pq.read_table(scores_path(paths, day), columns=["horizon_days"]).column(0)
    return pd.Timestamp(rec["as_of_time"]).tz_convert("UTC"), int(horizon[0].as_py())


def write_campaign_truth(paths: Paths, list_id: str, frames: list[pd.DataFrame], effect: dict) -> Path:
    """The simulator's true campaign effect for a list: truth/campaign-<list_id>.parquet (per customer of the
    list, both potential outcomes) and .json (the effect on the target group); returns the JSON file."""
    path = paths.truth / f"campaign-{list_id}.parquet"
    write_parquet_atomic(pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False), path)
    write_json_atomic(effect, path.with_suffix(".json"))
    return path.with_suffix(".json")


def read_campaign_truth(paths: Paths, list_id: str) -> tuple[pd.DataFrame, dict] | None:
    """The simulator's per-customer truth and effect of a list (None unless the list was simulated)."""
    path = paths.truth / f"campaign-{list_id}.parquet"
    if not path.is_file():
        return None
    return pq.read_table(path).to_pandas(), json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


def check_contacts(path: Path) -> None:
    """ContactsError unless `path` is a readable contact history with customer_id and contacted_at
    (reads only the Parquet schema or the CSV header)."""
    if not path.is_file():
        raise ContactsError(f"contact history {path}: " + ("a folder, not a file: name the CSV or Parquet file in it"
                                                            if path.is_dir() else "no such file"))
    try:
        columns = (pq.read_schema(path).names if path.suffix.lower() == ".parquet" else
                   pd.read_csv(path, dtype=str, nrows=0).columns.tolist())
    except (OSError, ValueError, pa.ArrowException) as e:
        raise ContactsError(f"contact history {path} cannot be read as "
                            f"{'Parquet' if path.suffix.lower() == '.parquet' else 'CSV'}: {e}") from e
    missing = [c for c in CONTACT_COLUMNS if c not in columns]
    if missing:
        raise ContactsError(f"contact history {path} lacks columns {missing}; it has {columns[:20]}")


def read_contacts(path: Path) -> pd.DataFrame:
    """A contact-history file (CSV or Parquet) with customer_id and contacted_at."""
    from ingestion.normalize import as_identifiers

    check_contacts(path)
    if path.suffix.lower() == ".parquet":
        frame = pq.read_table(path).to_pandas()
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    # the ids by the rule ingest stored them by (" C0000406 " is C0000406), so the cooldown finds them
    return frame.assign(customer_id=as_identifiers(frame["customer_id"]))


# ---------------------------------------------------------------- look-ups for `churn scores` and `churn explain`

def published_scores(paths: Paths) -> list[dict]:
    """Every day under scores/, oldest first: its `_SUCCESS` record and customers per tier for complete days;
    days with a file but no record are listed as incomplete (their write was interrupted, or is running)."""
    from expectations.scores import RISK_TIERS

    complete = success_records(paths)
    latest = max(complete, default=None)
    out = []
    for f in sorted(paths.scores.glob("as_of=*/scores.parquet")):
        day = f.parent.name.removeprefix("as_of=")
        record = complete.get(day)
        if record is None:
            out.append({"as_of": day, "complete": False, "path": f.relative_to(paths.scores).as_posix()})
            continue
        tiers = pq.read_table(f, columns=["risk_tier"]).column(0).to_pandas().value_counts()
        out.append({**record, "complete": True, "latest": day == latest,
                    "tiers": {t: int(tiers.get(t, 0)) for t in RISK_TIERS}})
    return out


class UnknownCustomer(UserError, LookupError):
    """A customer id with no score on the day asked for."""


def customer_scores(paths: Paths, customer_id: str, as_of_date: str | None) -> tuple[pd.DataFrame, str, int]:
    """The one-row scores frame of a customer on a complete day (default: the latest), the day, and how many
    customers that day has; UnknownCustomer (naming the day and its size) when the customer is not in it."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from ingestion.normalize import as_identifiers

    day = require_scores(paths, as_of_date)
    try:
        customer_id.encode("utf-8")
    except UnicodeEncodeError:
        raise UnknownCustomer(f"customer id {customer_id!r} is not UTF-8 text: no stored id is") from None
    customer_id = str(as_identifiers(pd.Series([customer_id])).iloc[0])
    data = ds.dataset(scores_path(paths, day), format="parquet")
    table = data.to_table(filter=pc.field("customer_id") == customer_id)
    if table.num_rows == 0:
        raise UnknownCustomer(f"customer {customer_id!r} has no score on {day} ({data.count_rows():,} customers "
                              f"scored: those with an event in the lookback before that day); ids are matched "
                              f"as ingest stores them (trimmed, NFC, inner spaces one space)")
    return _with_day(table, day).to_pandas(), day, data.count_rows()


def list_entry(paths: Paths, list_name: str, day: str, customer_id: str) -> tuple[dict | None, bool]:
    """The customer's row of a day's win-back list (list_id, group, contact_rank; None if not on it), and whether
    that list was written. A list written before the hold-out (contract version 2) reads as all target."""
    f = paths.winback / f"as_of={day}" / f"{list_name}.parquet"
    if not f.is_file():
        return None, False
    t = pq.read_table(f).to_pandas()
    hit = t[t["customer_id"] == customer_id]
    if hit.empty:
        return None, True
    row = hit.iloc[0]
    if "group" not in t:
        return {"list_id": None, "group": "target", "contact_rank": int(row["winback_rank"])}, True
    rank = row["contact_rank"]
    return {"list_id": row["list_id"], "group": row["group"], "contact_rank": None if pd.isna(rank) else int(rank)}, True

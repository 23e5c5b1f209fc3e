"""Where everything lives under one data folder, and the rule that paths stay inside it.

Layout under the home folder:

    landing/                 files waiting to be ingested (Parquet, CSV, JSON Lines; .gz allowed)
    landing/contacts/        CRM contact exports waiting for `churn contacts ingest`
    contacts/                the stored contacts: Parquet, one file per ingest batch
    quarantine/contacts/     rejected contact rows, one Parquet file per batch, with reasons
    state/contacts-ingested/ one JSON record per ingested contact file content (sha256)
    events/                  the event store: a Delta table (_delta_log/; event_month=M/, one file per batch and month)
    quarantine/              rejected rows, one Parquet file per batch, with reasons
    rejected/                whole files that could not be read, each with a .error.json beside it
    state/ingested/          one JSON record per ingested file content (sha256): the ledger
    truth/                   the simulator's ground truth (only for generated data)
    mlflow/                  the default MLflow tracking database and artifacts
    scores/as_of=D/          a day's scores.parquet, then its _SUCCESS record; scores/_latest.json points
                             at the newest complete day (see `storage.catalog.write_scores`)
    .staging/                batches being committed (see `commit_batch`)
    .duckdb-tmp/<pid>/       DuckDB spill files of a running query (see `connect`)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from churn.errors import UserError


class PathOutside(UserError, ValueError):
    """A path from settings, a mapping or an event leads outside the folder it must stay in."""


def entries_inside(home: Path, allow_outside: bool = False) -> None:
    """PathOutside when an entry of the data folder (`rejected/`, `events/`, ...) is a symbolic link leading out
    of it: everything is written below the data folder, and a link would carry files elsewhere unannounced
    (`allow_outside` allows it, for a folder placed on another disk on purpose)."""
    if allow_outside or not home.is_dir():
        return
    root = home.resolve()
    for entry in home.iterdir():
        if entry.is_symlink() and not entry.resolve().is_relative_to(root):
            raise PathOutside(f"{entry} is a symbolic link to {entry.resolve()}, outside the data folder: everything "
                              f"is written below the data folder (remove the link, or set allow_outside_paths = "
                              f"true to allow it)")


def resolve_inside(base: Path, path: str | Path, what: str, allow_outside: bool = False) -> Path:
    """`path` resolved against `base` (symlinks followed); outside `base` only when explicitly allowed.

    Relative paths are read against `base`, never against the current directory; `..` and symlinks
    that lead out of `base` are refused unless `allow_outside` (then only absolute paths are taken).
    """
    base = Path(base).resolve()
    p = Path(path).expanduser()
    resolved = (p if p.is_absolute() else base / p).resolve()
    if resolved == base or base in resolved.parents:
        return resolved
    if allow_outside and p.is_absolute():
        return resolved
    raise PathOutside(f"{what} {str(path)!r} resolves to {resolved}, outside {base}; "
                      + ("give an absolute path" if allow_outside else
                         "paths outside the data folder need an absolute path and allow_outside_paths = true"))


@dataclass(frozen=True)
class Paths:
    """Where everything lives under one home folder."""

    home: Path

    @property
    def landing(self) -> Path: return self.home / "landing"
    @property
    def events(self) -> Path: return self.home / "events"
    @property
    def quarantine(self) -> Path: return self.home / "quarantine"
    @property
    def rejected(self) -> Path: return self.home / "rejected"
    @property
    def ledger(self) -> Path: return self.home / "state" / "ingested"
    @property
    def staging(self) -> Path: return self.home / ".staging"
    @property
    def truth(self) -> Path: return self.home / "truth"
    @property
    def mlflow(self) -> Path: return self.home / "mlflow"
    @property
    def snapshots(self) -> Path: return self.home / "snapshots"
    @property
    def scores(self) -> Path: return self.home / "scores"
    @property
    def winback(self) -> Path: return self.home / "winback"
    @property
    def duckdb_tmp(self) -> Path: return self.home / ".duckdb-tmp"
    @property
    def lock_file(self) -> Path: return self.home / "state" / "store.lock"
    @property
    def commit_lock_file(self) -> Path: return self.home / "state" / "commit.lock"
    @property
    def scores_lock_file(self) -> Path: return self.home / "state" / "scores.lock"
    @property
    def scores_latest(self) -> Path: return self.scores / LATEST_POINTER
    @property
    def winback_lock_file(self) -> Path: return self.home / "state" / "winback.lock"
    @property
    def campaign_ledger(self) -> Path: return self.home / "campaigns" / "lists.jsonl"
    @property
    def landing_contacts(self) -> Path: return self.landing / "contacts"
    @property
    def contacts(self) -> Path: return self.home / "contacts"
    @property
    def contacts_quarantine(self) -> Path: return self.quarantine / "contacts"
    @property
    def contacts_ledger(self) -> Path: return self.home / "state" / "contacts-ingested"


# Names readers of a hive folder skip (pyarrow, pandas and Spark leave out names starting with "_" or "."; a
# `*/*.parquet` glob matches neither): a plain `latest` file at the root would be read as a Parquet file.
SUCCESS_MARKER = "_SUCCESS"
LATEST_POINTER = "_latest.json"


# ---------------------------------------------------------------- published scores (paths only: no pandas, so
# `churn winback` can say "no scores" before importing anything heavy)

class NoScores(UserError, FileNotFoundError):
    """No scores for the requested day (or for any day)."""


def scores_path(paths: Paths, as_of_date: str) -> Path:
    return paths.scores / f"as_of={as_of_date}" / "scores.parquet"


def scores_success_path(paths: Paths, as_of_date: str) -> Path:
    return paths.scores / f"as_of={as_of_date}" / SUCCESS_MARKER


def success_records(paths: Paths) -> dict[str, dict]:
    """The complete days, oldest first, each with its _SUCCESS record: the file and then its record written, a
    record that reads and names its day (a damaged marker makes the day incomplete, never a crash)."""
    import json

    out = {}
    for marker in sorted(paths.scores.glob(f"as_of=*/{SUCCESS_MARKER}")):
        day = marker.parent.name.removeprefix("as_of=")
        try:
            record = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("as_of") == day and marker.with_name("scores.parquet").is_file():
            out[day] = record
    return out


def scored_days(paths: Paths) -> list[str]:
    """The days whose scores are complete (see success_records), oldest first."""
    return list(success_records(paths))


def require_scores(paths: Paths, as_of_date: str | None = None) -> str:
    """The day whose scores to use (default: the latest complete one); NoScores, naming the days that have
    complete scores, if that day has none or an incomplete write."""
    days = scored_days(paths)
    day = as_of_date or (days[-1] if days else None)
    if day is not None and day in days:
        return day
    if day is None:  # nothing complete: name the newest interrupted write, if there is one
        started = sorted(p.parent.name.removeprefix("as_of=") for p in paths.scores.glob("as_of=*/scores.parquet"))
        day = started[-1] if started else None
    shown = ", ".join(days[-10:]) + (f" (and {len(days) - 10} earlier)" if len(days) > 10 else "")
    if day is not None and scores_path(paths, day).exists():
        raise NoScores(f"the scores for {day} under {paths.scores} are not complete (no readable {SUCCESS_MARKER}: their "
                       f"write was interrupted, or they predate schema version 2): run `churn score --as-of {day}`"
                       + (f"; complete days: {shown}" if days else ""))
    if not days:
        raise NoScores(f"no scores under {paths.scores} yet: run `churn score` first")
    raise NoScores(f"no scores for {day} under {paths.scores}; scored days: {shown}")

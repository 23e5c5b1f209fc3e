"""The scores folder as a downstream engineer reads it: the whole hive folder with pandas, pyarrow and DuckDB,
a `_SUCCESS` record per complete day, and `_latest.json` pointing at the newest complete day, also after a
scoring run was killed (a real SIGKILL in a child process, at a chosen point of the publication).

Spark is not a dependency of this project, so it is not run here; what it needs is checked instead:
microsecond timestamps, and every file that is not data named with a leading "_" or "." (Spark, like
pyarrow, skips those names).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from expectations.scores import SCHEMA_VERSION, SCORE_COLUMN_NAMES, SCORE_COLUMNS, SCORE_SCHEMA
from storage import layout
from tests.conftest import config
from tests.reliability import helpers

NOW = pd.Timestamp("2025-06-01T00:00Z")
CTX = helpers.forkserver()
DAYS = ("2024-05-01", "2024-06-01")
READERS = ("pandas", "pyarrow", "pyarrow-date-key", "duckdb")
FOLDER_KEY = pa.field("as_of", pa.date32())  # as_of=YYYY-MM-DD/, as the README tells readers to declare it


def uri(paths) -> str:
    return f"sqlite:///{paths.mlflow / 'mlflow.db'}"


def score_day(home, day: str) -> dict:
    from flows.score import score

    return score(config(home, "score", exact_reasons_top_n=100), pd.Timestamp(day, tz="UTC"), now=NOW)


def _score_killed(home: str, ready: str, day: str, point: str) -> None:
    """Score `day`, SIGKILLing this process at `point`: "success" (the file renamed into place, its _SUCCESS
    not yet written) or "parquet" (the temp file written, not yet renamed)."""
    from storage import atomic

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "success":
        write = atomic.write_bytes_atomic
        atomic.write_bytes_atomic = lambda path, data: die() if path.name == "_SUCCESS" else write(path, data)
    else:
        replace = os.replace
        atomic.os.replace = lambda src, dst: die() if str(dst).endswith("scores.parquet") else replace(src, dst)
    Path(ready).touch()
    score_day(home, day)


def killed(home: Path, day: str, point: str) -> None:
    _, code = helpers.run_child(CTX, _score_killed, home, None, day, point, kill_when=lambda: False)
    assert code == -signal.SIGKILL, "the child was meant to be killed at its chosen point"


@pytest.fixture(scope="module")
def two_days(small_store, tmp_path_factory) -> layout.Paths:
    """A copy of the small store with a champion and two scored days (no Prefect needed)."""
    paths = helpers.store_copy(small_store, tmp_path_factory.mktemp("scoresdir") / "home")
    frame, info = helpers.snapshots(paths)
    helpers.register(paths, frame, info, helpers.fit(frame), uri(paths))
    for day in DAYS:
        score_day(paths.home, day)
    return paths


@pytest.fixture
def home_copy(two_days, tmp_path) -> layout.Paths:
    home = tmp_path / "home"
    shutil.copytree(two_days.home, home)
    return layout.Paths(home)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def success(paths, day: str) -> dict:
    return json.loads((paths.scores / f"as_of={day}" / "_SUCCESS").read_text())


def latest(paths) -> dict:
    return json.loads((paths.scores / "_latest.json").read_text())


def read_folder(reader: str, folder: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The whole folder through one reader: its rows as pandas, and each column's type as that reader names it."""
    if reader == "pandas":
        df = pd.read_parquet(folder)
        return df, {c: str(t) for c, t in df.dtypes.items()}
    if reader in ("pyarrow", "pyarrow-date-key"):
        partitioning = ("hive" if reader == "pyarrow" else
                        ds.partitioning(pa.schema([FOLDER_KEY]), flavor="hive"))
        table = ds.dataset(folder, format="parquet", partitioning=partitioning).to_table()
        return table.to_pandas(), {f.name: str(f.type) for f in table.schema}
    con = duckdb.connect()
    rel = con.sql(f"SELECT * FROM read_parquet('{folder}/*/*.parquet', hive_partitioning = true)")
    return rel.df(), dict(zip(rel.columns, map(str, rel.types)))


def contract_types(reader: str) -> dict[str, str]:
    """Each contract column's type as `reader` names it, derived from the contract's Arrow schema, plus the
    folder key `as_of` (text for pandas and pyarrow's inference, a date given a partitioning or in DuckDB)."""
    empty = SCORE_SCHEMA.empty_table()
    if reader == "pandas":
        types = {c: str(t) for c, t in empty.to_pandas().dtypes.items()}
        return {**types, "as_of": "category"}
    if reader in ("pyarrow", "pyarrow-date-key"):
        return {**{f.name: str(f.type) for f in SCORE_SCHEMA},
                "as_of": "string" if reader == "pyarrow" else "date32[day]"}
    rel = duckdb.connect().from_arrow(empty)
    return {**dict(zip(rel.columns, map(str, rel.types))), "as_of": "DATE"}


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_reads_the_whole_folder_with_the_contract_columns_and_types(two_days, reader):
    df, types = read_folder(reader, two_days.scores)
    assert list(types) == [*SCORE_COLUMN_NAMES, "as_of"]  # the file's columns, then the folder key
    assert types == contract_types(reader)
    days = df["as_of"].astype(str)
    assert sorted(set(days)) == list(DAYS)
    for day in DAYS:  # every day whole, as its _SUCCESS record counted it
        rows = df[days == day]
        assert len(rows) == success(two_days, day)["rows"] > 500 and rows["customer_id"].is_unique
        stamp = pd.to_datetime(rows["as_of_time"], utc=True)
        assert (stamp.dt.strftime("%Y-%m-%d") == day).all()  # the folder key is the UTC date of as_of_time
    assert (df["schema_version"] == SCHEMA_VERSION).all()
    ordered = df.assign(as_of=days).sort_values(["as_of", "risk_rank"]).reset_index(drop=True)
    via_pandas = read_folder("pandas", two_days.scores)[0]
    via_pandas = via_pandas.assign(as_of=via_pandas["as_of"].astype(str)).sort_values(["as_of", "risk_rank"])
    for c in ("customer_id", "churn_probability", "value_at_risk", "reason_1_text"):  # same values, any reader
        assert ordered[c].tolist() == via_pandas[c].tolist()


def test_the_file_describes_its_columns_and_the_folder_key_is_not_one_of_them(two_days):
    schema = pq.read_schema(two_days.scores / f"as_of={DAYS[0]}" / "scores.parquet")
    assert FOLDER_KEY.name not in schema.names
    assert {f.name: f.metadata[b"description"].decode() for f in schema} == {c.name: c.description
                                                                           for c in SCORE_COLUMNS}
    assert schema.metadata[b"schema_version"] == str(SCHEMA_VERSION).encode()
    # what Spark needs: no nanosecond timestamps, and nothing but data files under a name it would read
    assert all(f.type.unit == "us" for f in schema if pa.types.is_timestamp(f.type))
    names = {p.name for p in two_days.scores.rglob("*") if p.is_file()}
    assert names == {"_latest.json", "_SUCCESS", "scores.parquet"}


def test_each_day_ends_with_its_success_record_and_latest_points_at_the_newest(two_days):
    for day in DAYS:
        record = success(two_days, day)
        path = two_days.scores / record["path"]
        assert path == two_days.scores / f"as_of={day}" / "scores.parquet"
        assert record["sha256"] == sha256(path) and record["bytes"] == path.stat().st_size
        assert record["rows"] == pq.read_metadata(path).num_rows
        assert record["as_of"] == day and record["schema_version"] == SCHEMA_VERSION
        assert record["model_name"] == "churn" and record["model_version"] == "1" and record["run_id"]
        assert record["as_of_time"] == f"{day}T00:00:00+00:00" and record["scored_at"] == NOW.isoformat()
        # written after the file it describes
        assert (path.parent / "_SUCCESS").stat().st_mtime_ns >= path.stat().st_mtime_ns
    assert latest(two_days) == success(two_days, DAYS[-1])
    assert sha256(two_days.scores / latest(two_days)["path"]) == latest(two_days)["sha256"]


def test_a_day_killed_before_its_success_marker_is_not_latest_and_a_rerun_completes_it(home_copy):
    killed(home_copy.home, "2024-07-01", "success")
    day = home_copy.scores / "as_of=2024-07-01"
    assert (day / "scores.parquet").is_file() and not (day / "_SUCCESS").exists()  # the kill landed in between
    assert latest(home_copy) == success(home_copy, DAYS[-1])
    assert sha256(home_copy.scores / latest(home_copy)["path"]) == latest(home_copy)["sha256"]
    with pytest.raises(layout.NoScores, match=r"scores for 2024-07-01 .* not complete.*churn score --as-of "
                                               r"2024-07-01.*complete days: 2024-05-01, 2024-06-01"):
        layout.require_scores(home_copy, "2024-07-01")
    assert layout.require_scores(home_copy) == DAYS[-1]  # `churn winback` takes the newest complete day
    score_day(home_copy.home, "2024-07-01")  # a plain re-run completes the day and moves the pointer
    assert latest(home_copy) == success(home_copy, "2024-07-01")
    assert latest(home_copy)["sha256"] == sha256(day / "scores.parquet")


def test_rescoring_the_latest_day_killed_midway_moves_latest_to_the_previous_complete_day(home_copy):
    killed(home_copy.home, DAYS[-1], "success")
    assert not (home_copy.scores / f"as_of={DAYS[-1]}" / "_SUCCESS").exists()
    assert latest(home_copy) == success(home_copy, DAYS[0])  # never a record of a file being replaced
    assert sha256(home_copy.scores / latest(home_copy)["path"]) == latest(home_copy)["sha256"]


@pytest.fixture(scope="module")
def temp_file_left(two_days, tmp_path_factory) -> layout.Paths:
    """A copy of `two_days` where scoring a third day was killed with its Parquet temp file written, not renamed."""
    paths = layout.Paths(tmp_path_factory.mktemp("leftover") / "home")
    shutil.copytree(two_days.home, paths.home)
    killed(paths.home, "2024-07-01", "parquet")
    return paths


@pytest.mark.parametrize("reader", READERS)
def test_temp_files_of_a_killed_write_are_read_by_no_reader(temp_file_left, reader):
    leftovers = [p.name for p in (temp_file_left.scores / "as_of=2024-07-01").iterdir()]
    assert leftovers == [".scores.parquet.tmp"]  # the temp file of a write that never finished
    df, _ = read_folder(reader, temp_file_left.scores)
    assert sorted(set(df["as_of"].astype(str))) == list(DAYS)
    assert len(df) == sum(success(temp_file_left, d)["rows"] for d in DAYS)
    assert latest(temp_file_left) == success(temp_file_left, DAYS[-1])

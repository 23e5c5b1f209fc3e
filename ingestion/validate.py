"""Validate candidate events against the contract with Great Expectations.

The suite is generated from `expectations/contract.py` and committed as JSON
(`expectations/raw_events.suite.json`); each expectation carries its quarantine reason in `meta`,
so the rows GX reports as unexpected are quarantined with exactly that reason.
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path

import pandas as pd

from expectations.contract import MAX_EVENT_TIME_PARAMETER, reason_order

SUITE_PATH = Path(__file__).resolve().parent.parent / "expectations" / "raw_events.suite.json"
_INDEX = "__gx_row__"


def import_great_expectations():
    """great_expectations, imported without pyspark. GX imports pyspark when it is installed (the `spark` extra)
    only to offer Spark data sources we never use: seconds per process, pyspark's warnings on stderr, and
    pyspark.sql.connect, which calls sys.exit(0) on import in a process whose __main__ has no file (a
    multiprocessing forkserver child: the work silently stops with exit code 0). So pyspark is hidden from GX
    even when it was imported already (MLflow imports it to look for Databricks); it is put back afterwards."""
    import sys

    if "great_expectations" in sys.modules:
        import great_expectations

        return great_expectations
    hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] == "pyspark"}
    sys.modules["pyspark"] = None  # an import of it raises ImportError, which GX expects when it is absent
    try:
        import great_expectations
    finally:
        del sys.modules["pyspark"]
        sys.modules.update(hidden)
    return great_expectations


@lru_cache(maxsize=1)
def _gx():
    """A quiet, ephemeral GX context with one pandas batch definition (built once per process)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    gx = import_great_expectations()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (ctx.data_sources.add_pandas("churn_events").add_dataframe_asset("candidates")
                 .add_batch_definition_whole_dataframe("whole"))
    return gx, batch_def


def load_suite(path: Path = SUITE_PATH):
    gx, _ = _gx()
    return gx.ExpectationSuite(**json.loads(path.read_text()))


def contract_violations(events: pd.DataFrame, max_event_time: pd.Timestamp,
                        suite_path: Path = SUITE_PATH, columns=None) -> tuple[pd.Series, dict]:
    """Per row (same index), the contract reasons it breaks joined by "; " (NA if none); plus GX's summary.

    `columns`: the contract of the suite (default: the events'), whose rules give the order of the reasons."""
    reasons = pd.Series(pd.NA, index=events.index, dtype="string")
    if events.empty:
        return reasons, {"success": True, "evaluated_expectations": 0}
    _, batch_def = _gx()
    frame = events.reset_index(drop=True).copy()
    # GX compares only int64/float64 columns vectorised and every other integer type value by value in
    # Python (3.7 s for three int32 columns of a million scores); the values are the same in int64
    small_ints = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c].dtype)
                  and not pd.api.types.is_extension_array_dtype(frame[c].dtype) and frame[c].dtype != "int64"]
    frame = frame.astype({c: "int64" for c in small_ints})
    frame[_INDEX] = range(len(frame))
    suite = load_suite(suite_path)
    batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        suite,
        expectation_parameters={MAX_EVENT_TIME_PARAMETER: pd.Timestamp(max_event_time).isoformat()},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [_INDEX],
                       "partial_unexpected_count": 0, "return_unexpected_index_query": False},
    )
    per_row: dict[int, list[str]] = {}
    failed: dict[str, int] = {}
    for r in result.results:
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"GX expectation {r.expectation_config.type} crashed: "
                               f"{r.exception_info.get('exception_message')}")
        if r.success:
            continue
        reason = r.expectation_config.meta["reason"]
        idx = [row[_INDEX] for row in r.result.get("unexpected_index_list") or []]
        failed[reason] = len(idx)
        for i in idx:
            per_row.setdefault(int(i), []).append(reason)
    order = {r: k for k, r in enumerate(reason_order() if columns is None else reason_order(columns))}
    for i, rs in per_row.items():
        reasons.iloc[i] = "; ".join(sorted(set(rs), key=order.get))
    summary = {"success": bool(result.success), "evaluated_expectations": len(result.results),
               "failed_expectations": failed}
    return reasons, summary

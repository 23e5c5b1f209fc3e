"""One CRM contact export -> a prepared batch: valid contacts, quarantined rows with reasons, duplicates (pure).

The same accounting as events: `rows_in == stored + quarantined + duplicates`. A contact has no id of its own in
a CRM export: its id is derived from its content (customer, instant, action, list, channel), so a file delivered
twice, or two identical rows, store one contact (the second counted as a duplicate: the same customer contacted
with the same action at the same second is the same contact).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from expectations.contacts import CONTACT_COLUMN_NAMES, CONTACT_COLUMNS, CONTACTS_SUITE, REQUIRED_SOURCE_COLUMNS
from expectations.contract import reason_inexact_number, reason_not_text
from ingestion.batch import PreparedBatch, bad_line_frame, quarantine_frame, source_originals
from ingestion.normalize import (
    MappingError,
    as_text,
    lowered_columns,
    not_text,
    parse_times,
    source_columns,
    unparseable,
)
from ingestion.validate import contract_violations

_IDS = tuple(c.name for c in CONTACT_COLUMNS if c.identifier)


def candidate_contacts(source: pd.DataFrame) -> pd.DataFrame:
    """The contract columns taken from a source frame by name (case-insensitive); MappingError naming the
    required ones it lacks."""
    own = source_columns(source)
    lowered = lowered_columns(own, CONTACT_COLUMN_NAMES)
    out = pd.DataFrame({"_row": source["_row"].to_numpy(), "_rows": np.ones(len(source), dtype=np.int64)})
    missing = [n for n in REQUIRED_SOURCE_COLUMNS if n not in own and n not in lowered]
    if missing:
        have = list(own)
        raise MappingError(f"missing required columns {missing}; a contact export has customer_id, contacted_at, "
                           f"action (and optionally list_id, channel); the file has {have[:20]}")
    for name in CONTACT_COLUMN_NAMES:
        col = own.get(name) or lowered.get(name)
        out[name] = source[col].reset_index(drop=True) if col is not None else None
    return out


def coerce_contacts(cand: pd.DataFrame, timezone: str) -> tuple[pd.DataFrame, pd.Series]:
    """Contract-typed contacts and, per row, the reason a value could not be read (or NA). Ids by the rule events
    are stored by (`ingestion.normalize`): trimmed, NFC, inner spaces one space, exact numbers only."""
    out = cand[["_row", "_rows"]].copy()
    reason = pd.Series(pd.NA, index=cand.index, dtype="string")
    for name in CONTACT_COLUMN_NAMES:
        raw = cand[name]
        if name == "contacted_at":
            vals, _ = parse_times(raw, timezone, None)
            reason[unparseable(raw, vals) & reason.isna()] = "contacted_at: unparseable"
            out[name] = vals
            continue
        vals, inexact = as_text(raw, identifier=name in _IDS)
        if name in _IDS:
            reason[not_text(raw) & reason.isna()] = reason_not_text(name)
            reason[inexact & reason.isna()] = reason_inexact_number(name)
        out[name] = vals if name in ("customer_id", "action") else vals.replace("", pd.NA)
    return out, reason


def derive_contact_ids(contacts: pd.DataFrame) -> pd.Series:
    """A deterministic hash of each contact's content (the UTC instant to the microsecond)."""
    parts = [contacts[c].astype("string").fillna("\x00") if c != "contacted_at"
             else contacts[c].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").astype("string").fillna("\x00")
             for c in CONTACT_COLUMN_NAMES if c != "contact_id"]
    joined = parts[0].str.cat(parts[1:], sep="\x1f")
    return joined.map(lambda s: "c:" + hashlib.sha256(s.encode()).hexdigest()[:32]).astype("string")


def prepare_contacts(source: pd.DataFrame, bad_lines: list[tuple[int, str, str]], *, timezone: str,
                     max_time: pd.Timestamp) -> PreparedBatch:
    """Parse, validate (GX, the contacts suite) and de-duplicate one contact export's rows."""
    rows_in = len(source) + len(bad_lines)
    parts = [bad_line_frame(bad_lines)] if bad_lines else []
    cand = (pd.DataFrame(columns=["_row", "_rows", *CONTACT_COLUMN_NAMES]) if source.empty
            else candidate_contacts(source))
    typed, parse_reason = coerce_contacts(cand, timezone)
    bad_parse = parse_reason.notna()
    if bad_parse.any():
        q = quarantine_frame(typed.loc[bad_parse, "_row"], typed.loc[bad_parse, "_rows"], parse_reason[bad_parse])
        q["original"] = source_originals(source, q["_row"])
        parts.append(q)
    typed = typed[~bad_parse].copy()
    typed["contact_id"] = derive_contact_ids(typed) if len(typed) else pd.Series(dtype="string")
    violations, gx_summary = contract_violations(typed[list(CONTACT_COLUMN_NAMES)], max_time,
                                                 suite_path=CONTACTS_SUITE, columns=CONTACT_COLUMNS)
    bad = violations.notna()
    if bad.any():
        q = quarantine_frame(typed.loc[bad, "_row"], typed.loc[bad, "_rows"], violations[bad])
        q["original"] = source_originals(source, q["_row"])
        parts.append(q)
    good = typed[~bad]
    dup = good["contact_id"].duplicated(keep="first").to_numpy(dtype=bool)
    duplicates = int(good.loc[dup, "_rows"].sum())
    good = good[~dup].reset_index(drop=True)
    quarantine = (pd.concat(parts, ignore_index=True) if parts
                  else pd.DataFrame(columns=["_row", "_rows", "reason", "reasons", "original"]))
    return PreparedBatch(good, quarantine.sort_values("_row", kind="stable").reset_index(drop=True),
                         duplicates, rows_in, gx_summary)


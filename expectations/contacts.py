"""The contact contract, defined once: who the CRM actually contacted, when, and with which action.

A CRM export (CSV, Parquet or JSON Lines) with one row per contact. The GX suite `contacts.suite.json`, the
Arrow schema of the stored contacts and the quarantine reasons are generated from `CONTACT_COLUMNS`, the
same way the event contract's are (see `expectations/contract.py`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from expectations.contract import MAX_TEXT, Column, suite_dict

SUITE_NAME = "contacts"
CONTACTS_SUITE = Path(__file__).resolve().parent / "contacts.suite.json"

CONTACT_COLUMNS: tuple[Column, ...] = (
    # derived from the row's content (sha256 of the other columns): a replayed file stores nothing twice
    Column("contact_id", pa.string(), "contact id derived from the row's content", required=True,
           max_length=MAX_TEXT, identifier=True),
    Column("customer_id", pa.string(), "opaque customer id, read by the rule ingest stores event ids by",
           required=True, max_length=MAX_TEXT, identifier=True),
    Column("contacted_at", pa.timestamp("us", tz="UTC"), "when the customer was contacted (UTC instant)",
           required=True, kind="instant"),
    Column("action", pa.string(), "what was done (the win-back list's suggested action, or the CRM's own words)",
           required=True, max_length=MAX_TEXT),
    Column("list_id", pa.string(), "optional: the win-back list the contact came from (see the campaign ledger)",
           max_length=MAX_TEXT, identifier=True),
    Column("channel", pa.string(), "optional: email, phone, letter, ...", max_length=MAX_TEXT),
)

CONTACT_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in CONTACT_COLUMNS)
REQUIRED_SOURCE_COLUMNS: tuple[str, ...] = ("customer_id", "contacted_at", "action")  # contact_id is derived
CONTACT_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type) for c in CONTACT_COLUMNS])
CONTACT_STORE_SCHEMA = pa.schema(list(CONTACT_SCHEMA) + [pa.field("ingest_batch", pa.string())])


def contacts_suite_dict() -> dict:
    return suite_dict(CONTACT_COLUMNS, SUITE_NAME, "expectations/contacts.py")

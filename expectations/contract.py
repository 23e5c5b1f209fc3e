"""The event contract, defined once.

Column names, Arrow types, allowed values and ranges live here as plain Python. The Great
Expectations suite (`events.suite.json`), the Arrow schema of the event store and the quarantine
reasons are all generated from `EVENT_COLUMNS`; nothing else retypes them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa

from expectations.event_types import EVENT_TYPES

MONETARY_TYPES: tuple[str, ...] = ("purchase", "return")
NON_MONETARY_TYPES: tuple[str, ...] = ("visit", "complaint")
MIN_EVENT_TIME = "1990-01-01T00:00:00+00:00"
SUITE_NAME = "raw_events"
MAX_EVENT_TIME_PARAMETER = "max_event_time"


MAX_AMOUNT = 1e12  # largest amount of one event
MAX_TEXT = 256  # longest id or label kept; a 10 MB "customer id" is bad input, not a customer

# Identifiers (event_id, customer_id, order_id) are opaque text. The rule, with Unicode in mind:
# - surrounding whitespace of any kind is trimmed (Python's str.strip(): tab, NBSP U+00A0, U+2007,
#   U+202F, ideographic space U+3000, ...), so "c1\u00a0" and "c1" are one customer;
# - an id containing any character of Unicode category Cc (C0/C1 controls, U+0000-001F, U+007F-009F),
#   Cf (invisible format characters: soft hyphen, zero-width space U+200B, BOM U+FEFF, bidi controls
#   U+202A-202E and U+2066-2069, ...) or Cs (a lone surrogate, which cannot be stored as UTF-8) is
#   quarantined, and so is any other character Unicode declares default-ignorable (rendered as nothing:
#   variation selectors U+FE00-FE0F, Hangul fillers U+115F/U+1160/U+3164/U+FFA0, combining grapheme
#   joiner U+034F, tags U+E0000-E0FFF, ...): two ids that print the same must be the same id;
# - ids are put in Unicode normal form NFC, so "é" typed as one character or as e + combining accent
#   is one id;
# - a number is kept as text only when that text is exact: NaN, infinity, a fraction or a float
#   beyond 2^53 (where floats stop being whole numbers exactly) is quarantined, never stored as "nan";
#   JSON numbers keep their source text ("-0" stays "-0", "1e20" stays "1e20");
# - an id must be text or a number: a JSON object, array or boolean, or a Parquet boolean, binary,
#   list or struct value is quarantined.
# - a line or paragraph separator (Zl U+2028, Zp U+2029) is a line break inside an id: quarantined too;
# - inside an id, a run of Unicode spaces (Zs: space, NBSP U+00A0, EN SPACE U+2002, NARROW NBSP U+202F,
#   ideographic space U+3000, ...) becomes one U+0020 space: "c 1", "c\u00a01" and "c  1" print the same
#   and are one id.
ID_REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")
# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt) outside the refused categories
ID_INVISIBLE_RANGES = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
                       (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0),
                       (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))


@lru_cache(maxsize=1)
def id_refused_regex() -> str:
    """A regex character class matching every refused character: the refused categories (Unicode of this
    Python) and the default-ignorable ones."""
    ranges: list[list[int]] = []
    invisible = {cp for a, b in ID_INVISIBLE_RANGES for cp in range(a, b + 1)}
    for cp in range(0x110000):
        if unicodedata.category(chr(cp)) in ID_REFUSED_CATEGORIES or cp in invisible:
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])

    def esc(cp: int) -> str:
        return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"

    return "[" + "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges) + "]"


@lru_cache(maxsize=1)
def id_space_regex() -> str:
    """A regex matching a run of Unicode space separators (category Zs), which an id holds as one U+0020."""
    spaces = [cp for cp in range(0x110000) if unicodedata.category(chr(cp)) == "Zs"]
    return "[" + "".join(f"\\u{cp:04x}" for cp in spaces) + "]+"


@dataclass(frozen=True)
class Column:
    """One contract column: its type, and the rules a row must obey in it."""

    name: str
    arrow_type: pa.DataType
    description: str
    required: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    required_for: tuple[str, ...] = ()
    empty_for: tuple[str, ...] = ()
    unique: bool = False
    kind: str = "string"  # string | instant | number
    max_length: int | None = None  # strings: longer values are quarantined, never stored
    identifier: bool = False  # an id: Unicode-trimmed, NFC, no control or invisible characters, exact numbers


EVENT_COLUMNS: tuple[Column, ...] = (
    # unique in the store: a repeated id is counted as a duplicate (the first valid row wins), not quarantined
    Column("event_id", pa.string(), "unique event id; derived from the row's content when absent",
           required=True, max_length=MAX_TEXT, identifier=True),
    Column("customer_id", pa.string(), "opaque customer id (never parsed as a number)", required=True,
           max_length=MAX_TEXT, identifier=True),
    Column("event_type", pa.string(), "one of " + ", ".join(EVENT_TYPES), required=True,
           allowed=EVENT_TYPES),
    Column("event_time", pa.timestamp("us", tz="UTC"), "when it happened (UTC instant)",
           required=True, kind="instant"),
    # at most 1e12 per event: features sum money exactly as DECIMAL(18, 4) (below 1e14), and one absurd
    # amount in the store would otherwise stop every later feature build
    Column("amount", pa.float64(), "money; 0 .. 1e12, required for purchase/return, empty otherwise",
           min_value=0.0, max_value=MAX_AMOUNT, required_for=MONETARY_TYPES, empty_for=NON_MONETARY_TYPES,
           kind="number"),
    Column("order_id", pa.string(), "optional order reference", max_length=MAX_TEXT, identifier=True),
    Column("channel", pa.string(), "optional channel (web, store, app, ...)", max_length=MAX_TEXT),
    Column("category", pa.string(), "optional product category", max_length=MAX_TEXT),
    Column("discount", pa.float64(), "optional discount share of the order, 0..1",
           min_value=0.0, max_value=1.0, kind="number"),
    Column("quantity", pa.float64(), "optional number of items", min_value=0.0, kind="number"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in EVENT_COLUMNS)
ID_COLUMNS: tuple[str, ...] = tuple(c.name for c in EVENT_COLUMNS if c.identifier)
REQUIRED_SOURCE_COLUMNS: tuple[str, ...] = ("customer_id", "event_type", "event_time")
BY_NAME: dict[str, Column] = {c.name: c for c in EVENT_COLUMNS}

# Lineage column added by the store next to the contract columns.
STORE_EXTRA = (pa.field("ingest_batch", pa.string()),)
EVENT_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type) for c in EVENT_COLUMNS])
STORE_SCHEMA = pa.schema(list(EVENT_SCHEMA) + list(STORE_EXTRA))


def reason_inexact_number(col: str) -> str:
    return f"{col}: a number that cannot be kept exactly as text (NaN, infinity, a fraction or beyond 2^53)"


def reason_not_text(col: str) -> str:
    return f"{col}: not text or a number (a JSON object, array or boolean, or a binary value)"


def reason_missing(col: str) -> str:
    return f"{col}: missing"


def rules(col: Column) -> list[tuple[str, dict]]:
    """The contract rules of one column as (reason, GX expectation spec) pairs, in check order."""
    out: list[tuple[str, dict]] = []
    name = col.name
    if col.required:
        out.append((reason_missing(name),
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": name}}))
        if col.kind == "string":
            out.append((f"{name}: empty or blank",
                        {"type": "expect_column_value_lengths_to_be_between",
                         "kwargs": {"column": name, "min_value": 1}}))
    if col.identifier:
        out.append((f"{name}: contains control or invisible characters",
                    {"type": "expect_column_values_to_not_match_regex",
                     "kwargs": {"column": name, "regex": id_refused_regex()}}))
    if col.max_length is not None:
        out.append((f"{name}: longer than {col.max_length} characters",
                    {"type": "expect_column_value_lengths_to_be_between",
                     "kwargs": {"column": name, "max_value": col.max_length}}))
    if col.allowed is not None:
        out.append((f"{name}: not one of " + ", ".join(col.allowed),
                    {"type": "expect_column_values_to_be_in_set",
                     "kwargs": {"column": name, "value_set": list(col.allowed)}}))
    if col.kind == "instant":
        out.append((f"{name}: before {MIN_EVENT_TIME[:10]}",
                    {"type": "expect_column_values_to_be_between",
                     "kwargs": {"column": name, "min_value": MIN_EVENT_TIME}}))
        out.append((f"{name}: in the future",
                    {"type": "expect_column_values_to_be_between",
                     "kwargs": {"column": name,
                                "max_value": {"$PARAMETER": MAX_EVENT_TIME_PARAMETER}}}))
    if col.required_for:
        cond = "event_type in " + repr(list(col.required_for)).replace("'", '"')
        out.append((f"{name}: missing for " + "/".join(col.required_for),
                    {"type": "expect_column_values_to_not_be_null",
                     "kwargs": {"column": name, "row_condition": cond, "condition_parser": "pandas"}}))
    if col.empty_for:
        cond = "event_type in " + repr(list(col.empty_for)).replace("'", '"')
        out.append((f"{name}: must be empty for " + "/".join(col.empty_for),
                    {"type": "expect_column_values_to_be_null",
                     "kwargs": {"column": name, "row_condition": cond, "condition_parser": "pandas"}}))
    if col.min_value is not None:
        out.append((f"{name}: below {col.min_value:g}",
                    {"type": "expect_column_values_to_be_between",
                     "kwargs": {"column": name, "min_value": col.min_value}}))
    if col.max_value is not None:
        out.append((f"{name}: above {col.max_value:g}",
                    {"type": "expect_column_values_to_be_between",
                     "kwargs": {"column": name, "max_value": col.max_value}}))
    if col.unique:
        out.append((f"{name}: not unique",
                    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": name}}))
    return out


def suite_dict(columns: tuple[Column, ...] = EVENT_COLUMNS, name: str = SUITE_NAME,
               source: str = "expectations/contract.py") -> dict:
    """A GX suite as a JSON-able dict; each expectation carries its (quarantine) reason in `meta`."""
    expectations = []
    for col in columns:
        for reason, spec in rules(col):
            expectations.append({**spec, "meta": {"reason": reason}})
    return {"name": name, "expectations": expectations, "meta": {"generated_from": source}}


def reason_order(columns: tuple[Column, ...] = EVENT_COLUMNS) -> list[str]:
    """Every contract reason, in the order rows are checked."""
    return [r for col in columns for r, _ in rules(col)]

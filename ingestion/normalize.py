"""Turn a source file's rows into contract-shaped candidate events (pure functions, no I/O).

Every candidate carries `_row` (the source row it came from; for a folded invoice its first line)
and `_rows` (how many source rows it stands for), so accounting stays by source row.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from churn.errors import UserError
from expectations.contract import (
    COLUMN_NAMES,
    ID_COLUMNS,
    REQUIRED_SOURCE_COLUMNS,
    id_space_regex,
    reason_inexact_number,
    reason_not_text,
)
from expectations.event_types import EVENT_TYPES

# A source frame as read (storage.sources): the reader's row number in ROW_COLUMN; a source column of that
# name is kept under another name, recorded in frame.attrs[RENAMED] = {column in the frame: the source's name}
ROW_COLUMN = "_row"
RENAMED = "renamed_source_columns"
FOLD_COLUMNS = ("order_id", "event_id")  # what a mapping's [fold] by may name
TIME_KEY = "_time_as_written"  # the event time read as if in UTC: naive times keep their wall-clock value
TZ_SUFFIX = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")


def column_name(name: str) -> str:
    """A source column's name as it is matched: the id rule applied to names (NFC, surrounding whitespace
    trimmed), with control and invisible characters (a zero-width space, a second BOM, a word joiner, ...)
    dropped, so a name that prints as `event_id` is `event_id`, never a column silently left unused."""
    import unicodedata

    return _invisible().sub("", unicodedata.normalize("NFC", name)).strip()


@lru_cache(maxsize=1)
def _invisible() -> re.Pattern:
    from expectations.contract import id_refused_regex

    return re.compile(id_refused_regex())


class MappingError(UserError, ValueError):
    """The mapping file is invalid, or the source lacks columns the contract needs."""


@dataclass(frozen=True)
class Mapping:
    """How a foreign source maps onto the contract (loaded from a TOML file)."""

    columns: dict[str, str] = field(default_factory=dict)  # contract column -> source column
    constants: dict[str, str] = field(default_factory=dict)  # contract column -> constant value
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # contract column -> {source value: value}
    time_format: str | None = None
    timezone: str | None = None
    rename: dict[str, str] = field(default_factory=dict)  # source column -> new name, before anything else
    fold_by: str | None = None  # contract column whose equal values fold a file's lines into one event

    SECTIONS = ("columns", "constants", "values", "time", "rename", "fold")

    @classmethod
    def from_toml(cls, text: str) -> "Mapping":
        """A mapping from TOML text; any problem of shape or content is a MappingError naming the key."""
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise MappingError(f"mapping is not valid TOML: {e}") from e
        unknown = set(d) - set(cls.SECTIONS)
        if unknown:
            raise MappingError(f"unknown mapping sections {sorted(unknown)}; allowed: {', '.join(cls.SECTIONS)}")
        for section in cls.SECTIONS:
            if not isinstance(d.get(section, {}), dict):
                raise MappingError(f"[{section}] must be a table, not {type(d[section]).__name__} {d[section]!r}")
        for section in ("columns", "constants", "values"):
            bad = set(d.get(section, {})) - set(COLUMN_NAMES)
            if bad:
                raise MappingError(f"[{section}] names {sorted(bad)}, which are not contract columns {list(COLUMN_NAMES)}")
        for k, v in d.get("columns", {}).items():
            if not isinstance(v, str) or not column_name(v):  # `customer_id = 5` would look for a column "5"
                raise MappingError(f"[columns] {k} must be a source column name (a non-empty string), "
                                   f"not {type(v).__name__} {v!r}")
        for k, v in d.get("constants", {}).items():
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                raise MappingError(f"[constants] {k} must be a string, not {type(v).__name__} {v!r}")
        if "event_id" in d.get("constants", {}):
            raise MappingError("[constants] event_id would make every row one event (all but the first counted as "
                               "duplicates): map a source column under [columns], or leave event_id out to "
                               "derive it from each row's content")
        both = sorted(set(d.get("columns", {})) & set(d.get("constants", {})))
        if both:
            raise MappingError(f"{both} both in [columns] and [constants]: say which one is meant")
        for k, v in d.get("values", {}).items():
            if not isinstance(v, dict):
                raise MappingError(f"[values.{k}] must be a table of source value = contract value, "
                                   f"not {type(v).__name__} {v!r}")
            for a, b in v.items():
                if not isinstance(b, (str, int, float)):
                    raise MappingError(f"[values.{k}] {a} must map to a string, not {type(b).__name__} {b!r}")
        unknown_types = {f"[values.event_type] {a}": b for a, b in d.get("values", {}).get("event_type", {}).items()
                         if str(b).strip().lower() not in EVENT_TYPES}
        constant_type = d.get("constants", {}).get("event_type")
        if constant_type is not None and str(constant_type).strip().lower() not in EVENT_TYPES:
            unknown_types["[constants] event_type"] = constant_type
        if unknown_types:  # every such row would be quarantined as an unknown type
            where, b = next(iter(unknown_types.items()))
            raise MappingError(f"{where} = {b!r} is not an event type; allowed: {', '.join(EVENT_TYPES)}")
        time = d.get("time", {})
        if set(time) - {"format", "timezone"}:
            raise MappingError(f"unknown [time] keys {sorted(set(time) - {'format', 'timezone'})}; "
                               "allowed: format, timezone")
        for k in ("format", "timezone"):
            if k in time and not isinstance(time[k], str):
                raise MappingError(f"[time] {k} must be a string, not {type(time[k]).__name__} {time[k]!r}")
        if "timezone" in time:
            check_timezone(time["timezone"])
        if "format" in time:
            check_time_format(time["format"])
        for k, v in d.get("rename", {}).items():
            if not isinstance(v, str) or not v.strip():
                raise MappingError(f"[rename] {k} must be a new column name (a string), not {type(v).__name__} {v!r}")
        fold = d.get("fold", {})
        if set(fold) - {"by"}:
            raise MappingError(f"unknown [fold] keys {sorted(set(fold) - {'by'})}; allowed: by")
        if fold and fold.get("by") not in FOLD_COLUMNS:
            raise MappingError(f"[fold] by must be one of {list(FOLD_COLUMNS)} (a contract column), "
                               f"not {fold.get('by')!r}")
        return cls(rename={str(k): v for k, v in d.get("rename", {}).items()}, fold_by=fold.get("by"),
                   columns={k: str(v) for k, v in d.get("columns", {}).items()},
                   constants={k: str(v) for k, v in d.get("constants", {}).items()},
                   values={k: {str(a): str(b) for a, b in v.items()} for k, v in d.get("values", {}).items()},
                   time_format=time.get("format"), timezone=time.get("timezone"))

    @classmethod
    def from_file(cls, path: Path) -> "Mapping":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise MappingError(f"not UTF-8 text (byte {e.start}): save the mapping as UTF-8") from None
        return cls.from_toml(text)


def check_time_format(fmt: str) -> str:
    """`fmt` if pandas can parse times with it (a bad directive such as %Q is a MappingError, up front)."""
    try:
        pd.to_datetime(pd.Series(["2024-01-01"]), format=fmt, errors="coerce")
    except ValueError as e:
        raise MappingError(f"[time] format {fmt!r} cannot be used: {e}") from None
    return fmt


def check_timezone(name: str) -> str:
    """`name` if it is an IANA time zone this machine knows; else a MappingError (the settings' own check)."""
    from churn.settings import check_timezone as known

    try:
        return known(name)
    except ValueError as e:
        raise MappingError(str(e)) from None


def source_columns(source: pd.DataFrame) -> dict[str, str]:
    """The source's own column names -> their columns in `source` (the reader's row number is not one)."""
    renamed = source.attrs.get(RENAMED, {})
    return {renamed.get(c, c): c for c in map(str, source.columns) if c != ROW_COLUMN}


def lowered_columns(own: dict[str, str], wanted) -> dict[str, str]:
    """The source's names by their lower case, for matching the contract's names case-insensitively;
    MappingError when two of the source's names differ only in case and one of them would be taken for a name
    in `wanted` (`amount` beside `Amount`: which one is the amount? keeping one would drop the other's values
    without a word)."""
    by_lower: dict[str, list[str]] = {}
    for name in own:
        by_lower.setdefault(name.strip().lower(), []).append(name)
    for want in wanted:
        names = by_lower.get(str(want).lower(), [])
        if len(names) > 1:
            raise MappingError(f"columns {names} differ only in letter case and would all be read as {want!r}: "
                               f"keep one of them, or rename the others")
    return {low: own[names[0]] for low, names in by_lower.items()}


def rename_columns(source: pd.DataFrame, rename: dict[str, str]) -> pd.DataFrame:
    """The source with its own columns renamed by a mapping's [rename] (absent ones are skipped), so a
    format or the contract finds them under the names it expects."""
    own = source_columns(source)
    rename = {column_name(old): new for old, new in rename.items()}
    todo = {own[old]: new for old, new in rename.items() if old in own}
    if not todo:
        return source
    clash = sorted(new for old, new in todo.items() if new in own and own[new] not in todo)
    if clash:
        raise MappingError(f"[rename] would give two columns the name(s) {clash}")
    out = source.rename(columns=todo)
    out.attrs = {RENAMED: {k: v for k, v in source.attrs.get(RENAMED, {}).items() if k not in todo}}
    return out


def fold_lines(typed: pd.DataFrame, by: str) -> tuple[pd.DataFrame, pd.Series]:
    """A line-item export -> one event per value of `by` (an order or basket): amount and quantity summed,
    the discount weighted by amount, the earliest time, other labels from the first line. Returns the
    events (`_row` = the first line, `_rows` = the lines folded) and, per line that cannot be folded, why.

    An order's lines must agree on customer and event type; the event id is `<by>:<value>` unless
    folding by event_id itself.
    """
    reason = pd.Series(pd.NA, index=typed.index, dtype="string")
    key = typed[by].astype("string")
    reason[key.isna() | (key == "")] = f"{by}: missing (lines are folded into one event per {by})"
    ok = reason.isna()
    for col, what in (("customer_id", "customers"), ("event_type", "event types")):
        n = typed[ok].groupby(key[ok], sort=False)[col].nunique(dropna=False)
        mixed = key.isin(n[n > 1].index) & ok
        reason[mixed] = f"{by} has lines of several {what}"
        ok = reason.isna()
    lines = typed[ok.to_numpy()].assign(_key=key[ok])
    amount = lines["amount"]
    lines = lines.assign(_wdisc=lines["discount"] * amount.fillna(0.0),
                         _wamount=amount.where(lines["discount"].notna(), np.nan))
    g = lines.groupby("_key", sort=False)
    first = g.first()  # first non-null value of each column
    weight = g["_wamount"].sum(min_count=1)
    out = pd.DataFrame({
        "_row": g["_row"].min(), "_rows": g["_rows"].sum(),
        "event_id": (first.index if by == "event_id" else f"{by}:" + first.index.astype(str)),
        "customer_id": first["customer_id"], "event_type": first["event_type"], "event_time": g["event_time"].min(),
        "amount": g["amount"].sum(min_count=1), "order_id": first["order_id"] if by != "order_id" else first.index,
        "channel": first["channel"], "category": first["category"],
        "discount": (g["_wdisc"].sum(min_count=1) / weight).where(weight > 0, g["discount"].mean()),
        "quantity": g["quantity"].sum(min_count=1),
    })
    if TIME_KEY in lines:
        out[TIME_KEY] = g[TIME_KEY].min()
    out = out.sort_values("_row", kind="stable").reset_index(drop=True)
    return out.astype({c: typed[c].dtype for c in out.columns if c in typed.columns}), reason


def apply_mapping(source: pd.DataFrame, mapping: Mapping | None) -> pd.DataFrame:
    """Candidate events from a source frame: contract columns taken, renamed or set to constants."""
    mapping = mapping or Mapping()
    own = source_columns(source)
    lowered = lowered_columns(own, [column_name(mapping.columns.get(n, n)) for n in COLUMN_NAMES
                                    if n not in mapping.constants])
    out = pd.DataFrame({"_row": source["_row"].to_numpy(), "_rows": np.ones(len(source), dtype=np.int64)})
    missing = []
    for name in COLUMN_NAMES:
        if name in mapping.constants:
            out[name] = mapping.constants[name]
            continue
        src = column_name(mapping.columns.get(name, name))  # matched as the source's names are (as they print)
        col = source[own[src]] if src in own else (
            source[lowered[src.lower()]] if src.lower() in lowered else None)
        if col is None:
            if name in mapping.columns or name in REQUIRED_SOURCE_COLUMNS:
                missing.append(f"{name} (source column {src!r})" if name in mapping.columns else name)
            out[name] = None
            continue
        col = col.reset_index(drop=True)
        if name in mapping.values:
            col = col.map(lambda v, m=mapping.values[name]: m.get(str(v), v) if v is not None else v)
        out[name] = col
    if missing and len(source):
        have = list(own)
        hint = ("Give a mapping with --mapping FILE." if mapping == Mapping()
                else "Check the mapping's [columns] against these names.")
        raise MappingError(f"missing required columns {missing}; the file has {have[:20]}"
                           + (" ..." if len(have) > 20 else "") + f". {hint}")
    return out


# ------------------------------------------------------------------ online retail adapter

# Stock codes that are not goods: postage, fees, manual adjustments. They fold into their invoice
# (so their rows count as stored) but their money is not spend; "D" lines become the discount share.
RETAIL_FEE_CODES = frozenset({"POST", "DOT", "C2", "M", "m", "BANK CHARGES", "AMAZONFEE", "PADS", "S", "B",
                              "CRUK", "ADJUST", "ADJUST2"})
RETAIL_DISCOUNT_CODE = "D"
RETAIL_TEST_CODE = re.compile(r"^TEST", re.IGNORECASE)
RETAIL_COLUMNS = ("Invoice", "StockCode", "Quantity", "InvoiceDate", "Price", "Customer ID")
# the original UCI "Online Retail" file (2010-2011) names three of them differently
RETAIL_ORIGINAL_NAMES = {"InvoiceNo": "Invoice", "UnitPrice": "Price", "CustomerID": "Customer ID"}


@dataclass
class AdapterResult:
    """Candidate events plus the source rows the adapter itself settled."""

    candidates: pd.DataFrame
    quarantined: pd.DataFrame  # _row, reason
    duplicate_rows: int


# per-line data errors of an invoice line (each voids its whole invoice, see online_retail_events)
RETAIL_NO_CUSTOMER = "customer_id: missing"
RETAIL_QTY_NAN = "quantity: not a number"
RETAIL_PRICE_NAN = "amount: price is not a number"
RETAIL_QTY_NEG = "quantity: negative on a sale invoice"
RETAIL_QTY_POS = "quantity: positive on a cancellation invoice"
RETAIL_LINE_ERRORS = (RETAIL_NO_CUSTOMER, RETAIL_QTY_NAN, RETAIL_PRICE_NAN, RETAIL_QTY_NEG, RETAIL_QTY_POS)


def online_retail_events(source: pd.DataFrame) -> AdapterResult:
    """UCI Online Retail invoice lines -> one purchase per invoice, one return per cancellation ("C...") invoice.

    Both published namings are read: Online Retail II (`Invoice`, `Price`, `Customer ID`) and the original
    Online Retail (`InvoiceNo`, `UnitPrice`, `CustomerID`, the id often a float such as 17850.0).
    """
    source = rename_columns(source, {old: new for old, new in RETAIL_ORIGINAL_NAMES.items()
                                     if new not in source.columns})
    missing = [c for c in RETAIL_COLUMNS if c not in source.columns]
    if missing:
        originals = {v: k for k, v in RETAIL_ORIGINAL_NAMES.items()}
        raise MappingError(f"not in the online-retail format: missing columns "
                           f"{[f'{c} (or {originals[c]})' if c in originals else c for c in missing]}; a mapping's "
                           f"[rename] section can give a file's columns these names")
    content = [c for c in source.columns if c != "_row"]
    dup = source.duplicated(subset=content, keep="first").to_numpy()  # before internal columns are added
    df = source.copy()
    df["_inv"] = df["Invoice"].astype("string").str.strip()
    df["_code"] = df["StockCode"].astype("string").str.strip()
    df["_cust"] = df["Customer ID"].astype("string").str.strip().str.replace(r"\.0$", "", regex=True)
    df["_qty"] = pd.to_numeric(df["Quantity"], errors="coerce")
    df["_price"] = pd.to_numeric(df["Price"], errors="coerce")

    reason = pd.Series(pd.NA, index=df.index, dtype="string")
    cancel = df["_inv"].str.upper().str.startswith("C").fillna(False)

    def flag(mask, text: str) -> None:
        m = mask.fillna(False).to_numpy() & reason.isna().to_numpy() & ~dup
        reason[m] = text

    flag(df["_cust"].isna() | (df["_cust"] == ""), RETAIL_NO_CUSTOMER)
    flag(df["_inv"].isna() | (df["_inv"] == ""), "order_id: missing invoice number")
    flag(df["_code"].str.match(RETAIL_TEST_CODE), "test line, not a sale")
    flag(df["_qty"].isna(), RETAIL_QTY_NAN)
    flag(df["_price"].isna(), RETAIL_PRICE_NAN)
    flag(df["_price"] < 0, "amount: negative price (bad-debt adjustment)")
    flag(~cancel & (df["_qty"] < 0), RETAIL_QTY_NEG)
    flag(cancel & (df["_qty"] > 0), RETAIL_QTY_POS)
    ncust = df[reason.isna() & ~dup].groupby("_inv")["_cust"].nunique()
    flag(df["_inv"].isin(ncust[ncust > 1].index), "invoice has lines of several customers")
    # an invoice is stored whole or not at all: a line with a data error takes the rest of its invoice with it
    # (the invoice would be stored short, and the corrected delivery refused). Lines that are not a sale (test
    # lines, bad-debt adjustments) are left out deliberately and do not void their invoice.
    broken = reason.isin(RETAIL_LINE_ERRORS).to_numpy() & ~dup & df["_inv"].notna().to_numpy()
    if broken.any():
        first_bad = df.loc[broken, "_row"].groupby(df.loc[broken, "_inv"].to_numpy()).min()
        rest = reason.isna().to_numpy() & ~dup & df["_inv"].isin(first_bad.index).to_numpy()
        reason[rest] = df.loc[rest, "_inv"].map(
            lambda k: f"order_id: another line of this invoice (row {first_bad[k]}) was quarantined, and an invoice "
                      f"is stored only whole").to_numpy()

    keep = df[reason.isna().to_numpy() & ~dup].copy()
    value = keep["_qty"] * keep["_price"]
    is_fee = keep["_code"].isin(RETAIL_FEE_CODES)
    is_disc = keep["_code"] == RETAIL_DISCOUNT_CODE
    is_goods = ~is_fee & ~is_disc
    keep["_goods"] = value.where(is_goods, 0.0)
    keep["_goods_qty"] = keep["_qty"].where(is_goods, 0)
    keep["_disc"] = value.where(is_disc, 0.0)
    keep["_is_goods"] = is_goods
    g = keep.groupby("_inv", sort=False)
    inv = pd.DataFrame({
        "_row": g["_row"].min(), "_rows": g.size(), "customer_id": g["_cust"].first(),
        "event_time": g["InvoiceDate"].min(), "goods": g["_goods"].sum(), "qty": g["_goods_qty"].sum(),
        "disc": g["_disc"].sum(), "n_goods": g["_is_goods"].sum(),
    })
    no_goods = inv["n_goods"] == 0
    if no_goods.any():
        rows_no_goods = keep["_inv"].isin(inv.index[no_goods])
        reason[keep.index[rows_no_goods.to_numpy()]] = "invoice has no product lines (fees or adjustments only)"
        inv = inv[~no_goods]
    is_return = inv.index.str.upper().str.startswith("C")
    amount = inv["goods"].abs().round(2)
    discount = np.where((inv["goods"].abs() > 0) & (inv["disc"] != 0),
                        np.clip(inv["disc"].abs() / (inv["goods"].abs() + inv["disc"].abs()), 0, 1), 0.0)
    cand = pd.DataFrame({
        "_row": inv["_row"].to_numpy(), "_rows": inv["_rows"].to_numpy().astype(np.int64),
        "event_id": ("online-retail:" + inv.index.astype(str)).to_numpy(),
        "customer_id": inv["customer_id"].to_numpy(),
        "event_type": np.where(is_return, "return", "purchase"),
        "event_time": inv["event_time"].to_numpy(),
        "amount": amount.to_numpy(), "order_id": inv.index.to_numpy(), "channel": "online",
        "category": None, "discount": np.where(is_return, np.nan, discount),
        "quantity": inv["qty"].abs().to_numpy().astype(float),
    })
    q = reason.dropna()
    quarantined = pd.DataFrame({"_row": df.loc[q.index, "_row"].to_numpy(), "reason": q.to_numpy()})
    return AdapterResult(cand.sort_values("_row").reset_index(drop=True), quarantined, int(dup.sum()))


# ------------------------------------------------------------------ coercion to contract types

def parse_times(raw: pd.Series, timezone: str, fmt: str | None) -> tuple[pd.Series, pd.Series]:
    """Instants in UTC, and the times as written (`TIME_KEY`). Values with an offset keep it; naive ones
    are read in `timezone` for the instants, and as if in UTC for the times as written (each text is
    parsed once for both).

    A naive time that falls in a DST gap is moved forward; one that is ambiguous (the repeated
    hour in autumn) is read as the first occurrence.
    """
    def local(naive: pd.Series) -> tuple[pd.Series, pd.Series]:
        instants = _localize(naive, timezone)
        return instants, (instants if timezone == "UTC" else _localize(naive, "UTC"))

    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        instants = raw.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        return instants, instants
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return local(raw)
    text = raw.astype("string").str.strip()
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
    written = out.copy()
    if fmt is None:
        has_tz = text.str.contains(TZ_SUFFIX, na=False)
    else:
        has_tz = pd.Series(False, index=raw.index)
    if has_tz.any():
        out[has_tz] = written[has_tz] = pd.to_datetime(text[has_tz], format="ISO8601", utc=True,
                                                       errors="coerce").astype("datetime64[us, UTC]")
    naive = text.notna() & ~has_tz
    if naive.any():
        try:
            parsed = pd.to_datetime(text[naive], format=fmt or "ISO8601", errors="coerce")
        except ValueError:  # offsets the suffix test does not see (compact 20240110T100000Z) beside naive times
            each = pd.Series([pd.to_datetime(t, format=fmt or "ISO8601", errors="coerce") for t in text[naive]],
                             index=text[naive].index, dtype=object)
            aware = each.map(lambda t: t is not pd.NaT and t.tzinfo is not None).astype(bool)
            idx = aware[aware].index
            out[idx] = written[idx] = pd.to_datetime(each[aware].tolist(), utc=True).astype("datetime64[us, UTC]")
            naive = naive & ~naive.index.isin(idx)
            parsed = pd.to_datetime(each[~aware].tolist(), errors="coerce")
            parsed = pd.Series(parsed, index=each[~aware].index)
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):  # a format with %z
            out[naive] = written[naive] = parsed.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        else:
            out[naive], written[naive] = local(parsed)
    return out, written


def _localize(naive: pd.Series, timezone: str) -> pd.Series:
    naive = naive.astype("datetime64[us]")
    local = naive.dt.tz_localize(timezone, ambiguous=np.ones(len(naive), dtype=bool), nonexistent="shift_forward")
    return local.dt.tz_convert("UTC")


def _parse_numbers(raw: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """float64 values, a mask of values that were present but not finite numbers, and a mask of written
    numbers too small for a float (1e-400 would read as 0: a value that is not what was written)."""
    underflow = pd.Series(False, index=raw.index)
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        vals = pd.to_numeric(raw, errors="coerce").astype("float64")
        present = raw.notna()
    else:
        text = raw.astype("string").str.strip()
        present = text.notna() & (text != "")
        vals = pd.to_numeric(text.where(present), errors="coerce").astype("float64")
        zero = present & (vals == 0)
        if zero.any():  # a zero read from a text whose digits before any exponent are not all zeros
            mantissa = text[zero].str.replace(r"[eE].*$", "", regex=True)
            underflow[zero] = mantissa.str.contains(r"[1-9]").fillna(False).astype(bool)
    bad = present & ~np.isfinite(vals.fillna(0.0)) | (present & vals.isna())
    return vals.where(~bad & ~underflow), bad, underflow


NUMBER_DRESS = r"\d.*[,%$£€¥']|[,%$£€¥'].*\d"  # a number written with separators, a currency sign or a percent
DRESSED_NUMBER = ("not a plain number (thousands separators, decimal commas, currency signs and % are not read: "
                  "write 1234.50 or 0.25)")


def _dressed(raw: pd.Series, bad: pd.Series) -> pd.Series:
    """Of the `bad` values, those that are a number dressed for people ("1,234.50", "12,50", "$5", "50%")."""
    if not bad.any() or pd.api.types.is_numeric_dtype(raw.dtype):
        return pd.Series(False, index=raw.index)
    text = raw.astype("string").str.strip()
    return bad & text.str.contains(NUMBER_DRESS, regex=True).fillna(False).astype(bool)


MAX_EXACT_FLOAT = 2.0 ** 53  # beyond this a float is not an exact whole number any more
NON_FINITE_TEXT = r"[+-]?(?:nan|inf|infinity)"


def _float_text(v: float) -> str | None:
    """A float as exact whole-number text, or None when no such text exists (NaN, inf, fraction, > 2^53)."""
    if np.isfinite(v) and v == np.floor(v) and abs(v) <= MAX_EXACT_FLOAT:
        return str(int(v))
    return None


class JsonValue:
    """A JSON value that is not a string or a number (object, array, true/false), as the JSON-lines
    reader keeps it: its text is its JSON (a label may hold it as text), an identifier may not. Not a
    str subclass: pandas would turn a column of them into plain strings and lose the mark."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"JsonValue({self.text!r})"


def not_text(raw: pd.Series) -> pd.Series:
    """Values that are neither text nor a number: booleans, JSON objects/arrays, bytes, lists, structs."""
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.notna().astype(bool)
    if raw.dtype != object:
        return pd.Series(False, index=raw.index)
    return raw.map(lambda v: isinstance(v, (JsonValue, bool, np.bool_, bytes, dict, list, tuple, np.ndarray))
                   ).astype(bool)


def as_identifiers(values: pd.Series) -> pd.Series:
    """Ids from anywhere else (a contact history, a command line) read by the rule ingest stores ids by: trimmed,
    NFC, inner runs of Unicode spaces one space; so what matched a stored id at ingest matches it here."""
    return as_text(values.astype(object), identifier=True)[0]


def as_text(raw: pd.Series, identifier: bool = False) -> tuple[pd.Series, pd.Series]:
    """Opaque text: stringified as-is (no numeric parsing), surrounding Unicode whitespace trimmed
    (identifiers also put in Unicode normal form NFC, inner runs of Unicode spaces made one space).

    Also a mask of numbers that have no exact text: NaN, infinity, fractions and floats beyond 2^53
    (a float customer id of 1e20 has lost its digits long before it got here).
    """
    inexact = pd.Series(False, index=raw.index)
    if pd.api.types.is_float_dtype(raw.dtype) or pd.api.types.infer_dtype(raw, skipna=True) in (
            "floating", "mixed-integer-float", "mixed"):
        obj = raw.astype(object)
        # NaN inside a float column is "missing" (pandas' null); the reader turns a real NaN into text
        is_float = obj.map(lambda v: isinstance(v, (float, np.floating)) and not np.isnan(v)).astype(bool)
        exact = obj.map(lambda v: _float_text(float(v)) if isinstance(v, (float, np.floating)) and not np.isnan(v)
                        else v)
        inexact = is_float & exact.isna()
        raw = exact.where(~(obj.map(lambda v: isinstance(v, (float, np.floating)) and np.isnan(v)).astype(bool)),
                          None)
    s = raw.astype("string").str.strip()
    if identifier:  # what prints the same is the same id: NFC, and inner runs of any space one U+0020
        s = s.str.normalize("NFC").str.replace(id_space_regex(), " ", regex=True)
    inexact |= s.str.fullmatch(NON_FINITE_TEXT, case=False).fillna(False).astype(bool)
    return s, inexact


def unparseable(raw: pd.Series, parsed: pd.Series) -> pd.Series:
    """Where a value was given (not missing, not blank) and did not parse; typed timestamps need no parsing."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return pd.Series(False, index=raw.index)
    return raw.notna() & (raw.astype("string").str.strip() != "") & parsed.isna()


def coerce(candidates: pd.DataFrame, timezone: str, time_format: str | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Contract-typed candidates and, per row, the reason a value could not be parsed (or NA)."""
    out = candidates[["_row", "_rows"]].copy()
    reason = pd.Series(pd.NA, index=candidates.index, dtype="string")
    for name in COLUMN_NAMES:
        raw = candidates[name]
        if name == "event_time":
            vals, written = parse_times(raw, timezone, time_format)
            reason[unparseable(raw, vals) & reason.isna()] = "event_time: unparseable"
            out[name] = vals
            # what a derived event id is made of: the time as written (a naive time read as if in UTC), so
            # the id does not depend on the time zone it is read in (--force under another one stores nothing)
            out[TIME_KEY] = written
        elif name in ("amount", "discount", "quantity"):
            vals, bad, underflow = _parse_numbers(raw)
            dressed = _dressed(raw, bad)
            reason[dressed & reason.isna()] = f"{name}: {DRESSED_NUMBER}"
            reason[bad & reason.isna()] = f"{name}: not a finite number"
            reason[underflow & reason.isna()] = (f"{name}: too small to hold (below about 1e-308 a float "
                                                 "would store 0)")
            out[name] = vals
        else:
            vals, inexact = as_text(raw, identifier=name in ID_COLUMNS)
            if name in ID_COLUMNS:
                reason[not_text(raw) & reason.isna()] = reason_not_text(name)
                reason[inexact & reason.isna()] = reason_inexact_number(name)
            if name == "event_type":
                vals = vals.str.lower()
            out[name] = vals.replace("", pd.NA) if name not in ("customer_id", "event_id") else vals
    return out, reason


def derive_event_ids(events: pd.DataFrame) -> pd.Series:
    """The given event_id, or else a deterministic hash of the row's contract content as written.

    The time enters as written, not as the UTC instant it was read as (`TIME_KEY`, from `coerce`): a
    file read again under another time zone derives the same ids.
    """
    missing = events["event_id"].isna() | (events["event_id"] == "")
    if not missing.any():
        return events["event_id"]
    sub = events.loc[missing, [c for c in COLUMN_NAMES if c != "event_id"]]
    if TIME_KEY in events:
        sub["event_time"] = events.loc[missing, TIME_KEY]
    parts = [sub[c].astype("string").fillna("\x00") if c != "event_time"
             else sub[c].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").astype("string").fillna("\x00") for c in sub.columns]
    joined = parts[0].str.cat(parts[1:], sep="\x1f")
    ids = joined.map(lambda s: "h:" + hashlib.sha256(s.encode()).hexdigest()[:32])
    out = events["event_id"].copy()
    out[missing] = ids
    return out

import pandas as pd
import pytest

from ingestion.normalize import Mapping, MappingError, apply_mapping, coerce


def frame(**cols):
    n = len(next(iter(cols.values())))
    df = pd.DataFrame(cols)
    df.insert(0, "_row", range(1, n + 1))
    return df


def test_naive_times_are_read_in_the_configured_zone_and_offsets_are_kept():
    src = frame(customer_id=["a", "b", "c"], event_type=["visit"] * 3,
                event_time=["2024-07-01 12:00:00", "2024-07-01T12:00:00+02:00", "2024-01-15 12:00"])
    typed, reason = coerce(apply_mapping(src, None), "Europe/London")
    assert reason.isna().all()
    assert typed["event_time"].tolist() == [pd.Timestamp("2024-07-01T11:00Z"), pd.Timestamp("2024-07-01T10:00Z"),
                                            pd.Timestamp("2024-01-15T12:00Z")]
    assert str(typed["event_time"].dtype) == "datetime64[us, UTC]"


def test_daylight_saving_gap_moves_forward_and_repeated_hour_reads_as_first():
    src = frame(customer_id=["a", "b"], event_type=["visit"] * 2,
                event_time=["2024-03-31 01:30:00", "2024-10-27 01:30:00"])
    typed, reason = coerce(apply_mapping(src, None), "Europe/London")
    assert reason.isna().all()
    assert typed["event_time"].tolist() == [pd.Timestamp("2024-03-31T01:00Z"), pd.Timestamp("2024-10-27T00:30Z")]


def test_ids_stay_opaque_strings_and_whitespace_is_trimmed():
    src = frame(customer_id=[" 00017 ", "1e3"], event_type=[" Visit", "visit"], event_time=["2024-01-01"] * 2)
    typed, _ = coerce(apply_mapping(src, None), "UTC")
    assert typed["customer_id"].tolist() == ["00017", "1e3"]
    assert typed["event_type"].tolist() == ["visit", "visit"]


def test_mapping_renames_sets_constants_translates_values_and_parses_formats():
    m = Mapping.from_toml("""
[columns]
customer_id = "Kunde"
event_time = "Zeit"
amount = "Betrag"
event_type = "Art"
[values.event_type]
KAUF = "purchase"
[time]
format = "%d.%m.%Y %H:%M"
timezone = "Europe/Berlin"
""")
    src = frame(Kunde=["7"], Zeit=["01.02.2024 10:00"], Betrag=["5"], Art=["KAUF"])
    typed, reason = coerce(apply_mapping(src, m), m.timezone, m.time_format)
    assert reason.isna().all()
    row = typed.iloc[0]
    assert (row["customer_id"], row["event_type"], row["amount"]) == ("7", "purchase", 5.0)
    assert row["event_time"] == pd.Timestamp("2024-02-01T09:00Z")


def test_constants_fill_missing_columns():
    m = Mapping.from_toml('[columns]\ncustomer_id = "cust"\nevent_time = "ts"\n[constants]\nevent_type = "visit"\n')
    cand = apply_mapping(frame(cust=["1"], ts=["2024-01-01"]), m)
    assert cand["event_type"].tolist() == ["visit"]


def test_missing_required_columns_without_mapping_is_a_clear_error():
    with pytest.raises(MappingError, match=r"missing required columns \['customer_id', 'event_time'\].*--mapping"):
        apply_mapping(frame(cust=["1"], event_type=["visit"]), None)


@pytest.mark.parametrize("text, message", [
    ("[columns\n", "not valid TOML"),
    ("[colums]\n", "unknown mapping sections"),
    ('[columns]\ncustomer = "x"\n', "not contract columns"),
])
def test_bad_mapping_files_are_rejected_clearly(text, message):
    with pytest.raises(MappingError, match=message):
        Mapping.from_toml(text)

import json

import pyarrow as pa

from expectations import build, contract
from ingestion.validate import SUITE_PATH, load_suite


def test_every_committed_suite_is_generated_from_its_contract():
    assert set(build.SUITES) == {"raw_events.suite.json", "scores.suite.json", "contacts.suite.json"}
    for name in build.SUITES:
        assert (build.HERE / name).read_text() == build.render(name), (
            f"{name}: run `python -m expectations.build` after changing its contract")


def test_output_schemas_are_declared_in_expectations():
    from expectations.quarantine import QUARANTINE_COLUMNS, QUARANTINE_SCHEMA
    from expectations.scores import REASON_METHODS, RISK_TIERS, SCORE_COLUMNS
    from expectations.winback import WINBACK_COLUMNS, WINBACK_SCHEMA

    assert QUARANTINE_SCHEMA.names == [c.name for c in QUARANTINE_COLUMNS]
    assert WINBACK_SCHEMA.names == [c.name for c in WINBACK_COLUMNS]
    by_name = {c.name: c for c in SCORE_COLUMNS}
    assert by_name["risk_tier"].allowed == RISK_TIERS and by_name["reasons_method"].allowed == REASON_METHODS
    assert {c.name: c.allowed for c in WINBACK_COLUMNS}["risk_tier"] == RISK_TIERS


def test_suite_loads_in_gx_and_every_expectation_has_a_reason():
    suite = load_suite()
    reasons = [e.meta["reason"] for e in suite.expectations]
    assert len(reasons) == len(set(reasons)) == len(contract.reason_order())
    assert "event_type: not one of visit, purchase, return, complaint" in reasons
    assert "amount: missing for purchase/return" in reasons
    assert "event_time: in the future" in reasons


def test_store_schema_keeps_ids_as_strings_and_times_as_utc_microseconds():
    s = contract.STORE_SCHEMA
    assert s.field("customer_id").type == pa.string()
    assert s.field("event_id").type == pa.string()
    assert s.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert s.names[: len(contract.COLUMN_NAMES)] == list(contract.COLUMN_NAMES)


def test_suite_json_round_trips():
    d = json.loads(SUITE_PATH.read_text())
    assert d["name"] == contract.SUITE_NAME
    assert {e["type"] for e in d["expectations"]} >= {"expect_column_values_to_not_be_null",
                                                      "expect_column_values_to_be_in_set"}

"""The README documents what the code does: its tables are checked against the contracts."""

import re
from pathlib import Path

from expectations.contract import COLUMN_NAMES
from expectations.scores import SCORE_COLUMN_NAMES
from expectations.winback import CAMPAIGN_SHEET, WINBACK_COLUMN_NAMES
from features.definitions import markdown_table

README = (Path(__file__).parent.parent / "README.md").read_text()


def documented_columns(header: str, after: str = "") -> set[str]:
    """The backticked names in the first cell of each row of the README table under `header` (the first one
    after the text `after`)."""
    text = README.split(after, 1)[1] if after else README
    table = text.split(header, 1)[1].split("\n\n", 1)[0]
    first_cells = re.findall(r"^\| ([^|]*?) \|", table, flags=re.M)
    return {name for cell in first_cells for name in re.findall(r"`([^`]+)`", cell)}


def test_feature_table_is_the_one_generated_from_the_records():
    assert "\n" + markdown_table() + "\n\n" in README


def test_every_contract_column_is_documented():
    events = documented_columns("| column | type | rule |")
    for col in COLUMN_NAMES:
        assert col in events, col
    scores = documented_columns("| column | type | meaning |")
    for col in SCORE_COLUMN_NAMES:
        m = re.fullmatch(r"reason_\d_(\w+)", col)
        assert (f"reason_{{1,2,3}}_{m.group(1)}" if m else col) in scores, col


def test_every_contact_column_is_documented():
    from expectations.contacts import CONTACT_COLUMN_NAMES

    documented = documented_columns("| column | type | rule |", after="### Contacts: who was actually contacted")
    assert set(CONTACT_COLUMN_NAMES) <= documented, set(CONTACT_COLUMN_NAMES) - documented


def test_the_two_commands_come_first():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block


def test_the_settings_example_names_real_settings_with_their_defaults():
    """Every key of the README's churn.toml is a setting, shown with its built-in default unless it is one of
    the example's deliberate changes (so a changed default cannot leave the README behind)."""
    import tomllib

    from churn.settings import Settings

    example = tomllib.loads(README.split("```toml\n# churn.toml\n", 1)[1].split("```", 1)[0])
    assert set(example) <= set(Settings.model_fields), set(example) - set(Settings.model_fields)
    changed = {"timezone", "mlflow_tracking_uri", "winback_actions", "model"}  # shown with example values
    Settings(home="x", **{k: example[k] for k in ("model", "winback_actions")})  # the example values are valid
    for key, value in example.items():
        field = Settings.model_fields[key]
        default = field.default_factory() if field.default_factory else field.default
        assert key in changed or value == default, (key, value, default)
    assert {"btyd_baselines", "btyd_sample_customers", "bootstrap_resamples", "bootstrap_confidence"} <= set(example)


def test_the_settings_example_loads_as_a_settings_file(tmp_path, monkeypatch):
    """The README's churn.toml, read the way a user's file is read (strict types: no silent conversions)."""
    from churn.settings import load_settings

    f = tmp_path / "churn.toml"
    f.write_text(README.split("```toml\n# churn.toml\n", 1)[1].split("```", 1)[0])
    monkeypatch.setenv("CHURN_CONFIG", str(f))
    assert load_settings(home=str(tmp_path)).horizon_days == 90


def test_every_winback_column_is_documented():
    documented = documented_columns("| column | type | meaning |", after="**The Parquet file**")
    for col in WINBACK_COLUMN_NAMES:
        m = re.fullmatch(r"reason_\d_(\w+)", col)
        assert (f"reason_{{1,2,3}}_{m.group(1)}" if m else col) in documented, col


def test_the_winback_csv_examples_carry_the_campaign_sheet_headers():
    header = ",".join(h.format(currency="GBP") for h, _, _ in CAMPAIGN_SHEET)
    section = README.split("### Win-back lists", 1)[1].split("## Guarantees", 1)[0]
    assert section.count("\n" + header + "\n") == 2  # the demo's rows and the Online Retail rows

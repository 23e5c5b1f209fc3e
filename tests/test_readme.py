"""The README documents what the code does: its tables are checked against the contracts."""

import re
from pathlib import Path

from expectations.contract import COLUMN_NAMES
from expectations.scores import SCORE_COLUMN_NAMES
from features.customer import FEATURES

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_feature_table_matches_the_code():
    table = README.split("| feature | meaning | unit |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \| (.+?) \|$", table, flags=re.M)
    documented = {name: (meaning, unit) for name, meaning, unit in rows}
    assert documented == FEATURES


def test_every_contract_column_is_documented():
    for col in COLUMN_NAMES:
        assert f"`{col}`" in README, col
    for col in SCORE_COLUMN_NAMES:
        m = re.match(r"reason_(\d)_(\w+)", col)
        assert (f"`reason_{{1,2,3}}_{m.group(2)}`" if m else f"`{col}`") in README or col in README, col


def test_the_two_commands_come_first():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block

"""Regenerate the committed GX suite JSON from the contract: `python -m expectations.build`."""

from __future__ import annotations

import json
from pathlib import Path

from expectations.contract import suite_dict

SUITE_FILE = Path(__file__).resolve().parent / "raw_events.suite.json"


def render() -> str:
    return json.dumps(suite_dict(), indent=2) + "\n"


if __name__ == "__main__":
    SUITE_FILE.write_text(render())
    print(f"wrote {SUITE_FILE}")

"""Regenerate the committed GX suites from the contracts: `python -m expectations.build`."""

from __future__ import annotations

import json
from pathlib import Path

from expectations.contacts import contacts_suite_dict
from expectations.contract import suite_dict
from expectations.scores import scores_suite_dict

HERE = Path(__file__).resolve().parent
SUITES = {"raw_events.suite.json": suite_dict, "scores.suite.json": scores_suite_dict,
          "contacts.suite.json": contacts_suite_dict}


def render(name: str = "raw_events.suite.json") -> str:
    return json.dumps(SUITES[name](), indent=2) + "\n"


if __name__ == "__main__":
    for name in SUITES:
        (HERE / name).write_text(render(name))
        print(f"wrote {HERE / name}")

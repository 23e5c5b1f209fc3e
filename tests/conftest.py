import os
from pathlib import Path

import pandas as pd
import pytest

from flows.cli import QUIET_ENV

for _k, _v in QUIET_ENV.items():
    os.environ.setdefault(_k, _v)

FIXTURES = Path(__file__).parent / "fixtures"
NOW = pd.Timestamp("2025-06-01T12:00:00Z")


@pytest.fixture
def paths(tmp_path):
    from flows import io

    return io.Paths(tmp_path / "home")

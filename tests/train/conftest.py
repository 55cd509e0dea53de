"""Data and stores shared by the training tests (small, seeded, built in milliseconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.train.datasets import Splits, time_split
from loopml.train.synthetic import make_clicks


@pytest.fixture(scope="module")
def clicks():
    return make_clicks(4000, seed=3)


@pytest.fixture(scope="module")
def splits(clicks) -> Splits:
    return time_split(clicks, valid_days=3, test_days=3)


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/meta.db"


@pytest.fixture
def artifact_root(tmp_path: Path) -> str:
    return str(tmp_path / "artifacts")

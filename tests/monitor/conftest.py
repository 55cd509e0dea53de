"""Fixtures for the monitoring tests: a loaded project configuration."""

from __future__ import annotations

import pytest

from loopml.core.config import ProjectConfig


@pytest.fixture
def cfg(project_dir) -> ProjectConfig:
    return ProjectConfig.load(project_dir)

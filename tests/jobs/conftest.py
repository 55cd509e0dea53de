"""A project whose ``ctr@production`` was trained before the simulated world shifted.

Built once per session (simulate, log, train, register) and copied for each test, so
every test starts from the same registry and event log.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.jobs.world import SHIFT_DAY, world_config

from loopml.core.config import ProjectConfig


@pytest.fixture(scope="session")
def stale_champion_template(tmp_path_factory) -> Path:
    from lightgbm import LGBMClassifier

    from loopml.core.config import init_project
    from loopml.demo.models import FEATURES
    from loopml.features.training import build_training_set
    from loopml.features.views import default_catalog
    from loopml.project import Project
    from loopml.sim import World
    from loopml.train.datasets import time_split
    from loopml.train.trainer import train

    root = init_project(tmp_path_factory.mktemp("champion") / "proj", name="proj").parent
    project = Project.open(root)
    world = World(world_config())
    for event_type, frame in world.generate().items():
        project.events.append(event_type, frame)
    views = list(default_catalog())
    data = build_training_set(
        project.events,
        views,
        start=world.day_start(1),
        end=world.day_start(SHIFT_DAY),
        label="click",
        label_window="1h",
    )
    data["hour"] = data["ts"].dt.hour.astype("int64")
    result = train(
        LGBMClassifier(n_estimators=40, num_leaves=15, learning_rate=0.1, verbose=-1, n_jobs=1),
        time_split(data, valid_days=1, test_days=1),
        features=FEATURES,
        label="label",
        name="ctr",
        lineage={"feature_views": {v.name: v.version for v in views}},
        downsample_rate=0.25,
    )
    mv = result.register(project.registry, name="ctr")
    project.registry.set_alias("ctr", "production", mv.version, actor="test", reason="first")
    from loopml.storage.sql import dispose_all

    dispose_all()
    return root


@pytest.fixture
def champion_cfg(stale_champion_template: Path, tmp_path: Path) -> ProjectConfig:
    root = tmp_path / "proj"
    shutil.copytree(stale_champion_template, root)
    return ProjectConfig.load(root)

"""loopml.toml: embedded defaults, URLs, and errors that name the key and the fix."""

from __future__ import annotations

import pytest

from loopml.core.config import ProjectConfig, init_project
from loopml.core.errors import ConfigError


def test_init_writes_embedded_defaults_that_load(tmp_path):
    path = init_project(tmp_path / "p", name="ctr")
    cfg = ProjectConfig.load(path.parent)
    assert cfg.name == "ctr"
    assert cfg.url("metadata") == f"sqlite:///{(tmp_path / 'p' / '.loopml' / 'metadata.db')}"
    assert cfg.path("artifacts") == str(tmp_path / "p" / ".loopml" / "artifacts")
    assert cfg.url("online").startswith("sqlite:///")


def test_init_refuses_to_overwrite(tmp_path):
    init_project(tmp_path, name="a")
    with pytest.raises(ConfigError, match="--force"):
        init_project(tmp_path, name="a")


def test_real_component_is_a_url_change(tmp_path):
    cfg = ProjectConfig.from_dict(
        {
            "storage": {
                "metadata": "postgresql+psycopg://postgres@127.0.0.1/test",
                "online": "redis://127.0.0.1:6379/0",
                "artifacts": "s3://bucket/models",
            }
        },
        root=tmp_path,
    )
    assert cfg.url("metadata").startswith("postgresql+psycopg://")
    assert cfg.path("artifacts") == "s3://bucket/models"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"storage": {"metadata": "mysql://x"}}, "storage.metadata.*unsupported scheme 'mysql'"),
        (
            {"storage": {"metdata": "sqlite:///x"}},
            "storage.metdata: unknown key; did you mean 'metadata'",
        ),
        ({"serve": {"port": "80"}}, "serve.port must be int, got '80'"),
        ({"serve": {"workers": 0}}, "serve.workers must be >= 1"),
        ({"project": {"name": "../x"}}, "project.name '../x' is not allowed"),
        ({"serve": {"log_sample_rate": 2.0}}, r"log_sample_rate must be in \[0, 1\]"),
    ],
)
def test_invalid_config_names_key_and_fix(tmp_path, doc, message):
    with pytest.raises(ConfigError, match=message):
        ProjectConfig.from_dict(doc, root=tmp_path)


def test_missing_file_says_how_to_create_one(tmp_path):
    with pytest.raises(ConfigError, match="loopml init"):
        ProjectConfig.load(tmp_path)


def test_bad_toml_syntax_is_a_config_error(tmp_path):
    (tmp_path / "loopml.toml").write_text("[storage\nmetadata=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ProjectConfig.load(tmp_path)

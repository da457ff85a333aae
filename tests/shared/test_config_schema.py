"""The config loader: every error at once, full key paths, secrets never shown."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from djamms_edge.config import Config, load_config
from djamms_edge.shared.config_schema import (
    SECRET_MASK,
    ConfigError,
    at_least,
    leaf_keys,
    load,
    secret,
    setting,
    to_dict,
)

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Inner:
    size: int = setting(10, check=at_least(1))
    names: tuple[str, ...] = setting(("a",))


@dataclass(frozen=True)
class Outer:
    title: str = setting("x")
    password: str = secret(env="TEST_PASSWORD")
    inner: Inner = field(default_factory=Inner)


def test_defaults_apply_when_the_file_is_empty() -> None:
    config = load(Outer, {}, env={})
    assert config == Outer(title="x", password="", inner=Inner(size=10, names=("a",)))


def test_every_problem_is_reported_at_once_with_its_key_path() -> None:
    with pytest.raises(ConfigError) as caught:
        load(Outer, {"title": 3, "inner": {"size": 0, "names": [1], "colour": "red"}, "titel": "y"}, env={})
    problems = "\n".join(caught.value.problems)
    assert "title: expected a string" in problems
    assert "inner.size: must be >= 1" in problems
    assert "inner.names: item 0: expected a string" in problems
    assert "inner.colour: unknown key" in problems
    assert "titel: unknown key (did you mean 'title'?)" in problems
    assert len(caught.value.problems) == 5


def test_secrets_are_masked_in_errors_and_dumps() -> None:
    @dataclass(frozen=True)
    class WithCheckedSecret:
        token: str = secret(check=lambda v: "too short" if len(v) < 8 else None)

    with pytest.raises(ConfigError) as caught:
        load(WithCheckedSecret, {"token": "hunter2"}, env={})
    assert "hunter2" not in str(caught.value)
    assert SECRET_MASK in str(caught.value)
    dumped = to_dict(load(Outer, {"password": "s3cret-value"}, env={}))
    assert dumped["password"] == SECRET_MASK


def test_environment_overrides_the_file() -> None:
    config = load(Outer, {"password": "from-file"}, env={"TEST_PASSWORD": "from-env"})
    assert config.password == "from-env"


def test_corrupt_toml_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text("[hub\nport = ")
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    assert "not valid TOML" in str(caught.value)


def test_hub_refuses_a_short_jwt_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[hub]\njwt_secret = "short"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "hub.jwt_secret: must be at least 32 bytes" in str(caught.value)
    assert "short" not in str(caught.value).replace("must be at least", "")


def test_example_config_documents_every_key() -> None:
    example = tomllib.loads((REPO / "config.example.toml").read_text())
    documented = _leaf_paths(example)
    assert documented == leaf_keys(Config)


def test_example_config_loads() -> None:
    load_config(REPO / "config.example.toml")


def _leaf_paths(data: dict, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        paths |= _leaf_paths(value, path) if isinstance(value, dict) else {path}
    return paths

"""The config loader: every error at once, full key paths, secrets never shown."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest

from djamms_edge.config import Config, load_config
from djamms_edge.edge.config import OTHER_SECTIONS, SECTION, EdgeConfig, load_edge_config
from djamms_edge.shared.config_schema import (
    SECRET_MASK,
    ConfigError,
    at_least,
    leaf_keys,
    load,
    render_toml,
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


# --- the edge's section alone (djamms-edge analyze): exactly as strict as the whole file's loader ---------------


def test_the_edge_loader_knows_every_top_level_table() -> None:
    assert {SECTION, *OTHER_SECTIONS} == {f.name for f in fields(Config)}


def test_the_edge_section_alone_equals_the_whole_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/run/elsewhere")  # the environment overrides both alike
    example = REPO / "config.example.toml"
    assert load_edge_config(example) == load_config(example).edge
    assert load_edge_config(None) == load_config(None).edge
    assert load_edge_config(None).state_dir == Path("/run/elsewhere")


def _wrong_everywhere(config: Any) -> dict[str, Any]:
    """A document giving every leaf of the dataclass ``config`` a value of the wrong type."""
    document: dict[str, Any] = {}
    for leaf in fields(config):
        value = getattr(config, leaf.name)
        if is_dataclass(value):
            document[leaf.name] = _wrong_everywhere(value)
        else:
            document[leaf.name] = "not a number" if isinstance(value, (bool, int, float)) else 12
    return document


WRONG_EVERYWHERE = {"edge": _wrong_everywhere(EdgeConfig())}


def test_a_wrong_type_anywhere_in_the_edge_section_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(render_toml(WRONG_EVERYWHERE))
    with pytest.raises(ConfigError) as caught:
        load_edge_config(path)
    assert len(caught.value.problems) == len(leaf_keys(EdgeConfig)) > 50


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(WRONG_EVERYWHERE, id="every-edge-key-of-the-wrong-type"),
        pytest.param({"edge": {"analysis": {"silence_treshold_db": -50.0}, "cach": {"size": 1}}}, id="unknown-keys"),
        pytest.param({"edeg": {"a": 1}, "hub": {"port": 1}, "extra": 1}, id="unknown-top-level-tables"),
        pytest.param({"edge": 3, "hub": "x"}, id="sections-that-are-not-tables"),
        pytest.param({"edge": {"status": [1], "player": {"volume": 101.0, "mpv_options": ["-x"]}}}, id="checks"),
        pytest.param({"hub": {"port": "x", "jwt_secret": "short"}, "edge": {"venue_id": 3}}, id="bad-hub-too"),
    ],
)
def test_the_edge_loader_reports_what_the_whole_files_loader_reports(document: dict, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(render_toml(document))
    with pytest.raises(ConfigError) as whole:
        load_config(path)
    with pytest.raises(ConfigError) as edge:
        load_edge_config(path)
    # Word for word and in order: everything but what the hub says about the inside of its own section.
    assert edge.value.problems == [p for p in whole.value.problems if not p.startswith("hub.")]
    assert edge.value.problems


def test_the_edge_loader_leaves_the_inside_of_the_hubs_section_to_the_hub(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[hub]\nport = "x"\n[edge]\nvenue_id = "bar"\n')
    assert load_edge_config(path).venue_id == "bar"
    with pytest.raises(ConfigError, match=r"hub\.port: expected an integer"):
        load_config(path)  # the hub, and every check-config, still refuse it


def _leaf_paths(data: dict, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        paths |= _leaf_paths(value, path) if isinstance(value, dict) else {path}
    return paths

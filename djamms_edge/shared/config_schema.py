"""Declarative config: frozen dataclasses filled from a TOML document.

Every section is a frozen dataclass; the loader walks the type hints, so the
schema *is* the dataclasses. All problems are collected and reported at once
with their full key path ("edge.cache.max_bytes: expected an integer"), unknown
keys get a "did you mean" hint, and fields marked ``secret()`` are never printed.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")

SECRET_MASK = "********"  # noqa: S105 -- the mask shown in place of a secret


class ConfigError(Exception):
    """One or more problems in a config document; ``problems`` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str = "",
    env: str | None = None,
    check: Callable[[Any], str | None] | None = None,
    secret: bool = False,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A config field. ``env`` names an environment variable that overrides the
    file; ``check`` returns an error message for a bad value; ``secret`` masks it."""
    metadata = {"doc": doc, "env": env, "check": check, "secret": secret}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def secret(
    default: str = "", *, doc: str = "", env: str | None = None, check: Callable[[Any], str | None] | None = None
) -> Any:
    return setting(default, doc=doc, env=env, check=check, secret=True)


# --- reusable checks -------------------------------------------------------


def at_least(minimum: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value >= minimum else f"must be >= {minimum}, got {value}"

    return check


def between(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}, got {value}"

    return check


# --- loading -----------------------------------------------------------------


def read_file(path: Path) -> dict[str, Any]:
    """The TOML document at ``path``; a missing file or a syntax error is reported like any other problem."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def load_file(cls: type[T], path: Path, env: Mapping[str, str] | None = None) -> T:
    """Read a TOML file into ``cls``."""
    return load(cls, read_file(path), env=env)


def load(cls: type[T], data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> T:
    problems: list[str] = []
    value = _build(cls, data, "", problems, os.environ if env is None else env)
    if problems:
        raise ConfigError(problems)
    return typing.cast(T, value)


def load_section(
    cls: type[T], data: Mapping[str, Any], section: str, others: Collection[str], env: Mapping[str, str] | None = None
) -> T:
    """The table ``data[section]`` into ``cls``, without the schemas of the document's ``others`` tables.

    Everything :func:`load` of the whole document would say about the section and the top level is said
    (the same problems, word for word); the ``others`` tables are only required to be tables: they belong
    to another program, which checks them. A command that reads one section need not create (import)
    every other section's dataclasses."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        problems.append(f"<root>: expected a table, got {type(data).__name__}")
        data = {}
    _unknown_keys(data, [section, *others], "", problems)
    for name in others:
        if name in data and not isinstance(data[name], Mapping):
            problems.append(f"{name}: expected a table, got {type(data[name]).__name__}")
    value = _build(cls, data.get(section, {}), section, problems, os.environ if env is None else env)
    if problems:
        raise ConfigError(problems)
    return typing.cast(T, value)


def _unknown_keys(data: Mapping[str, Any], known: Collection[str], path: str, problems: list[str]) -> None:
    for key in data:
        if key not in known:
            import difflib  # only for a mistake: most starts never need it

            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(f"{_join(path, key)}: unknown key{suggestion}")


def _build(cls: type, data: Any, path: str, problems: list[str], env: Mapping[str, str]) -> Any:
    if not isinstance(data, Mapping):
        problems.append(f"{path or '<root>'}: expected a table, got {type(data).__name__}")
        data = {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _unknown_keys(data, fields, path, problems)
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = _join(path, name)
        hint = hints[name]
        env_name = field.metadata.get("env")
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(typing.cast(type, hint), data.get(name, {}), key_path, problems, env)
            continue
        if env_name and env.get(env_name):
            raw: Any = env[env_name]
            if hint is not str:
                raw = _from_env_text(raw, hint)
        elif name in data:
            raw = data[name]
        elif field.default is not dataclasses.MISSING:
            raw = field.default
        elif field.default_factory is not dataclasses.MISSING:
            raw = field.default_factory()
        else:
            problems.append(f"{key_path}: required")
            continue
        error, value = _coerce(raw, hint)
        if error is None and field.metadata.get("check") is not None:
            error = field.metadata["check"](value)
        if error is not None:
            shown = SECRET_MASK if field.metadata.get("secret") else repr(raw)
            problems.append(f"{key_path}: {error} (value {shown})")
            continue
        kwargs[name] = value
    if any(p.startswith(path) for p in problems) and len(kwargs) < len(fields):
        return None
    return cls(**kwargs)


def _from_env_text(text: str, hint: Any) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _coerce(raw: Any, hint: Any) -> tuple[str | None, Any]:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if raw is None and type(None) in options:
            return None, None
        for option in options:
            if option is type(None):
                continue
            error, value = _coerce(raw, option)
            if error is None:
                return None, value
        return f"expected {_describe(hint)}", None
    if origin is Literal:
        allowed = get_args(hint)
        return (None, raw) if raw in allowed else (f"must be one of {list(allowed)}", None)
    if origin in (list, tuple):
        (item_type, *_) = get_args(hint) or (Any,)
        if not isinstance(raw, (list, tuple)):
            return "expected a list", None
        items = []
        for index, item in enumerate(raw):
            error, value = _coerce(item, item_type)
            if error is not None:
                return f"item {index}: {error}", None
            items.append(value)
        return None, tuple(items)
    if hint is bool:
        return (None, raw) if isinstance(raw, bool) else ("expected true or false", None)
    if hint is int:
        ok = isinstance(raw, int) and not isinstance(raw, bool)
        return (None, raw) if ok else ("expected an integer", None)
    if hint is float:
        ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
        return (None, float(raw)) if ok else ("expected a number", None)
    if hint is str:
        return (None, raw) if isinstance(raw, str) else ("expected a string", None)
    if hint is Path:
        return (None, Path(raw)) if isinstance(raw, (str, Path)) else ("expected a path string", None)
    if hint is Any:
        return None, raw
    return f"unsupported config type {hint!r}", None


def _describe(hint: Any) -> str:
    names = [getattr(a, "__name__", str(a)) for a in get_args(hint) if a is not type(None)]
    return " or ".join(names)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- showing -------------------------------------------------------------------


def to_dict(config: Any, *, reveal_secrets: bool = False) -> dict[str, Any]:
    """The config as plain data, secrets masked (for ``dump-config`` and logs)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            out[field.name] = to_dict(value, reveal_secrets=reveal_secrets)
        elif field.metadata.get("secret") and value and not reveal_secrets:
            out[field.name] = SECRET_MASK
        elif isinstance(value, Path):
            out[field.name] = str(value)
        elif isinstance(value, tuple):
            out[field.name] = list(value)
        else:
            out[field.name] = value
    return out


def leaf_keys(cls: type, prefix: str = "") -> set[str]:
    """Every key path the schema accepts (the docs test compares it with the example)."""
    keys: set[str] = set()
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        path = _join(prefix, field.name)
        if dataclasses.is_dataclass(hint):
            keys |= leaf_keys(typing.cast(type, hint), path)
        else:
            keys.add(path)
    return keys


def render_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """Minimal TOML writer for ``dump-config`` output (scalars, lists, nested tables)."""
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    lines: list[str] = []
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    for key, value in scalars:
        if value is None:
            lines.append(f"# {key} = (unset)")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    if scalars:
        lines.append("")
    for key, value in tables:
        lines.append(render_toml(value, _join(prefix, key)))
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'

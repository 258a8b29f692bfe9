"""Finding the definitions and the store: config file, environment, flags (in that order).

Config lives in ``[tool.metaxy-sql]`` of ``pyproject.toml`` or at the top level of
``metaxy-sql.toml``, in the working directory or the nearest parent that has one::

    [tool.metaxy-sql]
    entrypoints = ["my_pipeline.features"]   # modules defining the features
    store = "duckdb:///meta.db"              # default store URL

Environment ``METAXY_SQL_ENTRYPOINTS`` (comma-separated) and ``METAXY_SQL_STORE`` override
the file; command-line flags override both.

A relative store path in a config file (``duckdb:///meta.db``) is relative to the file's
folder, so every subfolder of a project opens the same store; a relative path from the
environment or a flag is relative to the working directory, like any path typed in a shell.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaxy_sql.errors import ConfigError, DefinitionError, MetaxySqlError
from metaxy_sql.model.definitions import BaseFeature, FeatureSpec
from metaxy_sql.model.graph import FeatureGraph

ENV_ENTRYPOINTS = "METAXY_SQL_ENTRYPOINTS"
ENV_STORE = "METAXY_SQL_STORE"


@dataclass
class Config:
    entrypoints: list[str] = field(default_factory=list)
    store: str | None = None
    hash_algorithm: str = "sha256"
    source: Path | None = None  # the file the settings came from


def find_config_file(start: Path) -> Path | None:
    """Nearest ``metaxy-sql.toml``, or ``pyproject.toml`` with a ``[tool.metaxy-sql]`` table."""
    for directory in (start, *start.parents):
        own = directory / "metaxy-sql.toml"
        if own.is_file():
            return own
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and "metaxy-sql" in _read_toml(pyproject).get("tool", {}):
            return pyproject
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def load_config(path: Path | None = None, *, entrypoints: tuple[str, ...] = (),
                store: str | None = None) -> Config:
    """Merge the config file, the environment and explicit values (highest priority last)."""
    config = Config()
    path = path or find_config_file(Path.cwd())
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        data = _read_toml(path)
        # pyproject.toml: the [tool.metaxy-sql] table; metaxy-sql.toml: top-level keys, or
        # the same [tool.metaxy-sql] table (as the README shows it for pyproject.toml).
        nested = path.name == "pyproject.toml" or set(data) == {"tool"}
        table = data.get("tool", {}).get("metaxy-sql", {}) if nested else data
        unknown = sorted(set(table) - {"entrypoints", "store", "hash_algorithm"})
        if unknown:
            raise ConfigError(f"{path}: unknown settings {unknown}; known: entrypoints, store, "
                              "hash_algorithm")
        store_url = table.get("store")
        if store_url is not None:
            store_url = store_relative_to(str(store_url), path.resolve().parent)
        modules = table.get("entrypoints", [])
        if isinstance(modules, str):
            modules = [modules]  # one module given as a string
        if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
            raise ConfigError(f"{path}: entrypoints must be a list of module names, e.g. "
                              "entrypoints = [\"my_pipeline.features\"]")
        config = Config(list(modules), store_url,
                        table.get("hash_algorithm", "sha256"), path)
    if os.environ.get(ENV_ENTRYPOINTS):
        config.entrypoints = [e.strip() for e in os.environ[ENV_ENTRYPOINTS].split(",")
                              if e.strip()]
    config.store = os.environ.get(ENV_STORE) or config.store
    if entrypoints:
        config.entrypoints = list(entrypoints)
    config.store = store or config.store
    return config


def store_relative_to(url: str, base: Path) -> str:
    """``url`` with a relative DuckDB file path made absolute against ``base``.

    >>> store_relative_to("duckdb:///meta.db", Path("/project"))
    'duckdb:////project/meta.db'
    >>> store_relative_to("duckdb:////abs/meta.db", Path("/project"))
    'duckdb:////abs/meta.db'

    Other URLs are returned unchanged (chdb paths are absolute by definition).
    """
    prefix = "duckdb:///"
    rest = url[len(prefix):] if url.startswith(prefix) else None
    if rest is None or rest in ("", ":memory:") or rest.startswith("/"):
        return url
    return prefix + str(base / rest)


def load_graph(config: Config) -> FeatureGraph:
    """Import the entrypoint modules and build one graph from what they define.

    A module may define a module-level ``FeatureGraph`` (used as is) or module-level
    ``FeatureSpec`` objects and ``BaseFeature`` subclasses (collected).
    """
    if not config.entrypoints:
        raise ConfigError(
            "no feature definitions: set entrypoints = ['my.module'] under [tool.metaxy-sql] in "
            f"pyproject.toml (or metaxy-sql.toml), set {ENV_ENTRYPOINTS}, or pass -e my.module")
    base = str(config.source.parent if config.source else Path.cwd())
    if base not in sys.path:
        sys.path.insert(0, base)
    items: list[FeatureSpec | type[BaseFeature]] = []
    for name in config.entrypoints:
        items.extend(_features_of(_import(name)))
    return FeatureGraph(items)


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except MetaxySqlError:
        raise
    except ImportError as e:
        raise ConfigError(f"cannot import entrypoint {name!r}: {e}") from None
    except Exception as e:  # the module's own code failed: its author must act
        import traceback

        frame = traceback.extract_tb(e.__traceback__)[-1]
        first = next((ln for ln in str(e).splitlines() if ln.strip()), "")
        raise DefinitionError(
            f"entrypoint {name!r} failed while importing: {type(e).__name__}"
            f"{': ' + first if first else ''} ({frame.filename}, line {frame.lineno}); fix "
            "that module") from e


def _features_of(module: Any) -> list[FeatureSpec | type[BaseFeature]]:
    values = list(vars(module).values())
    graphs = [v for v in values if isinstance(v, FeatureGraph)]
    if graphs:
        items: list[FeatureSpec | type[BaseFeature]] = []
        for g in graphs:
            items.extend(g.feature_class(k) or g.spec(k) for k in g.keys)
        return items
    found: list[FeatureSpec | type[BaseFeature]] = []
    for v in values:
        is_class = isinstance(v, type) and issubclass(v, BaseFeature) and "spec" in vars(v)
        if isinstance(v, FeatureSpec) or is_class:
            found.append(v)
    if not found:
        raise ConfigError(f"entrypoint {module.__name__!r} defines no FeatureGraph, FeatureSpec "
                          "or BaseFeature subclass at module level")
    return found

"""What every ``metaxy-sql`` command shares: the invocation context (config, definitions,
store) and the options that set it, accepted before the command name *and* after it.

``metaxy-sql --store URL status`` and ``metaxy-sql status --store URL`` mean the same (so
do ``-e``, ``--config`` and ``--debug``); a value given after the command name wins over one
given before it (``-e`` modules given in both places are all loaded). Any command module
applies :func:`common_options`; the group adds them to every command registered on it::

    @click.command("copy")
    @common_options
    @click.pass_obj
    def copy_cmd(obj: CliContext, ...) -> None:
        with obj.store(None) as store: ...
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from metaxy_sql.engine.store import Store, connect
from metaxy_sql.errors import ConfigError
from metaxy_sql.model.config import Config, load_config, load_graph
from metaxy_sql.model.graph import FeatureGraph

F = TypeVar("F", bound=Callable[..., Any])


class CliContext:
    """Where the definitions and the store come from, for one invocation (``ctx.obj``)."""

    def __init__(self, config_path: Path | None = None, entrypoints: tuple[str, ...] = (),
                 store: str | None = None, debug: bool = False) -> None:
        self.config_path, self.entrypoints, self.store_url = config_path, entrypoints, store
        self.debug = debug

    def config(self, store: str | None = None) -> Config:
        """The merged settings (config file < environment < flags).

        Raises:
            ConfigError: the config file is missing or invalid; ``--store ''`` (empty).
        """
        if self.store_url is not None:
            check_store_url(self.store_url, "--store")
        return load_config(self.config_path, entrypoints=self.entrypoints,
                           store=store or self.store_url)

    def graph(self) -> FeatureGraph:
        """The feature graph of the configured entrypoints.

        Raises:
            ConfigError: no entrypoints, or a module that does not import.
            DefinitionError: the definitions are invalid.
        """
        return load_graph(self.config())

    def store(self, url: str | None = None, *, create: bool = True) -> Store:
        """The configured store (``url`` overrides it); ``create=False`` for read-only
        commands, which never create one (a missing DuckDB file is an error naming the path).

        Raises:
            ConfigError: no store URL anywhere, or a malformed one.
            StoreConnectionError: the store cannot be opened.
        """
        config = self.config(url)
        if not config.store:
            raise ConfigError("no store: pass --store URL, set METAXY_SQL_STORE, or set "
                              "store = 'duckdb:///meta.db' under [tool.metaxy-sql]")
        return connect(config.store, graph=load_graph(config), create=create,
                       hash_algorithm=config.hash_algorithm)  # type: ignore[arg-type]


def check_store_url(url: str, option: str) -> str:
    """``url`` as given to ``option``; an empty one is refused (an empty value must not mean
    "the default store").

    Raises:
        ConfigError: ``url`` is empty or blank.
    """
    if not url.strip():
        default = ("" if option in ("--from", "--to") else
                   f", or leave {option} out to use the config's store or METAXY_SQL_STORE")
        raise ConfigError(f"{option} is empty: give a store URL, e.g. {option} "
                          f"duckdb:///meta.db{default}")
    return url


def _obj(ctx: click.Context) -> CliContext:
    obj = ctx.find_object(CliContext)
    if obj is None:  # a command invoked on its own (not through the group)
        obj = ctx.ensure_object(CliContext)
    return obj


def _set_store(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value is not None:
        _obj(ctx).store_url = value


def _add_entrypoints(ctx: click.Context, _: click.Parameter, value: tuple[str, ...]) -> None:
    if value:
        obj = _obj(ctx)
        obj.entrypoints = (*obj.entrypoints, *value)


def _set_debug(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        _obj(ctx).debug = True


def _set_config(ctx: click.Context, _: click.Parameter, value: Path | None) -> None:
    if value is not None:
        _obj(ctx).config_path = value


CONFIG_HELP = ("Config file (default: nearest metaxy-sql.toml or pyproject.toml with "
               "[tool.metaxy-sql]).")
ENTRYPOINT_HELP = ("Module defining features (repeatable); overrides the config's entrypoints "
                   "and METAXY_SQL_ENTRYPOINTS.")
STORE_HELP = "Store URL; overrides config and METAXY_SQL_STORE."


def _specs() -> list[tuple[list[str], dict[str, Any]]]:
    return [
        (["--store"], {"expose_value": False, "callback": _set_store, "help": STORE_HELP}),
        (["-e", "--entrypoint"], {"multiple": True, "expose_value": False,
                                  "callback": _add_entrypoints, "help": ENTRYPOINT_HELP}),
        (["--config"], {"type": click.Path(path_type=Path, dir_okay=False),
                        "expose_value": False, "callback": _set_config, "help": CONFIG_HELP}),
        (["--debug"], {"is_flag": True, "expose_value": False, "callback": _set_debug,
                       "help": "Show tracebacks on errors."}),
    ]


def add_common_options(command: click.Command) -> click.Command:
    """Give ``command`` the options of :func:`common_options` it lacks (idempotent); the
    ``metaxy-sql`` group applies this to every command registered on it."""
    taken = {opt for p in command.params for opt in p.opts}
    for decls, kwargs in _specs():
        if not taken & set(decls):
            command.params.append(click.Option(decls, **kwargs))
    return command


def common_options(command: F) -> F:
    """Add ``--store``, ``-e/--entrypoint``, ``--config`` and ``--debug`` to a command, so they are
    accepted after its name as well as before it (they update ``ctx.obj``, a
    :class:`CliContext`; the command reads them through it, not as parameters).

    Use it under ``@click.command`` (on the function), or call it on a command."""
    if isinstance(command, click.Command):
        add_common_options(command)
        return command
    for decls, kwargs in reversed(_specs()):
        command = click.option(*decls, **kwargs)(command)
    return command


def json_format_option(command: F) -> F:
    """``--format text|json`` (parameter ``fmt``)."""
    return click.option("--format", "fmt", type=click.Choice(["text", "json"]),
                        default="text", show_default=True,
                        help="json: one JSON document on stdout (maps as objects); "
                             "progress is not shown.")(command)

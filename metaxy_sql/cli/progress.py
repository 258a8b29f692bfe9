"""Progress of long CLI work: a rich progress bar when stdout is a terminal, plain lines
otherwise (CI logs, pipes). Both go to stderr, so stdout stays machine-readable
(``--format json | jq`` keeps working).

Library code never imports this: long operations take an ``on_progress(n)`` callback that
is told how many more units (rows, features) are done, and the CLI passes
:meth:`Task.advance`.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click

#: Seconds between two plain progress lines (a line is also printed at the end).
PLAIN_INTERVAL_S = 5.0


class Task:
    """One unit of long work. ``advance(n)`` adds ``n`` done units (rows, features)."""

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done = 0
        self.started = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n

    def summary(self) -> str:
        total = f"/{self.total:,}" if self.total is not None else ""
        return (f"{self.description}: {self.done:,}{total} {self.unit} "
                f"in {time.monotonic() - self.started:.1f} s")


class _PlainTask(Task):
    def __init__(self, description: str, total: int | None, unit: str, out: TextIO) -> None:
        super().__init__(description, total, unit)
        self._out, self._last = out, time.monotonic()

    def advance(self, n: int = 1) -> None:
        super().advance(n)
        now = time.monotonic()
        finished = self.total is not None and self.done >= self.total  # the summary follows
        if now - self._last >= PLAIN_INTERVAL_S and not finished:
            self._last = now
            click.echo(f"{self.summary()} ...", file=self._out)


class _RichTask(Task):
    def __init__(self, description: str, total: int | None, unit: str, bar: object,
                 task_id: object) -> None:
        super().__init__(description, total, unit)
        self._bar, self._id = bar, task_id

    def advance(self, n: int = 1) -> None:
        super().advance(n)
        self._bar.update(self._id, advance=n)  # type: ignore[attr-defined]


def is_terminal() -> bool:
    """True when stdout is an interactive terminal (rich display), else plain lines."""
    return sys.stdout.isatty()


@contextmanager
def progress(description: str, total: int | None = None, *, unit: str = "rows",
             quiet: bool = False) -> Iterator[Task]:
    """Show progress of one long operation on stderr.

    Args:
        description: what is being done, e.g. ``"copy video/raw"``.
        total: units expected, or None when unknown (a spinner / running count).
        unit: the unit counted (``rows``, ``features``).
        quiet: count silently (nothing printed), e.g. for ``--format json``.

    Yields:
        A :class:`Task`; call ``task.advance(n)`` as work is done. On a clean exit one
        summary line (``<description>: N rows in S s``) is printed.
    """
    if quiet:
        yield Task(description, total, unit)
        return
    if not is_terminal():
        plain = _PlainTask(description, total, unit, sys.stderr)
        yield plain
        click.echo(plain.summary(), file=sys.stderr)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn()]
    console = Console(stderr=True)
    with Progress(*columns, console=console, transient=True, redirect_stdout=False) as bar:
        task = _RichTask(description, total, unit, bar,
                         bar.add_task(description, total=total))
        real, sys.stdout = sys.stdout, _AboveTheBar(console, sys.stdout)
        try:
            yield task
        finally:
            sys.stdout.flush()
            sys.stdout = real
    click.echo(task.summary(), file=sys.stderr)


class _AboveTheBar(io.TextIOBase):
    """``sys.stdout`` while a rich bar is drawn: each whole line is printed above the bar
    (through the bar's console), so command output and the bar do not overwrite each other.

    Rich's own stdout redirection is bypassed by ``click.echo``, which writes to the binary
    buffer under ``sys.stdout``; this stream is text only, so click writes to it."""

    def __init__(self, console: Any, real: TextIO) -> None:
        super().__init__()
        self._console, self._real, self._pending = console, real, ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._real.isatty()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._console.print(line, markup=False, highlight=False, emoji=False,
                                soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            line, self._pending = self._pending, ""
            self._console.print(line, markup=False, highlight=False, emoji=False,
                                soft_wrap=True)

"""User predicates (dependency filters, ``where=`` of reads, partial resolution, copies):
parsed and checked with sqlglot, evaluated alike on every engine.

A predicate is a boolean expression over columns and literals: comparisons, ``AND``/``OR``/
``NOT``, ``IN (literals)``, ``BETWEEN``, ``LIKE``, ``IS [NOT] NULL``, a bare (bool) column.
Anything else (function calls, subqueries, casts, arithmetic, several statements) is
rejected; the parsed tree, with every column re-quoted, is what the SQL builder embeds, never
the user's text.

One semantics on every engine (a sample's status must not depend on where it is stored):

- NULL: SQL three-valued logic; a row whose predicate is NULL is not selected.
- Floats follow the SQL total order of DuckDB and Postgres: ``NaN`` equals itself and is greater
  than every other value, ``+inf`` included (so ``NaN > 1.0``, ``NaN = NaN`` and
  ``x = x`` are true for a NaN ``x``, ``NaN < inf`` false); ``-0.0 = 0.0``. ClickHouse compares
  by IEEE-754 (every comparison with NaN false, ``IN`` matching bit patterns, so ``-0.0`` is
  not ``IN (0.0)``); its dialect rewrites each comparison into a NaN-explicit form that gives
  the total order for any column type (``Dialect.predicate``). ``x IN (a, b)`` means
  ``x = a OR x = b`` (so ClickHouse, which converts an IN set to the column type strictly,
  gets it spelled so when an item is text) and ``x BETWEEN a AND b`` means
  ``x >= a AND x <= b``, with these comparisons. ``IN`` takes literals only. A NaN literal is
  written as text, ``duration = 'NaN'``.
- ``LIKE`` escapes differ (DuckDB has none by default, Postgres and ClickHouse read ``\\``
  as one): a backslash in a pattern and ``ESCAPE`` are refused.
- Arithmetic (``+ - * /``, and ``-`` of a column) is refused: engines disagree on it in ways no
  rewrite fixes cheaply (``x / 0``: an error on Postgres, NULL on ClickHouse, inf or NULL on
  DuckDB; ``7 / 2`` is 3 on Postgres, 3.5 elsewhere; int64 overflow wraps on ClickHouse and
  fails elsewhere). Store the computed value as a column of the parent and filter on it.
  Numeric literals beyond the float range (``1e400``) are refused too (an error on Postgres,
  ``inf`` elsewhere), and nonzero ones that underflow it (``1e-400``); ``NULL`` inside
  ``IN (...)`` is refused (ClickHouse ignores it, so ``NOT (x IN (1, NULL))`` would differ);
  write ``x IS NULL OR x IN (...)``.

Text compares by the engine's collation for ``<``/``>``: byte order on DuckDB and ClickHouse,
the database collation on Postgres (byte order for a ``C`` database).

>>> print(predicate_sql(parse_filter("duration > 1.0 AND path LIKE 'v1%'", "a filter")))
"duration" > 1.0 AND "path" LIKE 'v1%'
>>> parse_filter("lower(path) = 'x'", "the filter")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
metaxy_sql.errors.DefinitionError: the filter (...): Lower is not allowed; use only columns, ...
>>> parse_filter("a / b > 1", "the filter")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
metaxy_sql.errors.DefinitionError: the filter ('a / b > 1'): arithmetic (Div) is refused; ...
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from metaxy_sql.errors import DefinitionError

_ALLOWED: tuple[type[exp.Expr], ...] = (
    exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.Tuple,
    exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is,
    exp.In, exp.Between, exp.Like, exp.ILike, exp.Neg,
)
#: Arithmetic, refused: engines disagree on division by zero, integer division and overflow.
_ARITHMETIC: tuple[type[exp.Expr], ...] = (
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Pow, exp.BitwiseAnd,
    exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseNot, exp.BitwiseLeftShift, exp.BitwiseRightShift,
)
_ARITHMETIC_FIX = (
    "engines disagree on it (x / 0 is an error on Postgres, NULL on ClickHouse, inf or NULL on "
    "DuckDB; 7 / 2 is 3 on Postgres and 3.5 elsewhere; int64 overflow wraps on ClickHouse and "
    "fails elsewhere); store the computed value as a column of the feature and filter on it, "
    "e.g. \"ratio > 1.0\"")
_BOOLEAN: tuple[type[exp.Expr], ...] = (
    exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is,
    exp.In, exp.Between, exp.Like, exp.ILike, exp.Boolean,
)
_LIKE_FIX = ("match a literal %, _ or \\ with _ (any one character, so others too: "
             "\"path LIKE 'a_b'\" matches 'a%b' and 'axb'), or store a column to compare "
             "with =")
_HINT = ("use only columns, literals, comparisons, AND/OR/NOT, IN (...), BETWEEN, LIKE "
         "and IS NULL")


@lru_cache(maxsize=512)
def _parse(text: str) -> exp.Expr:
    statements = sqlglot.parse(text)
    if len(statements) != 1 or statements[0] is None:
        raise ValueError("give exactly one expression (no ';')")
    return statements[0]


def parse_filter(text: str, what: str) -> exp.Expr:
    """Parse and check one predicate; ``what`` names it in errors (feature and role).

    Returns a fresh copy of the checked tree with every column unqualified and quoted.
    """
    if not isinstance(text, str) or not text.strip():
        raise DefinitionError(f"{what}: a predicate must be a non-empty SQL string")
    if "\x00" in text:
        raise DefinitionError(f"{what} ({text!r}) contains a NUL character (U+0000), which no "
                              "store can compare or hold; remove it")
    try:
        tree = _parse(text)
    except (ParseError, ValueError) as e:
        raise DefinitionError(f"{what} ({text!r}) does not parse: {e}") from None
    root = tree.unnest() if isinstance(tree, exp.Paren) else tree
    if isinstance(root, exp.Escape):
        _like_escape(root, what, text)
    if not isinstance(root, (*_BOOLEAN, exp.Column)):  # a bare column: bool (filter_types)
        raise DefinitionError(f"{what} ({text!r}) is not a boolean expression; write a "
                              "comparison such as \"duration > 1.0\"")
    for node in tree.walk():
        _check_node(node, what, text)
    return _requote(tree)


def _like_escape(node: exp.Escape, what: str, text: str) -> None:
    raise DefinitionError(
        f"{what} ({text!r}): LIKE ... ESCAPE is refused (engines disagree on LIKE escapes: "
        "DuckDB has no default escape, Postgres and ClickHouse read \\ as one); no filter "
        f"matches a literal % or _ alike on every engine: {_LIKE_FIX}")


def _check_node(node: exp.Expr, what: str, text: str) -> None:
    """Refuse one node of a parsed predicate that engines would answer differently."""
    if isinstance(node, exp.Escape):
        _like_escape(node, what, text)
    if isinstance(node, exp.Like | exp.ILike):
        pattern = node.expression
        if isinstance(pattern, exp.Literal) and "\\" in pattern.this:
            raise DefinitionError(
                f"{what} ({text!r}): a backslash in the LIKE pattern {pattern.sql()} is "
                "refused (Postgres and ClickHouse read it as an escape, DuckDB as a "
                f"character, so they select different rows); {_LIKE_FIX}")
    if isinstance(node, exp.In) and any(
            item.find(exp.Column) is not None for item in node.expressions):
        raise DefinitionError(
            f"{what} ({text!r}): IN takes literals only, not columns (ClickHouse matches "
            "a column in an IN list by bit pattern, so NaN rows differ by engine); compare "
            "the columns with =, e.g. \"a = b OR a = c\"")
    if isinstance(node, _ARITHMETIC) or (
            isinstance(node, exp.Neg) and not _is_number(node.this)):
        raise DefinitionError(f"{what} ({text!r}): arithmetic ({type(node).__name__}) is "
                              f"refused; {_ARITHMETIC_FIX}")
    if not isinstance(node, _ALLOWED):
        raise DefinitionError(
            f"{what} ({text!r}): {type(node).__name__} is not allowed; {_HINT}")
    if isinstance(node, exp.In) and node.args.get("query") is not None:
        raise DefinitionError(f"{what} ({text!r}): IN takes literals only; {_HINT}")
    if isinstance(node, exp.In) and any(isinstance(v, exp.Null) for v in node.expressions):
        raise DefinitionError(
            f"{what} ({text!r}): NULL inside IN (...) is refused (ClickHouse ignores it, "
            "so NOT IN would differ by engine); write \"x IS NULL OR x IN (...)\"")
    if isinstance(node, exp.Column) and node.table:
        raise DefinitionError(
            f"{what} ({text!r}): write {node.name!r} without a table qualifier")
    number = _decimal(node)
    if number is not None:
        if math.isinf(float(number)):
            raise DefinitionError(
                f"{what} ({text!r}): the number {node.this} is beyond the float range (an "
                "error on Postgres, inf elsewhere); write 'inf' or 'NaN' as text, "
                "e.g. \"duration < 'inf'\"")
        if number != 0 and float(number) == 0:
            raise DefinitionError(
                f"{what} ({text!r}): the number {node.this} is too small for a float64 (it "
                "reads as 0 on DuckDB and ClickHouse, an out-of-range error on Postgres); "
                "write 0, or a number at least 5e-324 in magnitude")


def _decimal(node: exp.Expr) -> Decimal | None:
    if not _is_number(node):
        return None
    try:
        return Decimal(node.this)
    except InvalidOperation:
        return None


def _is_number(node: exp.Expr) -> bool:
    return isinstance(node, exp.Literal) and not node.is_string


def float_value(node: exp.Expr) -> float | None:
    """The float a literal operand stands for when compared with a float column (a number,
    ``-`` a number, or text spelling one, e.g. ``'NaN'``, ``'-0.0'``), else None."""
    if isinstance(node, exp.Neg):
        inner = float_value(node.this) if _is_number(node.this) else None
        return None if inner is None else -inner
    if not isinstance(node, exp.Literal):
        return None
    try:
        return float(node.this)
    except ValueError:
        return None


def _requote(tree: exp.Expr) -> exp.Expr:
    tree = tree.copy()
    for column in list(tree.find_all(exp.Column)):
        column.replace(exp.column(column.name, quoted=True))
    return tree


def columns_of(predicate: exp.Expr) -> set[str]:
    """Column names a checked predicate reads."""
    return {c.name for c in predicate.find_all(exp.Column)}


def check_columns(predicate: exp.Expr, text: str, available: Iterable[str], what: str,
                  fix: str) -> None:
    """Every column the predicate reads must be in ``available``."""
    known = set(available)
    unknown = sorted(columns_of(predicate) - known)
    if unknown:
        raise DefinitionError(f"{what} ({text!r}) reads unknown columns {unknown}; {fix} "
                              f"(available: {sorted(known)})")


def qualify(predicate: exp.Expr, table: str) -> exp.Expr:
    """The predicate with every column qualified by ``table`` (quoted)."""
    tree = predicate.copy()
    for column in list(tree.find_all(exp.Column)):
        column.replace(exp.column(column.name, table=table, quoted=True))
    return tree


def literal(value: Any) -> exp.Expr:
    """A SQL literal of an id value (strings and integers; booleans and floats refused)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise TypeError(f"{value!r} contains a NUL character (U+0000), which no store holds")
        return exp.Literal.string(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return exp.Literal.number(value)
    raise TypeError(type(value).__name__)


def ids_predicate(id_columns: Sequence[str], ids: Sequence[Any], feature: str) -> exp.Expr:
    """``ids IN (...)`` from an explicit id list (scalars for one id column, else mappings)."""
    rows: list[list[exp.Expr]] = []
    try:
        for item in ids:
            if isinstance(item, dict):
                rows.append([literal(item[c]) for c in id_columns])
            elif isinstance(item, tuple | list):
                if len(item) != len(id_columns):
                    raise KeyError(item)
                rows.append([literal(v) for v in item])
            elif len(id_columns) == 1:
                rows.append([literal(item)])
            else:
                raise KeyError(item)
    except (KeyError, TypeError) as e:
        raise DefinitionError(
            f"feature {feature!r}: ids= must list id values of {list(id_columns)} (a scalar per "
            f"id for one id column, else a dict or tuple per id); got {e}") from None
    if not rows:
        return exp.false()
    if len(id_columns) == 1:
        return exp.In(this=exp.column(id_columns[0], quoted=True),
                      expressions=[r[0] for r in rows])
    return exp.or_(*[exp.and_(*[
        exp.EQ(this=exp.column(c, quoted=True), expression=v) for c, v in zip(id_columns, r,
                                                                              strict=True)])
        for r in rows])


def predicate_sql(predicate: exp.Expr) -> str:
    """Neutral rendering, for docs and messages."""
    return predicate.sql(identify=True)


def subset_predicate(feature: str, grain: Sequence[str], where: str | None,
                     ids: Sequence[Any] | None) -> exp.Expr | None:
    """The partial-resolution predicate of ``resolve_update(where=..., ids=...)`` (both AND-ed),
    over the increment's grain columns only (they exist on every side of the statement)."""
    parts: list[exp.Expr] = []
    if where is not None:
        what = f"feature {feature!r}: where="
        pred = parse_filter(where, what)
        check_columns(pred, where, grain, what,
                      "partial resolution filters on the increment's id columns")
        parts.append(pred)
    if ids is not None:
        if isinstance(ids, str | bytes | dict):
            raise DefinitionError(f"feature {feature!r}: ids= takes a list of ids, e.g. ['v1']")
        parts.append(ids_predicate(grain, list(ids), feature))
    if not parts:
        return None
    return exp.and_(*[exp.paren(p, copy=False) if isinstance(p, exp.Or) else p for p in parts])

"""Predicates against column types: a literal (or column) of another type than the column it
is compared with is refused before any SQL runs, because each engine treats the mismatch its
own way (DuckDB casts and answers, Postgres errors, ClickHouse errors, answers differently, or
compares as ``Float64``), so one store copied to another engine would select other rows.

A column's **kind** is what a predicate may compare it with (``kinds`` map a column to its kind
and the type text shown in errors; ``engine.coltypes.predicate_kinds`` builds them from stored
Arrow types, ``declared_predicate_kinds`` from feature-class annotations):

=============== ====================================================================
kind            literals allowed (``NULL`` always)
=============== ====================================================================
``int``         whole numbers; a decimal number only when it is an exact float64
                below 2**53 in magnitude (ClickHouse compares it as ``Float64``)
``float``       numbers (whole ones up to 2**53 in magnitude); ``'NaN'``, ``'inf'``,
                ``'-inf'``, ``'+inf'``, ``'infinity'`` as text (any case)
``decimal``     numbers of at most 38 - scale integer digits (DuckDB casts the literal
                to ``DECIMAL(38, scale)`` and fails beyond)
``text``        quoted text
``bool``        ``TRUE``, ``FALSE``
``date``        ``'YYYY-MM-DD'``
``timestamp``   ``'YYYY-MM-DD'``, ``'YYYY-MM-DD HH:MM:SS[.ffffff]'`` (or ``T``), no offset
``timestamptz`` ``'YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM'`` (offset or ``Z`` required: a
                bare wall clock is read in each session's time zone)
``binary``,     none (engines read a text literal as bytes with their own escapes)
``nested``
=============== ====================================================================

The same rule holds for each item of ``IN (...)``, both bounds of ``BETWEEN``, and either
side of a comparison. Two columns compare when their families agree (numbers with numbers,
dates with naive timestamps, otherwise the same kind); ``LIKE`` needs a text column; a bare
column used as a condition (``flag``, ``flag AND x > 1``) must be ``bool``.

>>> from metaxy_sql.errors import DataError
>>> from metaxy_sql.model.filters import parse_filter
>>> where = "score > '1.5'"
>>> check_types(parse_filter(where, "w"), where, {"score": ("float", "double")},
...             "read: where=", DataError)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
metaxy_sql.errors.DataError: read: where= (...): column 'score' is double but '1.5' is text; ...
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from sqlglot import exp

from metaxy_sql.errors import MetaxySqlError

__all__ = ["Kinds", "check_types", "declared_predicate_kinds"]

#: column -> (kind, type text shown in errors)
Kinds = Mapping[str, tuple[str, str]]
_Fail = Callable[[str], None]

_FLOAT_WORDS = frozenset({"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
_EXACT = 2 ** 53
_DECIMAL_DIGITS = 38  # the widest decimal every engine has (DuckDB, ClickHouse Decimal128)
_SCALE = re.compile(r"^decimal\d*\(\d+, *(\d+)\)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK = r"[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?"
_TIMESTAMP = re.compile(rf"^\d{{4}}-\d{{2}}-\d{{2}}({_CLOCK})?$")
_TIMESTAMPTZ = re.compile(rf"^\d{{4}}-\d{{2}}-\d{{2}}{_CLOCK}(Z|[+-]\d{{2}}(:?\d{{2}})?)$")
_FAMILY = {"int": "number", "float": "number", "decimal": "number", "date": "datetime",
           "timestamp": "datetime"}
_FIX = {
    "int": "write the literal as a whole number, e.g. n = 2",
    "float": "write the literal as a number, e.g. score > 1.5 (NaN and infinity as text: "
             "'NaN', 'inf', '-inf')",
    "decimal": "write the literal as a number, e.g. price > 1.5",
    "text": "quote the literal, e.g. name = '1'",
    "bool": "write TRUE or FALSE",
    "date": "write the date as 'YYYY-MM-DD', e.g. '2024-01-31'",
    "timestamp": "write 'YYYY-MM-DD HH:MM:SS[.ffffff]' or 'YYYY-MM-DD', without a zone offset "
                 "(the column holds wall-clock times)",
    "timestamptz": "write the instant with its offset, e.g. '2024-01-31 12:00:00+00:00' (or "
                   "'...Z')",
    "binary": "compare a text or number column of the feature instead (engines read a text "
              "literal as bytes with their own escapes)",
    "nested": "compare a scalar column of the feature instead",
}
_DECLARED = {"int": "int", "float": "float", "str": "text", "bool": "bool", "bytes": "binary",
             "date": "date"}
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_CONDITIONS = (exp.And, exp.Or, exp.Not, *_COMPARISONS, exp.Is, exp.In, exp.Between, exp.Like,
               exp.ILike, exp.Boolean)


def declared_predicate_kinds(declared: Mapping[str, str | None]) -> dict[str, tuple[str, str]]:
    """Kinds of columns whose feature-class annotation fixes a type (``declared_kind`` text:
    ``int``, ``float``, ``str``, ``bool``, ``bytes``, ``date``, ``list[...]``)."""
    kinds: dict[str, tuple[str, str]] = {}
    for column, kind in declared.items():
        if kind is None:
            continue
        kinds[column] = ("nested" if kind.startswith("list[") else _DECLARED[kind], kind)
    return kinds


def check_types(predicate: exp.Expr, text: str, kinds: Kinds, what: str,
                error: type[MetaxySqlError]) -> None:
    """Refuse every comparison in a checked predicate (``parse_filter``) whose sides are of
    types engines compare differently; columns missing from ``kinds`` (type not known yet)
    are not checked.

    Raises:
        error: names the column, its stored type, the literal and the fix
            (``DataError`` for a ``where=``, ``DefinitionError`` for a dependency filter).
    """
    def fail(message: str) -> None:
        raise error(f"{what} ({text!r}): {message}")

    for node in predicate.walk():
        if isinstance(node, _COMPARISONS):
            _pair(node.this, node.expression, kinds, fail)
        elif isinstance(node, exp.In):
            for item in node.expressions:
                _pair(node.this, item, kinds, fail)
        elif isinstance(node, exp.Between):
            _pair(node.this, node.args["low"], kinds, fail)
            _pair(node.this, node.args["high"], kinds, fail)
        elif isinstance(node, exp.Like | exp.ILike):
            _like(node, kinds, fail)
        elif isinstance(node, exp.And | exp.Or | exp.Not):
            for operand in (node.this, node.args.get("expression")):
                _condition(operand, kinds, fail)
    _condition(predicate, kinds, fail)  # a bare column as the whole predicate


def _unwrap(node: exp.Expr | None) -> exp.Expr | None:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _kind(node: exp.Expr, kinds: Kinds) -> tuple[str, str] | None:
    """(kind, type text) of a column or a condition operand, else None."""
    if isinstance(node, exp.Column):
        return kinds.get(node.name)
    if isinstance(node, _CONDITIONS) and not isinstance(node, exp.Boolean):
        return ("bool", "a condition")
    return None


def _condition(operand: exp.Expr | None, kinds: Kinds, fail: _Fail) -> None:
    node = _unwrap(operand)
    if isinstance(node, exp.Column) and (known := kinds.get(node.name)) and known[0] != "bool":
        zero = {"text": "''", "int": "0", "float": "0", "decimal": "0"}.get(known[0])
        example = f"\"{node.name} <> {zero}\" or " if zero else ""
        fail(f"column {node.name!r} is {known[1]}, not bool, so it is no condition (DuckDB "
             "casts it, Postgres refuses it); compare it, e.g. "
             f"{example}\"{node.name} IS NOT NULL\"")


def _like(node: exp.Expr, kinds: Kinds, fail: _Fail) -> None:
    column = _unwrap(node.this)
    known = _kind(column, kinds) if column is not None else None
    if known is not None and known[0] != "text":
        fail(f"LIKE needs a text column; {column.sql(identify=True) if column else ''} is "
             f"{known[1]} (engines refuse it or cast it differently); compare it with "
             "=, <, > or IN instead")
    pattern = _unwrap(node.expression)
    if isinstance(pattern, exp.Literal) and not pattern.is_string:
        fail(f"the LIKE pattern {pattern.sql()} is a number; quote it, e.g. LIKE '1%'")


def _pair(left: exp.Expr, right: exp.Expr, kinds: Kinds, fail: _Fail) -> None:
    a, b = _unwrap(left), _unwrap(right)
    if a is None or b is None:
        return
    ka, kb = _kind(a, kinds), _kind(b, kinds)
    if ka is not None and kb is not None:
        if _FAMILY.get(ka[0], ka[0]) != _FAMILY.get(kb[0], kb[0]):
            fail(f"{a.sql(identify=True)} is {ka[1]} but {b.sql(identify=True)} is {kb[1]}; "
                 "engines compare these differently (or refuse them): compare columns of "
                 "the same kind")
        return
    if ka is not None:
        _literal(a, ka, b, fail)
    elif kb is not None:
        _literal(b, kb, a, fail)


def _literal(column: exp.Expr, known: tuple[str, str], value: exp.Expr, fail: _Fail) -> None:
    if isinstance(value, exp.Null) or not isinstance(value, exp.Literal | exp.Neg | exp.Boolean):
        return
    kind, type_text = known
    problem = _mismatch(kind, value)
    name = (repr(column.name) if isinstance(column, exp.Column)
            else column.sql(identify=True))
    number = _number(value) if kind == "decimal" and problem is None else None
    if number is not None and (digits := _decimal_range(number, type_text)) is not None:
        fail(f"column {name} is {type_text} but {value.sql()} has {digits[0]} integer digits, "
             f"more than a decimal of this scale holds ({digits[1]}: DuckDB fails casting it "
             "to DECIMAL(38, scale), ClickHouse and Postgres answer); compare with a bound "
             "the column's type can hold")
    if problem is None:
        return
    fail(f"{'column ' if isinstance(column, exp.Column) else ''}{name} is {type_text} but "
         f"{value.sql()} is {problem}; engines compare these differently (DuckDB casts, "
         f"Postgres and ClickHouse refuse or compare otherwise): {_FIX[kind]}")


def _literal_kind(value: exp.Expr) -> str:
    if isinstance(value, exp.Boolean):
        return "bool"
    if isinstance(value, exp.Literal) and value.is_string:
        return "text"
    return "number"


def _number(value: exp.Expr) -> Decimal | None:
    negate = isinstance(value, exp.Neg)
    node = value.this if negate else value
    if not isinstance(node, exp.Literal) or node.is_string:
        return None
    try:
        number = Decimal(node.this)
    except InvalidOperation:
        return None
    return number.copy_negate() if negate else number  # exact: - rounds to 28 digits


def _mismatch(kind: str, value: exp.Expr) -> str | None:
    """Why ``value`` cannot be compared alike with a column of ``kind`` (None: it can)."""
    given = _literal_kind(value)
    if kind in ("int", "float", "decimal"):
        if given != "number":
            if kind == "float" and given == "text" and value.name.lower() in _FLOAT_WORDS:
                return None
            return given
        number = _number(value)
        if number is None:
            return None
        if kind == "int" and not value.sql().lstrip("-").isdigit():
            near = Decimal(float(number))  # what ClickHouse compares the column with
            if abs(near) >= _EXACT or (near == near.to_integral_value() and near != number):
                return ("a number ClickHouse rounds to the float64 " + repr(float(number))
                        + " before comparing, while DuckDB and Postgres compare it exactly")
        if kind == "float" and value.sql().lstrip("-").isdigit() and abs(number) > _EXACT:
            return ("a whole number beyond 2**53, which ClickHouse compares exactly and "
                    "DuckDB and Postgres round to a float first; write it as a float, e.g. "
                    + repr(float(number)))
        return None
    if kind in ("text", "bool"):
        return None if given == kind else given
    if kind in ("binary", "nested"):
        return given
    if given != "text":
        return given
    return _temporal(kind, value.name)


def _decimal_range(number: Decimal, type_text: str) -> tuple[int, int] | None:
    """(integer digits, room) of a literal with more integer digits than a decimal of the
    column's scale holds in the widest decimal every engine has, else None."""
    scale = _SCALE.search(type_text)
    room = _DECIMAL_DIGITS - (int(scale.group(1)) if scale else 0)
    whole = number.copy_abs().to_integral_value(rounding="ROUND_DOWN")
    digits = whole.adjusted() + 1
    return None if whole == 0 or digits <= room else (digits, room)


def _temporal(kind: str, text: str) -> str | None:
    pattern = {"date": _DATE, "timestamp": _TIMESTAMP, "timestamptz": _TIMESTAMPTZ}[kind]
    if not pattern.match(text):
        return f"text not in the {kind} form every engine reads alike"
    try:
        if kind == "date":
            dt.date.fromisoformat(text)
        else:
            dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return "not a valid date or time"
    return None



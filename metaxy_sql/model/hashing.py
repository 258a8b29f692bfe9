"""The hashing oracle: the pure-Python reference every engine must match byte for byte.

Canonical hash input
--------------------
A hash input is a sequence of *tokens*. A present value ``s`` is written as its UTF-8 byte
length in decimal, a colon, then ``s`` itself (``"5:audio"``); an absent value is written as
``"~"``. A decoder that reads tokens left to right always knows where each token ends (a
length prefix, or the single ``~`` which no length prefix starts with), so the encoding is
injective for any strings: separators, empty strings and unicode included, and an absent
optional parent never collides with any value.

The SQL builder emits exactly these token strings: the parts known at compile time (field keys,
code versions, parent labels) are folded into literals by the functions below, and the
per-sample parts are built in the engine as ``byte_length(v) || ':' || v``.

>>> encode("a:b")
'3:a:b'
>>> encode(None)
'~'
>>> field_provenance("text", "1", {("video/full", "audio"): "a1"}) == digest(
...     "mxs1|f" + "4:text" + "1:1" + "10:video/full" + "5:audio" + "2:a1")
True
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from metaxy_sql.errors import DataError

HashAlgorithm = Literal["sha256", "md5"]

#: Hex characters kept from the digest: 32 hex chars = 128 bits for both algorithms.
DIGEST_HEX_CHARS = 32
#: Marker of an absent value (an optional parent that is missing, a key absent from a map).
ABSENT = "~"
#: Domain tags keep the different kinds of hash inputs apart from each other.
FIELD_PROVENANCE_TAG = "mxs1|f"
SAMPLE_TAG = "mxs1|s"
FIELD_VERSION_TAG = "mxs1|fv"
FEATURE_VERSION_TAG = "mxs1|v"
GROUP_TAG = "mxs1|g"


def encode(value: str | None) -> str:
    """Encode one token of a canonical hash input (length-prefixed, or the absent marker)."""
    if value is None:
        return ABSENT
    return f"{len(value.encode('utf-8'))}:{value}"


def encode_all(values: Iterable[str | None]) -> str:
    """Encode a sequence of tokens."""
    return "".join(encode(v) for v in values)


def digest(text: str, algorithm: HashAlgorithm = "sha256") -> str:
    """Lowercase hex digest of ``text`` (UTF-8), truncated to 32 hex chars (128 bits)."""
    h = hashlib.new(algorithm, text.encode("utf-8"))
    return h.hexdigest()[:DIGEST_HEX_CHARS]


def field_provenance_prefix(field_key: str, code_version: str) -> str:
    """Compile-time head of a field provenance input."""
    return FIELD_PROVENANCE_TAG + encode(field_key) + encode(code_version)


def parent_label(feature_key: str, field_key: str) -> str:
    """Compile-time token naming one upstream field in a provenance input."""
    return encode(feature_key) + encode(field_key)


def field_provenance_input(
    field_key: str, code_version: str, parents: Mapping[tuple[str, str], str | None]
) -> str:
    """The canonical hash input of one field's provenance (parents sorted)."""
    text = field_provenance_prefix(field_key, code_version)
    for parent in sorted(parents):
        text += parent_label(*parent) + encode(parents[parent])
    return text


def field_provenance(
    field_key: str,
    code_version: str,
    parents: Mapping[tuple[str, str], str | None],
    algorithm: HashAlgorithm = "sha256",
) -> str:
    """Provenance of one field of one sample.

    Args:
        field_key: the field whose provenance this is.
        code_version: the field's code version.
        parents: ``(upstream feature key, upstream field key)`` -> that field's data version
            for this sample (``None`` when absent). Order does not matter: parents are sorted.
        algorithm: digest algorithm.
    """
    return digest(field_provenance_input(field_key, code_version, parents), algorithm)


def sample_input(by_field: Mapping[str, str | None]) -> str:
    """The canonical hash input of a field -> value map (keys sorted)."""
    return SAMPLE_TAG + "".join(encode(k) + encode(by_field[k]) for k in sorted(by_field))


def sample_digest(by_field: Mapping[str, str | None], algorithm: HashAlgorithm = "sha256") -> str:
    """Sample-level hash of a field -> value map (provenance or data version)."""
    return digest(sample_input(by_field), algorithm)


def field_version(
    feature_key: str,
    field_key: str,
    code_version: str,
    parent_versions: Mapping[tuple[str, str], str],
    algorithm: HashAlgorithm = "sha256",
) -> str:
    """Definition-level version of a field: its code version and its parents' field versions."""
    text = FIELD_VERSION_TAG + encode(feature_key) + encode(field_key) + encode(code_version)
    for parent in sorted(parent_versions):
        text += parent_label(*parent) + encode(parent_versions[parent])
    return digest(text, algorithm)


def feature_version(
    feature_key: str, field_versions: Mapping[str, str], algorithm: HashAlgorithm = "sha256"
) -> str:
    """Definition-level version of a feature: the versions of all its fields."""
    text = FEATURE_VERSION_TAG + encode(feature_key)
    text += "".join(encode(k) + encode(field_versions[k]) for k in sorted(field_versions))
    return digest(text, algorithm)


# -- canonical text of id values -------------------------------------------------------------
def id_text(value: Any) -> str:
    """The one canonical text of an id value, as every engine spells it in hash inputs
    (aggregation member ids). Each spelling is produced byte for byte by every dialect
    (``Dialect.id_text``):

    ==================  =======================================  ============================
    type                spelling                                 example
    ==================  =======================================  ============================
    string              the string itself                        ``v1``
    integer (any width) decimal, ``-`` for negatives             ``-42``
    boolean             ``true`` / ``false``                     ``true``
    decimal             plain digits, no exponent, trailing      ``1.5`` (for 1.50), ``100``
                        fractional zeros and point dropped
    date                ``YYYY-MM-DD``                           ``2026-12-01``
    timestamp           ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC    ``2026-12-01 09:30:00.500000``
                        (with a zone: converted to UTC; without:
                        taken as UTC)
    ==================  =======================================  ============================

    Floating-point ids are refused: the engines spell floats differently (DuckDB ``1.0``,
    ClickHouse and Postgres ``1``; ``1e+20`` against ``100000000000000000000``), and
    float equality makes a poor identity.

    >>> [id_text(v) for v in (7, True, decimal.Decimal("1.50"), dt.date(2026, 12, 1))]
    ['7', 'true', '1.5', '2026-12-01']

    Raises:
        DataError: ``value`` is of a type refused as an id (float, bytes, containers...).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return _decimal_text(value)
    if isinstance(value, dt.datetime):
        moment: dt.datetime = value
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        return moment.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise DataError(f"id value {value!r} is a {type(value).__name__}, which has no canonical "
                    "text; use strings, integers, booleans, decimals, dates or timestamps")


def _decimal_text(value: decimal.Decimal) -> str:
    if not value.is_finite():
        raise DataError(f"id value {value!r} is not a finite decimal; ids must be exact")
    if value == 0:
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# -- lineage beyond one-to-one ---------------------------------------------------------------
def member_entry(member_ids: Sequence[str], data_version: str | None) -> str:
    """One member of an aggregated group: its id values (as text, :func:`id_text`), then its
    data version.

    Every entry has the same number of self-delimiting tokens, so a concatenation of entries
    decodes in exactly one way.
    """
    return encode_all([*member_ids, data_version])


def group_data_version_input(members: Mapping[tuple[str, ...], str | None]) -> str:
    """Canonical input of a group's data version for one upstream field.

    Entries are sorted as strings (code point order = UTF-8 byte order), which every engine
    reproduces with a binary-collated sort: the order does not depend on the engine, on the
    row order or on the id types.
    """
    return GROUP_TAG + "".join(sorted(member_entry(ids, dv) for ids, dv in members.items()))


def group_data_version(
    members: Mapping[tuple[str, ...], str | None], algorithm: HashAlgorithm = "sha256"
) -> str:
    """Data version of one upstream field for a group of members (aggregation lineage).

    The child's field provenance then hashes it like any parent data version:
    ``field_provenance(field, code_version, {(parent, parent_field): group_data_version})``.

    >>> members = {("s1", "u2"): "dv2", ("s1", "u1"): "dv1"}
    >>> group_data_version_input(members)
    'mxs1|g2:s12:u13:dv12:s12:u23:dv2'
    """
    return digest(group_data_version_input(members), algorithm)

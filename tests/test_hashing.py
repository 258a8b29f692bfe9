"""The oracle: canonical inputs are injective, digests are what the design says."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from metaxy_sql.model import hashing

# A small alphabet full of separators and digits makes accidental collisions likely to be found.
tricky = st.text(alphabet=st.sampled_from(list(":|~0123456789a é🎧\\'\"")), max_size=6)
maybe = st.one_of(st.none(), tricky)
parents = st.dictionaries(st.tuples(tricky, tricky), maybe, max_size=3)


def decode(text: str) -> list[str | None]:
    """Inverse of encode_all: exists only if the encoding is prefix-free (hence injective)."""
    out: list[str | None] = []
    data, i = text.encode("utf-8"), 0
    while i < len(data):
        if data[i : i + 1] == b"~":
            out.append(None)
            i += 1
            continue
        colon = data.index(b":", i)
        n = int(data[i:colon])
        out.append(data[colon + 1 : colon + 1 + n].decode("utf-8"))
        i = colon + 1 + n
    return out


@given(st.lists(maybe, max_size=8))
def test_token_sequences_decode_back(values: list[str | None]) -> None:
    assert decode(hashing.encode_all(values)) == values


@settings(max_examples=500)
@given(tricky, tricky, parents, tricky, tricky, parents)
def test_field_provenance_input_is_injective(f1, v1, p1, f2, v2, p2) -> None:  # type: ignore[no-untyped-def]
    a = hashing.field_provenance_input(f1, v1, p1)
    b = hashing.field_provenance_input(f2, v2, p2)
    assert (a == b) == ((f1, v1, p1) == (f2, v2, p2))


@settings(max_examples=500)
@given(st.dictionaries(tricky, maybe, max_size=4), st.dictionaries(tricky, maybe, max_size=4))
def test_sample_input_is_injective(m1: dict[str, str | None], m2: dict[str, str | None]) -> None:
    assert (hashing.sample_input(m1) == hashing.sample_input(m2)) == (m1 == m2)


def test_absent_parent_differs_from_every_value() -> None:
    seen = {hashing.field_provenance("f", "1", {("a", "x"): v}) for v in (None, "", "~", "0:")}
    assert len(seen) == 4


def test_digest_is_128_bit_lowercase_hex() -> None:
    text = "héllo✓"
    assert hashing.digest(text) == hashlib.sha256(text.encode()).hexdigest()[:32]
    assert hashing.digest(text, "md5") == hashlib.md5(text.encode()).hexdigest()
    assert len(hashing.digest(text)) == 32


def test_encoding_by_hand() -> None:
    # Worked by hand from the documented format: byte length, colon, value; "~" when absent.
    assert hashing.field_provenance_input("text", "1", {("video/full", "audio"): "a1"}) == (
        "mxs1|f" "4:text" "1:1" "10:video/full" "5:audio" "2:a1")
    assert hashing.encode("é") == "2:é"
    assert hashing.sample_input({"b": None, "a": ""}) == "mxs1|s" "1:a" "0:" "1:b" "~"

"""Feature definitions: what a user writes to describe a pipeline step.

>>> spec = FeatureSpec(key="video/face_crop", id_columns=["sample_uid"], deps=["video/full"],
...                    fields=[FieldSpec(key="frames", code_version="2")])
>>> spec.deps[0].feature, spec.fields[0].deps is None
('video/full', True)
"""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from metaxy_sql.errors import DataError, DefinitionError
from metaxy_sql.model import names

_KEY_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_KEY_RE = re.compile(rf"^{_KEY_SEGMENT}(/{_KEY_SEGMENT})*$")
_COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Columns whose names start with this prefix belong to the store.
SYSTEM_PREFIX = "metaxy_"


def check_key(kind: str, key: str) -> str:
    """Validate a feature or field key (segments of letters, digits, ``_.-`` joined by ``/``)."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(
            f"invalid {kind} key {key!r}: use segments of letters, digits, '_', '.', '-' "
            f"joined by '/', e.g. 'video/face_crop'"
        )
    return key


def check_column(kind: str, name: str) -> str:
    """Validate a user column name: an identifier that does not use the system prefix and is
    not a column some engine keeps for itself (``names.ENGINE_RESERVED_COLUMNS``).

    Raises:
        ValueError: the name breaks one of these rules (callers raise it as a
            ``DefinitionError`` or ``DataError``).
    """
    if not isinstance(name, str) or not _COLUMN_RE.match(name):
        raise ValueError(f"invalid {kind} {name!r}: use letters, digits and '_', not starting "
                         "with a digit")
    if name.lower().startswith(SYSTEM_PREFIX):
        raise ValueError(f"{kind} {name!r} uses the reserved prefix {SYSTEM_PREFIX!r}; rename it")
    if names.is_reserved_column(name):
        raise ValueError(f"{kind} {name!r} is a column name an engine keeps for itself "
                         "(ClickHouse virtual or Postgres system column); rename it, e.g. "
                         f"{name.strip('_') + '_value'!r}")
    return name


def _column_list(option: str, kind: str, v: tuple[str, ...]) -> tuple[str, ...]:
    """``v`` when it names each column once and every name is a valid user column."""
    if len(set(v)) != len(v):
        raise ValueError(f"{option}={list(v)} repeats a column")
    for c in v:
        check_column(kind, c)
    return v


#: Column type family given -> stored families it widens into, checked value by value at a
#: write (``engine.coltypes``): only lossless widenings.
WIDENINGS = {
    "int": ("int", "float", "decimal"),
    "float": ("float",),
    "decimal": ("decimal",),
}
#: The Python annotations a feature class may declare that fix a column's type.
_DECLARED_KINDS: dict[Any, str] = {
    int: "int", float: "float", str: "str", bool: "bool", bytes: "bytes", dt.date: "date",
}


def declared_kind(annotation: Any) -> str | None:
    """The column type a feature class annotation fixes, as text (``None``: the first write
    decides): ``int``, ``float``, ``str``, ``bool``, ``bytes``, ``date``, ``list[X]`` of those,
    and ``X | None`` as ``X``. ``datetime`` (zone unknown), ``Decimal`` (scale unknown), models
    and ``Any`` fix nothing.

    >>> declared_kind(list[int] | None), declared_kind(dt.datetime)
    ('list[int]', None)
    """
    if annotation in _DECLARED_KINDS:
        return _DECLARED_KINDS[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        real = [a for a in args if a is not type(None)]
        return declared_kind(real[0]) if len(real) == 1 else None
    if origin is list and len(args) == 1:
        item = declared_kind(args[0])
        return f"list[{item}]" if item is not None else None
    return None


def kind_fits(given: str, stored: str) -> bool:
    """True when values of declared kind ``given`` can be written into a column declared
    ``stored`` (equal, or a lossless widening of :data:`WIDENINGS`, item by item in lists)."""
    if given == stored:
        return True
    if given.startswith("list[") and stored.startswith("list["):
        return kind_fits(given[5:-1], stored[5:-1])
    return stored in WIDENINGS.get(given, ())


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            what = type(self).__name__
            key = data.get("key", data.get("feature"))
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or what}: {err['msg']}"
                for err in e.errors()
            )
            raise DefinitionError(f"{what} {key!r}: {problems}") from None
        except DefinitionError as e:  # raised by nested validation (e.g. a filter)
            what = type(self).__name__
            raise DefinitionError(f"{what} {data.get('key', data.get('feature'))!r}: {e}") from None


class FieldDep(_Model):
    """Field-level dependency: ``fields`` of upstream ``feature`` (``None`` = all its fields)."""

    feature: str
    fields: tuple[str, ...] | None = None

    @field_validator("feature")
    @classmethod
    def _feature(cls, v: str) -> str:
        return check_key("feature", v)

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None:
            for f in v:
                check_key("field", f)
        return v


class FieldSpec(_Model):
    """A named part of a feature's data with its own code version and upstream fields.

    ``deps=None`` uses the default mapping: for each upstream feature, the same-named field if
    it has one, else all of its fields.
    """

    key: str
    code_version: str = "1"
    deps: tuple[FieldDep, ...] | None = None
    description: str | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        return check_key("field", v)

    @field_validator("code_version", mode="before")
    @classmethod
    def _code_version(cls, v: Any) -> Any:
        if isinstance(v, str) and "\x00" in v:
            # It is hashed in SQL text; Postgres cuts a statement at NUL.
            raise ValueError(f"code_version {v!r} contains a NUL character (U+0000); remove it")
        return str(v) if isinstance(v, int) else v


LineageKind = Literal["identity", "expansion", "aggregation"]


class Lineage(_Model):
    """How samples of a feature relate to samples of one upstream feature.

    ``identity`` (default): one child per parent, same id columns. ``expansion``: one parent
    (keyed by ``on``, all of the parent's id columns) has many children. ``aggregation``: one
    child per group of parents sharing ``on`` (the child's id columns).
    """

    kind: LineageKind = "identity"
    on: tuple[str, ...] = ()

    @field_validator("on")
    @classmethod
    def _on(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _column_list("on", "lineage column", v)

    @model_validator(mode="after")
    def _check(self) -> Lineage:
        if self.kind != "identity" and not self.on:
            raise ValueError(f"{self.kind} lineage needs on=[...] naming at least one column")
        if self.kind == "identity" and self.on:
            raise ValueError("identity lineage takes no on=; use expansion or aggregation")
        return self


def identity() -> Lineage:
    """One-to-one lineage (the default): child and parent share their id columns."""
    return Lineage()


def expansion(on: Sequence[str]) -> Lineage:
    """One-to-many lineage: each parent (all its id columns, ``on``) has many children.

    >>> expansion(on=["sample_uid"]).on
    ('sample_uid',)
    """
    return Lineage(kind="expansion", on=tuple(on))


def aggregation(on: Sequence[str]) -> Lineage:
    """Many-to-one lineage: one child per group of parents sharing ``on`` (the child's ids).

    >>> aggregation(on=["speaker_id"]).kind
    'aggregation'
    """
    return Lineage(kind="aggregation", on=tuple(on))


class FeatureDep(_Model):
    """Dependency on an upstream feature (long form of a string dep).

    Args:
        feature: upstream feature key.
        lineage: :func:`identity` (default), :func:`expansion` or :func:`aggregation`.
        optional: left join: a sample without this parent is still expected; the absent
            parent's fields hash as the absent marker, and its later arrival makes it stale.
        filters: boolean SQL predicates over the parent's columns (portable syntax; parsed and
            validated, never pasted): only parent samples matching all of them are read.
        columns: parent user columns carried into the increment's new and stale rows.
        rename: ``{parent column: name in the increment}`` for carried columns.
    """

    feature: str
    lineage: Lineage = Lineage()
    optional: bool = False
    filters: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    rename: dict[str, str] = {}

    @field_validator("feature")
    @classmethod
    def _feature(cls, v: str) -> str:
        return check_key("feature", v)

    @field_validator("filters", mode="before")
    @classmethod
    def _filters(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _column_list("columns", "column", v)

    @model_validator(mode="after")
    def _check(self) -> FeatureDep:
        from metaxy_sql.model.filters import parse_filter

        for text in self.filters:
            parse_filter(text, f"the filter of dependency {self.feature!r}")
        for source, target in self.rename.items():
            check_column("renamed column", source)
            check_column("rename target", target)
            if source not in self.columns:
                raise ValueError(f"rename {source!r} -> {target!r}: {source!r} is not among "
                                 f"columns={list(self.columns)}; add it there")
        targets = [self.rename.get(c, c) for c in self.columns]
        if len(set(targets)) != len(targets):
            raise ValueError(f"rename {self.rename} makes two carried columns share a name")
        if self.optional and self.lineage.kind != "identity":
            raise ValueError(f"an optional dependency must be one-to-one, not "
                             f"{self.lineage.kind}; drop optional=True or the lineage")
        return self

    def carried(self) -> tuple[tuple[str, str], ...]:
        """``(parent column, name in the increment)`` of each carried column."""
        return tuple((c, self.rename.get(c, c)) for c in self.columns)


def _default_fields() -> tuple[FieldSpec, ...]:
    return (FieldSpec(key="default"),)


class FeatureSpec(_Model):
    """Definition of one feature: the output table of one pipeline step."""

    key: str
    id_columns: tuple[str, ...]
    deps: tuple[FeatureDep, ...] = ()
    fields: tuple[FieldSpec, ...] = ()
    description: str | None = None
    metadata: dict[str, Any] = {}

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        return check_key("feature", v)

    @field_validator("id_columns")
    @classmethod
    def _ids(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("id_columns must name at least one column, e.g. ['sample_uid']")
        if len(set(v)) != len(v):
            raise ValueError(f"id_columns {list(v)} repeat a column")
        for c in v:
            check_column("id column", c)
        return v

    @field_validator("deps", mode="before")
    @classmethod
    def _deps(cls, v: Any) -> Any:
        if isinstance(v, str | FeatureDep):
            v = [v]
        return [FeatureDep(feature=d) if isinstance(d, str) else d for d in v]

    @model_validator(mode="after")
    def _check(self) -> FeatureSpec:
        if not self.fields:
            if "fields" in self.model_fields_set:
                raise ValueError("fields=[] defines no field, and a feature needs at least one: "
                                 "list its fields, e.g. fields=[FieldSpec(key='frames')], or "
                                 "omit fields= to get one field named 'default'")
            object.__setattr__(self, "fields", _default_fields())
        keys = [f.key for f in self.fields]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"fields {dupes} are defined more than once")
        dep_keys = [d.feature for d in self.deps]
        if len(set(dep_keys)) != len(dep_keys):
            raise ValueError(f"deps {dep_keys} name a feature more than once")
        if self.key in dep_keys:
            raise ValueError("a feature cannot depend on itself")
        return self


class BaseFeature(BaseModel):
    """Base class of class-based features: ``class Video(BaseFeature, spec=video): path: str``.

    The class's pydantic fields are the feature's user columns. An instance is one row to
    write: besides the declared columns it takes the spec's id columns (when not declared)
    and the store's columns (``metaxy_provenance_by_field``, ``metaxy_data_version_by_field``,
    and the increment columns ``write`` drops), kept as given and included by
    ``model_dump()``:

    >>> spec = FeatureSpec(key="video/full", id_columns=["sample_uid"],
    ...                    fields=[FieldSpec(key="audio")])
    >>> class Video(BaseFeature, spec=spec):
    ...     path: str
    >>> Video(sample_uid="a", path="p", metaxy_provenance_by_field={"audio": "h"}).model_dump()
    {'path': 'p', 'sample_uid': 'a', 'metaxy_provenance_by_field': {'audio': 'h'}}

    Raises:
        DataError: (on instantiation, and ``model_validate``) a column that is neither
            declared, an id column, nor a store column: a typo would otherwise be written as a
            new column; or a value pydantic cannot read as its column's declared type (naming
            the feature, column, declared type and the value's type; pydantic's
            ``ValidationError`` is its ``__cause__``).
    """

    model_config = ConfigDict(extra="allow")

    spec: ClassVar[FeatureSpec]

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise type(self)._data_error(e) from e

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as e:
            raise cls._data_error(e) from e

    @classmethod
    def _data_error(cls, e: ValidationError) -> DataError:
        """``e`` in the project's words: feature, column, declared type, the value's type."""
        spec = getattr(cls, "spec", None)
        where = f"{cls.__name__} (feature {spec.key!r})" if spec is not None else cls.__name__
        problems = []
        for err in e.errors():
            loc = [str(p) for p in err["loc"]]
            column = loc[0] if loc else "?"
            field = cls.model_fields.get(column)
            declared = _annotation_text(field.annotation) if field is not None else "?"
            path = f"{column!r}" + (f" (at [{']['.join(loc[1:])}])" if len(loc) > 1 else "")
            if err["type"] == "missing":
                problems.append(f"column {path}, declared {declared}, is missing")
                continue
            problems.append(f"column {path}, declared {declared}, got a "
                            f"{type(err.get('input')).__name__} {_short(err.get('input'))}: "
                            f"{err['msg']}")
        return DataError(f"{where}: {'; '.join(problems)}; pass values of the declared types "
                         "(or change the annotation)")

    @model_validator(mode="after")
    def _known_extras(self) -> BaseFeature:
        spec = getattr(type(self), "spec", None)
        ids = spec.id_columns if spec is not None else ()
        unknown = sorted(k for k in (self.model_extra or {})
                         if k not in ids and not k.lower().startswith(SYSTEM_PREFIX))
        if unknown:
            raise DataError(
                f"{type(self).__name__}: unknown columns {unknown}; declared columns are "
                f"{sorted(type(self).model_fields)}, id columns {list(ids)}: declare them on "
                "the class or fix the names")
        return self

    def __init_subclass__(cls, spec: FeatureSpec | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if spec is not None:
            if not isinstance(spec, FeatureSpec):
                raise DefinitionError(
                    f"{cls.__name__}: spec= must be a FeatureSpec, got {type(spec).__name__}")
            cls.spec = spec

    @classmethod
    def user_columns(cls) -> dict[str, Any]:
        """User column name -> annotation, from the class's pydantic fields."""
        return {name: f.annotation for name, f in cls.model_fields.items()}

    @classmethod
    def optional_columns(cls) -> frozenset[str]:
        """Declared columns rows may leave out, written as NULL: those whose default is None
        (``path: str | None = None``), as an instance built without them holds."""
        return frozenset(name for name, f in cls.model_fields.items()
                         if not f.is_required() and f.default is None)


def _annotation_text(annotation: Any) -> str:
    """``int``, ``list[str]``, ``str | None``: an annotation as it is written."""
    return annotation.__name__ if isinstance(annotation, type) and not getattr(
        annotation, "__args__", None) else str(annotation).replace("typing.", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""Dagster integration: features as assets, the store as a resource, increments as metadata.

Install with ``pip install 'metaxy-sql[dagster]'`` (Dagster and its webserver, for ``dagster
dev``); the core package never imports this module. Partitioned assets resolve their partition
(:func:`partition_where`); :func:`metaxy_checks` adds a ``metaxy_in_sync`` asset check per
feature.

>>> import dagster as dg
>>> from metaxy_sql.examples.seed import graph
>>> @metaxify(graph)
... @dg.asset(metadata={"metaxy/feature": "video/face_crop"})
... def face_crop() -> None: ...
>>> face_crop.key.to_user_string(), [d.asset_key.to_user_string() for d in face_crop.specs_by_key[
...     face_crop.key].deps]
('video/face_crop', ['video/full'])
"""


import contextlib
import os
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import dagster as dg
from sqlglot import exp

from metaxy_sql.compile import builder
from metaxy_sql.compile.planner import increment_grain
from metaxy_sql.engine.increment import Increment
from metaxy_sql.engine.store import Store, connect
from metaxy_sql.errors import ConfigError, DataError, DefinitionError, UnknownFeatureError
from metaxy_sql.model import config, filter_types, filters, names
from metaxy_sql.model.graph import FeatureGraph
from metaxy_sql.model.hashing import HashAlgorithm

#: Asset metadata naming the feature an asset materializes.
FEATURE_KEY = "metaxy/feature"
#: Asset metadata of a partitioned asset: the id column holding the partition key (the
#: ``partition_expr`` of Dagster's IO managers, restricted to a column), or for a
#: ``MultiPartitionsDefinition`` a mapping dimension -> column.
PARTITION_COLUMN = "metaxy/partition_column"
#: Name of the asset check :func:`metaxy_checks` defines on every feature's asset.
CHECK_NAME = "metaxy_in_sync"

AssetKeyFor = Callable[[str], dg.AssetKey]
RootSamples = Mapping[str, Callable[[], Any]]
_A = TypeVar("_A", bound=dg.AssetsDefinition)

_SYSTEM_COLUMN_DOCS = {
    names.PROVENANCE_BY_FIELD: ("map(text, text)", "field -> provenance"),
    names.PROVENANCE: ("text", "hash of the provenance map"),
    names.DATA_VERSION_BY_FIELD: ("map(text, text)", "field -> data version"),
    names.DATA_VERSION: ("text", "hash of the data version map"),
    names.FEATURE_VERSION: ("text", "feature version of the definitions that wrote the row"),
    names.CREATED_AT: ("timestamp", "write time (UTC)"),
    names.DELETED: ("boolean", "soft-delete tombstone"),
}


def feature_asset_key(feature: str) -> dg.AssetKey:
    """Default asset key of a feature: ``video/face_crop`` -> ``["video", "face_crop"]``."""
    return dg.AssetKey(feature.split("/"))


# -- @metaxify -------------------------------------------------------------------------------
def metaxify(graph: FeatureGraph, *, asset_key_for: AssetKeyFor = feature_asset_key,
             kind: str | None = "metaxy") -> Callable[[_A], _A]:
    """Turn assets carrying ``metadata={"metaxy/feature": key}`` into the features they write.

    Works on ``@dg.asset`` and ``@dg.multi_asset`` (specs without the metadata are left alone).
    Each feature's asset gets its key (``asset_key_for(feature)``), deps on the assets of its
    upstream features, ``code_version`` (the feature version: it changes exactly when a code
    version up the field-level lineage does), description, kind, ``dagster/column_schema``,
    ``dagster/column_lineage`` (per field: ``metaxy_provenance_by_field.<field>`` reads the
    upstream ``metaxy_data_version_by_field.<field>``) and ``dagster/table_name``.

    A partitioned asset declares the id column holding its partition key with
    ``metadata={"metaxy/partition_column": "day"}``; its step then resolves and writes only
    its partition (see :func:`partition_where`).

    Inside the asset's step, a :class:`MetaxyStoreResource` with no graph of its own uses
    ``graph``; one with its own checks that the two agree.

    Raises:
        DefinitionError: at definition load time, when the metadata names no feature of
            ``graph``, the asset declares a dep on a feature the graph says it does not read,
            or a partitioned asset has no ``metaxy/partition_column`` naming one of the
            feature's id columns.
    """
    feature_of_asset = {asset_key_for(k): k for k in graph.keys}
    if len(feature_of_asset) != len(graph):
        raise DefinitionError("asset_key_for maps two features to the same asset key; make it "
                              "injective")

    def decorate(assets_def: _A) -> _A:
        if not isinstance(assets_def, dg.AssetsDefinition):
            raise DefinitionError(f"@metaxify decorates @dg.asset / @dg.multi_asset "
                                  f"definitions, got {type(assets_def).__name__}; put it above "
                                  "the Dagster decorator")
        features = {spec.key: _feature_of(spec, graph) for spec in assets_def.specs}
        if not any(features.values()):
            keys = ", ".join(k.to_user_string() for k in features)
            raise DefinitionError(f"asset {keys}: @metaxify needs metadata={{{FEATURE_KEY!r}: "
                                  "'<feature key>'}} on the asset")
        for spec in assets_def.specs:
            if features[spec.key]:
                _check_partitioning(spec, assets_def.partitions_def, graph,
                                    str(features[spec.key]))
        known = {**feature_of_asset, **{k: f for k, f in features.items() if f}}
        mapped = _thread_dep_inputs(assets_def.map_asset_specs(
            lambda spec: _enrich(spec, features[spec.key], graph, asset_key_for, known, kind)))
        renames = {old: asset_key_for(f) for old, f in features.items()
                   if f and asset_key_for(f) != old}
        if renames:
            mapped = mapped.with_attributes(asset_key_replacements=renames)
        _register(mapped, graph)
        return cast(_A, mapped)

    return decorate


def _thread_dep_inputs(assets_def: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """Map the inputs ``map_asset_specs`` added for new deps to their asset keys.

    Dagster (seen in 1.10.21 and 1.13.29) adds a Nothing input per new dep but leaves it out of
    ``keys_by_input_name`` (compare dagster-io/dagster#26144): the dep shows in the asset graph,
    yet runs ignore it and may materialize a feature before its upstream. A no-op once Dagster
    maps them itself.
    """
    by_name = dict(assets_def.node_keys_by_input_name)
    inputs = {i.name for i in assets_def.node_def.input_defs}
    missing = {}
    for spec in assets_def.specs:
        for dep in spec.deps:
            name = "_".join(dep.asset_key.path).replace("-", "_").replace(".", "_")
            if name in inputs and name not in by_name and dep.asset_key not in by_name.values():
                missing[name] = dep.asset_key
    if not missing:
        return assets_def
    attributes = {**assets_def.get_attributes_dict(), "keys_by_input_name": {**by_name, **missing}}
    return type(assets_def).dagster_internal_init(**attributes)


def _feature_of(spec: dg.AssetSpec, graph: FeatureGraph) -> str | None:
    value = _text(spec.metadata.get(FEATURE_KEY))
    if value is None:
        return None
    if not isinstance(value, str) or value not in graph:
        known = ", ".join(graph.keys)
        raise UnknownFeatureError(
            f"asset {spec.key.to_user_string()}: metadata {FEATURE_KEY}={value!r} names no "
            f"feature of the graph (it defines: {known}); fix the metadata or add the feature "
            "to the FeatureGraph")
    return value


def _text(raw: Any) -> Any:
    if isinstance(raw, dg.TextMetadataValue | dg.JsonMetadataValue):
        return raw.value
    return raw


def _check_partitioning(spec: dg.AssetSpec, partitions_def: dg.PartitionsDefinition | None,
                        graph: FeatureGraph, feature: str) -> None:
    """A partitioned feature asset names id columns for its partition dimensions."""
    declared = _text(spec.metadata.get(PARTITION_COLUMN))
    where = f"asset {spec.key.to_user_string()} (feature {feature!r})"
    if partitions_def is None:
        if declared is not None:
            raise DefinitionError(f"{where}: {PARTITION_COLUMN} is set but the asset has no "
                                  "partitions_def; add one or remove the metadata")
        return
    grain = increment_grain(graph, feature)
    dims = (partitions_def.partition_dimension_names
            if isinstance(partitions_def, dg.MultiPartitionsDefinition) else None)
    example = ({d: grain[0] for d in dims} if dims else repr(grain[0]))
    if declared is None:
        raise DefinitionError(
            f"{where} is partitioned but does not say which id column holds the partition key, "
            f"so every run would resolve all partitions' samples; add metadata="
            f"{{{PARTITION_COLUMN!r}: {example}}} (one of {list(grain)})")
    columns = _partition_columns(declared, dims, where, example)
    wrong = sorted(c for c in columns.values() if c not in grain)
    if wrong:
        raise DefinitionError(
            f"{where}: {PARTITION_COLUMN} names {wrong}, not among the columns its increment "
            f"can be filtered on ({list(grain)}: the id columns"
            f"{', at the parent grain' if grain != graph.spec(feature).id_columns else ''}); "
            "partition by one of those")


def _partition_columns(declared: Any, dims: Sequence[str] | None, where: str,
                       example: Any) -> dict[str | None, str]:
    """Partition dimension (``None`` for a single dimension) -> id column."""
    if dims is None:
        if isinstance(declared, str) and declared:
            return {None: declared}
    elif isinstance(declared, Mapping) and set(declared) == set(dims) and all(
            isinstance(c, str) and c for c in declared.values()):
        return {str(d): str(c) for d, c in declared.items()}
    shape = ("a mapping of every partition dimension to an id column" if dims
             else "an id column name")
    raise DefinitionError(f"{where}: {PARTITION_COLUMN} must be {shape}, e.g. {example}; "
                          f"got {declared!r}")


def _enrich(spec: dg.AssetSpec, feature: str | None, graph: FeatureGraph,
            asset_key_for: AssetKeyFor, known: Mapping[dg.AssetKey, str],
            kind: str | None) -> dg.AssetSpec:
    if feature is None:
        return spec
    fspec = graph.spec(feature)
    wanted = sorted(d.feature for d in fspec.deps)
    declared = {known[d.asset_key] for d in spec.deps if d.asset_key in known}
    extra = sorted(declared - set(wanted))
    if extra:
        raise DefinitionError(
            f"asset {spec.key.to_user_string()} (feature {feature!r}) depends on the assets of "
            f"features {extra}, but the feature graph says {feature!r} reads only {wanted}; "
            f"add them to the deps of its FeatureSpec or remove them from the asset")
    deps = [*spec.deps, *(dg.AssetDep(asset_key_for(u)) for u in wanted if u not in declared)]
    version = graph.feature_version(feature)
    kinds = set(spec.kinds)
    if kind and len(kinds) < 3:  # Dagster allows at most three kinds per asset
        kinds.add(kind)
    metadata: dict[str, Any] = {
        **spec.metadata,
        FEATURE_KEY: feature,
        "metaxy/feature_version": version,
        "metaxy/fields": dg.MetadataValue.json(_fields_doc(graph, feature)),
        "dagster/table_name": names.table(feature),
        "dagster/column_schema": column_schema(graph, feature),
    }
    lineage = column_lineage(graph, feature, asset_key_for)
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage
    return spec.replace_attributes(
        deps=deps, metadata=metadata, kinds=kinds,
        code_version=f"{spec.code_version}+{version}" if spec.code_version else version,
        description=spec.description or fspec.description)


def _fields_doc(graph: FeatureGraph, feature: str) -> dict[str, Any]:
    return {
        f: {"code_version": graph.code_version(feature, f),
            "field_version": graph.field_version(feature, f),
            "reads": [f"{p}.{pf}" for p, pf in graph.field_parents(feature, f)]}
        for f in graph.field_keys(feature)
    }


def column_schema(graph: FeatureGraph, feature: str) -> dg.TableSchema:
    """The feature table's columns: id columns, declared user columns, system columns."""
    spec = graph.spec(feature)
    user = graph.user_columns(feature)
    columns = [dg.TableColumn(c, _type_name(user[c]) if c in user else "text",
                              description="id column") for c in spec.id_columns]
    columns += [dg.TableColumn(c, _type_name(t)) for c, t in user.items()
                if c not in spec.id_columns]
    fields = ", ".join(f"{f} (code_version {graph.code_version(feature, f)})"
                       for f in graph.field_keys(feature))
    for name, (sql_type, doc) in _SYSTEM_COLUMN_DOCS.items():
        if name in (names.PROVENANCE_BY_FIELD, names.DATA_VERSION_BY_FIELD):
            doc = f"{doc}; fields: {fields}"
        columns.append(dg.TableColumn(name, sql_type, description=doc))
    return dg.TableSchema(columns=columns)


def column_lineage(graph: FeatureGraph, feature: str,
                   asset_key_for: AssetKeyFor = feature_asset_key) -> dg.TableColumnLineage | None:
    """Field-level lineage as Dagster column lineage (``None`` for a root feature)."""
    spec = graph.spec(feature)
    if not spec.deps:
        return None
    deps: dict[str, list[dg.TableColumnDep]] = {
        c: [dg.TableColumnDep(asset_key_for(d.feature), c) for d in spec.deps]
        for c in spec.id_columns
    }
    for f in graph.field_keys(feature):
        deps[f"{names.PROVENANCE_BY_FIELD}.{f}"] = [
            dg.TableColumnDep(asset_key_for(p), f"{names.DATA_VERSION_BY_FIELD}.{pf}")
            for p, pf in graph.field_parents(feature, f)]
    return dg.TableColumnLineage(deps_by_column=deps)


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


# -- the store as a resource -----------------------------------------------------------------
#: The graph each @metaxify-decorated compute function was versioned by, so the resource can
#: use it when it has none of its own (weak keys: a function dropped by its Definitions goes).
_GRAPH_OF_COMPUTE: weakref.WeakKeyDictionary[Callable[..., Any], FeatureGraph] = (
    weakref.WeakKeyDictionary())


def _compute_fn(node_def: Any) -> Callable[..., Any] | None:
    fn = getattr(getattr(node_def, "compute_fn", None), "decorated_fn", None)
    return fn if callable(fn) else None


def _register(assets_def: dg.AssetsDefinition, graph: FeatureGraph) -> None:
    fn = _compute_fn(assets_def.node_def)
    if fn is not None:
        # a callable that takes no weak reference is left out: give the resource graph=
        with contextlib.suppress(TypeError):
            _GRAPH_OF_COMPUTE[fn] = graph


def metaxify_graph(node_def: Any) -> FeatureGraph | None:
    """The graph given to ``@metaxify`` for the asset whose op is ``node_def`` (or ``None``)."""
    fn = _compute_fn(node_def)
    try:
        return _GRAPH_OF_COMPUTE.get(fn) if fn is not None else None
    except TypeError:
        return None


def _running_asset() -> tuple[str, FeatureGraph | None, tuple[str, ...]]:
    """The asset whose step is running: its label, its ``@metaxify`` graph, its features."""
    try:
        context = dg.AssetExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        return "", None, ()
    if not context.has_assets_def:  # a plain op
        return "", None, ()
    assets_def = context.assets_def
    features = tuple(str(_text(s.metadata[FEATURE_KEY])) for s in assets_def.specs
                     if FEATURE_KEY in s.metadata)
    label = ", ".join(k.to_user_string() for k in assets_def.keys)
    return label, metaxify_graph(assets_def.node_def), features


class MetaxyStoreResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Opens the store; the same definitions run on DuckDB, ClickHouse or Postgres.

    The feature graph has one source of truth per Definitions. It comes from ``graph=`` (a
    ``FeatureGraph`` built in code), from ``entrypoints=`` (modules defining the features;
    unset, ``METAXY_SQL_ENTRYPOINTS`` or ``[tool.metaxy-sql]``, exactly as for the CLI), or,
    when the resource has neither, from the ``@metaxify`` of the asset whose step opens the
    store. Any two that are set must agree: the same features at the same feature versions
    (``graph=`` and the entrypoints: the whole graph; the resource and ``@metaxify``: the
    asset's features), else opening the store fails naming both sources, the feature and the
    fix. The URL: ``url=``, else ``METAXY_SQL_STORE`` or ``[tool.metaxy-sql]``.

    >>> from metaxy_sql.examples.seed import graph
    >>> MetaxyStoreResource(url="duckdb:///meta.db", graph=graph).load_graph() is graph
    True

    Attributes:
        url: store URL, e.g. ``duckdb:///meta.db`` or ``chdb:///abs/path``.
        graph: the feature graph as an object (no entrypoints needed).
        entrypoints: modules defining the features (a ``FeatureGraph`` or specs).
        hash_algorithm: ``sha256`` (default) or ``md5``.
    """

    url: str | None = None
    # A resource dependency, not config: Dagster hands the object through as it is.
    graph: dg.ResourceDependency[FeatureGraph | None] = None  # type: ignore[assignment]
    entrypoints: list[str] = []
    hash_algorithm: str | None = None

    def _config(self) -> config.Config:
        cfg = config.load_config(entrypoints=tuple(self.entrypoints), store=self.url)
        if self.hash_algorithm:
            cfg.hash_algorithm = self.hash_algorithm
        return cfg

    def _own_graph(self, cfg: config.Config) -> tuple[str, FeatureGraph] | None:
        """The resource's own graph and where it came from (``graph=`` or the entrypoints)."""
        own = self.graph
        if own is not None and not isinstance(own, FeatureGraph):
            raise ConfigError(f"MetaxyStoreResource(graph=...) takes a FeatureGraph, got "
                              f"{type(own).__name__}")
        if not cfg.entrypoints:
            return ("MetaxyStoreResource(graph=...)", own) if own is not None else None
        where = ("MetaxyStoreResource(entrypoints=...)" if self.entrypoints
                 else f"{config.ENV_ENTRYPOINTS}" if os.environ.get(config.ENV_ENTRYPOINTS)
                 else f"entrypoints in {cfg.source}")
        loaded = (f"{where} {cfg.entrypoints}", config.load_graph(cfg))
        if own is None:
            return loaded
        _check_agree(("MetaxyStoreResource(graph=...)", own), loaded, own.keys,
                     f"pass graph= or set entrypoints, not both (or make {loaded[0]} define "
                     "the same graph)", whole=True)
        return "MetaxyStoreResource(graph=...)", own

    def load_graph(self) -> FeatureGraph:
        """The feature graph: ``graph=``, else the entrypoints'.

        Raises:
            ConfigError: neither is set, or both are and they disagree.
        """
        own = self._own_graph(self._config())
        if own is None:
            raise ConfigError(_NO_GRAPH)
        return own[1]

    def open(self, graph: FeatureGraph | None = None) -> Store:
        """Connect; use as ``with store.open() as s: ...``.

        Args:
            graph: the graph the caller was versioned by, checked against the resource's own
                (used when the resource has none). By default, inside a step of an asset
                decorated with ``@metaxify``, the graph given to ``@metaxify``.

        Raises:
            ConfigError: no store URL; no graph from any source; two sources that disagree
                (naming both and the fix).
        """
        label, asset_graph, features = _running_asset()
        if graph is not None:
            asset_graph, features = graph, graph.keys
            label = f"@metaxify(graph) of asset {label}" if label else "open(graph=...)"
        elif label:
            label = f"@metaxify(graph) of asset {label}"
        return self._open(asset_graph, label, features)

    def _open(self, graph: FeatureGraph | None, label: str, features: Iterable[str]) -> Store:
        """Connect with the resource's graph, checked against ``graph`` (what ``label``
        was versioned by) over ``features``; with ``graph`` when the resource has none."""
        cfg = self._config()
        if not cfg.store:
            raise ConfigError(f"MetaxyStoreResource: no store URL; set url=..., "
                              f"{config.ENV_STORE} or store = ... under [tool.metaxy-sql]")
        own = self._own_graph(cfg)
        if own is None and graph is None:
            raise ConfigError(_NO_GRAPH)
        if own is None:
            chosen = cast(FeatureGraph, graph)
        else:
            chosen = own[1]
            if graph is not None and graph is not chosen:
                _check_agree((label, graph), own, features,
                             "give @metaxify and the resource the same FeatureGraph (or "
                             "drop the resource's graph=/entrypoints: it then uses @metaxify's)")
        return connect(cfg.store, chosen, hash_algorithm=cast(HashAlgorithm, cfg.hash_algorithm))


_NO_GRAPH = ("MetaxyStoreResource: no feature graph; pass graph=FeatureGraph([...]) or "
             f"entrypoints=['my.module'] (or set {config.ENV_ENTRYPOINTS} / entrypoints under "
             "[tool.metaxy-sql]), or open the store inside an asset decorated with @metaxify")


def _check_agree(a: tuple[str, FeatureGraph], b: tuple[str, FeatureGraph],
                 features: Iterable[str], fix: str, *, whole: bool = False) -> None:
    """``features`` (those of ``a`` that matter) exist in ``b`` at the same feature versions;
    ``whole`` (two resource-level sources): ``b`` has no other features either."""
    (a_name, a_graph), (b_name, b_graph) = a, b
    differ = []
    for key in features:
        if key not in b_graph:
            differ.append(f"{key!r} is missing from {b_name}")
        elif a_graph.feature_version(key) != b_graph.feature_version(key):
            differ.append(f"{key!r} has feature version {a_graph.feature_version(key)} in "
                          f"{a_name} but {b_graph.feature_version(key)} in {b_name}")
    if whole:
        differ += [f"{key!r} is missing from {a_name}" for key in b_graph.keys
                   if key not in a_graph]
    if differ:
        raise ConfigError(f"two feature graphs disagree: {a_name} and {b_name}: "
                          f"{'; '.join(differ[:3])}{' ...' if len(differ) > 3 else ''}; {fix}")


# -- increments as metadata ------------------------------------------------------------------
@dataclass(frozen=True)
class IncrementSummary:
    """Counts of an increment, taken *before* processing it (the increment itself is lazy:
    read after the writes, it would be empty)."""

    feature: str
    new: int
    stale: int
    orphaned: int
    changed_fields: dict[str, int]  # field -> stale samples whose provenance of it changed
    sql: str

    @property
    def to_process(self) -> int:
        return self.new + self.stale


def summarize(store: Store, inc: Increment) -> IncrementSummary:
    """Counts and per-field stale counts of ``inc``, computed in the engine (two queries)."""
    counts = inc.counts()
    fields = store.graph.field_keys(inc.feature)
    changed = dict.fromkeys(fields, 0)
    if counts["stale"]:
        changed_col = exp.column(names.CHANGED_FIELDS, quoted=True)
        query = exp.select(*[
            exp.alias_(exp.CountIf(this=exp.ArrayContains(
                this=changed_col.copy(), expression=exp.Literal.string(f))), f"n{i}")
            for i, f in enumerate(fields)
        ]).from_(inc.stale.query.subquery("stale"))
        row = store.executor.fetch(store.executor.dialect.render(query)).to_pylist()[0]
        changed = {f: int(row[f"n{i}"] or 0) for i, f in enumerate(fields)}
    return IncrementSummary(inc.feature, counts["new"], counts["stale"], counts["orphaned"],
                            changed, inc.sql)


def increment_metadata(summary: IncrementSummary) -> dict[str, Any]:
    """Dagster metadata of an increment: counts (plotted by the UI), per-field stale counts,
    the resolve SQL as a code block."""
    metadata: dict[str, Any] = {
        "metaxy/new": summary.new,
        "metaxy/stale": summary.stale,
        "metaxy/orphaned": summary.orphaned,
    }
    metadata.update({f"metaxy/stale/{f}": n for f, n in summary.changed_fields.items()})
    metadata["metaxy/resolve_sql"] = dg.MetadataValue.md(f"```sql\n{summary.sql}\n```")
    return metadata


def processed(inc: Increment) -> IncrementSummary:
    """What a step processed from ``inc``: the rows it fetched from each category (and, among
    the stale ones, per changed field). Known after the writes, unlike the lazy counts."""
    return IncrementSummary(inc.feature, inc.new.fetched, inc.stale.fetched,
                            inc.orphaned.fetched, dict(inc.stale.fetched_changed_fields), inc.sql)


def materialize_result(summary: IncrementSummary | Increment, *,
                       rows_written: int | Mapping[str, int] | None = None,
                       rows_deleted: int | None = None, row_count: int | None = None,
                       asset_key: dg.AssetKey | None = None,
                       metadata: Mapping[str, Any] | None = None) -> dg.MaterializeResult[Any]:
    """A ``MaterializeResult`` recording what the step processed.

    Args:
        summary: the increment the step processed (its counts are the rows fetched from
            each category, see :func:`processed`), or :func:`summarize`, taken before
            processing (counts in the engine, whether fetched or not).
        rows_written: rows written, or ``BufferedMetadataWriter.rows_written``.
        rows_deleted: orphaned samples deleted.
        row_count: live samples after the step (``store.count(feature)``).
        asset_key: required in a multi-asset.
        metadata: extra entries.
    """
    if isinstance(summary, Increment):
        summary = processed(summary)
    if not isinstance(summary, IncrementSummary):
        raise TypeError("materialize_result takes the increment the step processed, or "
                        "summarize(store, inc) taken before processing")
    out = increment_metadata(summary)
    if isinstance(rows_written, Mapping):
        rows_written = rows_written.get(summary.feature, 0)
    if rows_written is not None:
        out["metaxy/rows_written"] = rows_written
    if rows_deleted is not None:
        out["metaxy/rows_deleted"] = rows_deleted
    if row_count is not None:
        out["dagster/row_count"] = row_count
    out.update(metadata or {})
    return dg.MaterializeResult(asset_key=asset_key, metadata=out)


# -- partitions ------------------------------------------------------------------------------
def partition_where(context: dg.AssetExecutionContext, feature: str | None = None) -> str | None:
    """The ``where=`` of the running step's partition(s), for ``resolve_update``.

    Built with sqlglot from the asset's ``metaxy/partition_column`` and the step's partition
    keys (one key, or a range run as one step): ``"day" = '2026-01-02'``, ``"day" IN (...)``,
    for a multi-partitioned asset one ``AND`` per key. Keys are quoted literals (numbers when
    the column is declared ``int``), never pasted into SQL text: the column holds the key's
    text (a daily partition's ``2026-01-02``) or, declared ``int``, its number.

    >>> # inside a partitioned asset:
    >>> # inc = s.resolve_update(feature, where=partition_where(context))

    Args:
        context: the asset's execution context.
        feature: the feature, in a multi-asset writing several (default: the asset's only one).

    Returns:
        The predicate as SQL text, or ``None`` when the step has no partition.

    Raises:
        DefinitionError: the asset has no ``metaxy/partition_column`` (``@metaxify`` checks it
            at load time), or ``feature`` is not one of the asset's features.
    """
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    spec = _spec_for(context.assets_def, feature)
    return _partition_sql(spec, context.assets_def.partitions_def,
                          list(context.partition_keys), metaxify_graph(context.assets_def.node_def))


def _partition_sql(spec: dg.AssetSpec, partitions_def: dg.PartitionsDefinition | None,
                   keys: Sequence[str], graph: FeatureGraph | None) -> str:
    """The predicate selecting partitions ``keys`` of the asset ``spec`` (see
    :func:`partition_where`)."""
    feature = str(_text(spec.metadata[FEATURE_KEY]))
    dims = (partitions_def.partition_dimension_names
            if isinstance(partitions_def, dg.MultiPartitionsDefinition) else None)
    where = f"asset {spec.key.to_user_string()} (feature {feature!r})"
    declared = _text(spec.metadata.get(PARTITION_COLUMN))
    if declared is None:
        raise DefinitionError(f"{where} is partitioned but has no {PARTITION_COLUMN} metadata "
                              "naming the id column that holds the partition key; add it")
    columns = _partition_columns(declared, dims, where, declared)
    types = graph.user_columns(feature) if graph is not None and feature in graph else {}
    if dims is None:
        column = columns[None]
        values = [_partition_literal(k, types.get(column), where) for k in keys]
        target = exp.column(column, quoted=True)
        predicate: exp.Expr = (exp.EQ(this=target, expression=values[0]) if len(values) == 1
                               else exp.In(this=target, expressions=values))
    else:
        predicate = exp.or_(*[exp.and_(*[
            exp.EQ(this=exp.column(columns[d], quoted=True),
                   expression=_partition_literal(k, types.get(columns[d]), where))
            for d, k in _dimension_keys(key, dims)]) for key in keys])
    return predicate.sql()


def _dimension_keys(key: str, dims: Sequence[str]) -> list[tuple[str, str]]:
    keys_by_dimension = getattr(key, "keys_by_dimension", None)
    if keys_by_dimension is None:  # a range's keys come as plain strings "a|b", dims sorted
        keys_by_dimension = dict(zip(sorted(dims), key.split("|"), strict=True))
    return sorted(keys_by_dimension.items())


def _partition_literal(key: str, annotation: Any, where: str) -> exp.Expr:
    if annotation is int:
        try:
            return exp.Literal.number(int(key))
        except ValueError:
            raise DefinitionError(f"{where}: partition key {key!r} is not an integer, but its "
                                  "partition column is declared int") from None
    return filters.literal(key)


def _spec_for(assets_def: dg.AssetsDefinition, feature: str | None) -> dg.AssetSpec:
    specs = [s for s in assets_def.specs if FEATURE_KEY in s.metadata
             and (feature is None or _text(s.metadata[FEATURE_KEY]) == feature)]
    if len(specs) != 1:
        known = [_text(s.metadata[FEATURE_KEY]) for s in assets_def.specs
                 if FEATURE_KEY in s.metadata]
        raise DefinitionError(f"asset {', '.join(k.to_user_string() for k in assets_def.keys)}"
                              f": feature={feature!r} picks none or several of its features "
                              f"{known}; pass one of them")
    return specs[0]


def row_count(store: Store, feature: str, where: str | None = None) -> int:
    """Live samples of ``feature`` (latest state), counted in the engine; ``where``: only
    those matching the predicate (e.g. :func:`partition_where`), over the feature's columns.

    Raises:
        DefinitionError: ``where`` does not parse or is not a plain predicate.
        DataError: ``where`` compares a column with a literal of another type.
    """
    if where is None:
        return store.count(feature)
    spec = store.graph.spec(feature)
    predicate = filters.parse_filter(where, f"feature {feature!r}: where=")
    if names.table(feature) not in store.executor.tables():
        return 0
    filter_types.check_types(predicate, where, store.predicate_kinds(feature),
                             f"feature {feature!r}: where=", DataError)
    query = builder.count_query(builder.latest_rows(names.table(feature), spec.id_columns, [])
                                .where(store.executor.dialect.predicate(predicate)))
    return int(store.executor.fetch(store.executor.dialect.render(query)).column(0)[0].as_py())


# -- asset checks ----------------------------------------------------------------------------
def metaxy_checks(assets: Iterable[dg.AssetsDefinition], *, store_key: str = "store",
                  root_samples: RootSamples | None = None,
                  blocking: bool = False) -> list[dg.AssetChecksDefinition]:
    """One ``metaxy_in_sync`` asset check per feature asset: it passes when the feature's
    increment is empty (0 new, 0 stale, 0 orphaned) and records the counts and the stale
    samples per changed field as metadata. Each check runs on its own (the UI's "Execute", or
    a job selecting it, e.g. ``dg.define_asset_job("check", dg.AssetSelection.all_asset_checks())``)
    and, by Dagster's default, after its asset is materialized.

    A root feature is checked only when ``root_samples[feature]()`` returns its current sample
    set (without it, "new" and "orphaned" are unknowable). A partitioned asset's check covers
    the run's partitions when the run has some (after materializing a partition: that
    partition), else all partitions.

    Args:
        assets: assets decorated with ``@metaxify``.
        store_key: the resource key of the :class:`MetaxyStoreResource`.
        root_samples: feature -> callable returning a root feature's sample set.
        blocking: fail the run (and skip downstream assets) when the check fails.

    Raises:
        DefinitionError: an asset was not decorated with ``@metaxify``.
    """
    samples = dict(root_samples or {})
    checks = []
    for assets_def in assets:
        graph = metaxify_graph(assets_def.node_def)
        for spec in assets_def.specs:
            if FEATURE_KEY not in spec.metadata:
                continue
            if graph is None:
                raise DefinitionError(f"metaxy_checks: asset {spec.key.to_user_string()} was "
                                      "not decorated with @metaxify; decorate it first")
            feature = str(_text(spec.metadata[FEATURE_KEY]))
            if graph.is_root(feature) and feature not in samples:
                continue
            checks.append(_in_sync_check(spec, assets_def.partitions_def, graph, store_key,
                                         samples.get(feature), blocking))
    return checks


def _in_sync_check(spec: dg.AssetSpec, partitions_def: dg.PartitionsDefinition | None,
                   graph: FeatureGraph, store_key: str, samples: Callable[[], Any] | None,
                   blocking: bool) -> dg.AssetChecksDefinition:
    asset_key, feature = spec.key, str(_text(spec.metadata[FEATURE_KEY]))

    @dg.asset_check(asset=asset_key, name=CHECK_NAME, blocking=blocking,
                    required_resource_keys={store_key},
                    description=f"{feature}: every sample is processed at the current "
                                "definitions (0 new, 0 stale, 0 orphaned)")
    def in_sync(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        resource: MetaxyStoreResource = getattr(context.resources, store_key)
        with resource._open(graph, f"@metaxify(graph) of asset {asset_key.to_user_string()}",
                            (feature,)) as store:
            root = samples() if samples is not None else None
            where = None
            if partitions_def is not None and (context.has_partition_key
                                               or context.has_partition_key_range):
                where = _partition_sql(spec, partitions_def, list(context.partition_keys), graph)
            summary = summarize(store, store.resolve_update(feature, samples=root, where=where))
        changed = [f for f, n in summary.changed_fields.items() if n]
        metadata = {k: v for k, v in increment_metadata(summary).items()
                    if k != "metaxy/resolve_sql"}
        metadata["metaxy/changed_fields"] = dg.MetadataValue.json(changed)
        if where is not None:
            metadata["metaxy/partitions"] = dg.MetadataValue.json(list(context.partition_keys))
        passed = summary.new == summary.stale == summary.orphaned == 0
        text = ("in sync" if passed else
                f"{summary.new} new, {summary.stale} stale"
                f"{' (' + ', '.join(changed) + ')' if changed else ''}, "
                f"{summary.orphaned} orphaned")
        return dg.AssetCheckResult(passed=passed, metadata=metadata, description=text)

    return in_sync


# -- observation -----------------------------------------------------------------------------
def observation_job(assets: Iterable[dg.AssetsDefinition], *, name: str = "metaxy_observe",
                    store_key: str = "store",
                    root_samples: RootSamples | None = None) -> dg.JobDefinition:
    """A job that records each feature's increment as an ``AssetObservation``, running no
    compute: the UI then shows new / stale / orphaned counts per asset over time.

    Root features are resolved only when ``root_samples[feature]()`` returns their sample set;
    otherwise their observation carries the live sample count alone.
    """
    targets = [(spec.key, str(_text(spec.metadata[FEATURE_KEY])), metaxify_graph(a.node_def))
               for a in assets for spec in a.specs if FEATURE_KEY in spec.metadata]
    samples = dict(root_samples or {})

    @dg.op(name=f"{name}_op", required_resource_keys={store_key})
    def observe(context: dg.OpExecutionContext) -> None:
        resource: MetaxyStoreResource = getattr(context.resources, store_key)
        for graph in {id(g): g for _, _, g in targets}.values():
            features = [f for _, f, of in targets if of is graph]
            with resource._open(graph, f"@metaxify(graph) of the assets of {features}",
                                features) as store:
                for asset_key, feature, of in targets:
                    if of is graph:
                        metadata = _observe(store, feature, samples.get(feature))
                        context.log_event(dg.AssetObservation(asset_key=asset_key,
                                                              metadata=metadata))

    @dg.job(name=name, description="Record every feature's increment (no compute).")
    def job() -> None:
        observe()

    return job


def _observe(store: Store, feature: str, samples: Callable[[], Any] | None) -> dict[str, Any]:
    live = {"dagster/row_count": store.count(feature)}
    if store.graph.is_root(feature) and samples is None:
        return live
    root = samples() if store.graph.is_root(feature) and samples else None
    summary = summarize(store, store.resolve_update(feature, samples=root))
    return {**increment_metadata(summary), **live}


# -- IO manager ------------------------------------------------------------------------------
class MetaxyIOManager(dg.ConfigurableIOManager):
    """Writes an asset's returned rows as its feature's metadata; loads upstream features.

    An input loads the upstream feature's latest state (``format``: Arrow, or polars); the
    upstream asset must use this IO manager too (``io_manager_key``).
    """

    store: dg.ResourceDependency[MetaxyStoreResource]
    format: Literal["arrow", "polars"] = "arrow"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        feature = _feature_in(context.definition_metadata, context)
        with self.store._open(metaxify_graph(context.op_def),
                              f"@metaxify(graph) of asset {context.asset_key.to_user_string()}",
                              (feature,)) as store:
            written = store.write(feature, obj)
        context.add_output_metadata({"metaxy/rows_written": written})

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        feature = _feature_in(upstream.definition_metadata if upstream else None, context)
        graph = metaxify_graph(upstream.op_def) if upstream is not None else None
        with self.store._open(graph, f"@metaxify(graph) of the asset of {feature!r}",
                              (feature,)) as store:
            table = store.read(feature)
        if self.format == "polars":
            import polars as pl

            return pl.from_arrow(table)
        return table


def _feature_in(metadata: Mapping[str, Any] | None,
                context: dg.InputContext | dg.OutputContext) -> str:
    value = _text((metadata or {}).get(FEATURE_KEY))
    if not isinstance(value, str):
        what = context.asset_key.to_user_string() if context.has_asset_key else "this output"
        raise DefinitionError(f"MetaxyIOManager: asset {what} has no {FEATURE_KEY} metadata; "
                              "decorate it with @metaxify")
    return value


__all__ = [
    "CHECK_NAME",
    "FEATURE_KEY",
    "PARTITION_COLUMN",
    "IncrementSummary",
    "MetaxyIOManager",
    "MetaxyStoreResource",
    "column_lineage",
    "column_schema",
    "feature_asset_key",
    "increment_metadata",
    "materialize_result",
    "metaxify",
    "metaxify_graph",
    "metaxy_checks",
    "observation_job",
    "partition_where",
    "row_count",
    "summarize",
]

"""Dagster integration: features as assets, the store as a resource, increments as metadata.

Install with ``pip install 'metaxy-sql[dagster]'``; the core package never imports this module.

>>> import dagster as dg
>>> from metaxy_sql.examples.seed import graph
>>> @metaxify(graph)
... @dg.asset(metadata={"metaxy/feature": "video/face_crop"})
... def face_crop() -> None: ...
>>> face_crop.key.to_user_string(), [d.asset_key.to_user_string() for d in face_crop.specs_by_key[
...     face_crop.key].deps]
('video/face_crop', ['video/full'])
"""


from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import dagster as dg
from sqlglot import exp

from metaxy_sql.engine.increment import Increment
from metaxy_sql.engine.store import Store, connect
from metaxy_sql.errors import ConfigError, DefinitionError, UnknownFeatureError
from metaxy_sql.model import config, names
from metaxy_sql.model.graph import FeatureGraph
from metaxy_sql.model.hashing import HashAlgorithm

#: Asset metadata naming the feature an asset materializes.
FEATURE_KEY = "metaxy/feature"

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

    Raises:
        DefinitionError: at definition load time, when the metadata names no feature of
            ``graph`` or the asset declares a dep on a feature the graph says it does not read.
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
        known = {**feature_of_asset, **{k: f for k, f in features.items() if f}}
        mapped = _thread_dep_inputs(assets_def.map_asset_specs(
            lambda spec: _enrich(spec, features[spec.key], graph, asset_key_for, known, kind)))
        renames = {old: asset_key_for(f) for old, f in features.items()
                   if f and asset_key_for(f) != old}
        if renames:
            mapped = mapped.with_attributes(asset_key_replacements=renames)
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
    return raw.value if isinstance(raw, dg.TextMetadataValue) else raw


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
class MetaxyStoreResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Opens the store; the same definitions run on DuckDB, ClickHouse or Postgres.

    Unset values come from ``METAXY_SQL_STORE`` / ``METAXY_SQL_ENTRYPOINTS`` or from
    ``[tool.metaxy-sql]`` (see :mod:`metaxy_sql.model.config`), exactly as for the CLI.

    Attributes:
        url: store URL, e.g. ``duckdb:///meta.db`` or ``chdb:///abs/path``.
        entrypoints: modules defining the features (a ``FeatureGraph`` or specs).
        hash_algorithm: ``sha256`` (default) or ``md5``.
    """

    url: str | None = None
    entrypoints: list[str] = []
    hash_algorithm: str | None = None

    def _config(self) -> config.Config:
        cfg = config.load_config(entrypoints=tuple(self.entrypoints), store=self.url)
        if self.hash_algorithm:
            cfg.hash_algorithm = self.hash_algorithm
        return cfg

    def load_graph(self) -> FeatureGraph:
        """The feature graph the entrypoints define."""
        return config.load_graph(self._config())

    def open(self) -> Store:
        """Connect; use as ``with store.open() as s: ...``."""
        cfg = self._config()
        if not cfg.store:
            raise ConfigError(f"MetaxyStoreResource: no store URL; set url=..., "
                              f"{config.ENV_STORE} or store = ... under [tool.metaxy-sql]")
        return connect(cfg.store, config.load_graph(cfg),
                       hash_algorithm=cast(HashAlgorithm, cfg.hash_algorithm))


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


# -- observation -----------------------------------------------------------------------------
def observation_job(assets: Iterable[dg.AssetsDefinition], *, name: str = "metaxy_observe",
                    store_key: str = "store",
                    root_samples: RootSamples | None = None) -> dg.JobDefinition:
    """A job that records each feature's increment as an ``AssetObservation``, running no
    compute: the UI then shows new / stale / orphaned counts per asset over time.

    Root features are resolved only when ``root_samples[feature]()`` returns their sample set;
    otherwise their observation carries the live sample count alone.
    """
    targets = [(spec.key, str(_text(spec.metadata[FEATURE_KEY]))) for a in assets
               for spec in a.specs if FEATURE_KEY in spec.metadata]
    samples = dict(root_samples or {})

    @dg.op(name=f"{name}_op", required_resource_keys={store_key})
    def observe(context: dg.OpExecutionContext) -> None:
        resource: MetaxyStoreResource = getattr(context.resources, store_key)
        with resource.open() as store:
            for asset_key, feature in targets:
                metadata = _observe(store, feature, samples.get(feature))
                context.log_event(dg.AssetObservation(asset_key=asset_key, metadata=metadata))

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
        with self.store.open() as store:
            written = store.write(feature, obj)
        context.add_output_metadata({"metaxy/rows_written": written})

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        feature = _feature_in(upstream.definition_metadata if upstream else None, context)
        with self.store.open() as store:
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
    "FEATURE_KEY",
    "IncrementSummary",
    "MetaxyIOManager",
    "MetaxyStoreResource",
    "column_lineage",
    "column_schema",
    "feature_asset_key",
    "increment_metadata",
    "materialize_result",
    "metaxify",
    "observation_job",
    "summarize",
]

"""Every name the generated SQL uses: tables, system columns, CTEs. Deterministic, no counters.

System columns of a feature table (all prefixed ``metaxy_``):

==============================  ===============  =============================================
column                          type             meaning
==============================  ===============  =============================================
metaxy_provenance_by_field      map text->text   field -> provenance hash (root: user-given)
metaxy_provenance               text             hash of the provenance map
metaxy_data_version_by_field    map text->text   field -> data version (default: provenance)
metaxy_data_version             text             hash of the data version map
metaxy_feature_version          text             feature version of the definitions written
metaxy_created_at               timestamp (UTC)  writer's clock at the write; informational only
metaxy_deleted                  boolean          soft-delete tombstone
metaxy_superseded               boolean          a later row of the same id exists
metaxy_write_seq                bigint           the write's position in the table's write order
==============================  ===============  =============================================

The latest row per id is the one with the greatest ``metaxy_write_seq``: a position the store
assigns to each write (or soft delete) of a feature table, increasing in the order writes take
effect, whatever the writers' clocks say (see ``engine.write_order``).
"""

from __future__ import annotations

import hashlib

PROVENANCE_BY_FIELD = "metaxy_provenance_by_field"
PROVENANCE = "metaxy_provenance"
DATA_VERSION_BY_FIELD = "metaxy_data_version_by_field"
DATA_VERSION = "metaxy_data_version"
FEATURE_VERSION = "metaxy_feature_version"
CREATED_AT = "metaxy_created_at"
DELETED = "metaxy_deleted"
SUPERSEDED = "metaxy_superseded"
WRITE_SEQ = "metaxy_write_seq"
#: Increment-only columns (never stored).
STATUS = "metaxy_status"
CHANGED_FIELDS = "metaxy_changed_fields"

SYSTEM_COLUMNS = (
    PROVENANCE_BY_FIELD,
    PROVENANCE,
    DATA_VERSION_BY_FIELD,
    DATA_VERSION,
    FEATURE_VERSION,
    CREATED_AT,
    DELETED,
    SUPERSEDED,
    WRITE_SEQ,
)
INCREMENT_ONLY_COLUMNS = (STATUS, CHANGED_FIELDS)

STATUS_NEW = "new"
STATUS_STALE = "stale"
STATUS_ORPHANED = "orphaned"
STATUSES = (STATUS_NEW, STATUS_STALE, STATUS_ORPHANED)

# CTE names, named for their role.
EXPECTED = "expected"
CURRENT = "current"
INCREMENT = "increment"
RESOLVED = "resolved"
#: Latest rows of an aggregated parent, before grouping.
MEMBERS = "members"


def table(feature_key: str) -> str:
    """Table of a feature: ``video/face_crop`` -> ``video__face_crop``."""
    return feature_key.replace("/", "__")


# -- naming rules: names every engine holds apart ---------------------------------------------
#: Prefix of every relation the store names itself (system tables, staged rows, sample sets):
#: no feature table may start with it.
STORE_PREFIX = "metaxy_"
#: Column names an engine keeps for itself in every table; a user or id column of that name
#: (in any case) is refused. ClickHouse MergeTree virtual columns (chdb 26.9, ``DESCRIBE TABLE
#: t SETTINGS describe_include_virtual_columns = 1``; a column of the same name shadows the
#: virtual one, and writes that rely on ``_block_number`` break; ``_shard_num``: Distributed):
#: https://clickhouse.com/docs/engines/table-engines/mergetree-family/mergetree#virtual-columns
#: Postgres system columns (CREATE TABLE refuses them):
#: https://www.postgresql.org/docs/current/ddl-system-columns.html
#: DuckDB's row id pseudo-column (a column of that name shadows it; partial resolves select
#: rows by it, ``DuckDBDialect.subset_rows``): https://duckdb.org/docs/stable/sql/statements/select
ENGINE_RESERVED_COLUMNS = frozenset({
    "_part", "_part_index", "_part_starting_offset", "_part_uuid", "_partition_id",
    "_partition_value", "_sample_factor", "_part_offset", "_part_granule_offset",
    "_part_data_version", "_disk_name", "_distance", "_table", "_database", "_row_exists",
    "_block_number", "_block_offset", "_shard_num",
    "tableoid", "xmin", "cmin", "xmax", "cmax", "ctid",
    "rowid",
})

#: DuckDB's row id pseudo-column.
DUCKDB_ROWID = "rowid"


def fold(name: str) -> str:
    """The form two names must differ in: DuckDB matches identifiers case-insensitively,
    quoted or not, so ``Video`` and ``video`` name one table there."""
    return name.casefold()


def is_reserved_column(name: str) -> bool:
    """True for a column name an engine keeps for itself (:data:`ENGINE_RESERVED_COLUMNS`)."""
    return fold(name) in ENGINE_RESERVED_COLUMNS


def upstream(feature_key: str) -> str:
    """CTE holding the latest state of an upstream feature."""
    return f"upstream__{table(feature_key)}"


def samples(feature_key: str) -> str:
    """Staged relation holding the sample set passed to ``resolve_update`` of a root feature."""
    return f"metaxy_samples__{table(feature_key)}"


def staged(feature_key: str) -> str:
    """Staged relation holding rows being written or deleted."""
    return f"metaxy_staged__{table(feature_key)}"


def provenance_column(field_key: str) -> str:
    """Per-field provenance column inside the statement."""
    return f"{PROVENANCE}__{field_key}"


def data_version_token_column(field_key: str) -> str:
    """Per-field upstream data version inside an upstream CTE, already encoded as a hash-input
    token (``hashing.encode``): ``<byte length>:<value>``, or ``~`` when absent."""
    return f"metaxy_dv_token__{field_key}"


def is_per_field_column(name: str) -> bool:
    """A per-field column (:func:`provenance_column`, :func:`data_version_token_column`):
    internal to statements, or derived by the engine in the table; never user data."""
    return name.startswith((f"{PROVENANCE}__", "metaxy_dv_token__"))


def data_version_column(field_key: str) -> str:
    """Per-field upstream data version column inside an upstream CTE."""
    return f"{DATA_VERSION}__{field_key}"


# -- system tables and materialized increments ------------------------------------------------
#: Prefix of the store's own tables (never a feature table: see ``is_system_table``).
SYSTEM_TABLE_PREFIX = "metaxy_system__"
#: One row per ``push``: the definitions (specs, feature and field versions) as JSON.
GRAPH_SNAPSHOTS = f"{SYSTEM_TABLE_PREFIX}graph_snapshots"
#: Append-only log of the increment relations ``materialize`` created or dropped.
MATERIALIZATIONS = f"{SYSTEM_TABLE_PREFIX}materializations"
#: Write order: the last position handed out per feature table (see ``engine.write_order``).
WRITE_ORDER = f"{SYSTEM_TABLE_PREFIX}write_order"
#: One row per id/user column when its type is first fixed: feature, column, Arrow type.
COLUMN_TYPES = f"{SYSTEM_TABLE_PREFIX}column_types"
#: One row per store-wide setting when first fixed (``hash_algorithm``: at the first write).
STORE_SETTINGS = f"{SYSTEM_TABLE_PREFIX}store_settings"
#: Default suffix of a materialized increment: ``video__face_crop__increment``.
INCREMENT_SUFFIX = "__increment"
#: Suffix of a maintained (incremental) increment table, apart from ``materialize``'s relations
#: so neither ever replaces the other's.
INCREMENTAL_SUFFIX = "__incremental"


def is_system_table(name: str) -> bool:
    """True for the store's own tables (snapshots, materialization log)."""
    return name.startswith(SYSTEM_TABLE_PREFIX)


def increment_relation(feature_key: str, prefix: str = "",
                       suffix: str = INCREMENT_SUFFIX) -> str:
    """Materialized increment: ``video/face_crop`` -> ``video__face_crop__increment``."""
    return f"{prefix}{table(feature_key)}{suffix}"


def member_entry_column(field_key: str) -> str:
    """Per-field member entry (ids and data version) of an aggregated parent."""
    return f"metaxy_member__{field_key}"
#: Incremental increments: one row per refresh (definition fingerprint and the watermark of
#: every table the increment reads), see ``engine.incremental``.
INCREMENTAL_STATE = f"{SYSTEM_TABLE_PREFIX}incremental"
#: Hard deletes and drops of feature tables (they take no write position): an incremental
#: increment reading such a table is rebuilt in full.
HARD_DELETES = f"{SYSTEM_TABLE_PREFIX}hard_deletes"
#: Column of ClickHouse's persisted insert block number (``enable_block_number_column``).
BLOCK_NUMBER = "_block_number"


def touched(relation: str) -> str:
    """Session-local relation holding the grain ids a refresh of ``relation`` re-resolves:
    named by a digest of ``relation`` (28 characters whatever its length), so that it never
    is a feature's longest identifier (Postgres allows 63 bytes).

    >>> touched("video__face_crop__incremental")
    'metaxy_touched__8f4992e325ca'
    """
    return f"metaxy_touched__{hashlib.sha256(relation.encode()).hexdigest()[:12]}"


# -- every identifier of a feature ---------------------------------------------------------------
def feature_relations(feature_key: str, *, root: bool = False) -> tuple[tuple[str, str], ...]:
    """``(what, name)`` of every relation the store creates, stages or names in a statement for
    feature ``feature_key``: its table, staged rows, sample set and, unless it is a ``root``
    feature (whose increment reads a per-session sample set, never materialized), its
    materialized and incremental increments (default suffixes; a ``materialize`` prefix or
    suffix is the caller's and is checked when rendered) and the touched ids of their
    refreshes. Each is the table name plus a fixed prefix and/or suffix. Index names are left
    out: a dialect that limits identifiers shortens them with a digest.

    >>> sorted((len(n) - 40, what) for what, n in feature_relations("a" * 40))[-2:]
    [(15, 'staged rows'), (16, 'sample set')]
    """
    common = (
        ("table", table(feature_key)),
        ("staged rows", staged(feature_key)),
        ("sample set", samples(feature_key)),
        ("upstream statement part", upstream(feature_key)),
    )
    if root:
        return common
    incremental = increment_relation(feature_key, suffix=INCREMENTAL_SUFFIX)
    materialized = increment_relation(feature_key)
    return (
        *common,
        ("materialized increment", materialized),
        ("incremental increment", incremental),
        ("touched ids of a materialized refresh", touched(materialized)),
        ("touched ids of an incremental refresh", touched(incremental)),
    )


def field_columns(field_key: str) -> tuple[tuple[str, str], ...]:
    """``(what, name)`` of every per-field column statements name for field ``field_key``."""
    return (
        ("per-field provenance column", provenance_column(field_key)),
        ("per-field data version column", data_version_column(field_key)),
        ("per-field data version token column", data_version_token_column(field_key)),
        ("per-field member column", member_entry_column(field_key)),
    )

"""metaxy-sql: sample-level, field-level data versioning compiled to SQL."""

from metaxy_sql.definitions import (
    BaseFeature,
    FeatureDep,
    FeatureSpec,
    FieldDep,
    FieldSpec,
    Lineage,
    aggregation,
    expansion,
    identity,
)
from metaxy_sql.errors import (
    ConfigError,
    DataError,
    DefinitionError,
    ExecutionError,
    MetaxySqlError,
    StoreConnectionError,
    UnknownFeatureError,
    UnsupportedByDialectError,
)
from metaxy_sql.graph import FeatureGraph

__all__ = [
    "BaseFeature",
    "ConfigError",
    "DataError",
    "DefinitionError",
    "ExecutionError",
    "FeatureDep",
    "FeatureGraph",
    "FeatureSpec",
    "FieldDep",
    "FieldSpec",
    "Lineage",
    "MetaxySqlError",
    "StoreConnectionError",
    "UnknownFeatureError",
    "UnsupportedByDialectError",
    "aggregation",
    "expansion",
    "identity",
]

from metaxy_sql.increment import Increment, IncrementPart
from metaxy_sql.store import Store, connect
from metaxy_sql.writer import BufferedMetadataWriter, WriterError

__all__ += [
    "BufferedMetadataWriter", "Increment", "IncrementPart", "Store", "WriterError", "connect"]

"""metaxy-sql: sample-level, field-level data versioning compiled to SQL."""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

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
from metaxy_sql.model.definitions import (
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
from metaxy_sql.model.graph import FeatureGraph

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

from metaxy_sql.engine.increment import Increment, IncrementPart
from metaxy_sql.engine.store import Store, connect
from metaxy_sql.engine.writer import BufferedMetadataWriter, WriterError
from metaxy_sql.warehouse.copy import CopyReport, copy
from metaxy_sql.warehouse.materialize import materialize
from metaxy_sql.warehouse.plan import plan
from metaxy_sql.warehouse.snapshots import graph_history, push_graph

try:
    #: The installed distribution's version (``metaxy-sql --version`` prints it).
    __version__: str = _version("metaxy-sql")
except _PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ += [
    "BufferedMetadataWriter",
    "CopyReport",
    "Increment",
    "IncrementPart",
    "Store",
    "WriterError",
    "__version__",
    "connect",
    "copy",
    "graph_history",
    "materialize",
    "plan",
    "push_graph",
]

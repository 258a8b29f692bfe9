"""Pictures of a feature graph: plain text, Mermaid, Graphviz DOT and SVG.

Every format shows the same facts: features with their id columns and fields (with code
versions), field-level edges (which upstream field each field reads), and for each
dependency its **lineage kind** (one-to-one, expansion one-to-many, aggregation many-to-one),
whether it is optional (left join), its filters and the columns it carries (renamed or not).

>>> import metaxy_sql as mx
>>> g = mx.FeatureGraph([
...     mx.FeatureSpec(key="video/full", id_columns=["sample_uid"],
...                    fields=[mx.FieldSpec(key="frames")]),
...     mx.FeatureSpec(key="video/chunk", id_columns=["sample_uid", "chunk_id"],
...                    deps=[mx.FeatureDep(feature="video/full",
...                                        lineage=mx.expansion(on=["sample_uid"]))],
...                    fields=[mx.FieldSpec(key="frames")])])
>>> dependencies(g)[0].summary()
'expansion (one-to-many) on [sample_uid]'
>>> print(to_mermaid(g).splitlines()[-1])
  video__full == "frames → frames<br/>expansion 1:N on sample_uid" ==> video__chunk
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Literal

from metaxy_sql.errors import ConfigError
from metaxy_sql.model import names
from metaxy_sql.model.graph import FeatureGraph

Format = Literal["text", "mermaid", "dot", "svg"]
#: Every format :func:`picture` draws.
FORMATS: tuple[Format, ...] = ("text", "mermaid", "dot", "svg")

#: Lineage kind -> (words, cardinality).
_KINDS = {
    "identity": ("one-to-one", "1:1"),
    "expansion": ("one-to-many", "1:N"),
    "aggregation": ("many-to-one", "N:1"),
}


@dataclass(frozen=True)
class Dependency:
    """One dependency of a feature on an upstream feature, as a picture draws it.

    Attributes:
        parent: upstream feature key.
        child: the feature that declares the dependency.
        kind: ``identity``, ``expansion`` or ``aggregation``.
        on: the lineage's columns (expansion: the parent ids; aggregation: the group keys).
        optional: a left join (absent parent hashes as the absent marker).
        filters: predicates over the parent's columns (as written).
        carried: ``(parent column, name in the increment)`` of each carried column.
        fields: ``(parent field, child field)`` of each field-level edge through this
            dependency, sorted; empty when no field of the child reads the parent.
    """

    parent: str
    child: str
    kind: str
    on: tuple[str, ...]
    optional: bool
    filters: tuple[str, ...]
    carried: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, str], ...]

    @property
    def plain(self) -> bool:
        """One-to-one, required, unfiltered and carrying nothing (drawn as a plain edge)."""
        return (self.kind == "identity" and not self.optional and not self.filters
                and not self.carried)

    def short(self) -> str:
        """The kind in a few words, e.g. ``expansion 1:N on sample_uid``, ``optional 1:1``."""
        words = {"identity": "1:1", "expansion": "expansion 1:N",
                 "aggregation": "aggregation N:1"}[self.kind]
        if self.on:
            words += " on " + ", ".join(self.on)
        return f"optional {words}" if self.optional else words

    def extras(self) -> list[str]:
        """Filters and carried columns as short phrases (``where ...``, ``carries ...``)."""
        out = [f"where {f}" for f in self.filters]
        if self.carried:
            out.append("carries " + ", ".join(
                src if src == dst else f"{src} as {dst}" for src, dst in self.carried))
        return out

    def summary(self) -> str:
        """Everything about the dependency in one phrase, e.g.
        ``one-to-one, optional (left join), where duration > 1.0, carries path as video_path``.
        """
        words, _ = _KINDS[self.kind]
        text = words if self.kind == "identity" else f"{self.kind} ({words})"
        if self.on:
            text += f" on [{', '.join(self.on)}]"
        if self.optional:
            text += ", optional (left join)"
        return ", ".join([text, *self.extras()])


def dependencies(graph: FeatureGraph) -> tuple[Dependency, ...]:
    """Every dependency of ``graph``: children in topological order, deps as declared."""
    out = []
    for key in graph.keys:
        spec = graph.spec(key)
        for dep in spec.deps:
            pairs = sorted((pf, f) for f in graph.field_keys(key)
                           for parent, pf in graph.field_parents(key, f) if parent == dep.feature)
            out.append(Dependency(
                parent=dep.feature, child=key, kind=dep.lineage.kind, on=tuple(dep.lineage.on),
                optional=dep.optional, filters=tuple(dep.filters), carried=dep.carried(),
                fields=tuple(pairs)))
    return tuple(out)


# -- text ---------------------------------------------------------------------------------------
def to_text(graph: FeatureGraph) -> str:
    """One block per feature (topological order): ids, deps and version; one line per
    dependency with its lineage kind, filters and carried columns; one line per field with
    its code version and the upstream fields it reads. Ends with a newline."""
    deps = dependencies(graph)
    lines: list[str] = []
    for key in graph.keys:
        spec = graph.spec(key)
        names_ = ", ".join(d.feature for d in spec.deps) or "(root)"
        lines.append(f"{key}  ids={list(spec.id_columns)}  deps: {names_}  "
                     f"version {graph.feature_version(key)}")
        lines.extend(f"  dep {d.parent}: {d.summary()}" for d in deps if d.child == key)
        for f in graph.field_keys(key):
            parents = ", ".join(f"{p}.{pf}" for p, pf in graph.field_parents(key, f)) or "(root)"
            lines.append(f"  .{f}  code_version {graph.code_version(key, f)}  <- {parents}")
    return "".join(line + "\n" for line in lines)


#: What the arrows mean, as a comment in the Mermaid and DOT source.
_LEGEND = ("lineage: plain arrow = one-to-one; expansion 1:N and aggregation N:1 are labelled "
           "(thick in Mermaid, crow's foot on the many side in DOT); dotted/dashed = optional "
           "(left join)")


# -- mermaid ------------------------------------------------------------------------------------
#: Arrow of each kind: a plain arrow for one-to-one, thick for expansion and aggregation,
#: dotted for optional deps.
_MERMAID_ARROWS = {"identity": ("--", "-->"), "expansion": ("==", "==>"),
                   "aggregation": ("==", "==>"), "optional": ("-.", ".->")}


def _mermaid_text(text: str) -> str:
    # Inside quoted labels, Mermaid reads entity codes; '<' and '>' would start HTML.
    return (text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))


def _node_ids(graph: FeatureGraph) -> dict[str, str]:
    """A distinct identifier per feature: its table name, other characters as ``_``."""
    ids: dict[str, str] = {}
    for key in graph.keys:
        base = re.sub(r"[^A-Za-z0-9_]", "_", names.table(key))
        node, n = base, 1
        while node in ids.values():
            n += 1
            node = f"{base}_{n}"
        ids[key] = node
    return ids


def to_mermaid(graph: FeatureGraph) -> str:
    """A Mermaid ``flowchart LR``: one node per feature (fields and code versions), one
    labelled edge per field-level dependency (``parent field → field``), its arrow and label
    giving the lineage kind (``==>`` expansion/aggregation, ``-.->`` optional); a dependency
    no field reads is drawn feature to feature. Filters and carried columns label the first
    edge of their dependency. Ends with a newline."""
    node = _node_ids(graph)
    lines = ["flowchart LR", f"  %% {_LEGEND}"]
    for key in graph.keys:
        fields = "<br/>".join(_mermaid_text(f"{f} v{graph.code_version(key, f)}")
                              for f in graph.field_keys(key))
        lines.append(f'  {node[key]}["{_mermaid_text(key)}<br/>{fields}"]')
    for dep in dependencies(graph):
        start, end = _MERMAID_ARROWS["optional" if dep.optional else dep.kind]
        pairs: list[tuple[str, str] | None] = list(dep.fields) or [None]
        for i, pair in enumerate(pairs):
            label = [f"{pair[0]} → {pair[1]}"] if pair else ["(no field reads it)"]
            if not dep.plain:
                label.append(dep.short())
            if i == 0:
                label.extend(dep.extras())
            text = "<br/>".join(_mermaid_text(part) for part in label)
            lines.append(f'  {node[dep.parent]} {start} "{text}" {end} {node[dep.child]}')
    return "".join(line + "\n" for line in lines)


# -- graphviz -----------------------------------------------------------------------------------
def _dot_label(graph: FeatureGraph, key: str) -> str:
    spec = graph.spec(key)
    rows = [f'<TR><TD BGCOLOR="lightgrey"><B>{html.escape(key)}</B></TD></TR>',
            f'<TR><TD><I>ids: {html.escape(", ".join(spec.id_columns))}</I></TD></TR>']
    rows.extend(
        f'<TR><TD PORT="{html.escape(f)}" ALIGN="LEFT">{html.escape(f)} '
        f'v{html.escape(graph.code_version(key, f))}</TD></TR>'
        for f in graph.field_keys(key))
    return f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0">{"".join(rows)}</TABLE>>'


def _edge_style(dep: Dependency) -> dict[str, str]:
    style: dict[str, str] = {}
    if dep.kind == "expansion":  # crow's foot at the child: one parent, many children
        style.update(arrowhead="crow", penwidth="2")
    elif dep.kind == "aggregation":  # crow's foot at the parents: many members, one group
        style.update(dir="both", arrowtail="crow", arrowhead="normal", penwidth="2")
    if dep.optional:
        style["style"] = "dashed"
    if dep.filters:
        style["color"] = "darkorange"
    return style


def to_dot(graph: FeatureGraph) -> str:
    """Graphviz DOT source (no ``dot`` program needed): one table-shaped node per feature
    (key, ids, one port per field), one edge per field-level dependency from field to field.
    Lineage kind by arrow and label: a crow's foot at the child for an expansion (1:N), at the
    parent for an aggregation (N:1), dashed for optional, orange when filtered; the first edge
    of each dependency is labelled with its kind, filters and carried columns.

    Raises:
        ConfigError: the ``graphviz`` Python package is not installed.
    """
    try:
        import graphviz
    except ImportError:  # pragma: no cover - a core dependency
        raise ConfigError("graph pictures in dot/svg need the graphviz Python package: "
                          "pip install graphviz") from None
    dot = graphviz.Digraph("metaxy_sql", comment=_LEGEND, graph_attr={"rankdir": "LR"},
                           node_attr={"shape": "plain", "fontname": "Helvetica"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    for key in graph.keys:
        dot.node(key, label=_dot_label(graph, key))
    for dep in dependencies(graph):
        style = _edge_style(dep)
        # DOT's own line break; backslashes in filters are escaped, not read as escapes.
        label = ("\\n".join(graphviz.escape(part) for part in [dep.short(), *dep.extras()])
                 if not dep.plain else "")
        if not dep.fields:
            dot.edge(dep.parent, dep.child, label=label or "1:1", **style)
            continue
        for i, (pf, f) in enumerate(dep.fields):
            attrs = dict(style, label=label) if i == 0 and label else style
            dot.edge(f"{dep.parent}:{pf}:e", f"{dep.child}:{f}:w", **attrs)
    return str(dot.source)


def to_svg(graph: FeatureGraph) -> str:
    """The DOT picture rendered to SVG text by Graphviz's ``dot`` program.

    Raises:
        ConfigError: ``dot`` is not installed (or not on ``PATH``); the message says how to
            install it.
    """
    import graphviz

    try:
        return str(graphviz.Source(to_dot(graph)).pipe(format="svg", encoding="utf-8"))
    except graphviz.ExecutableNotFound:
        raise ConfigError(
            "--format svg needs Graphviz's `dot` program, which is not on PATH; install "
            "Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
            "conda: conda install graphviz), or use --format dot and render it elsewhere"
        ) from None


def picture(graph: FeatureGraph, fmt: Format = "text") -> str:
    """The picture of ``graph`` in ``fmt`` (``text``, ``mermaid``, ``dot`` or ``svg``), as text.

    Raises:
        ConfigError: an unknown format, or ``svg`` without Graphviz's ``dot`` program.
    """
    if fmt == "text":
        return to_text(graph)
    if fmt == "mermaid":
        return to_mermaid(graph)
    if fmt == "dot":
        return to_dot(graph)
    if fmt == "svg":
        return to_svg(graph)
    raise ConfigError(f"unknown picture format {fmt!r}; use one of {list(FORMATS)}")

"""`metaxy-sql graph` in every format shows each dependency's lineage kind.

Expectations are derived from the definitions (each spec's deps, their lineage, optional flag,
filters and carried columns; each field's upstream fields), with the words and arrows of each
kind restated here. The DOT output is parsed by Graphviz itself (`dot -Tjson`) and the SVG by
an XML parser: Graphviz's `dot` must be installed (`.ci/run` installs it); a missing `dot` is a
failure, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

import metaxy_sql as mx
from metaxy_sql.cli import cli
from metaxy_sql.examples import lineage, seed

#: Lineage kind -> words in the text picture; the short form on Mermaid and DOT edges.
WORDS = {"identity": "one-to-one", "expansion": "expansion (one-to-many)",
         "aggregation": "aggregation (many-to-one)"}
SHORT = {"identity": "1:1", "expansion": "expansion 1:N", "aggregation": "aggregation N:1"}

#: A graph with what the bundled examples lack: filters, carried and renamed columns, and an
#: optional dependency that no field reads.
EXTRAS_MODULE = '''
import metaxy_sql as mx

class Video(mx.BaseFeature, spec=mx.FeatureSpec(key="video/full", id_columns=["sample_uid"],
        fields=[mx.FieldSpec(key="audio"), mx.FieldSpec(key="frames")])):
    path: str
    duration: float

clip = mx.FeatureSpec(key="video/clip", id_columns=["sample_uid"],
    deps=[mx.FeatureDep(feature="video/full", filters=["duration > 1.0", "path LIKE '%#\\"x'"],
                        columns=["path", "duration"], rename={"path": "video_path"}),
          mx.FeatureDep(feature="labels/raw", optional=True)],
    fields=[mx.FieldSpec(key="frames",
                         deps=[mx.FieldDep(feature="video/full", fields=["frames"])])])
labels = mx.FeatureSpec(key="labels/raw", id_columns=["sample_uid"])
graph = mx.FeatureGraph([Video, clip, labels])
'''

EXAMPLES = ["metaxy_sql.examples.seed", "metaxy_sql.examples.lineage", "picture_extras"]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "picture_extras.py").write_text(EXTRAS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    for var in ("METAXY_SQL_STORE", "METAXY_SQL_ENTRYPOINTS"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def graph_of(module: str) -> mx.FeatureGraph:
    import importlib

    return importlib.import_module(module).graph  # type: ignore[no-any-return]


def picture(runner: CliRunner, module: str, fmt: str, *extra: str) -> str:
    result = runner.invoke(cli, ["-e", module, "graph", "--format", fmt, *extra],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def deps_of(graph: mx.FeatureGraph) -> list[tuple[str, mx.FeatureDep, list[tuple[str, str]]]]:
    """(child, dep, [(parent field, child field)]) of every dependency, from the definitions."""
    out = []
    for spec in graph:
        for dep in spec.deps:
            pairs = sorted((pf, f) for f in graph.field_keys(spec.key)
                           for parent, pf in graph.field_parents(spec.key, f)
                           if parent == dep.feature)
            out.append((spec.key, dep, pairs))
    return out


def carried_words(dep: mx.FeatureDep) -> list[str]:
    return [src if src == dst else f"{src} as {dst}" for src, dst in dep.carried()]


def test_the_examples_cover_every_kind() -> None:
    kinds = {(dep.lineage.kind, dep.optional) for _, dep, _ in deps_of(lineage.graph)}
    assert kinds == {("identity", False), ("identity", True), ("expansion", False),
                     ("aggregation", False)}
    assert {dep.lineage.kind for _, dep, _ in deps_of(seed.graph)} == {"identity"}


@pytest.mark.parametrize("module", EXAMPLES)
def test_text_names_each_dependency_kind(runner: CliRunner, module: str) -> None:
    graph = graph_of(module)
    out = picture(runner, module, "text")
    blocks: dict[str, list[str]] = {}
    for line in out.splitlines():
        if not line.startswith(" "):
            blocks[line.split()[0]] = []
        else:
            blocks[list(blocks)[-1]].append(line)
    assert list(blocks) == list(graph.keys)
    for child, dep, _ in deps_of(graph):
        line = next(ln for ln in blocks[child] if ln.startswith(f"  dep {dep.feature}: "))
        assert WORDS[dep.lineage.kind] in line
        if dep.lineage.on:
            assert f"on [{', '.join(dep.lineage.on)}]" in line
        assert ("optional (left join)" in line) == dep.optional
        for text in dep.filters:
            assert f"where {text}" in line
        for words in carried_words(dep):
            assert words in line
    for key in graph.keys:
        for f in graph.field_keys(key):
            parents = ", ".join(f"{p}.{pf}" for p, pf in graph.field_parents(key, f)) or "(root)"
            assert f"  .{f}  code_version {graph.code_version(key, f)}  <- {parents}" in blocks[key]


def mermaid_text(text: str) -> str:
    return (text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))


@pytest.mark.parametrize("module", EXAMPLES)
def test_mermaid_arrows_and_labels_show_each_kind(runner: CliRunner, module: str) -> None:
    graph = graph_of(module)
    out = picture(runner, module, "mermaid")
    lines = out.splitlines()
    assert lines[0] == "flowchart LR"
    node = {key: key.replace("/", "__") for key in graph.keys}
    for child, dep, pairs in deps_of(graph):
        plain = (dep.lineage.kind == "identity" and not dep.optional and not dep.filters
                 and not dep.carried())
        start, end = ("-.", ".->") if dep.optional else (
            ("--", "-->") if dep.lineage.kind == "identity" else ("==", "==>"))
        edges = [ln for ln in lines
                 if ln.startswith(f"  {node[dep.feature]} {start} \"")
                 and ln.endswith(f"\" {end} {node[child]}")]
        heads = [f"{pf} → {f}" for pf, f in pairs] or ["(no field reads it)"]
        assert len(edges) == len(heads), (dep, edges)
        for head, edge in zip(heads, edges, strict=True):
            label = edge.split('"')[1].split("<br/>")
            assert label[0] == head
            if plain:
                assert label == [head]
            else:
                short = SHORT[dep.lineage.kind]
                assert label[1].startswith(f"optional {short}" if dep.optional else short)
                assert all(column in label[1] for column in dep.lineage.on)
        first = edges[0].split('"')[1]
        for text in dep.filters:
            assert mermaid_text(f"where {text}") in first
        for words in carried_words(dep):
            assert words in first


def test_mermaid_of_the_seed_is_plain_one_to_one(runner: CliRunner) -> None:
    out = picture(runner, "metaxy_sql.examples.seed", "mermaid")
    assert 'video__full -- "audio → text" --> transcript__whisper' in out
    assert "==>" not in out and ".->" not in out


def dot_json(source: str) -> dict[str, object]:
    """The DOT source as Graphviz parsed and laid it out (fails when `dot` is missing)."""
    dot = shutil.which("dot")
    assert dot, "Graphviz's `dot` is not installed: apt-get install graphviz (.ci/run does)"
    done = subprocess.run([dot, "-Tjson"], input=source, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("module", EXAMPLES)
def test_dot_parses_and_edges_carry_each_kind(runner: CliRunner, module: str) -> None:
    graph = graph_of(module)
    parsed = dot_json(picture(runner, module, "dot"))
    names = [obj["name"] for obj in parsed["objects"]]  # type: ignore[attr-defined]
    assert sorted(names) == sorted(graph.keys)
    edges = [(names[e["tail"]], names[e["head"]], e)
             for e in parsed.get("edges", [])]  # type: ignore[attr-defined]
    assert len(edges) == sum(max(len(pairs), 1) for _, _, pairs in deps_of(graph))
    for child, dep, pairs in deps_of(graph):
        mine = [e for tail, head, e in edges if (tail, head) == (dep.feature, child)]
        if pairs:
            assert sorted((e["tailport"], e["headport"]) for e in mine) == sorted(
                (f"{pf}:e", f"{f}:w") for pf, f in pairs)
        else:
            assert len(mine) == 1 and "tailport" not in mine[0]
        kind = dep.lineage.kind
        for e in mine:
            assert (e.get("style") == "dashed") == dep.optional
            if kind == "expansion":  # crow's foot at the child
                assert e["arrowhead"] == "crow"
            if kind == "aggregation":  # crow's foot at the members
                assert e["arrowtail"] == "crow" and e["dir"] == "both"
            if kind == "identity":
                assert "crow" not in (e.get("arrowhead", ""), e.get("arrowtail", ""))
        labels = [e["label"] for e in mine if e.get("label")]
        plain = kind == "identity" and not dep.optional and not dep.filters and not dep.carried()
        if plain and pairs:
            assert labels == []
            continue
        assert len(labels) == 1
        label = labels[0].split("\\n")  # DOT's own line break, as written
        short = SHORT[kind]
        assert label[0].startswith(f"optional {short}" if dep.optional else short)
        assert all(column in label[0] for column in dep.lineage.on)
        assert [ln.removeprefix("where ") for ln in label if ln.startswith("where ")] == list(
            dep.filters)
        for words in carried_words(dep):
            assert words in labels[0]


@pytest.mark.parametrize("module", EXAMPLES)
def test_svg_is_drawn_with_each_kind(runner: CliRunner, module: str, tmp_path: Path) -> None:
    graph = graph_of(module)
    target = tmp_path / "graph.svg"
    assert picture(runner, module, "svg", "--output", str(target)) == f"wrote {target}\n"
    root = ET.fromstring(target.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for key in graph.keys:
        assert key in texts
        for f in graph.field_keys(key):
            assert f"{f} v{graph.code_version(key, f)}" in texts
    for _, dep, _ in deps_of(graph):
        kind = dep.lineage.kind
        if kind != "identity":
            assert f"{SHORT[kind]} on {', '.join(dep.lineage.on)}" in texts
        if dep.optional:
            assert f"optional {SHORT[kind]}" in texts
        for text in dep.filters:
            assert f"where {text}" in texts


def test_output_file_holds_what_stdout_shows(runner: CliRunner, tmp_path: Path) -> None:
    for fmt in ("text", "mermaid", "dot"):
        shown = picture(runner, "metaxy_sql.examples.lineage", fmt)
        target = tmp_path / f"graph.{fmt}"
        picture(runner, "metaxy_sql.examples.lineage", fmt, "-o", str(target))
        assert target.read_text() == shown


def test_svg_without_dot_says_how_to_install_it(tmp_path: Path) -> None:
    # An empty PATH: Graphviz's `dot` is not on it (this Python is called by its full path).
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty), "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", "from metaxy_sql.cli import main; main()",
         "-e", "metaxy_sql.examples.seed", "graph", "--format", "svg"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: --format svg needs Graphviz's `dot` program")
    assert "apt-get install graphviz" in lines[0] and "--format dot" in lines[0]


def test_output_into_a_missing_folder_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "graph.dot"
    result = runner.invoke(cli, ["-e", "metaxy_sql.examples.seed", "graph", "--format", "dot",
                                 "-o", str(target)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (f"error: --output {target}: cannot write it (No such file or "
                             "directory); check the folder exists and is writable\n")

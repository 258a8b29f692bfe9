"""The package's folders are the stages of the data flow; imports point one way.

Every ``import`` in ``metaxy_sql`` (module level, inside functions and under
``TYPE_CHECKING`` alike) is read from the source with ``ast``. A module may import modules of
its own stage or of an earlier one, never a later one, and no chain of imports comes back to
where it started.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "metaxy_sql"

#: Stage of each sub-package, in data-flow order (the README's "Architecture" section).
STAGES = {
    "metaxy_sql.errors": 0,
    "metaxy_sql.model": 1,
    "metaxy_sql.compile": 2,
    "metaxy_sql.engine": 3,
    "metaxy_sql.warehouse": 4,
    "metaxy_sql": 5,  # the facade: ``import metaxy_sql as mx``
    "metaxy_sql.examples": 6,
    "metaxy_sql.cli": 7,
    "metaxy_sql.ext": 7,
}
#: Optional integrations: only ``metaxy_sql.ext`` may import them.
EXTRAS = ("dagster", "ibis", "ray")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """Modules ``module`` imports: ``from a import b`` counts as ``a.b`` when that is a module."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in MODULES else base)
    return out


GRAPH = {m: {i for i in _imports(m, p) if i in MODULES} for m, p in MODULES.items()}


def _stage(module: str) -> int:
    best = max((s for s in STAGES if module == s or module.startswith(s + ".")), key=len)
    return STAGES[best]


def test_every_module_has_a_stage() -> None:
    assert all(_stage(m) >= 0 for m in MODULES)
    assert {"metaxy_sql.model.graph", "metaxy_sql.compile.builder", "metaxy_sql.engine.store",
            "metaxy_sql.warehouse.materialize", "metaxy_sql.cli.main"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_stages(module: str) -> None:
    upward = sorted(i for i in GRAPH[module] if _stage(i) > _stage(module))
    assert not upward, f"{module} (stage {_stage(module)}) imports later stages: {upward}"


CORE = sorted(m for m in MODULES if _stage(m) < STAGES["metaxy_sql.ext"])


@pytest.mark.parametrize("module", CORE)
def test_core_never_imports_an_extra(module: str) -> None:
    extras = sorted(i for i in _imports(module, MODULES[module])
                    if i.split(".")[0] in EXTRAS)
    assert not extras, f"{module} imports optional integrations {extras}; only ext/ may"


def _cycle() -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                return [*path[path.index(n):], n]
            if n not in state and (found := visit(n)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(GRAPH):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_circle() -> None:
    cycle = _cycle()
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_checker_sees_a_circle_and_an_upward_import() -> None:
    """The checks above can fail: a planted circle and upward import are found."""
    saved = {m: set(v) for m, v in GRAPH.items()}
    try:
        GRAPH["metaxy_sql.model.names"].add("metaxy_sql.engine.store")
        assert _cycle() is not None
        assert _stage("metaxy_sql.engine.store") > _stage("metaxy_sql.model.names")
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


#: The only places that import by name at run time: the config file's entrypoints (user
#: modules) and ``engine.increment.load_extension``, the one hook through which an increment
#: or a store hands itself to an integration (``to_ibis()``), loaded on first call only.
DYNAMIC_IMPORTS = {"metaxy_sql.model.config", "metaxy_sql.engine.increment"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_dynamic_imports_only_through_the_extension_hook(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "attr", getattr(n.func, "id", "")) in ("import_module",
                                                                         "__import__")]
    assert not calls or module in DYNAMIC_IMPORTS, (
        f"{module} imports by name at run time; import statically (down the stages) or go "
        "through engine.increment.load_extension")

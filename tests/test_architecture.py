"""The layering rule: lower floors never import higher ones (README, Architecture)."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "recaudit"

# module prefix → floor; the longest matching prefix wins
FLOORS = {
    "recaudit.results": 1,
    "recaudit.metrics": 1,
    "recaudit.registry": 1,
    "recaudit.data": 1,
    "recaudit.testing": 1,
    "recaudit": 1,  # the package __init__ (version only)
    "recaudit.adapters": 2,
    "recaudit.text": 2,
    "recaudit.checks": 2,
    "recaudit.check_parsing": 2,
    "recaudit.evidence": 2,
    "recaudit.baselines": 2,
    "recaudit.probes": 3,
    "recaudit.attacks": 3,
    "recaudit.tallrec": 3,
    "recaudit.unlearning": 3,
    "recaudit.federated": 3,
    "recaudit.audits": 4,
    "recaudit.reports": 4,
    "recaudit.cli": 5,
    "recaudit.__main__": 5,
}
# floor-3 method packages may share the trainer but not each other's internals
SIBLINGS_ALLOWED = {("recaudit.unlearning", "recaudit.tallrec"), ("recaudit.federated", "recaudit.tallrec"),
                    ("recaudit.attacks", "recaudit.tallrec")}


def _floor(module: str) -> tuple[str, int]:
    best = max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)
    return best, FLOORS[best]


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(path: Path, module: str):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level] if not path.name == "__init__.py" else module.split(".")[: len(module.split(".")) - node.level + 1]
                yield ".".join(base + ([node.module] if node.module else []))
            elif node.module:
                yield node.module


@pytest.mark.parametrize("module,path", list(_modules()), ids=lambda x: str(x) if isinstance(x, str) else "")
def test_no_upward_imports(module, path):
    own_prefix, own_floor = _floor(module)
    bad = []
    for imported in _imports(path, module):
        if not imported.startswith("recaudit"):
            continue
        prefix, floor = _floor(imported)
        if floor > own_floor:
            bad.append(f"{imported} (floor {floor})")
        elif floor == own_floor == 3 and prefix != own_prefix and (own_prefix, prefix) not in SIBLINGS_ALLOWED:
            bad.append(f"{imported} (sibling method package)")
    assert not bad, f"{module} (floor {own_floor}) imports {bad}"


def test_reports_read_only_results():
    for module, path in _modules():
        if module.startswith("recaudit.reports"):
            deps = {i for i in _imports(path, module) if i.startswith("recaudit") and not i.startswith("recaudit.reports")}
            assert deps <= {"recaudit.results", "recaudit"}, f"{module} imports {deps}"


def _module_graph() -> dict[str, set[str]]:
    """Module → the recaudit modules it imports (resolved to modules that exist)."""
    mods = {m: p for m, p in _modules()}
    graph: dict[str, set[str]] = {}
    for module, path in mods.items():
        deps = set()
        for imported in _imports(path, module):
            if not imported.startswith("recaudit"):
                continue
            # `from recaudit.x import y` may name a submodule y or a symbol of x: take the longest existing module
            parts = imported.split(".")
            while parts and ".".join(parts) not in mods:
                parts.pop()
            if parts and ".".join(parts) != module:
                deps.add(".".join(parts))
        graph[module] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# import circles that exist today; this list may only shrink (it is empty: keep it so).
KNOWN_CYCLES: list[list[str]] = []


def test_no_new_import_circle():
    found = _cycles(_module_graph())
    new = [c for c in found if c not in KNOWN_CYCLES]
    assert not new, f"new import circles: {new}"
    gone = [c for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"these circles are gone: remove them from KNOWN_CYCLES: {gone}"


MAX_LINES = 450
# modules over the limit today, with their size; each may only shrink (then leave this list)
OVERSIZE: dict[str, int] = {}


def test_no_module_grows_past_450_lines():
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in _modules()}
    over = {m: n for m, n in sizes.items() if n > MAX_LINES}
    grown = {m: n for m, n in over.items() if n > OVERSIZE.get(m, MAX_LINES)}
    assert not grown, f"modules over {MAX_LINES} lines (or grown past their recorded size): {grown}"
    shrunk = {m: n for m, n in OVERSIZE.items() if sizes.get(m, 0) < n}
    assert not shrunk, f"these modules shrank: lower or remove their OVERSIZE entries: {shrunk}"

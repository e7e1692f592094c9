"""The engine's one import rule (docs/engine.md, "Layers"), checked on the source.

Every module of ilsvrc/ and of the front ends is parsed (function-local imports
included) and each import of the package is held against the layer of the module
that makes it.  A new upward import, an import circle, write importing verify (or
the reverse), an engine module with a command-line `main`, a function-local import
of anything but an optional dependency in the engine (ilsvrc/), a module over 400 lines or a function over
60 fails here, naming the file and line.
"""

import ast
import os

import pytest

from conftest import REPO

# Layers, ground up.  A module may import its own layer (no circle) or lower ones.
GROUND = 0
LAYERS = {
    "ilsvrc/records": 1, "ilsvrc/storage": 1,
    "ilsvrc/sources": 2,
    "ilsvrc/readerfiles": 3,
    "ilsvrc/write": 4, "ilsvrc/verify": 4,
    "ilsvrc/formats": 5,
    "ilsvrc/cli": 6,
    "ilsvrc/testing": 7, "official": 7, "slim": 7, "bench": 7,
}
# Pairs of packages on one layer that never import each other.
APART = [("ilsvrc/records", "ilsvrc/storage"), ("ilsvrc/write", "ilsvrc/verify")]
# Function-local imports are for optional dependencies only.
OPTIONAL = ("tensorflow", "google", "google_crc32c", "requests", "kaggle", "pyarrow",
            "huggingface_hub", "nvidia", "tensorflow_datasets", "absl")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60
SIZE_CHECKED = ("ilsvrc", "official", "slim", "metalhead")


def _modules():
    out = {}
    for top in ("ilsvrc", "official", "slim", "metalhead", "bench"):
        for d, _, files in os.walk(os.path.join(REPO, top)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(d, f)
                    out[os.path.relpath(path, REPO)] = path
    return out


def _name_of(rel):
    """'ilsvrc/sources/tree.py' -> 'ilsvrc.sources.tree' (packages: their __init__)."""
    name = rel[:-3].replace("/", ".")
    return name[:-len(".__init__")] if name.endswith(".__init__") else name


def _place(rel):
    """The package a module belongs to for the rule ('ilsvrc' for the ground)."""
    for pkg in sorted(LAYERS, key=len, reverse=True):
        if rel.startswith(pkg + "/"):
            return pkg
    if rel.startswith("ilsvrc/"):
        return "ilsvrc" if rel.count("/") == 1 else rel.rsplit("/", 1)[0]
    return rel.split("/", 1)[0]


def _layer(rel):
    place = _place(rel)
    if place == "ilsvrc":
        return GROUND
    return LAYERS.get(place, LAYERS.get(place.split("/")[0]))


def _imports(tree, known):
    """(line, imported module name, function-local?) of every import of a module of
    this repository, plus (line, top-level name, True) of every function-local
    import of anything else."""
    found = []

    def visit(node, local):
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    found.append((child.lineno, a.name, local))
            elif isinstance(child, ast.ImportFrom) and not child.level:
                mod = child.module or ""
                for a in child.names:
                    full = mod + "." + a.name
                    found.append((child.lineno, full if full in known else mod, local))
            visit(child, inner)
    visit(tree, False)
    return found


@pytest.fixture(scope="module")
def graph():
    return read_graph()


def read_graph():
    """(modules, import edges, function-local imports of other packages, trees)."""
    mods = _modules()
    by_name = {_name_of(rel): rel for rel in mods}
    edges, local_other, trees = {}, [], {}
    for rel, path in sorted(mods.items()):
        with open(path, encoding="utf-8") as f:
            tree = trees[rel] = ast.parse(f.read(), path)
        for line, name, local in _imports(tree, by_name):
            target = by_name.get(name)
            if target is None and name.split(".")[0] in ("ilsvrc", "official", "slim",
                                                          "metalhead", "bench"):
                parent = name.rsplit(".", 1)[0]
                target = by_name.get(parent)
            if target is not None:
                edges.setdefault(rel, []).append((line, target, local))
            elif local and rel.startswith("ilsvrc/"):
                local_other.append((rel, line, name))
    return mods, edges, local_other, trees


def _violations(edges):
    bad = []
    for rel, targets in edges.items():
        mine, place = _layer(rel), _place(rel)
        for line, target, local in targets:
            if target == rel:
                continue
            if rel.startswith("metalhead/"):
                if target.startswith("ilsvrc/") and _layer(target) != GROUND:
                    bad.append("%s:%d imports %s: metalhead/ uses only the ground "
                               "layer" % (rel, line, target))
                continue
            theirs = _layer(target)
            if theirs is None or mine is None:
                continue
            if theirs > mine:
                bad.append("%s:%d imports %s, a higher layer (%d > %d)"
                           % (rel, line, target, theirs, mine))
            for a, b in APART:
                if {place, _place(target)} == {a, b}:
                    bad.append("%s:%d imports %s: %s and %s never import each other"
                               % (rel, line, target, a, b))
            if local and rel.startswith("ilsvrc/"):
                bad.append("%s:%d imports %s inside a function: import the package's "
                           "own modules at the top" % (rel, line, target))
    return bad


def _circles(edges):
    """Strongly connected components of more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for _, w, _ in edges.get(v, ()):
            if w == v:
                continue
            if w not in index:
                connect(w)
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
    for v in sorted(edges):
        if v not in index:
            connect(v)
    return out


def test_no_import_goes_up_a_layer_or_between_write_and_verify(graph):
    _, edges, _, _ = graph
    assert _violations(edges) == []


def test_no_import_circle(graph):
    _, edges, _, _ = graph
    assert _circles(edges) == []


def test_function_local_imports_are_only_for_optional_dependencies(graph):
    _, _, local_other, _ = graph
    bad = ["%s:%d imports %s inside a function (only optional dependencies may be "
           "imported late)" % (rel, line, name) for rel, line, name in local_other
           if name.split(".")[0] not in OPTIONAL]
    assert bad == []


def test_only_the_front_ends_parse_arguments(graph):
    mods, _, _, trees = graph
    bad = []
    for rel, tree in trees.items():
        if not rel.startswith("ilsvrc/") or rel.startswith(("ilsvrc/cli/",
                                                             "ilsvrc/testing/")):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "main":
                bad.append("%s:%d defines main()" % (rel, node.lineno))
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and \
                    node.left.id == "__name__":
                bad.append("%s:%d runs as a script" % (rel, node.lineno))
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "")]
                if "argparse" in names or any(n and n.startswith("absl") for n in names):
                    bad.append("%s:%d imports an argument parser" % (rel, node.lineno))
    assert bad == []


def test_no_module_over_400_lines_and_no_function_over_60(graph):
    mods, _, _, trees = graph
    bad = []
    for rel, tree in trees.items():
        if not rel.startswith(SIZE_CHECKED):
            continue
        with open(mods[rel], encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n > MAX_MODULE_LINES:
            bad.append("%s: %d lines" % (rel, n))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    bad.append("%s:%d %s() is %d lines" % (rel, node.lineno, node.name,
                                                           length))
    assert bad == []


def test_the_rule_catches_an_upward_import():
    """The checker itself: an import from a lower layer to a higher one, a circle and
    write <-> verify are each reported."""
    edges = {"ilsvrc/sources/tree.py": [(3, "ilsvrc/formats/slim.py", False)],
             "ilsvrc/formats/slim.py": [(4, "ilsvrc/sources/tree.py", False)],
             "ilsvrc/write/driver.py": [(5, "ilsvrc/verify/reread.py", False)],
             "ilsvrc/plan.py": [(6, "ilsvrc/contract.py", True)]}
    bad = _violations(edges)
    assert any("ilsvrc/sources/tree.py:3 imports ilsvrc/formats/slim.py" in b for b in bad)
    assert any("never import each other" in b for b in bad)
    assert any("inside a function" in b for b in bad)
    assert _circles(edges) == [["ilsvrc/formats/slim.py", "ilsvrc/sources/tree.py"]]


def report():
    """Every problem the tests above would name, one a line (python tests/test_layers.py)."""
    mods, edges, local_other, trees = read_graph()
    lines = _violations(edges) + ["circle: " + " -> ".join(c) for c in _circles(edges)]
    lines += ["%s:%d late import of %s" % (r, n, m) for r, n, m in local_other
              if m.split(".")[0] not in OPTIONAL]
    return lines


if __name__ == "__main__":
    print("\n".join(report()) or "no problems")

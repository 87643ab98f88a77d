"""The package's layout: one concern per module, arrows one way, torch blocks free of
scikit-learn, and a map in CONTRIBUTING.md that names every module."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "sknnmfdiff"

#: Top-level parts of the package, lowest first: a module may import from its own
#: layer's part or from lower layers, never from a higher one (CONTRIBUTING.md).
LAYERS = [
    ("paper", "_jsonable", "_persistence", "_seeding", "_constraints", "_warnings", "nn"),  # constants, helpers, plain torch blocks
    ("datasets",),  # images
    ("decomposition",),  # -> features
    ("feature_selection",),  # -> selection
    ("purification",),  # -> purification
    ("classifier", "adversarial"),  # -> classifier, and its adversarial training
    ("pipeline", "smoothing", "model_file", "_torch_state", "_input_checks"),  # above purifier and classifier
    ("torch_adapter", "onnx_export"),  # adapter on top; its ONNX form
    ("evaluation", "plots"),  # evaluation and figures on top
    ("model_selection",),  # robustness-aware scoring for scikit-learn's search
    ("report", "_runs", "_sweep_output"),  # what the long runs write and share
    ("study", "_study_defences", "sweep"),  # study and sweep above them
    ("cli", "_cli_parser", "__main__"),  # CLI on top
]
LAYER = {part: i for i, parts in enumerate(LAYERS) for part in parts}
MAX_LINES = 650  # "about 600"


def _module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(name, path):
    """Every sknnmfdiff module that ``name`` imports, at any depth of its code."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES
                       else f"{base}:{a.name}" if base == "sknnmfdiff" else base
                       for a in node.names]
        else:
            continue
        out.update(t for t in targets if t.split(":")[0] == "sknnmfdiff" or t.startswith("sknnmfdiff."))
    out.discard(name)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _part(module):
    parts = module.split(":")[0].split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_part_has_a_layer():
    parts = {_part(m) for m in MODULES} - {None}
    assert parts <= set(LAYER), f"parts without a layer: {sorted(parts - set(LAYER))}"


def test_no_import_cycle():
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for dep in sorted(d for d in GRAPH.get(m, ()) if ":" not in d):
            if state.get(dep) == "open":
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[m] = "done"

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_imports_point_down_the_layers():
    bad = []
    for m, deps in GRAPH.items():
        if _part(m) is None:  # the package's lazy facade
            continue
        for dep in deps:
            if dep.startswith("sknnmfdiff:"):
                # Through the lazy facade only its version string, never a public name
                # (that would hide an import of a higher layer).
                if dep != "sknnmfdiff:__version__":
                    bad.append(f"{m} -> {dep}")
            elif LAYER[_part(dep)] > LAYER[_part(m)]:
                bad.append(f"{m} -> {dep}")
    assert not bad, "imports against the layers: " + ", ".join(sorted(bad))


def test_torch_blocks_know_nothing_of_scikit_learn():
    for name, path in MODULES.items():
        if _part(name) != "nn":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                    else [])
            for mod in mods:
                assert mod.split(".")[0] not in {"sklearn", "skorch", "sknnmfdiff"}, (name, mod)
        assert all(_part(d) == "nn" for d in GRAPH[name]), (name, GRAPH[name])
    code = ("import sys, sknnmfdiff.nn; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'skorch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_no_module_is_too_long():
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_contributing_map_names_every_module():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    missing = [p.relative_to(PKG).as_posix() for p in MODULES.values()
               if f"`{p.relative_to(PKG).as_posix()}`" not in text]
    assert not missing, f"CONTRIBUTING.md's map does not name: {missing}"


def test_contributing_map_layers_match_the_checked_layers():
    """The layer numbers of CONTRIBUTING.md's map are the ones this file enforces."""
    rows = [line.split("|")[1:4] for line in (ROOT / "CONTRIBUTING.md").read_text().splitlines()
            if line.startswith("| ") and "`" in line.split("|")[2]]
    checked = 0
    for layer, module, _ in rows:
        module = module.strip().strip("`")
        number = layer.strip().split(" ")[0]
        if not number.isdigit():
            continue  # the facade
        part = module.split("/")[0].removesuffix(".py")
        assert LAYER[part] == int(number), f"{module}: map says layer {number}, LAYERS {LAYER[part]}"
        checked += 1
    assert checked == len(MODULES) - 1  # every module but the facade

"""The house's layers, read from the code: every import of every module, lazy ones included.

- ``dx7`` imports nothing of ours;
- ``hardware`` imports only ``dx7``;
- conversion's device-side reader (``bundle``, ``keys``, ``runtime``, ``output_grid``, ``voice_bank``,
  ``knob_masks``) only ``dx7``;
- ``device`` never imports ``host_training``, torch, tensorflow or dexed, not even inside a function;
- no module imports, directly or through others, a module that imports it back.

``dxmacro.errors`` (the one error type every layer raises, caught at the CLI edge) imports
nothing and may be imported by every layer but ``dx7``, which has its own ``DX7Error``.
Read with ``ast`` only: nothing of the project is imported to check it.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dx7", "hardware", "conversion", "device", "host_training", "dxmacro")
ERRORS = "dxmacro.errors"
DEVICE_READER = ("conversion.bundle", "conversion.keys", "conversion.runtime", "conversion.output_grid",
                 "conversion.voice_bank", "conversion.knob_masks")
HEAVY = ("torch", "tensorflow", "tf_keras", "dexed", "host_training")


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of our packages under ``root``."""
    found = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(name: str, path: Path) -> Iterator[tuple[str, ...]]:
    """Every name ``path`` imports, anywhere in it (module level, functions, TYPE_CHECKING), plus
    ``importlib.import_module("literal")``: (module,) or, for ``from module import a``, (module, a)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((a.name,) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            yield from ((base, a.name) for a in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield (node.args[0].value,)


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(our module -> our modules it imports, our module -> top-level outside packages it imports)."""
    mods = modules(root)
    ours: dict[str, set[str]] = {m: set() for m in mods}
    outside: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for imported in imported_names(m, path):
            n = ".".join(imported)  # "from pkg import mod" names pkg.mod, "from pkg.mod import func" pkg.mod
            if n.split(".")[0] not in PACKAGES:
                outside[m].add(n.split(".")[0])
                continue
            while n and n not in mods:
                n = n.rpartition(".")[0]
            if n and n != m:
                ours[m].add(n)
    return ours, outside


def in_layer(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def layer_violations(root: Path) -> list[str]:
    ours, outside = import_graph(root)
    bad = []
    for m, deps in sorted(ours.items()):
        for d in sorted(deps):
            if in_layer(m, "dx7") and not in_layer(d, "dx7"):
                bad.append(f"{m} imports {d}: dx7 imports nothing of ours")
            elif in_layer(m, "hardware") and not (in_layer(d, "hardware") or in_layer(d, "dx7") or d == ERRORS):
                bad.append(f"{m} imports {d}: hardware may import only dx7")
            elif m in DEVICE_READER and not (d in DEVICE_READER or in_layer(d, "dx7") or d == ERRORS):
                bad.append(f"{m} imports {d}: conversion's device-side reader may import only dx7")
            elif in_layer(m, "device") and in_layer(d, "host_training"):
                bad.append(f"{m} imports {d}: the device never imports host_training")
        if in_layer(m, "device") or m in DEVICE_READER:
            bad += [f"{m} imports {x}: not on the device" for x in sorted(outside[m] & set(HEAVY))]
    return bad


def cycles(root: Path) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    graph, _ = import_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_layer_imports_only_what_it_may():
    assert modules(ROOT)["device.control.loop"].is_file()  # the reader sees the real tree
    assert layer_violations(ROOT) == []


def test_no_module_imports_a_module_that_imports_it_back():
    assert cycles(ROOT) == []


# -- the checks fail when they should: the real tree with one forbidden line added ----------------
@pytest.fixture
def tree(tmp_path):
    """A copy of the project's packages (sources only) that a test may spoil."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "default_model"))
    assert layer_violations(tmp_path) == [] and cycles(tmp_path) == []
    return tmp_path


def _add(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + "\n\n" + line + "\n")


@pytest.mark.parametrize("module, line, expected", [
    ("dx7.voice", "from hardware.clock import RealClock", "dx7.voice imports hardware.clock: dx7 imports nothing"),
    ("hardware.gpio", "import device.control.loop", "hardware.gpio imports device.control.loop: hardware may"),
    ("conversion.runtime", "def f():\n    from device.control.ports import Anchor",
     "conversion.runtime imports device.control.ports: conversion's device-side reader"),
    ("device.control.loop", "def f():\n    from host_training.audio.render import DexedRenderer",
     "device.control.loop imports host_training.audio.render: the device never imports host_training"),
    ("device.bench.demo", "def f():\n    import dexed", "device.bench.demo imports dexed: not on the device"),
    ("device.twins.sim", "if False:\n    import torch.nn", "device.twins.sim imports torch: not on the device"),
])
def test_a_forbidden_import_is_found(tree, module, line, expected):
    _add(tree, module, line)
    assert any(v.startswith(expected) for v in layer_violations(tree)), layer_violations(tree)


def test_an_import_circle_is_found(tree):
    _add(tree, "host_training.model.flows", "def f():\n    from host_training.model import vae")
    assert ["host_training.model.flows", "host_training.model.vae"] in cycles(tree)
    _add(tree, "hardware.clock", "import hardware.gpio")  # gpio imports clock: a second, separate circle
    assert ["hardware.clock", "hardware.gpio"] in cycles(tree)

"""The layout by role: each folder imports only the folders below it, and the core no framework.

    schemas -> rewards -> workarounds -> agents -> topologies -> brokers -> tools -> bench

(README.md, "Layout"). A test, so an import against the grain fails CI.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["schemas", "rewards", "workarounds", "agents", "topologies", "brokers", "tools", "bench"]
FRAMEWORKS = {"faust", "mode", "aiokafka", "kafka", "rocksdict", "prometheus_client"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_every_folder_imports_only_the_folders_below_it() -> None:
    against = []
    for rank, layer in enumerate(LAYERS):
        for path in sorted((ROOT / layer).rglob("*.py")):
            for name in imports(path) & set(LAYERS):
                if LAYERS.index(name) > rank:
                    against.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not against, against


def test_the_pure_core_imports_no_framework() -> None:
    for layer in ("schemas", "rewards"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            assert not imports(path) & FRAMEWORKS, path.relative_to(ROOT)


def test_every_layer_is_a_package_with_modules() -> None:
    for layer in LAYERS:
        assert len(list((ROOT / layer).glob("*.py"))) >= 2, layer

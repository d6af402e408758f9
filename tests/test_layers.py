"""The layering rules of README's layout section, kept true by walking every module's
imports (function-local and TYPE_CHECKING ones included: a lazy import is still a
dependency).

    drivers/, offline_cache/      never import reader/, nor each other (each can be read,
                                  tested and replaced alone), except that drivers/ may
                                  import offline_cache.loghash, the one short hash for logs
    offline_cache.loghash         imports nothing of the project (a leaf, so the exception
                                  above brings nothing else along)
    reader.gatepass               imports nothing else of reader/
    reader.gate                   imports no command (reader.cli), benchmark (reader.bench) or
                                  daemon (reader.daemon) module; no argparse, no print()
    reader.daemon                 imports no command or benchmark module
    reader.demo                   the same: an application of the daemon, not of the commands
    tests/                        import no benchmark (what they share is in drivers/ or
                                  tests/support/)

README's layout section names every module, so the folder names lead to any behaviour.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("drivers", "offline_cache", "reader")
PROJECT = PACKAGES

# (modules the rule is about, imports they must not make, imports allowed despite that)
RULES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("offline_cache.loghash", PROJECT, ("offline_cache.loghash",)),
    ("drivers", ("reader", "offline_cache"), ("offline_cache.loghash",)),
    ("offline_cache", ("reader", "drivers"), ()),
    ("reader.gatepass", ("reader",), ("reader.gatepass",)),
    ("reader.gate", ("reader.cli", "reader.bench", "reader.daemon", "argparse"), ()),
    ("reader.daemon", ("reader.cli", "reader.bench"), ()),
    ("reader.demo", ("reader.cli", "reader.bench"), ()),
    ("tests", ("reader.bench",), ()),
]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """Every module ``source`` imports, wherever the statement is: (line, absolute name).
    ``from X import y`` counts as X and as X.y (y may be a submodule)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def project_modules() -> Iterator[tuple[str, Path]]:
    for package in (*PACKAGES, "tests"):
        for path in sorted((ROOT / package).rglob("*.py")):
            yield module_name(path), path


def test_the_walker_sees_local_relative_and_from_imports() -> None:
    source = (
        "import os\nfrom . import sibling\nfrom ..gate import state\n"
        "def later():\n    from reader.cli.verify import run\n"
        "if TYPE_CHECKING:\n    import drivers.camera\n"
    )
    found = {name for _line, name in imports(source, "reader.gate.deciding")}
    assert {"os", "reader.gate.sibling", "reader.gate.state", "reader.cli.verify", "drivers.camera"} <= found


@pytest.mark.parametrize(("scope", "forbidden", "allowed"), RULES, ids=[rule[0] for rule in RULES])
def test_imports_point_down_the_layers(scope: str, forbidden: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    checked = 0
    broken = []
    for module, path in project_modules():
        if not _within(module, scope):
            continue
        checked += 1
        for line, name in imports(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            if any(_within(name, bad) for bad in forbidden) and not any(_within(name, ok) for ok in allowed):
                broken.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert checked or scope == "reader.daemon", f"no module found under {scope}"
    assert broken == [], "\n".join(broken)


def test_services_neither_print_nor_parse_arguments() -> None:
    """reader.gate is shared by every entry point: what it has to say is data or a log
    record, never a line on stdout (the daemon has no terminal, a command prints its own)."""
    printing = []
    for module, path in project_modules():
        if not _within(module, "reader.gate"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert printing == []


def test_lazy_tables_name_modules_of_their_layer() -> None:
    """The command and benchmark tables load modules by name: each name must exist, and sit
    in the layer the table belongs to (a command in reader.cli, a benchmark in reader.bench)."""
    from reader.cli import COMMANDS
    from reader.cli.bench import KINDS

    targets = [(command.target, "reader.cli") for command in COMMANDS.values()]
    targets += [(target, "reader.bench") for target in KINDS.values()]
    modules = dict(project_modules())
    for target, layer in targets:
        module, _, function = target.partition(":")
        assert _within(module, layer) and module in modules and function, target
        assert f"def {function}(" in modules[module].read_text(encoding="utf-8"), target


def test_the_readme_layout_names_every_module() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):].split("\n## ", 1)[0]
    missing = [module for module, path in project_modules()
               if not module.startswith("tests") and path.name != "__main__.py"
               and not re.search(rf"\b{module.rpartition('.')[2]}\b", layout)]
    assert missing == []

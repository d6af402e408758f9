"""The project's error tree (reader/errors.py draws it): one root per package that may not
import another, every public exception under its package's root, each saying when it is
raised, and the drawing naming every one of them."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import drivers.errors
import offline_cache.errors
import reader.errors
import reader.gatepass.errors

ROOT = Path(__file__).resolve().parent.parent
ROOTS = {
    reader.errors: reader.errors.GateReaderError,
    reader.gatepass.errors: reader.gatepass.errors.GatePassError,
    offline_cache.errors: offline_cache.errors.CacheError,
    drivers.errors: drivers.errors.DriverError,
}


def _classes(module: object) -> list[type]:
    return [obj for _name, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__]  # type: ignore[attr-defined]


def test_every_error_descends_from_its_package_root_and_says_when() -> None:
    drawing = reader.errors.__doc__ or ""
    for module, root in ROOTS.items():
        for cls in _classes(module):
            assert issubclass(cls, root), cls
            assert cls.__doc__ and len(cls.__doc__.split()) >= 8, f"{cls.__name__} does not say when it is raised"
            assert f" {cls.__name__}" in drawing, f"reader/errors.py does not draw {cls.__name__}"
    # The core's errors are ValueErrors: a caller that knows only the builtin still catches them.
    assert all(issubclass(cls, ValueError) for cls in _classes(reader.gatepass.errors))


def test_no_public_exception_is_defined_outside_the_errors_modules() -> None:
    """A new public exception elsewhere would be a root nobody catches; private ones (a
    driver's internal signal) stay where they are used."""
    homes = {Path(module.__file__).resolve() for module in ROOTS}  # type: ignore[arg-type]
    strays = []
    for package in ("reader", "drivers", "offline_cache"):
        for path in (ROOT / package).rglob("*.py"):
            if path.resolve() in homes:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    bases = {getattr(base, "id", getattr(base, "attr", "")) for base in node.bases}
                    if any(name.endswith(("Error", "Exception", "Rejected", "Failed")) for name in bases):
                        strays.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert strays == []

"""The layering rules of DESIGN.md, read from the imports of every module.

- The kit (``iotkit``) depends on nothing above it: no services, gateway, tools,
  suite or benchmarks.
- A ``service.py`` holds logic only: no grpc, no generated ``iot.*`` code, no SQLAlchemy.
- A ``service.py`` speaks domain values: it imports no ORM model (a store's rows).
- A ``servicer.py`` translates between gRPC and the service: it imports no store.
- The gateway is generic: it imports no service.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import DeclarativeBase

ROOT = Path(__file__).resolve().parent.parent


def imports_of(source: str, package: tuple[str, ...]) -> Iterator[str]:
    """Absolute module names ``source`` imports, relative imports resolved against ``package``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join(part for part in (*base, node.module or "") if part)
            yield module
            # ``from services.x import store`` imports the module ``store`` too.
            yield from (f"{module}.{alias.name}" for alias in node.names)


def imported_modules(path: Path) -> Iterator[str]:
    """Absolute module names the module at ``path`` imports."""
    return imports_of(path.read_text(), path.relative_to(ROOT).with_suffix("").parts[:-1])


def modules(pattern: str) -> list[Path]:
    return sorted(ROOT.glob(pattern))


def breaks(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    """``path: module`` for each import of ``paths`` that is or lies under a forbidden name."""
    found = []
    for path in paths:
        for module in imported_modules(path):
            if any(module == name or module.startswith(f"{name}.") for name in forbidden):
                found.append(f"{path.relative_to(ROOT)}: {module}")
    return sorted(set(found))


def store_modules() -> tuple[str, ...]:
    """Every store module of the services, by its dotted name."""
    return tuple(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in modules("services/**/store.py")
    )


def test_the_kit_depends_on_nothing_above_it() -> None:
    kit = modules("iotkit/**/*.py")
    assert kit, "no kit modules found"
    assert breaks(kit, ("services", "gateway", "tools", "iotsuite", "bench")) == []


def test_services_hold_logic_only() -> None:
    services = modules("services/**/service.py")
    assert len(services) >= 10, "every API has a service.py"
    assert breaks(services, ("grpc", "grpc_status", "iot", "sqlalchemy")) == []


def orm_models(names: Iterable[str]) -> list[str]:
    """The names among ``names`` (dotted, under ``services``) that are SQLAlchemy models."""
    found = []
    for name in names:
        module, _, attribute = name.rpartition(".")
        if not module.startswith("services."):
            continue
        try:
            value = getattr(importlib.import_module(module), attribute, None)
        except ImportError:
            continue  # ``name`` is a module itself, checked by the rules above
        if isinstance(value, type) and issubclass(value, DeclarativeBase):
            found.append(name)
    return found


def test_services_return_domain_values_not_rows() -> None:
    rows = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules("services/**/service.py")
        for name in orm_models(imported_modules(path))
    ]
    assert rows == []


def test_the_row_check_sees_a_model() -> None:
    # The rule above must be able to fail: a store's model is seen, a module or a value is not.
    store = "services.devices.devices.store"
    assert orm_models([f"{store}.DeviceRow", store, f"{store}.select", "grpc.aio"]) == [
        f"{store}.DeviceRow"
    ]


def test_servicers_import_no_store() -> None:
    servicers = modules("services/**/servicer.py")
    assert len(servicers) >= 10, "every API has a servicer.py"
    stores = store_modules()
    assert stores, "no store modules found"
    assert breaks(servicers, stores) == []


def test_the_gateway_imports_no_service() -> None:
    assert breaks(modules("gateway/**/*.py"), ("services", "iotsuite")) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import grpc", {"grpc"}),
        ("from sqlalchemy import select", {"sqlalchemy", "sqlalchemy.select"}),
        ("from . import store", {"services.demo", "services.demo.store"}),
        ("from .store import Rows", {"services.demo.store", "services.demo.store.Rows"}),
    ],
)
def test_imports_are_read_as_absolute_names(source: str, expected: set[str]) -> None:
    # The reader must see every spelling of an import, or a rule could not fail.
    assert set(imports_of(source, ("services", "demo"))) == expected

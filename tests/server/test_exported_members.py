"""The public surface of ``skillwire.server`` and its packages is exactly their ``__all__``."""

from __future__ import annotations
import __future__

import importlib
import pkgutil
from types import ModuleType

import pytest

import skillwire.server as server

PACKAGES = [server] + [
    importlib.import_module(info.name)
    for info in pkgutil.walk_packages(server.__path__, server.__name__ + ".")
    if info.ispkg
]
MODULES = [
    importlib.import_module(info.name)
    for info in pkgutil.walk_packages(server.__path__, server.__name__ + ".")
    if not info.ispkg
]


def public_names(module: ModuleType) -> set[str]:
    """Public attributes that are neither modules nor ``from __future__`` feature flags."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, ModuleType | __future__._Feature)
    }


def test_the_package_exports_what_an_app_author_needs() -> None:
    """skillwire.server's __all__: apps, skills, their context and streamed outputs, config,
    the ASGI app."""
    assert set(server.__all__) == {
        "App",
        "Config",
        "Context",
        "SkillError",
        "StreamedOutput",
        "create_app",
        "load_config",
    }
    assert server.SkillError is importlib.import_module("skillwire.protocol").SkillError


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_public_attribute_of_a_package_is_in_all(package: ModuleType) -> None:
    """A package's public attributes are exactly its __all__, each once (no leaked imports)."""
    assert len(package.__all__) == len(set(package.__all__))
    assert public_names(package) == set(package.__all__)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_public_objects_live_in_private_modules(package: ModuleType) -> None:
    """Classes and functions a package exports are defined in a private ``_module`` (of the
    server, or the protocol's), never in an ``__init__``."""
    for name in package.__all__:
        where = getattr(getattr(package, name), "__module__", None)
        if where is None or not where.startswith("skillwire."):  # constants, type aliases
            continue
        assert where.rsplit(".", 1)[1].startswith("_"), f"{package.__name__}.{name} in {where}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_module_is_private_and_declares_all(module: ModuleType) -> None:
    """Every module below a package is private (``_name``) and lists its names in __all__,
    each of which exists."""
    assert module.__name__.rsplit(".", 1)[1].startswith("_"), module.__name__
    assert isinstance(module.__all__, list)
    assert [name for name in module.__all__ if not hasattr(module, name)] == []

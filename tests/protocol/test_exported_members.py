"""The public surface of ``skillwire.protocol`` is exactly its ``__all__``."""

from __future__ import annotations
import __future__

import importlib
import pkgutil
from types import ModuleType

import skillwire.protocol as protocol

PRIVATE_MODULES = [
    importlib.import_module(info.name)
    for info in pkgutil.iter_modules(protocol.__path__, protocol.__name__ + ".")
]


def public_names(module: ModuleType) -> set[str]:
    """Public attributes that are neither modules nor ``from __future__`` feature flags."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, ModuleType | __future__._Feature)
    }


def test_all_has_no_duplicates() -> None:
    """Each name appears in __all__ once."""
    assert len(protocol.__all__) == len(set(protocol.__all__))


def test_every_name_in_all_exists() -> None:
    """Every name listed in __all__ is an attribute of the package."""
    missing = [name for name in protocol.__all__ if not hasattr(protocol, name)]
    assert missing == []


def test_every_public_attribute_is_in_all() -> None:
    """Every public non-module attribute of the package is listed in __all__."""
    assert public_names(protocol) == set(protocol.__all__) - {"lifecycle"}


def test_lifecycle_is_exported_as_a_namespace() -> None:
    """``lifecycle`` is the _lifecycle module, and its own __all__ names exist."""
    assert protocol.lifecycle is importlib.import_module("skillwire.protocol._lifecycle")
    assert "lifecycle" in protocol.__all__
    assert all(hasattr(protocol.lifecycle, name) for name in protocol.lifecycle.__all__)


def test_private_modules_are_re_exported() -> None:
    """__all__ is the union of the private modules' __all__ (lifecycle as one name)."""
    assert all(module.__name__.rsplit(".", 1)[1].startswith("_") for module in PRIVATE_MODULES)
    exported: set[str] = {"lifecycle"}
    for module in PRIVATE_MODULES:
        if module.__name__.endswith("._lifecycle"):
            continue
        for name in module.__all__:
            assert getattr(protocol, name) is getattr(module, name), name
        exported |= set(module.__all__)
    assert set(protocol.__all__) == exported

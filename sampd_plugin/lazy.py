"""Lazy package attributes: a package's public names resolved on first use (PEP 562), so that importing the package
imports neither FiftyOne nor torch."""

from importlib import import_module
from typing import Callable, Dict, List, Tuple


def lazy_attributes(package: str, names: Dict[str, str]) -> Tuple[Callable[[str], object], Callable[[], List[str]]]:
    """``(__getattr__, __dir__)`` for a package whose attribute ``name`` lives in module ``names[name]``; a resolved
    name is cached in the package's namespace."""
    import sys

    def __getattr__(name):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__

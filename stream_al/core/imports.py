"""Objects named by an import path (``module:attribute``), for settings that name code."""

from __future__ import annotations

import importlib
from typing import Any


def load_object(path: str, setting: str) -> Any:
    """The object named ``module:attribute``, or a ``ValueError`` naming ``setting``.

    >>> load_object("collections:OrderedDict", "example").__name__
    'OrderedDict'
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{setting} must look like module:attribute, not {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{setting}: cannot import {module_name}: {exc}") from exc
    try:
        target: Any = module
        for part in attribute.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise ValueError(f"{setting}: {module_name} has no {attribute}") from None
    return target

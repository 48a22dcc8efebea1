"""What the registry names, loaded: a built service's settings class and app factory."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from services import registry
from services.runtime.settings import ServiceSettings


def _load(reference: str) -> Any:
    module, name = reference.split(":")
    return getattr(importlib.import_module(module), name)


def settings_class(service: str) -> type[ServiceSettings]:
    found = _load(registry.entry(service).settings_class)
    assert isinstance(found, type) and issubclass(found, ServiceSettings), found
    return found


def app_factory(service: str) -> Callable[..., Any]:
    found = _load(registry.entry(service).app_factory)
    assert callable(found), found
    return found  # type: ignore[no-any-return]

"""Carrier adapters. Every module in this package is imported; adding a carrier is one
module with a `@register`-ed `CarrierAdapter` subclass."""

from __future__ import annotations

import importlib
import pkgutil

from services.shipment.carriers.base import CarrierAdapter, registered
from services.shipment.settings import ShipmentSettings


def _load_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


class Carriers:
    """The adapters of one running service, configured from its settings."""

    def __init__(self, settings: ShipmentSettings) -> None:
        _load_modules()
        self._adapters: dict[str, CarrierAdapter] = {
            code: cls(settings) for code, cls in sorted(registered().items())
        }

    def get(self, code: str) -> CarrierAdapter | None:
        return self._adapters.get(code)

    @property
    def codes(self) -> list[str]:
        return list(self._adapters)

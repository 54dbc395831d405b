"""The services Shotline knows, by id. The first one is the default."""

from __future__ import annotations

from .animatic import AnimaticService
from .base import Service

_SERVICES: dict[str, Service] = {s.id: s for s in (AnimaticService(),)}


def all_services() -> list[Service]:
    return list(_SERVICES.values())


def get(service_id: str) -> Service:
    try:
        return _SERVICES[service_id]
    except KeyError:
        raise KeyError(f"unknown service {service_id!r}") from None

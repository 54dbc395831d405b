"""The services Shotline knows, by id. The first one is the default.

Files store a shot's service by its position in this list: add new services at the end."""

from __future__ import annotations

from .animatic import AnimaticService
from .base import Service
from .comfyui import ComfyUIService
from .fal import FalService
from .luma import LumaService
from .replicate import ReplicateService
from .runway import RunwayService
from .swarmui import SwarmUIService
from .veo import VeoService

_SERVICES: dict[str, Service] = {s.id: s for s in (AnimaticService(), FalService(), ReplicateService(),
                                                   RunwayService(), LumaService(), VeoService(),
                                                   SwarmUIService(), ComfyUIService())}


def all_services() -> list[Service]:
    return list(_SERVICES.values())


def get(service_id: str) -> Service:
    try:
        return _SERVICES[service_id]
    except KeyError:
        raise KeyError(f"unknown service {service_id!r}") from None

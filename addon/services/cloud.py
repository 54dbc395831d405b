"""What every cloud service shares: its key and address from config, and its HTTP client."""

from __future__ import annotations

import threading
from typing import Any, Mapping

from . import config, http
from .base import Capabilities, Service, ServiceError


class CloudService(Service):
    """A paid service reached over HTTPS. Subclasses set the class attributes and `auth_headers`."""

    headers: dict[str, str] = {}  # extra headers every call needs (e.g. an API version)
    catalogue: Mapping[str, Any] = {}  # model id -> an entry with .capabilities(); the first is the default

    def models(self) -> list[str]:
        return list(self.catalogue)

    def capabilities_for(self, model: str) -> Capabilities:
        if not self.catalogue:
            return Capabilities()
        default = next(iter(self.catalogue))
        return self.catalogue.get(model or default, self.catalogue[default]).capabilities()

    @property
    def capabilities(self) -> Capabilities:  # the default model's
        return self.capabilities_for("")
    poll_interval = 5.0
    max_wait = 30 * 60.0  # a job still running after this is lost: cancelled where the service can

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @property
    def key_hint(self) -> str:
        return f"Preferences > Add-ons > Shotline > {self.label} (or {self.key_env})"

    def api(self) -> http.Api:
        """The client for the current key and address (one session while they stay the same);
        raises ServiceError without a key."""
        key = config.key(self.id, self.key_env)
        if not key:
            raise ServiceError(f"No {self.label} key: set it in {self.key_hint}.")
        url = config.base_url(self.id, self.default_url)
        with _lock:
            cached = _clients.get(self.id)
            if cached is None or cached[0] != (key, url):
                cached = (key, url), http.Api(self.label, url, self.auth_headers(key), headers=self.headers,
                                              key_hint=self.key_hint)
                _clients[self.id] = cached
            return cached[1]


_lock = threading.Lock()
_clients: dict[str, tuple[tuple[str, str], http.Api]] = {}

"""Keys and API addresses of the cloud services, set from the add-on preferences.

Pure and process-wide: the preferences push their values here (never into the .blend); a service
not set here falls back to its official environment variable, and its address to SHOTLINE_<ID>_URL.
"""

from __future__ import annotations

import os

_keys: dict[str, str] = {}
_urls: dict[str, str] = {}


def set_key(service_id: str, key: str) -> None:
    _keys[service_id] = key.strip()


def set_url(service_id: str, url: str) -> None:
    _urls[service_id] = url.strip()


def key(service_id: str, env_name: str) -> str:
    return _keys.get(service_id) or os.environ.get(env_name, "").strip()


def base_url(service_id: str, default: str) -> str:
    return (_urls.get(service_id) or os.environ.get(f"SHOTLINE_{service_id.upper()}_URL", "").strip()
            or default)

"""How a shot's inputs are put to an API: the nearest accepted aspect ratio and resolution, a
still as a PNG or JPEG data URI within a size limit (Pillow), a file as a data URI, model options."""

from __future__ import annotations

import base64
import io
import json
import math
import mimetypes
from pathlib import Path
from typing import Any

from .base import Request, ServiceError


def nearest_ratio(width: int, height: int, ratios: tuple[str, ...]) -> str:
    """The accepted aspect ratio closest to the shot's frame (the timeline scales the rest)."""
    def distance(ratio: str) -> float:
        w, h = (float(x) for x in ratio.split(":"))
        return abs(math.log((w / h) / (width / height)))
    return min(ratios, key=distance)


def _lines(resolution: str) -> int:
    text = resolution.lower()
    return int(text[:-1]) * 540 if text.endswith("k") else int(text.rstrip("p"))


def pick_resolution(width: int, height: int, resolutions: tuple[str, ...]) -> str:
    """The smallest resolution covering the shot's short side, else the largest there is."""
    ordered = sorted(resolutions, key=_lines)
    return next((r for r in ordered if _lines(r) >= min(width, height)), ordered[-1])


def options(request: Request) -> dict[str, Any]:
    if not request.options.strip():
        return {}
    try:
        value = json.loads(request.options)
    except ValueError as e:
        raise ServiceError(f"The shot's model options are not valid JSON ({e}).") from None
    if not isinstance(value, dict):
        raise ServiceError("The shot's model options must be a JSON object, like {\"cfg_scale\": 0.5}.")
    return value


def image_data_uri(path: str, max_bytes: int, max_side: int = 2048) -> str:
    """A data URI of the still, at most `max_side` pixels long and `max_bytes` long as a URI.

    A lossless still (a frame taken from the timeline for continuity is a PNG) goes as a PNG when it
    fits whole, so the service receives exactly that picture; otherwise a JPEG, scaled down and
    compressed harder until it fits (never scaled up)."""
    from PIL import Image, ImageOps  # Blender ships Pillow; imported here so the table loads without it

    try:
        with Image.open(path) as opened:
            lossless = opened.format == "PNG"
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                flat = Image.new("RGB", image.size, (0, 0, 0))
                flat.paste(image, mask=image.getchannel("A"))
                image = flat
            image = image.convert("RGB")
    except OSError as e:
        raise ServiceError(f"Cannot read the image {Path(path).name}: {e}") from None
    if lossless and max(image.size) <= max_side:
        uri = _data_uri(image, "PNG")
        if len(uri) <= max_bytes:
            return uri
    scale = min(1.0, max_side / max(image.size))
    while True:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        frame = image.resize(size, Image.LANCZOS) if size != image.size else image
        for quality in (92, 85, 75):
            uri = _data_uri(frame, "JPEG", quality=quality)
            if len(uri) <= max_bytes:
                return uri
        if max(size) <= 64:
            raise ServiceError(f"The image {Path(path).name} does not fit in {max_bytes} bytes.")
        scale *= 0.75


def _data_uri(image, kind: str, **options) -> str:
    buf = io.BytesIO()
    image.save(buf, kind, **options)
    return f"data:image/{kind.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def mime_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def file_data_uri(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ServiceError(f"Cannot read {Path(path).name}: {e.strerror or e}") from None
    return f"data:{mime_type(path)};base64,{base64.b64encode(data).decode('ascii')}"

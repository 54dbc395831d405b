"""The animatic's pictures: a placeholder clip drawn with Pillow, deterministic for a seed.

Without a reference image: the prompt as wrapped text over a slowly moving two-colour
wave background whose colours and motion come from the seed. With one: a slow pan and
zoom across it (the first frame is the centred crop), the prompt as a small caption.
Always: the shot name top left, and the frame code with the frame number bottom left.

Drawn in the animatic child process (blend/animatic_child.py), never in Blender's: Pillow holds
the GIL while it draws, which would stall Blender's main thread.
"""

from __future__ import annotations

import colorsys
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from . import framecode
from .services.base import Request

_GRID = 36  # rows of the coarse background grid, upscaled to the frame (the waves are smooth)
_MAX_ZOOM = 1.25
_ZOOM_PER_SECOND = 0.05


def _font(size: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, round(size)))


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> list[str]:
    """Greedy word wrap to `width` pixels; words longer than a line are cut."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            while font.getlength(word) > width and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and font.getlength(word[:cut]) > width:
                    cut -= 1
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:cut])
                word = word[cut:]
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def _truncate(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> str:
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _fit_text(text: str, size: float, box: tuple[float, float],
              max_lines: int = 0) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, list[str], float]:
    """The largest font up to `size` whose wrapped text fits `box` (w, h); lines past the box are cut.

    Returns the font, the lines and the line height."""
    width, height = box
    while True:
        font = _font(size)
        lines = _wrap(text, font, width)
        line_height = font.getbbox("Ag")[3] * 1.2
        fits = len(lines) * line_height <= height and (not max_lines or len(lines) <= max_lines)
        if fits or size <= 6:
            keep = max(1, min(len(lines), int(height // line_height), max_lines or len(lines)))
            if keep < len(lines):
                lines = lines[:keep]
                lines[-1] = _truncate(lines[-1] + "…", font, width)
            return font, lines, line_height
        size *= 0.9


def _colour(hue: float, lightness: float, saturation: float) -> np.ndarray:
    return np.array(colorsys.hls_to_rgb(hue % 1.0, lightness, saturation), dtype=np.float32) * 255


class Animatic:
    """Draws the frames of one request. Construct once, then call `frame(i)` for i in 0..frames-1."""

    def __init__(self, request: Request):
        self.request = request
        self.width, self.height = request.width, request.height
        self.fps = float(request.fps)
        self.short = min(self.width, self.height)
        rng = random.Random(request.seed)
        hue = rng.random()
        self._colours = (_colour(hue, 0.22, 0.6), _colour(hue + 0.25 + 0.25 * rng.random(), 0.45, 0.75),
                         _colour(hue + 0.6, 0.35, 0.5))
        # Two plane waves: direction (radians), wavelength (picture heights), speed (wavelengths per second).
        self._waves = [(rng.uniform(0, 2 * math.pi), rng.uniform(0.8, 1.6), rng.uniform(0.05, 0.15))
                       for _ in range(2)]
        self._reference = self._load_reference(request.reference_image) if request.reference_image else None
        self._pan_end = (rng.random(), rng.random())
        self._stroke = max(1, round(self.short / 120))
        self._label_font = _font(self.short / 14)
        self._label_xy, self._label_anchor, text_bottom = self._place_label()
        self._overlay = self._draw_overlay(text_bottom)

    def _place_label(self) -> tuple[tuple[float, float], str, float]:
        """Where the frame number goes (beside the code, or above it when there is no room) and
        the lowest y the prompt may use."""
        left, top, right, bottom = framecode.plate_box(self.width, self.height)
        gap = 0.03 * self.short
        if right + gap + self._label_font.getlength("0000") <= self.width:
            return (right + gap, (top + bottom) / 2), "lm", top - gap
        return (left, top - gap / 2), "ld", top - gap - self._label_font.getbbox("0")[3] * 1.2

    def _load_reference(self, path: str) -> Image.Image:
        with Image.open(path) as source:
            image = ImageOps.exif_transpose(source).convert("RGB")
        # No need to keep more than twice the output's pixels across.
        image.thumbnail((self.width * 2, self.height * 2), Image.Resampling.LANCZOS)
        return image

    def _draw_overlay(self, bottom: float) -> Image.Image:
        """The text that stays put: shot name and prompt, on a transparent layer."""
        overlay = Image.new("RGBA", (self.width, self.height), (0, 0, 0, 0))
        pen = ImageDraw.Draw(overlay)
        margin = 0.04 * self.short
        stroke = self._stroke
        name_font = _font(self.short / 11)
        name = _truncate(self.request.shot_name, name_font, self.width - 2 * margin)
        pen.text((margin, margin), name, font=name_font, fill="white", stroke_width=stroke, stroke_fill="black")
        top = margin + name_font.getbbox("Ag")[3] * 1.2 + margin / 2
        prompt = self.request.prompt.strip()
        if not prompt or bottom <= top:
            return overlay
        if self._reference is not None:  # a small caption under the name, the picture stays visible
            font, lines, line_height = _fit_text(prompt, self.short / 18, (self.width - 2 * margin, bottom - top), 2)
            for k, line in enumerate(lines):
                pen.text((margin, top + k * line_height), line, font=font, fill="white", stroke_width=stroke,
                         stroke_fill="black")
            return overlay
        font, lines, line_height = _fit_text(prompt, self.short / 9, (self.width * 0.86, bottom - top))
        y = (top + bottom - len(lines) * line_height) / 2
        for k, line in enumerate(lines):
            x = (self.width - font.getlength(line)) / 2
            pen.text((x, y + k * line_height), line, font=font, fill="white", stroke_width=stroke,
                     stroke_fill="black")
        return overlay

    def _background(self, seconds: float) -> Image.Image:
        rows = _GRID
        cols = max(2, round(_GRID * self.width / self.height))
        y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
        y /= rows - 1
        x *= (self.width / self.height) / (cols - 1)
        fields = []
        for angle, wavelength, speed in self._waves:
            phase = (x * math.cos(angle) + y * math.sin(angle)) / wavelength - speed * seconds
            fields.append(0.5 + 0.5 * np.sin(2 * math.pi * phase))
        dark, light, accent = self._colours
        mix = fields[0][..., None]
        rgb = dark * (1 - mix) + light * mix
        glow = (fields[1] ** 3)[..., None] * 0.5
        rgb = rgb * (1 - glow) + accent * glow
        small = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))  # (h, w, 3) uint8: RGB
        return small.resize((self.width, self.height), Image.Resampling.BILINEAR)

    def _pan_zoom(self, index: int) -> Image.Image:
        image = self._reference
        width, height = image.size
        aspect = self.width / self.height
        crop_w, crop_h = (height * aspect, height) if width / height > aspect else (width, width / aspect)
        frames = self.request.frames
        zoom = 1 + min(_MAX_ZOOM - 1, _ZOOM_PER_SECOND * frames / self.fps)
        end_w, end_h = crop_w / zoom, crop_h / zoom
        end_x = end_w / 2 + self._pan_end[0] * (width - end_w)
        end_y = end_h / 2 + self._pan_end[1] * (height - end_h)
        u = index / (frames - 1) if frames > 1 else 0.0
        u = u * u * (3 - 2 * u)  # ease in and out
        cx = width / 2 + (end_x - width / 2) * u
        cy = height / 2 + (end_y - height / 2) * u
        w = crop_w + (end_w - crop_w) * u
        h = crop_h + (end_h - crop_h) * u
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        return image.resize((self.width, self.height), Image.Resampling.BILINEAR, box=box)

    def frame(self, index: int) -> Image.Image:
        """Frame `index` (0-based) as an RGB image of the requested size."""
        picture = self._pan_zoom(index) if self._reference is not None else self._background(index / self.fps)
        picture.paste(self._overlay, (0, 0), self._overlay)
        framecode.draw(picture, index)
        ImageDraw.Draw(picture).text(self._label_xy, f"{index:04d}", font=self._label_font, fill="white",
                                     anchor=self._label_anchor, stroke_width=self._stroke, stroke_fill="black")
        return picture


def write_frame(image: Image.Image, path: Path) -> None:
    """Save a frame for the encoder. JPEG at high quality, full chroma: five times faster to write
    than PNG at full HD, the same size, and the H.264 encode that follows is lossy anyway."""
    image.save(path, format="JPEG", quality=95, subsampling=0)

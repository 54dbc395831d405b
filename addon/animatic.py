"""The animatic's pictures: a placeholder clip drawn with Pillow, deterministic for a seed.

Without a reference image: the prompt as wrapped text over a slowly moving two-colour
wave background whose colours and motion come from the seed. With one: a slow pan and
zoom across it (the first frame is the centred crop), the prompt as a small caption.
Always: the shot name top left, and the frame code with the frame number bottom left.

Text is drawn with a chain of fonts (`Fonts`): the child passes Blender's own UI fonts, so
the animatic draws what the prompt field shows.

Drawn in the animatic child process (blend/animatic_child.py), never in Blender's: Pillow holds
the GIL while it draws, which would stall Blender's main thread.
"""

from __future__ import annotations

import colorsys
import math
import random
import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from . import framecode
from .services.base import Request

_GRID = 36  # rows of the coarse background grid, upscaled to the frame (the waves are smooth)
_MAX_ZOOM = 1.25
_ZOOM_PER_SECOND = 0.05
_PROBE_SIZE = 32  # pixels: whether a font has a glyph is decided once per character, at this size
NOTDEF = "\U0010FFFF"  # a noncharacter: no font maps it, so it draws the font's .notdef glyph (a box)
_MISSING = ("\N{REPLACEMENT CHARACTER}", "?")  # what a character no font has becomes, the first one drawable
_ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"


def _invisible(char: str) -> bool:
    """A combining mark, control or format character: nothing to see on its own."""
    category = unicodedata.category(char)
    return category[0] == "M" or category in ("Cc", "Cf")


def glyph(font: ImageFont.FreeTypeFont, char: str) -> tuple:
    """What `font` draws for `char`: the bitmap and the advance, comparable for equality."""
    mask = font.getmask(char)
    return mask.size, bytes(mask), font.getlength(char)


class Fonts:
    """A chain of font files: each character is drawn with the first one that has a glyph for it; Pillow's
    built-in font (ASCII only) comes last. A file Pillow cannot read is skipped. `clean` makes sure no
    .notdef box is drawn: with no usable file, text outside ASCII shows as ?, not as boxes."""

    def __init__(self, paths: Sequence[str] = ()):
        self._paths: list[str | None] = [*paths, None]  # None: Pillow's built-in font
        self._probes: dict[int, tuple[ImageFont.FreeTypeFont, tuple] | None] = {}
        self._choice: dict[str, int | None] = {}
        self.primary = next(k for k in range(len(self._paths)) if self._probe(k))  # its metrics set the lines

    def load(self, index: int, size: int) -> ImageFont.FreeTypeFont:
        # BASIC layout: the same pixels whether or not this Pillow found libraqm and FriBiDi.
        path = self._paths[index]
        if path is None:
            return ImageFont.load_default(size).font_variant(layout_engine=ImageFont.Layout.BASIC)
        return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)

    def _probe(self, index: int) -> tuple[ImageFont.FreeTypeFont, tuple] | None:
        """Font `index` at the probe size and its .notdef glyph; None if it cannot be read."""
        if index not in self._probes:
            try:
                font = self.load(index, _PROBE_SIZE)
                self._probes[index] = font, glyph(font, NOTDEF)
            except OSError:  # missing, damaged, or a format this FreeType lacks (WOFF2 needs Brotli)
                self._probes[index] = None
        return self._probes[index]

    def _has_glyph(self, index: int, char: str) -> bool:
        probe = self._probe(index)
        return probe is not None and glyph(probe[0], char) != probe[1]

    def font_index(self, char: str) -> int | None:
        """The first font in the chain with a glyph for `char`, or None."""
        if char not in self._choice:
            self._choice[char] = next((k for k in range(len(self._paths)) if self._has_glyph(k, char)), None)
        return self._choice[char]

    def clean(self, text: str) -> str:
        """`text` ready to draw: composed (NFC: a letter and its accent become the one glyph fonts have),
        a character no font has replaced by U+FFFD (or ?), an unknown mark, control or format character
        (variation selector, zero-width joiner) dropped. Whitespace is kept for the caller to split on."""
        missing = next(c for c in _MISSING if self.font_index(c) is not None)
        kept = []
        for char in unicodedata.normalize("NFC", text):
            if char.isspace() or self.font_index(char) is not None:
                kept.append(char)
            elif not _invisible(char):
                kept.append(missing)
        return "".join(kept)

    def at(self, size: float) -> Face:
        return Face(self, max(6, round(size)))


class Face:
    """The chain at one size: measures and draws text in runs, each run in the font that has its glyphs.
    Fonts are loaded on first use (most text needs only the primary one)."""

    def __init__(self, fonts: Fonts, size: int):
        self._fonts = fonts
        self._size = size
        self._loaded: dict[int, ImageFont.FreeTypeFont] = {}
        self.primary = self._font(fonts.primary)
        self.ascent = self.primary.getmetrics()[0]
        self.line_height = self.primary.getbbox("Ag")[3] * 1.2

    def _font(self, index: int) -> ImageFont.FreeTypeFont:
        if index not in self._loaded:
            self._loaded[index] = self._fonts.load(index, self._size)
        return self._loaded[index]

    def runs(self, text: str) -> list[tuple[ImageFont.FreeTypeFont, str]]:
        """`text` cut where the font changes; a character no font has goes with the primary font."""
        runs: list[tuple[int, str]] = []
        for char in text:
            index = self._fonts.font_index(char)
            index = self._fonts.primary if index is None else index
            if runs and runs[-1][0] == index:
                runs[-1] = (index, runs[-1][1] + char)
            else:
                runs.append((index, char))
        return [(self._font(index), run) for index, run in runs]

    def getlength(self, text: str) -> float:
        return sum(font.getlength(run) for font, run in self.runs(text))

    def draw(self, pen: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, **style) -> None:
        """Draw `text` with its top (the primary font's ascender) at xy, as Pillow's default anchor does."""
        x, baseline = xy[0], xy[1] + self.ascent  # runs of other fonts share the baseline, not the ascender
        for font, run in self.runs(text):
            pen.text((x, baseline), run, font=font, anchor="ls", **style)
            x += font.getlength(run)


def _cut(text: str, face: Face, width: float) -> int:
    """The length of the longest start of `text` that fits `width` pixels. Combining marks advance by
    nothing, so the longest start keeps a letter's marks with it."""
    low, high = 0, len(text)
    while low < high:  # binary search: a long word without spaces costs log n measures, not n
        middle = (low + high + 1) // 2
        if face.getlength(text[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def _wrap(text: str, face: Face, width: float) -> list[str]:
    """Greedy word wrap to `width` pixels; words longer than a line are cut."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            while face.getlength(word) > width and len(word) > 1:
                cut = max(1, _cut(word, face, width))
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:cut])
                word = word[cut:]
            candidate = f"{line} {word}" if line else word
            if face.getlength(candidate) <= width:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def _truncate(text: str, face: Face, width: float) -> str:
    if face.getlength(text) <= width:
        return text
    return text[:_cut(text, face, width - face.getlength(_ELLIPSIS))].rstrip() + _ELLIPSIS


def _fit_text(text: str, fonts: Fonts, size: float, box: tuple[float, float],
              max_lines: int = 0) -> tuple[Face, list[str]]:
    """The largest face up to `size` whose wrapped text fits `box` (w, h); lines past the box are cut."""
    width, height = box
    while True:
        face = fonts.at(size)
        lines = _wrap(text, face, width)
        fits = len(lines) * face.line_height <= height and (not max_lines or len(lines) <= max_lines)
        if fits or size <= 6:
            keep = max(1, min(len(lines), int(height // face.line_height), max_lines or len(lines)))
            if keep < len(lines):
                lines = lines[:keep]
                lines[-1] = _truncate(lines[-1] + _ELLIPSIS, face, width)
            return face, lines
        size *= 0.9


def _colour(hue: float, lightness: float, saturation: float) -> np.ndarray:
    return np.array(colorsys.hls_to_rgb(hue % 1.0, lightness, saturation), dtype=np.float32) * 255


class Animatic:
    """Draws the frames of one request. Construct once, then call `frame(i)` for i in 0..frames-1."""

    def __init__(self, request: Request, font_files: Sequence[str] = ()):
        """`font_files`: the fonts to draw text with, in order of preference (see `Fonts`)."""
        self.request = request
        self.fonts = Fonts(font_files)
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
        self._label_font = self.fonts.at(self.short / 14).primary  # digits only
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
        style = {"fill": "white", "stroke_width": self._stroke, "stroke_fill": "black"}
        name_face = self.fonts.at(self.short / 11)
        name = _truncate(self.fonts.clean(" ".join(self.request.shot_name.split())), name_face,
                         self.width - 2 * margin)
        name_face.draw(pen, (margin, margin), name, **style)
        top = margin + name_face.line_height + margin / 2
        prompt = self.fonts.clean(self.request.prompt).strip()
        if not prompt or bottom <= top:
            return overlay
        if self._reference is not None:  # a small caption under the name, the picture stays visible
            face, lines = _fit_text(prompt, self.fonts, self.short / 18, (self.width - 2 * margin, bottom - top), 2)
            for k, line in enumerate(lines):
                face.draw(pen, (margin, top + k * face.line_height), line, **style)
            return overlay
        face, lines = _fit_text(prompt, self.fonts, self.short / 9, (self.width * 0.86, bottom - top))
        y = (top + bottom - len(lines) * face.line_height) / 2
        for k, line in enumerate(lines):
            face.draw(pen, ((self.width - face.getlength(line)) / 2, y + k * face.line_height), line, **style)
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

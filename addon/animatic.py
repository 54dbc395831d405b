"""The animatic's pictures: a placeholder clip drawn with Pillow, deterministic for a seed.

Without a picture to show: the prompt as wrapped text over a slowly moving two-colour
wave background whose colours and motion come from the seed. With a first-frame image: a slow
pan and zoom across it (the first frame is the centred crop). With a source video: its
pictures in time, restyled (posterized and tinted by the seed). With a last-frame image: a
dissolve over the final second into it (the last frame is that image, fitted as the first
is). With pictures the prompt is a small caption. With reference images: a row of
thumbnails top right. With audio: a mouth lower middle that opens with the loudness of
each frame's slice of the sound, and a level bar. Always: the shot name top left, and the
frame code with the frame number bottom left.

What needs Blender (decoding the source video and the audio) is done by the child, which
hands the results in: the source's picture files per frame and the samples' loudness.

Text is drawn with a chain of fonts (`Fonts`): the child passes Blender's own UI fonts, so
the animatic draws what the prompt field shows.

Drawn in the animatic child process (blend/animatic_child.py), never in Blender's: Pillow holds
the GIL while it draws, which would stall Blender's main thread.
"""

from __future__ import annotations

import colorsys
import math
import os
import random
import unicodedata
from fractions import Fraction
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
_THUMB = 0.16  # a reference thumbnail's side, as a fraction of the picture's short side
_POSTER_BITS = 3  # a restyled source keeps 8 levels per channel
_TINT = 0.25  # how much of the seed's colour a restyled source takes
_QUIET_DB, _LOUD_DB = -50.0, -10.0  # the mouth is closed at the first loudness, wide open at the second
_LIPS, _INSIDE, _SKIN, _LEVEL = (200, 50, 70), (25, 5, 10), (236, 204, 178), (90, 230, 120)


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


class InputError(Exception):
    """An input file the animatic cannot use; the message names it."""


def load_picture(path: str, label: str) -> Image.Image:
    """The picture at `path` as RGB, upright; InputError naming the file when Pillow cannot read it."""
    try:
        with Image.open(path) as source:
            return ImageOps.exif_transpose(source).convert("RGB")
    except OSError as ex:  # missing, not a picture, truncated
        raise InputError(f"Cannot read the {label} {os.path.basename(path)}: {ex}") from None


def source_frame_numbers(frames: int, fps: Fraction, source_fps: Fraction, source_frames: int) -> list[int]:
    """The source video's frame (0-based) shown at each output frame i: the one playing at time
    i / fps, the last one held when the source is shorter. Exact for rational rates."""
    last = max(source_frames, 1) - 1
    step = Fraction(source_fps) / Fraction(fps)
    return [min(math.floor(i * step), last) for i in range(frames)]


def frame_loudness(samples: np.ndarray, rate: int, fps: Fraction, frames: int) -> list[float]:
    """The RMS (full scale 1.0) of the sound, channels mixed, within each frame's time window
    [i / fps, (i + 1) / fps); 0 past the end of the sound."""
    mono = np.asarray(samples, dtype=np.float64)
    mono = mono.mean(axis=1) if mono.ndim == 2 else mono
    energy = np.concatenate([[0.0], np.cumsum(mono * mono)])
    fps = Fraction(fps)
    edges = [k * rate * fps.denominator // fps.numerator for k in range(frames + 1)]
    end = len(mono)  # what lies past it is silence
    return [math.sqrt(max(energy[min(b, end)] - energy[min(a, end)], 0.0) / (b - a)) if b > a else 0.0
            for a, b in zip(edges, edges[1:])]


def mouth_opening(rms: float) -> float:
    """How far the mouth opens (0 closed .. 1) for a loudness: -50 dBFS and below closed, -10 dBFS open."""
    if rms <= 0:
        return 0.0
    return min(1.0, max(0.0, (20 * math.log10(rms) - _QUIET_DB) / (_LOUD_DB - _QUIET_DB)))


class Animatic:
    """Draws the frames of one request. Construct once, then call `frame(i)` for i in 0..frames-1."""

    def __init__(self, request: Request, font_files: Sequence[str] = (), source_frames: Sequence[str] | None = None,
                 loudness: Sequence[float] | None = None):
        """`font_files`: the fonts to draw text with, in order of preference (see `Fonts`).
        `source_frames`: with a source video, the picture file shown at each frame (the output's size).
        `loudness`: with audio, the RMS of each frame's slice of it (`frame_loudness`).
        Raises InputError when an input picture cannot be read."""
        self.request = request
        self.fonts = Fonts(font_files)
        self.width, self.height = request.width, request.height
        self.fps = float(request.fps)
        self.short = min(self.width, self.height)
        self._source = self._per_frame(source_frames, request.source_video, "source_frames")
        self._loudness = self._per_frame(loudness, request.audio, "loudness")
        rng = random.Random(request.seed)
        hue = rng.random()
        self._colours = (_colour(hue, 0.22, 0.6), _colour(hue + 0.25 + 0.25 * rng.random(), 0.45, 0.75),
                         _colour(hue + 0.6, 0.35, 0.5))
        # Two plane waves: direction (radians), wavelength (picture heights), speed (wavelengths per second).
        self._waves = [(rng.uniform(0, 2 * math.pi), rng.uniform(0.8, 1.6), rng.uniform(0.05, 0.15))
                       for _ in range(2)]
        self._reference = self._load_fitted(request.reference_image, "reference image")
        self._pan_end = (rng.random(), rng.random())
        tint = _colour(rng.random(), 0.55, 0.85)
        self._tint = Image.new("RGB", (self.width, self.height), tuple(int(c) for c in tint))
        last = self._load_fitted(request.last_frame_image, "last-frame image")
        self._last = self._cover(last) if last is not None else None
        self._thumbnails = [ImageOps.fit(load_picture(path, "reference image"), (round(_THUMB * self.short),) * 2,
                                         Image.Resampling.LANCZOS) for path in request.reference_images]
        self._shown = None  # (path, restyled picture) of the source frame shown last: frames often repeat it
        self._stroke = max(1, round(self.short / 120))
        self._label_font = self.fonts.at(self.short / 14).primary  # digits only
        self._label_xy, self._label_anchor, text_bottom = self._place_label()
        self.mouth_box = self._place_mouth(text_bottom) if self._loudness is not None else None
        if self.mouth_box is not None:
            text_bottom = min(text_bottom, self.mouth_box[1] - 0.03 * self.short)
        self._overlay = self._draw_overlay(text_bottom)

    def _per_frame(self, values: Sequence | None, input_file: str, name: str) -> list | None:
        if not input_file:
            return None
        if values is None or len(values) != self.request.frames:
            raise ValueError(f"{name}: one value per frame is needed with {os.path.basename(input_file)}")
        return list(values)

    def _place_label(self) -> tuple[tuple[float, float], str, float]:
        """Where the frame number goes (beside the code, or above it when there is no room) and
        the lowest y the prompt may use."""
        left, top, right, bottom = framecode.plate_box(self.width, self.height)
        gap = 0.03 * self.short
        if right + gap + self._label_font.getlength("0000") <= self.width:
            return (right + gap, (top + bottom) / 2), "lm", top - gap
        return (left, top - gap / 2), "ld", top - gap - self._label_font.getbbox("0")[3] * 1.2

    def _place_mouth(self, text_bottom: float) -> tuple[int, int, int, int]:
        """The face plate's box (left, top, right, bottom), lower middle: down by the bottom edge when
        the frame code and its number leave room beside it, else above them."""
        plate_w, plate_h = 0.36 * self.short, 0.24 * self.short
        left = (self.width - plate_w) / 2
        code_right = framecode.plate_box(self.width, self.height)[2]
        if self._label_anchor == "lm":
            code_right = self._label_xy[0] + self._label_font.getlength("0000")
        bottom = self.height - 0.04 * self.short if left > code_right + 0.03 * self.short else text_bottom
        return round(left), round(bottom - plate_h), round(left + plate_w), round(bottom)

    def _load_fitted(self, path: str, label: str) -> Image.Image | None:
        if not path:
            return None
        image = load_picture(path, label)
        # No need to keep more than twice the output's pixels across.
        image.thumbnail((self.width * 2, self.height * 2), Image.Resampling.LANCZOS)
        return image

    def _draw_overlay(self, bottom: float) -> Image.Image:
        """What stays put: shot name, prompt, reference thumbnails and the mouth's face plate, on a
        transparent layer."""
        overlay = Image.new("RGBA", (self.width, self.height), (0, 0, 0, 0))
        pen = ImageDraw.Draw(overlay)
        margin = 0.04 * self.short
        thumbs_left = self._draw_thumbnails(overlay, pen, margin)
        if self.mouth_box is not None:
            pen.rounded_rectangle(self.mouth_box, radius=0.04 * self.short, fill=_SKIN)
        style = {"fill": "white", "stroke_width": self._stroke, "stroke_fill": "black"}
        name_face = self.fonts.at(self.short / 11)
        name = _truncate(self.fonts.clean(" ".join(self.request.shot_name.split())), name_face,
                         thumbs_left - 2 * margin)
        name_face.draw(pen, (margin, margin), name, **style)
        thumbs_height = self._thumbnails[0].height if self._thumbnails else 0
        top = margin + max(name_face.line_height, thumbs_height) + margin / 2
        prompt = self.fonts.clean(self.request.prompt).strip()
        if not prompt or bottom <= top:
            return overlay
        if any(shown is not None for shown in (self._reference, self._last, self._source)):
            # a small caption under the name: the picture stays visible
            face, lines = _fit_text(prompt, self.fonts, self.short / 18, (self.width - 2 * margin, bottom - top), 2)
            for k, line in enumerate(lines):
                face.draw(pen, (margin, top + k * face.line_height), line, **style)
            return overlay
        face, lines = _fit_text(prompt, self.fonts, self.short / 9, (self.width * 0.86, bottom - top))
        y = (top + bottom - len(lines) * face.line_height) / 2
        for k, line in enumerate(lines):
            face.draw(pen, ((self.width - face.getlength(line)) / 2, y + k * face.line_height), line, **style)
        return overlay

    def _draw_thumbnails(self, overlay: Image.Image, pen: ImageDraw.ImageDraw, margin: float) -> float:
        """The reference images in a row along the top right, in the order sent, each framed in white;
        returns the row's left edge (the width when there are none)."""
        if not self._thumbnails:
            return self.width
        side = self._thumbnails[0].width
        gap = max(2, round(0.02 * self.short))
        x = round(self.width - margin - len(self._thumbnails) * (side + gap) + gap)
        y = round(margin)
        left = x
        for thumbnail in self._thumbnails:
            overlay.paste(thumbnail, (x, y))
            pen.rectangle((x - 1, y - 1, x + side, y + side), outline="white")
            x += side + gap
        return left - gap

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

    def _crop_size(self, image: Image.Image) -> tuple[float, float]:
        """The largest part of `image` with the output's aspect."""
        width, height = image.size
        aspect = self.width / self.height
        return (height * aspect, height) if width / height > aspect else (width, width / aspect)

    def _cover(self, image: Image.Image) -> Image.Image:
        """`image` filling the frame: its centred crop, scaled (the pan and zoom's first frame)."""
        width, height = image.size
        crop_w, crop_h = self._crop_size(image)
        box = ((width - crop_w) / 2, (height - crop_h) / 2, (width + crop_w) / 2, (height + crop_h) / 2)
        return image.resize((self.width, self.height), Image.Resampling.BILINEAR, box=box)

    def _pan_zoom(self, index: int) -> Image.Image:
        image = self._reference
        width, height = image.size
        crop_w, crop_h = self._crop_size(image)
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

    def _restyled_source(self, index: int) -> Image.Image:
        """The source video's picture at this frame, posterized and tinted by the seed."""
        path = self._source[index]
        if self._shown is None or self._shown[0] != path:
            picture = load_picture(path, "source video frame")
            if picture.size != (self.width, self.height):
                picture = self._cover(picture)
            self._shown = path, Image.blend(ImageOps.posterize(picture, _POSTER_BITS), self._tint, _TINT)
        return self._shown[1].copy()

    def _last_mix(self, index: int) -> float:
        """How much of the last-frame image shows: 0 until the final second (or the whole clip, if
        shorter), then rising to 1 on the last frame."""
        if self._last is None:
            return 0.0
        span = min(self.request.frames - 1, round(self.fps))
        if span <= 0:
            return 1.0
        return max(0.0, (index - (self.request.frames - 1 - span)) / span)

    def _draw_mouth(self, pen: ImageDraw.ImageDraw, rms: float) -> None:
        """On the face plate: a mouth open as far as the loudness says (a line of lips when silent)
        and a level bar along the plate's bottom."""
        left, top, right, bottom = self.mouth_box
        pad = 0.03 * self.short
        bar = max(2, round(0.025 * self.short))
        cx, cy = (left + right) / 2, (top + bottom - bar - pad) / 2
        level = mouth_opening(rms)
        half_w, half_h = 0.12 * self.short, 0.065 * self.short * level
        if half_h >= 1:
            pen.ellipse((cx - half_w, cy - half_h, cx + half_w, cy + half_h), fill=_INSIDE, outline=_LIPS,
                        width=self._stroke)
        else:
            pen.line((cx - half_w, cy, cx + half_w, cy), fill=_LIPS, width=self._stroke)
        track = (left + pad, bottom - pad - bar, right - pad, bottom - pad)
        pen.rectangle(track, fill=(60, 60, 60))
        if level > 0:
            pen.rectangle((track[0], track[1], track[0] + (track[2] - track[0]) * level, track[3]), fill=_LEVEL)

    def frame(self, index: int) -> Image.Image:
        """Frame `index` (0-based) as an RGB image of the requested size."""
        if self._source is not None:
            picture = self._restyled_source(index)
        elif self._reference is not None:
            picture = self._pan_zoom(index)
        else:
            picture = self._background(index / self.fps)
        mix = self._last_mix(index)
        if mix >= 1:
            picture = self._last.copy()
        elif mix > 0:
            picture = Image.blend(picture, self._last, mix)
        picture.paste(self._overlay, (0, 0), self._overlay)
        pen = ImageDraw.Draw(picture)
        if self._loudness is not None:
            self._draw_mouth(pen, self._loudness[index])
        framecode.draw(picture, index)
        pen.text(self._label_xy, f"{index:04d}", font=self._label_font, fill="white",
                 anchor=self._label_anchor, stroke_width=self._stroke, stroke_fill="black")
        return picture


def write_frame(image: Image.Image, path: Path) -> None:
    """Save a frame for the encoder. JPEG at high quality, full chroma: five times faster to write
    than PNG at full HD, the same size, and the H.264 encode that follows is lossy anyway."""
    image.save(path, format="JPEG", quality=95, subsampling=0)

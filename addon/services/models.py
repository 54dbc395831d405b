"""The models fal and Replicate run, as data: what each takes, under which input names and encodings.

The shipped table is models.json next to this file. A models.json in the user's config folder adds
entries or overrides fields of shipped ones (matched by service and id), so a new model or a renamed
input needs no new add-on version (service-apis.md §0.3: model sets churn monthly).

Our request fields, and what an entry's "inputs" maps them to:
  prompt, negative_prompt, seed, duration (encoded per "duration_format"), aspect_ratio, resolution,
  first_frame, last_frame, source_video, audio, reference_images (media), frames, fps (for models
  that take a frame count and rate instead of a duration).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping

from . import inputs
from .base import Capabilities, Request, ServiceError
from .cloud import CloudService

log = logging.getLogger("shotline.models")

SHIPPED = Path(__file__).with_name("models.json")
USER_FILE = "models.json"

FIELDS = ("prompt", "negative_prompt", "seed", "duration", "aspect_ratio", "resolution", "first_frame",
          "last_frame", "source_video", "audio", "reference_images", "frames", "fps")
DURATION_FORMATS = ("int", "string", "seconds")  # 5, "5", "5s"
# Media fields: the Request attribute holding the path, the kind of file, and how a director names it.
MEDIA = {
    "first_frame": ("reference_image", "image", "a first-frame image"),
    "last_frame": ("last_frame_image", "image", "a last-frame image"),
    "source_video": ("source_video", "video", "a source video"),
    "audio": ("audio", "audio", "an audio file"),
}
_NAMES = {"prompt": "a prompt", **{k: v[2] for k, v in MEDIA.items()}}


@dataclass(frozen=True)
class Model:
    service: str  # 'fal' or 'replicate'
    id: str  # fal endpoint id; Replicate "owner/name", "owner/name:version" or a version id
    label: str
    inputs: Mapping[str, str]  # our field -> the model's input name
    required: tuple[str, ...] = ()  # our fields the model cannot do without
    duration_format: str = "int"
    durations: tuple[int, ...] = ()  # accepted seconds; empty: the model takes none (or frames)
    frames: tuple[int, int] | None = None  # (min, max) for models taking a frame count
    aspect_ratios: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    fps: Fraction | None = None  # what it delivers; None: the shot's (frames/fps inputs), the source's or unknown
    price_per_second: float = 0.0  # USD per second of video; 0 = unknown
    compute_price_per_second: float = 0.0  # USD per second of run time, for models billed by it (Replicate)
    max_reference_images: int = 0
    defaults: Mapping[str, Any] = field(default_factory=dict)  # inputs always sent (options override them)
    image_max_bytes: int = 0  # the model's own image limit, when lower than the service's
    note: str = ""

    @property
    def name(self) -> str:
        return self.label or self.id

    @property
    def capabilities(self) -> Capabilities:
        needs_media = any(r in self.required for r in ("first_frame", "source_video", "audio"))
        return Capabilities(
            text_to_video=not needs_media,
            first_frame="first_frame" in self.inputs,
            last_frame="last_frame" in self.inputs,
            video_to_video="source_video" in self.inputs,
            lip_sync="audio" in self.inputs,
            durations=tuple(float(d) for d in self.durations),
            max_frames=self.frames[1] if self.frames else 0,
            negative_prompt="negative_prompt" in self.inputs,
            seed="seed" in self.inputs,
            reference_images=self.max_reference_images if "reference_images" in self.inputs else 0,
            aspect_ratios=self.aspect_ratios,
            price_per_second=self.price_per_second,
        )


def parse(entry: Mapping[str, Any]) -> Model:
    """One table entry; raises ValueError saying what is wrong with it."""
    if not isinstance(entry, Mapping):
        raise ValueError("an entry is not an object")
    for key in ("service", "id", "inputs"):
        if not entry.get(key):
            raise ValueError(f"an entry has no \"{key}\"")
    where = f"{entry['service']} {entry['id']}"
    inputs = dict(entry["inputs"])
    unknown = sorted(set(inputs) - set(FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown fields {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    required = tuple(entry.get("required", ()))
    if not set(required) <= set(inputs):
        raise ValueError(f"{where}: a required field is not in its inputs")
    fmt = entry.get("duration_format", "int")
    if fmt not in DURATION_FORMATS:
        raise ValueError(f"{where}: duration_format must be one of {', '.join(DURATION_FORMATS)}")
    durations = tuple(sorted(int(d) for d in entry.get("durations", ())))
    if "duration" in inputs and not durations:
        raise ValueError(f"{where}: it takes a duration but lists no durations")
    frames = entry.get("frames")
    if "frames" in inputs and not (isinstance(frames, list) and len(frames) == 2):
        raise ValueError(f"{where}: it takes a frame count but gives no [min, max] frames")
    fps = entry.get("fps")
    return Model(
        service=str(entry["service"]), id=str(entry["id"]), label=str(entry.get("label", "")), inputs=inputs,
        required=required, duration_format=fmt, durations=durations,
        frames=(int(frames[0]), int(frames[1])) if frames else None,
        aspect_ratios=tuple(entry.get("aspect_ratios", ())), resolutions=tuple(entry.get("resolutions", ())),
        fps=Fraction(str(fps)) if fps else None, price_per_second=float(entry.get("price_per_second", 0.0)),
        compute_price_per_second=float(entry.get("compute_price_per_second", 0.0)),
        max_reference_images=int(entry.get("max_reference_images", 0)), defaults=dict(entry.get("defaults", {})),
        image_max_bytes=int(entry.get("image_max_bytes", 0)), note=str(entry.get("note", "")))


@dataclass(frozen=True)
class Table:
    models: tuple[Model, ...]
    problems: tuple[str, ...] = ()  # what was wrong in the user's file (those entries are left out)

    def for_service(self, service: str) -> list[Model]:
        return [m for m in self.models if m.service == service]

    def find(self, service: str, model_id: str) -> Model | None:
        """The entry for `model_id`; "" is the service's first (default) model."""
        return next((m for m in self.for_service(service) if not model_id or m.id == model_id), None)


def _entries(path: Path) -> list[Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = data.get("models") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError("expected {\"models\": [...]} or a list of entries")
    return entries


def load(folder: Path | str | None = None) -> Table:
    """The shipped table merged with `folder`/models.json (when there is one). Pure: reads files only."""
    merged: dict[tuple[str, str], dict] = {(e["service"], e["id"]): dict(e) for e in _entries(SHIPPED)}
    problems: list[str] = []
    user = Path(folder) / USER_FILE if folder else None
    if user is not None and user.is_file():
        try:
            extra = _entries(user)
        except (OSError, ValueError) as e:
            extra, problems = [], [f"{user}: {e}"]
        for entry in extra:
            if not isinstance(entry, dict) or not entry.get("service") or not entry.get("id"):
                problems.append(f"{user}: an entry without \"service\" and \"id\" was left out")
                continue
            key = (entry["service"], entry["id"])
            merged[key] = {**merged.get(key, {}), **entry}
    models = []
    for key, entry in merged.items():
        try:
            models.append(parse(entry))
        except (ValueError, TypeError) as e:
            problems.append(f"{user}: {e}" if user else str(e))
    return Table(tuple(models), tuple(problems))


_table = load()


def table() -> Table:
    return _table


def use(folder: Path | str | None) -> tuple[str, ...]:
    """Switch to the shipped table merged with the user's; returns the user file's problems."""
    global _table
    _table = load(folder)
    for problem in _table.problems:
        log.warning("model table: %s", problem)
    return _table.problems


class TableService(CloudService):
    """A cloud service whose models, and what they take, come from the table."""

    def models(self) -> list[str]:
        return [m.id for m in _table.for_service(self.id)]

    def model(self, model_id: str) -> Model:
        found = _table.find(self.id, model_id)
        if found is None:
            raise ServiceError(f"{self.label} has no model \"{model_id}\" in the model table.")
        return found

    def capabilities_for(self, model: str) -> Capabilities:
        found = _table.find(self.id, model)
        return found.capabilities if found else Capabilities()

    def check(self, request: Request) -> None:
        super().check(request)
        check(self.model(request.model), request)


# -- from a request to a model's input ---------------------------------------------------------------------------

def pick_duration(model: Model, seconds: Fraction) -> int:
    """The shortest accepted duration that covers the shot (the take is trimmed to the cut)."""
    for d in model.durations:
        if d >= seconds - Fraction(1, 1000):
            return d
    raise ServiceError(f"{model.name} makes at most {model.durations[-1]} s; this shot is {float(seconds):.2f} s. "
                       f"Split the shot or choose another model.")


def encode_duration(model: Model, seconds: int) -> int | str:
    return {"int": seconds, "string": str(seconds), "seconds": f"{seconds}s"}[model.duration_format]


def check(model: Model, request: Request) -> None:
    """What the Capabilities cannot say: required inputs, readable files, a duration that fits, options."""
    inputs.options(request)
    for name in model.required:
        present = request.prompt.strip() if name == "prompt" else getattr(request, MEDIA[name][0])
        if not present:
            raise ServiceError(f"{model.name} needs {_NAMES[name]}.")
    paths = [(getattr(request, attr), what) for attr, _kind, what in MEDIA.values()]
    paths += [(p, "a reference image") for p in request.reference_images]
    for path, what in paths:
        if path and not Path(path).is_file():
            raise ServiceError(f"Cannot read {what} for {model.name}: {path} is not there.")
    if model.durations:
        pick_duration(model, request.duration)
    if model.frames and not model.frames[0] <= request.frames <= model.frames[1]:
        raise ServiceError(f"{model.name} makes {model.frames[0]} to {model.frames[1]} frames, not {request.frames}.")


def build_input(model: Model, request: Request, media: Callable[[str, str], Any]) -> dict[str, Any]:
    """The model's input for `request`. `media(kind, path)` turns a local file ('image', 'video',
    'audio') into something the service accepts (a data URI or an uploaded file's URL)."""
    values: dict[str, Any] = {
        "prompt": request.prompt.strip() or None,
        "negative_prompt": request.negative_prompt.strip() or None,
        "seed": request.seed,
        "frames": request.frames,
        "fps": round(request.fps),
    }
    if model.durations:
        values["duration"] = encode_duration(model, pick_duration(model, request.duration))
    if model.aspect_ratios:
        values["aspect_ratio"] = inputs.nearest_ratio(request.width, request.height, model.aspect_ratios)
    if model.resolutions:
        values["resolution"] = inputs.pick_resolution(request.width, request.height, model.resolutions)
    for name, (attr, kind, _what) in MEDIA.items():
        path = getattr(request, attr)
        values[name] = media(kind, path) if path and name in model.inputs else None
    if request.reference_images and "reference_images" in model.inputs:
        values["reference_images"] = [media("image", p) for p in request.reference_images]
    body = dict(model.defaults)
    body.update({theirs: values[ours] for ours, theirs in model.inputs.items() if values.get(ours) is not None})
    body.update(inputs.options(request))
    return body


def cost(model: Model, seconds: float | None, run_seconds: float | None = None) -> float | None:
    """What the job was billed in USD: run time x the compute price for models billed by run time,
    else the clip's real length x the price per second; None when the table has no price."""
    if model.compute_price_per_second and run_seconds is not None:
        return round(run_seconds * model.compute_price_per_second, 4)
    if model.price_per_second and seconds:
        return round(seconds * model.price_per_second, 4)
    return None

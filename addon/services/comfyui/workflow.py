"""A director's ComfyUI workflow (API format) and the places in it where a shot's fields go.

`analyse` recognises the common nodes: samplers and guiders, the text encoders their positive and
negative conditioning comes from, seeds, empty and image-to-video latents, savers' frame rates,
loaders. What it cannot tell for sure (two positive encoders, two seeds, a prompt built by a custom
node) it leaves out rather than guess; the director pins it as "NODE_ID.INPUT". A value input fed by
a primitive node is written in the primitive, so everything the primitive feeds gets it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..base import ServiceError

FIELDS = ("prompt", "negative_prompt", "seed", "width", "height", "frames", "fps",
          "first_frame", "last_frame", "source_video", "audio")
REQUIRED = ("prompt",)  # and an output node, reported as "output"
_NUMBERS = ("seed", "width", "height", "frames", "fps")

# Where conditioning is consumed, and the inputs it is consumed through, per role.
_SINK = re.compile(r"Sampler|Guider")
_SINK_INPUTS = {"positive": ("positive", "conditioning", "text_embeds"), "negative": ("negative", "text_embeds")}
_PASS_THROUGH = re.compile(r"^(positive|negative|text_embeds|cond.*)$")  # inputs a conditioning trail follows
_TEXT_INPUTS = ("text", "prompt")
_SEED_HOLDER = re.compile(r"Sampler|Noise")
_SEED_INPUTS = ("seed", "noise_seed")
_FRAMES_INPUTS = ("length", "num_frames", "video_frames")
_IMAGE_LATENTS = {"EmptyLatentImage", "EmptySD3LatentImage"}  # width and height, no length
# Frame rates: the savers' (the clip's own rate) come first; the conditioning's follow the same value.
_FPS_INPUTS = {"CreateVideo": ("fps", "float"), "SaveWEBM": ("fps", "float"), "SaveAnimatedWEBP": ("fps", "float"),
               "SaveAnimatedPNG": ("fps", "float"), "VHS_VideoCombine": ("frame_rate", "float"),
               "LTXVConditioning": ("frame_rate", "float"), "SVD_img2vid_Conditioning": ("fps", "int")}
_FPS_WRITERS = {"CreateVideo", "SaveWEBM", "SaveAnimatedWEBP", "SaveAnimatedPNG", "VHS_VideoCombine"}
_FIRST_INPUTS = {"start_image", "first_image", "first_frame", "init_image", "clip_vision_start_image"}
_LAST_INPUTS = {"end_image", "last_image", "last_frame", "clip_vision_end_image"}
_FIRST_IMAGE_OF = {"LTXVImgToVideo", "LTXVImgToVideoInplace"}  # their "image" is the first frame
_IMAGE_LOADERS = {"LoadImage": "image", "LoadImageOutput": "image"}
_VIDEO_LOADERS = {"LoadVideo": "file", "VHS_LoadVideo": "video", "VHS_LoadVideoFFmpeg": "video",
                  "VHS_LoadVideoPath": "video"}
_AUDIO_LOADERS = {"LoadAudio": "audio", "VHS_LoadAudioUpload": "audio", "VHS_LoadAudio": "audio_file"}
_VIDEO_SAVERS = {"SaveVideo", "SaveWEBM", "VHS_VideoCombine", "SaveAnimatedWEBP", "SaveAnimatedPNG"}
_IMAGE_SAVERS = {"SaveImage"}

_PIN_EXAMPLE = '{"pins": {"prompt": "6.text", "seed": "3.seed"}}'
_HOW_TO_EXPORT = ("In ComfyUI open the workflow and choose Workflow > Export (API) (older versions: turn on "
                  "\"Enable Dev mode Options\" in the settings, then \"Save (API Format)\"), and use that file.")


class WorkflowError(ServiceError):
    """A workflow Shotline cannot use as it is; the message names what is missing and where."""


@dataclass(frozen=True)
class Slot:
    node_id: str
    input_name: str
    how: str = ""  # "int" / "float": the number is written as that type (an INT input truncates 23.976); "" as given


@dataclass(frozen=True)
class Mapping:
    slots: dict[str, Slot]  # field -> where it goes (only fields found)
    outputs: tuple[str, ...]  # node ids of the savers
    missing: tuple[str, ...]  # required fields not found, and "output" when no saver is
    also: dict[str, tuple[Slot, ...]] = field(default_factory=dict)  # more places the same value goes
    why: dict[str, str] = field(default_factory=dict)  # field -> why it was left out, when something was there

    def require(self, fields: Iterable[str]) -> None:
        """Raises WorkflowError naming every field of `fields` with no place, and a missing output node."""
        lacking = list(dict.fromkeys(f for f in fields if f not in self.slots))
        if not lacking and self.outputs:
            return
        parts = [f"{name} ({self.why[name]})" if name in self.why else name for name in lacking]
        text = ""
        if parts:
            text = (f"The ComfyUI workflow has no place Shotline can tell for: {'; '.join(parts)}. Pin each in the "
                    f"shot's options as NODE_ID.INPUT, like {_PIN_EXAMPLE}.")
        if not self.outputs:
            text += (" " if text else "") + ("The ComfyUI workflow saves nothing (output missing): end it with "
                                             "SaveVideo or VHS Video Combine.")
        raise WorkflowError(text)


def load(path) -> dict:
    """The API-format workflow in the file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise WorkflowError(f"Cannot read the ComfyUI workflow {path.name}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise WorkflowError(f"The ComfyUI workflow {path.name} is not a JSON text file.") from None
    try:
        workflow = json.loads(text)
    except json.JSONDecodeError as e:
        raise WorkflowError(f"The ComfyUI workflow {path.name} is not valid JSON: {e.msg} "
                            f"(line {e.lineno}, column {e.colno}).") from None
    _check(workflow, path.name)
    return workflow


def content_key(workflow: dict) -> str:
    """A sha256 of what the server runs (class types and inputs, in a canonical order). Titles are left
    out: renaming a node changes no clip."""
    core = {str(k): {"class_type": n.get("class_type"), "inputs": n.get("inputs", {})} for k, n in workflow.items()}
    text = json.dumps(core, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def analyse(workflow: dict, pins: dict[str, str] | None = None) -> Mapping:
    """Where each field goes; `pins` (field -> "NODE_ID.INPUT") override what is recognised."""
    _check(workflow, "The workflow")
    graph = _Graph(workflow)
    graph.recognise()
    for name, pin in (pins or {}).items():
        graph.pin(name, pin)
    outputs = tuple(k for k, n in workflow.items() if n["class_type"] in _VIDEO_SAVERS) or \
        tuple(k for k, n in workflow.items() if n["class_type"] in _IMAGE_SAVERS)
    missing = tuple(f for f in REQUIRED if f not in graph.slots) + (() if outputs else ("output",))
    return Mapping(graph.slots, outputs, missing, graph.also, graph.why)


def fill(workflow: dict, mapping: Mapping, values: dict[str, object]) -> dict:
    """A copy of `workflow` with each of `values` (keyed by FIELDS) written where `mapping` puts it."""
    mapping.require(values)
    filled = copy.deepcopy(workflow)
    for name, value in values.items():
        for slot in (mapping.slots[name], *mapping.also.get(name, ())):
            filled[slot.node_id]["inputs"][slot.input_name] = _as(value, slot.how)
    return filled


def _as(value, how: str):
    if how == "int":
        return value if isinstance(value, int) else round(value)  # never through float: seeds reach 2**64
    if how == "float":
        return float(value)
    return value


def _check(workflow, name: str) -> None:
    if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list):
        raise WorkflowError(f"{name} is a ComfyUI workflow saved for the editor, not for the API. {_HOW_TO_EXPORT}")
    if not isinstance(workflow, dict) or not workflow:
        raise WorkflowError(f"{name} is not a ComfyUI workflow (no nodes). {_HOW_TO_EXPORT}")
    for node_id, node in workflow.items():
        if not (isinstance(node, dict) and isinstance(node.get("class_type"), str)
                and isinstance(node.get("inputs", {}), dict)):
            raise WorkflowError(f"{name} is not an API-format ComfyUI workflow: node {node_id} has no class_type "
                                f"and inputs. {_HOW_TO_EXPORT}")


def _link(value) -> tuple[str, int] | None:
    """The (node id, output index) a linked input comes from; None for a literal."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) and isinstance(value[1], int):
        return str(value[0]), value[1]
    return None


class _Graph:
    """One analysis: the workflow read, and what was found so far."""

    def __init__(self, workflow: dict):
        self.nodes = {str(k): v for k, v in workflow.items()}
        self.slots: dict[str, Slot] = {}
        self.also: dict[str, tuple[Slot, ...]] = {}
        self.why: dict[str, str] = {}
        self.consumers: dict[str, list[tuple[str, str]]] = {}
        for node_id, node in self.nodes.items():
            for name, value in self.inputs(node_id).items():
                src = _link(value)
                if src:
                    self.consumers.setdefault(src[0], []).append((node_id, name))

    def cls(self, node_id: str) -> str:
        return self.nodes[node_id]["class_type"] if node_id in self.nodes else "missing"

    def inputs(self, node_id: str) -> dict:
        return self.nodes.get(node_id, {}).get("inputs", {})

    def name(self, node_id: str) -> str:
        return f"node {node_id} ({self.cls(node_id)})"

    def is_primitive(self, node_id: str) -> bool:
        inputs = self.inputs(node_id)
        return list(inputs) == ["value"] and _link(inputs["value"]) is None

    def source(self, node_id: str, input_name: str) -> tuple[str, str] | str:
        """Where the literal behind an input lives (itself, or the primitive feeding it); else why not."""
        src = _link(self.inputs(node_id)[input_name])
        if src is None:
            return node_id, input_name
        if self.is_primitive(src[0]):
            return src[0], "value"
        return f"{input_name} of {self.name(node_id)} comes from {self.name(src[0])}"

    def how(self, name: str, node_id: str, consumer: str) -> str:
        if name not in _NUMBERS:
            return ""
        cls = self.cls(node_id)
        if self.is_primitive(node_id) and ("Float" in cls or "Int" in cls):  # PrimitiveFloat, INTConstant...
            return "float" if "Float" in cls else "int"
        if name != "fps":
            return "int"
        return _FPS_INPUTS.get(self.cls(consumer), ("", "float"))[1]

    def settle(self, name: str, places: list[tuple[str, str]], what: str) -> None:
        """Takes the field's place if all `places` (node, input) come down to one literal; else says why not."""
        found: dict[tuple[str, str], str] = {}  # (node, input) holding the literal -> the node it feeds
        for node_id, input_name in places:
            where = self.source(node_id, input_name)
            if isinstance(where, str):
                self.why[name] = where
                return
            found.setdefault(where, node_id)
        if len(found) > 1 and name != "fps":  # every frame rate gets the shot's: they are one rate, not a choice
            self.why[name] = f"{len(found)} {what}: " + ", ".join(self.name(c) for c in found.values())
            return
        slots = [Slot(n, i, self.how(name, n, consumer)) for (n, i), consumer in found.items()]
        if slots:
            self.slots[name] = slots[0]
            if slots[1:]:
                self.also[name] = tuple(slots[1:])

    # -- recognition ---------------------------------------------------------------------------------------------

    def recognise(self) -> None:
        self.texts()
        seeds = [(k, s) for k in self.nodes if _SEED_HOLDER.search(self.cls(k)) for s in _SEED_INPUTS
                 if s in self.inputs(k) and self.inputs(k).get("add_noise") not in ("disable", False)]
        self.settle("seed", seeds, "samplers with a seed")
        latents = [k for k in self.nodes if {"width", "height"} <= set(self.inputs(k))
                   and (self.cls(k) in _IMAGE_LATENTS or any(f in self.inputs(k) for f in _FRAMES_INPUTS))]
        self.settle("width", [(k, "width") for k in latents], "latents")
        self.settle("height", [(k, "height") for k in latents], "latents")
        lengths = [(k, next(f for f in _FRAMES_INPUTS if f in self.inputs(k))) for k in latents
                   if any(f in self.inputs(k) for f in _FRAMES_INPUTS)]
        self.settle("frames", lengths, "latents with a length")
        rates = [(k, _FPS_INPUTS[self.cls(k)][0]) for k in self.nodes
                 if self.cls(k) in _FPS_INPUTS and _FPS_INPUTS[self.cls(k)][0] in self.inputs(k)]
        rates.sort(key=lambda place: self.cls(place[0]) not in _FPS_WRITERS)
        self.settle("fps", rates, "frame rates")
        self.images()
        for name, loaders in (("source_video", _VIDEO_LOADERS), ("audio", _AUDIO_LOADERS)):
            places = [(k, loaders[self.cls(k)]) for k in self.nodes
                      if self.cls(k) in loaders and loaders[self.cls(k)] in self.inputs(k)]
            self.settle(name, places, "loaders")

    def texts(self) -> None:
        """The prompt and negative prompt: the text encoders the samplers' conditioning comes from."""
        for role, name in (("positive", "prompt"), ("negative", "negative_prompt")):
            starts = [_link(self.inputs(k)[i]) for k in self.nodes if _SINK.search(self.cls(k))
                      for i in _SINK_INPUTS[role] if i in self.inputs(k)]
            encoders, cold = self.trail(role, [s for s in starts if s])
            encoders.sort(key=list(self.nodes).index)  # the workflow's order, so messages read the same each time
            if cold:
                self.why[name] = (f"the {role} conditioning comes from {self.name(cold[0])}, "
                                  f"which Shotline does not read")
            elif len(encoders) > 1:
                self.why[name] = f"{len(encoders)} {role} text encoders: " + ", ".join(self.name(e) for e in encoders)
            elif encoders:
                node_id = encoders[0]
                text = next(i for i in (f"{role}_prompt", *_TEXT_INPUTS) if i in self.inputs(node_id))
                self.settle(name, [(node_id, text)], "texts")
        if "negative_prompt" in self.slots and self.slots["negative_prompt"] == self.slots.get("prompt"):
            del self.slots["negative_prompt"]
            self.why["negative_prompt"] = "the negative conditioning is the prompt's own"

    def trail(self, role: str, starts: list[tuple[str, int]]) -> tuple[list[str], list[str]]:
        """Follows conditioning back from the samplers to the text encoders; also returns the nodes where
        the trail went cold (an unknown node: its text is not ours to guess)."""
        encoders: list[str] = []
        cold: list[str] = []
        seen: set[tuple[str, int]] = set()
        todo = list(starts)
        while todo:
            node_id, index = todo.pop()
            if (node_id, index) in seen:
                continue
            seen.add((node_id, index))
            inputs = self.inputs(node_id)
            if any(i in inputs for i in (f"{role}_prompt", *_TEXT_INPUTS)):
                if node_id not in encoders:
                    encoders.append(node_id)
                continue
            if self.cls(node_id) == "ConditioningZeroOut":
                continue  # zeroed conditioning: no text behind it
            if "positive" in inputs and "negative" in inputs:
                # Nodes that pass both (WanImageToVideo, LTXVConditioning...) output positive, negative, ...
                passed = {0: "positive", 1: "negative"}.get(index)
                sources = [_link(inputs[passed])] if passed else []
            else:
                sources = [_link(v) for k, v in inputs.items() if _PASS_THROUGH.match(k)]
            sources = [s for s in sources if s]
            if sources:
                todo.extend(sources)
            else:
                cold.append(node_id)
        return encoders, cold

    def images(self) -> None:
        """First and last frame: the image loaders, told apart by which input of the video node they reach."""
        places: dict[str, list[tuple[str, str]]] = {"first_frame": [], "last_frame": []}
        for node_id in self.nodes:
            input_name = _IMAGE_LOADERS.get(self.cls(node_id))
            if input_name is None or input_name not in self.inputs(node_id):
                continue
            roles = self.image_roles(node_id)
            if len(roles) > 1:
                for role in roles:
                    self.why[role] = f"{self.name(node_id)} feeds both the first and the last frame"
            for role in roles:
                places[role].append((node_id, input_name))
        for role, found in places.items():
            if found and role not in self.why:
                self.settle(role, found, "image loaders")

    def image_roles(self, loader: str) -> set[str]:
        roles: set[str] = set()
        seen = {loader}
        todo = [loader]
        while todo:
            for consumer, input_name in self.consumers.get(todo.pop(), []):
                role = self.frame_role(consumer, input_name)
                if role:
                    roles.add(role)
                elif role is None and consumer not in seen:  # not yet at the video node: follow the image on
                    seen.add(consumer)
                    todo.append(consumer)
        return roles

    def frame_role(self, node_id: str, input_name: str) -> str | None:
        """"first_frame", "last_frame", "" (an image input of a video node that is neither), None (not one)."""
        cls = self.cls(node_id)
        if input_name in _FIRST_INPUTS or (cls in _FIRST_IMAGE_OF and input_name == "image"):
            return "first_frame"
        if input_name in _LAST_INPUTS:
            return "last_frame"
        if cls == "LTXVAddGuide" and input_name == "image":
            index = self.inputs(node_id).get("frame_idx")
            return "first_frame" if index == 0 else "last_frame" if index == -1 else ""
        return None

    # -- pins ------------------------------------------------------------------------------------------------------

    def pin(self, name: str, pin: str) -> None:
        if name not in FIELDS:
            raise WorkflowError(f"Cannot pin \"{name}\": the fields are {', '.join(FIELDS)}.")
        node_id, dot, input_name = str(pin).rpartition(".")
        if not dot or not node_id or not input_name:
            raise WorkflowError(f"The pin for {name} is \"{pin}\"; write it as NODE_ID.INPUT, like \"6.text\".")
        if node_id not in self.nodes:
            raise WorkflowError(f"The pin {name} -> \"{pin}\" names node {node_id}, which the workflow does not have.")
        if input_name not in self.inputs(node_id):
            raise WorkflowError(f"The pin {name} -> \"{pin}\": {self.name(node_id)} has no input \"{input_name}\" "
                                f"(it has: {', '.join(self.inputs(node_id)) or 'none'}).")
        where = self.source(node_id, input_name)
        if isinstance(where, str):
            raise WorkflowError(f"The pin {name} -> \"{pin}\" cannot be written: {where}. Pin that node's value.")
        self.slots[name] = Slot(*where, self.how(name, where[0], node_id))
        self.also.pop(name, None)
        self.why.pop(name, None)

"""A director's ComfyUI workflow (API format, tests/workflows/) mapped to a shot's fields: what is
recognised in real-shaped Wan, LTX-Video and core-only exports, filling, pins, and refusals."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from shotline.addon.services.base import ServiceError

FLOWS = Path(__file__).resolve().parent / "workflows"
MODULE = "shotline.addon.services.comfyui.workflow"


def _load_module():
    """workflow.py by its path: these tests do not depend on the rest of the comfyui package."""
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    path = Path(__file__).resolve().parent.parent / "addon" / "services" / "comfyui" / "workflow.py"
    spec = importlib.util.spec_from_file_location(MODULE, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


wf = _load_module()
WorkflowError = wf.WorkflowError


def flow(name: str) -> dict:
    return wf.load(FLOWS / f"{name}.json")


# field -> (node id, input) per workflow; "fps+" lists the further places the frame rate goes.
EXPECTED = {
    "wan22_t2v_api": {
        "prompt": ("6", "text"), "negative_prompt": ("7", "text"), "seed": ("57", "noise_seed"),
        "width": ("59", "width"), "height": ("59", "height"), "frames": ("59", "length"), "fps": ("60", "fps"),
        "outputs": ("61",)},
    "wan22_i2v_api": {
        "prompt": ("6", "text"), "negative_prompt": ("7", "text"), "seed": ("57", "noise_seed"),
        "width": ("63", "width"), "height": ("63", "height"), "frames": ("63", "length"), "fps": ("60", "fps"),
        "first_frame": ("62", "image"), "outputs": ("61",)},
    "wan21_flf2v_api": {
        "prompt": ("6", "text"), "negative_prompt": ("7", "text"), "seed": ("3", "seed"),
        "width": ("83", "width"), "height": ("83", "height"), "frames": ("83", "length"), "fps": ("91", "fps"),
        "first_frame": ("52", "image"), "last_frame": ("72", "image"), "outputs": ("92",)},
    "ltxv_t2v_api": {
        "prompt": ("6", "text"), "negative_prompt": ("7", "text"), "seed": ("72", "noise_seed"),
        "width": ("70", "width"), "height": ("70", "height"), "frames": ("70", "length"), "fps": ("41", "fps"),
        "fps+": (("69", "frame_rate"),), "outputs": ("41",)},
    "ltxv_i2v_api": {
        "prompt": ("6", "text"), "negative_prompt": ("7", "text"), "seed": ("79", "noise_seed"),
        "width": ("77", "width"), "height": ("77", "height"), "frames": ("77", "length"), "fps": ("83", "fps"),
        "fps+": (("69", "frame_rate"),), "first_frame": ("78", "image"), "outputs": ("84",)},
    "core_primitives_vace_api": {
        "prompt": ("89", "value"), "negative_prompt": ("7", "text"), "seed": ("90", "value"),
        "width": ("91", "value"), "height": ("92", "value"), "frames": ("93", "value"), "fps": ("94", "value"),
        "source_video": ("96", "file"), "audio": ("97", "audio"), "outputs": ("69",)},
}

VALUES = {"prompt": "Неоновый дождь над певицей, Gecə yağışı altında müğənni", "negative_prompt": "text, watermark",
          "seed": 2**64 - 1, "width": 1024, "height": 576, "frames": 121, "fps": 23.976,
          "first_frame": "shotline/3f9a_first.png", "last_frame": "shotline/77c0_last.png",
          "source_video": "shotline/rehearsal.mp4", "audio": "shotline/bar17.wav"}


def places(mapping) -> dict:
    found = {name: (slot.node_id, slot.input_name) for name, slot in mapping.slots.items()}
    found.update({f"{name}+": tuple((s.node_id, s.input_name) for s in more) for name, more in mapping.also.items()})
    return found


def changed(before: dict, after: dict) -> dict:
    """(node, input) -> new value for every input that differs."""
    assert before.keys() == after.keys()
    diff = {}
    for node_id, node in after.items():
        assert {k: v for k, v in node.items() if k != "inputs"} == {k: v for k, v in before[node_id].items()
                                                                    if k != "inputs"}
        for name, value in node["inputs"].items():
            if before[node_id]["inputs"].get(name, object()) != value or type(value) is not type(
                    before[node_id]["inputs"].get(name)):
                diff[(node_id, name)] = value
    return diff


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_field_is_found_at_its_node_and_input(name):
    expected = dict(EXPECTED[name])
    mapping = wf.analyse(flow(name))
    assert mapping.outputs == expected.pop("outputs")
    assert places(mapping) == expected
    assert mapping.missing == ()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fill_writes_each_value_there_and_nowhere_else(name):
    original = flow(name)
    pristine = copy.deepcopy(original)
    mapping = wf.analyse(original)
    values = {k: v for k, v in VALUES.items() if k in mapping.slots}
    filled = wf.fill(original, mapping, values)
    assert original == pristine, "the workflow read from the file is never edited"
    expected = {}
    for field, value in values.items():
        for slot in (mapping.slots[field], *mapping.also.get(field, ())):
            expected[(slot.node_id, slot.input_name)] = value
    assert changed(original, filled) == expected
    rate = filled[mapping.slots["fps"].node_id]["inputs"][mapping.slots["fps"].input_name]
    assert rate == 23.976 and isinstance(rate, float)
    assert filled[mapping.slots["seed"].node_id]["inputs"][mapping.slots["seed"].input_name] == 2**64 - 1


def test_primitives_receive_the_values_and_the_links_stay():
    original = flow("core_primitives_vace_api")
    filled = wf.fill(original, wf.analyse(original), {"prompt": "a spin", "seed": 7, "width": 640, "fps": 24})
    assert filled["89"]["inputs"] == {"value": "a spin"}
    assert filled["90"]["inputs"] == {"value": 7}
    assert filled["91"]["inputs"] == {"value": 640}
    assert filled["94"]["inputs"]["value"] == 24.0 and isinstance(filled["94"]["inputs"]["value"], float)
    assert filled["3"]["inputs"]["seed"] == ["90", 0] and filled["6"]["inputs"]["text"] == ["89", 0]
    assert filled["49"]["inputs"]["height"] == ["92", 0]
    assert filled["92"] == original["92"], "only the fields given are written"


def test_only_the_fields_given_are_written():
    original = flow("wan22_t2v_api")
    filled = wf.fill(original, wf.analyse(original), {"prompt": "only this"})
    assert changed(original, filled) == {("6", "text"): "only this"}


def test_a_value_with_no_place_is_refused():
    original = flow("wan22_t2v_api")
    with pytest.raises(WorkflowError, match="first_frame"):
        wf.fill(original, wf.analyse(original), {"prompt": "x", "first_frame": "a.png"})


def test_an_integer_frame_rate_input_gets_a_rounded_integer():
    graph = flow("wan22_i2v_api")
    graph["70"] = {"class_type": "SVD_img2vid_Conditioning", "inputs": {
        "width": ["71", 0], "height": 576, "video_frames": 14, "motion_bucket_id": 127, "fps": 6,
        "augmentation_level": 0.0, "clip_vision": ["39", 0], "init_image": ["62", 0], "vae": ["39", 0]}}
    graph["71"] = {"class_type": "PrimitiveInt", "inputs": {"value": 1024}}
    mapping = wf.analyse(graph)
    assert mapping.slots["fps"] == wf.Slot("60", "fps", "float")
    assert mapping.also["fps"] == (wf.Slot("70", "fps", "int"),)
    filled = wf.fill(graph, mapping, {"fps": 23.976})
    assert filled["70"]["inputs"]["fps"] == 24 and isinstance(filled["70"]["inputs"]["fps"], int)
    assert filled["60"]["inputs"]["fps"] == 23.976
    assert "width" not in mapping.slots and "2 latents" in mapping.why["width"]


def test_one_encoder_with_both_prompts_and_embeds_as_in_the_wan_video_wrapper():
    graph = {
        "11": {"class_type": "LoadWanVideoT5TextEncoder", "inputs": {"model_name": "umt5-xxl-enc-bf16.safetensors",
                                                                      "precision": "bf16"}},
        "16": {"class_type": "WanVideoTextEncode", "inputs": {"positive_prompt": "a dancer", "negative_prompt": "blur",
                                                              "force_offload": True, "t5": ["11", 0]}},
        "22": {"class_type": "WanVideoModelLoader", "inputs": {"model": "Wan2_1-T2V-14B_fp8_e4m3fn.safetensors"}},
        "27": {"class_type": "WanVideoSampler", "inputs": {"steps": 30, "cfg": 6, "shift": 5, "seed": 1057359483639287,
                                                           "scheduler": "unipc", "model": ["22", 0],
                                                           "text_embeds": ["16", 0], "image_embeds": ["37", 0]}},
        "28": {"class_type": "WanVideoDecode", "inputs": {"vae": ["38", 0], "samples": ["27", 0]}},
        "30": {"class_type": "VHS_VideoCombine", "inputs": {"frame_rate": 16, "loop_count": 0,
                                                            "filename_prefix": "WanVideo", "format": "video/h264-mp4",
                                                            "pingpong": False, "save_output": True,
                                                            "images": ["28", 0]}},
        "37": {"class_type": "WanVideoEmptyEmbeds", "inputs": {"width": 832, "height": 480, "num_frames": 81}},
        "38": {"class_type": "WanVideoVAELoader", "inputs": {"model_name": "Wan2_1_VAE_bf16.safetensors"}},
    }
    mapping = wf.analyse(graph)
    assert places(mapping) == {"prompt": ("16", "positive_prompt"), "negative_prompt": ("16", "negative_prompt"),
                               "seed": ("27", "seed"), "width": ("37", "width"), "height": ("37", "height"),
                               "frames": ("37", "num_frames"), "fps": ("30", "frame_rate")}
    assert mapping.outputs == ("30",)


def test_ltxv_guides_at_the_first_and_last_frame_are_the_first_and_last_frame():
    graph = flow("ltxv_t2v_api")

    def guide(node_id, loader, image, index, after):
        graph[loader] = {"class_type": "LoadImage", "inputs": {"image": image}}
        graph[node_id] = {"class_type": "LTXVAddGuide", "inputs": {
            "frame_idx": index, "strength": 1, "positive": [after, 0], "negative": [after, 1], "vae": ["44", 2],
            "latent": [after, 2] if after != "69" else ["70", 0], "image": [loader, 0]}}

    guide("91", "90", "open.png", 0, "69")
    guide("93", "92", "middle.png", 48, "91")
    guide("95", "94", "close.png", -1, "93")
    graph["72"]["inputs"].update(positive=["95", 0], negative=["95", 1], latent_image=["95", 2])
    mapping = wf.analyse(graph)
    assert places(mapping)["first_frame"] == ("90", "image") and places(mapping)["last_frame"] == ("94", "image")
    assert places(mapping)["prompt"] == ("6", "text") and places(mapping)["negative_prompt"] == ("7", "text")


# -- pins ---------------------------------------------------------------------------------------------------------

def test_pins_override_what_is_recognised():
    graph = flow("ltxv_t2v_api")
    mapping = wf.analyse(graph, {"prompt": "7.text", "fps": "41.fps", "seed": "72.noise_seed"})
    assert mapping.slots["prompt"] == wf.Slot("7", "text")
    assert mapping.slots["fps"] == wf.Slot("41", "fps", "float") and "fps" not in mapping.also
    filled = wf.fill(graph, mapping, {"prompt": "swapped", "fps": 30.0})
    assert changed(graph, filled) == {("7", "text"): "swapped", ("41", "fps"): 30.0}


def test_a_pin_to_an_input_fed_by_a_primitive_writes_the_primitive():
    mapping = wf.analyse(flow("core_primitives_vace_api"), {"seed": "3.seed", "prompt": "6.text"})
    assert mapping.slots["seed"] == wf.Slot("90", "value", "int")
    assert mapping.slots["prompt"] == wf.Slot("89", "value")


@pytest.mark.parametrize("pins, words", [
    ({"prompt": "99.text"}, ["node 99", "does not have"]),
    ({"prompt": "6.txt"}, ["node 6 (CLIPTextEncode)", "no input \"txt\"", "text, clip"]),
    ({"prompt": "6"}, ["NODE_ID.INPUT"]),
    ({"lyrics": "6.text"}, ["\"lyrics\"", "prompt, negative_prompt"]),
    ({"prompt": "6.clip"}, ["clip of node 6 (CLIPTextEncode) comes from node 38 (CLIPLoader)"]),
])
def test_a_bad_pin_is_refused_by_name(pins, words):
    with pytest.raises(WorkflowError) as caught:
        wf.analyse(flow("wan22_t2v_api"), pins)
    for word in words:
        assert word in str(caught.value)
    assert isinstance(caught.value, ServiceError)


def test_the_unusual_layout_names_what_is_missing_and_works_once_pinned():
    graph = flow("custom_prompt_blend_api")
    mapping = wf.analyse(graph)
    assert mapping.missing == ("prompt",)
    assert "prompt" not in mapping.slots and "seed" not in mapping.slots and "negative_prompt" not in mapping.slots
    assert places(mapping) == {"width": ("40", "width"), "height": ("40", "height"), "frames": ("40", "length"),
                               "fps": ("60", "frame_rate")}
    assert mapping.outputs == ("60",)
    with pytest.raises(WorkflowError) as caught:
        mapping.require(["prompt", "seed", "fps"])
    text = str(caught.value)
    assert "prompt (the positive conditioning comes from node 52 (StyleConditioningBlend)" in text
    assert "seed (2 samplers with a seed: node 3 (KSampler), node 4 (KSampler))" in text
    assert "fps" not in text, "the frame rate was found"
    assert '"pins"' in text

    pinned = wf.analyse(graph, {"prompt": "50.text", "seed": "3.seed"})
    assert pinned.missing == () and pinned.why == {}
    pinned.require(["prompt", "seed", "fps"])
    filled = wf.fill(graph, pinned, {"prompt": "a boxer, Боксёр, boksçu", "seed": 5, "fps": 25.0})
    assert changed(graph, filled) == {("50", "text"): "a boxer, Боксёр, boksçu", ("3", "seed"): 5,
                                      ("60", "frame_rate"): 25.0}
    assert filled["4"]["inputs"]["seed"] == 1999 and filled["51"] == graph["51"]


# -- what is not guessed ------------------------------------------------------------------------------------------

def test_two_positive_encoders_are_not_guessed():
    graph = flow("wan22_t2v_api")
    graph["62"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "film grain", "clip": ["38", 0]}}
    graph["63"] = {"class_type": "ConditioningConcat", "inputs": {"conditioning_to": ["6", 0],
                                                                  "conditioning_from": ["62", 0]}}
    graph["57"]["inputs"]["positive"] = graph["58"]["inputs"]["positive"] = ["63", 0]
    mapping = wf.analyse(graph)
    assert mapping.missing == ("prompt",) and mapping.slots["negative_prompt"] == wf.Slot("7", "text")
    assert mapping.why["prompt"] == "2 positive text encoders: node 6 (CLIPTextEncode), node 62 (CLIPTextEncode)"


def test_a_prompt_built_by_another_node_is_not_guessed():
    graph = flow("wan22_t2v_api")
    graph["64"] = {"class_type": "StringConcatenate", "inputs": {"string_a": "a singer", "string_b": "35mm",
                                                                 "delimiter": ", "}}
    graph["6"]["inputs"]["text"] = ["64", 0]
    mapping = wf.analyse(graph)
    assert mapping.why["prompt"] == "text of node 6 (CLIPTextEncode) comes from node 64 (StringConcatenate)"
    assert wf.analyse(graph, {"prompt": "64.string_a"}).slots["prompt"] == wf.Slot("64", "string_a")


def test_one_still_for_both_ends_is_not_guessed():
    graph = flow("wan21_flf2v_api")
    graph["83"]["inputs"]["end_image"] = ["52", 0]
    graph["73"]["inputs"]["image"] = ["52", 0]
    del graph["72"]
    mapping = wf.analyse(graph)
    assert "first_frame" not in mapping.slots and "last_frame" not in mapping.slots
    assert mapping.why["last_frame"] == "node 52 (LoadImage) feeds both the first and the last frame"


def test_a_negative_that_is_the_prompt_itself_is_left_out():
    graph = flow("wan22_t2v_api")
    graph["57"]["inputs"]["negative"] = graph["58"]["inputs"]["negative"] = ["6", 0]
    mapping = wf.analyse(graph)
    assert mapping.slots["prompt"] == wf.Slot("6", "text") and "negative_prompt" not in mapping.slots


def test_a_workflow_without_a_saver_is_missing_its_output():
    graph = flow("wan22_t2v_api")
    del graph["61"]
    mapping = wf.analyse(graph)
    assert mapping.outputs == () and mapping.missing == ("output",)
    with pytest.raises(WorkflowError, match="saves nothing.*SaveVideo"):
        mapping.require(["prompt"])
    graph["61"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "frames", "images": ["8", 0]}}
    assert wf.analyse(graph).outputs == ("61",), "frames saved as images: an output all the same"


def test_require_names_every_field_without_a_place():
    mapping = wf.analyse(flow("wan22_t2v_api"))
    mapping.require(["prompt", "negative_prompt", "seed", "fps"])
    with pytest.raises(WorkflowError) as caught:
        mapping.require(["prompt", "first_frame", "audio", "source_video"])
    assert "first_frame; audio; source_video" in str(caught.value)


# -- reading the file -----------------------------------------------------------------------------------------------

def test_the_editor_format_is_refused_with_how_to_export():
    with pytest.raises(WorkflowError) as caught:
        wf.load(FLOWS / "wan22_t2v_ui_format.json")
    text = str(caught.value)
    assert "wan22_t2v_ui_format.json" in text and "saved for the editor" in text
    assert "Export (API)" in text and "Save (API Format)" in text
    with pytest.raises(WorkflowError, match="Export \\(API\\)"):
        wf.analyse(json.loads((FLOWS / "wan22_t2v_ui_format.json").read_text()))


def test_invalid_json_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "broken_api.json"
    path.write_text('{"6": {"class_type": CLIPTextEncode}}')
    reason = r"broken_api.json is not valid JSON: Expecting value \(line 1, column 22\)"
    with pytest.raises(WorkflowError, match=reason):
        wf.load(path)
    with pytest.raises(WorkflowError, match="Cannot read"):
        wf.load(tmp_path / "absent.json")
    path.write_text('{"6": {"inputs": {"text": "a"}}}')
    with pytest.raises(WorkflowError, match="node 6 has no class_type"):
        wf.load(path)
    path.write_text("[]")
    with pytest.raises(WorkflowError, match="not a ComfyUI workflow"):
        wf.load(path)


def test_cyrillic_and_azerbaijani_prompts_survive_fill_and_json(tmp_path):
    original = flow("wan22_i2v_api")
    prompt = "Певица поёт под дождём; Yağışın altında oxuyan qız, şəhər işıqları, çəhrayı göy"
    filled = wf.fill(original, wf.analyse(original), {"prompt": prompt, "negative_prompt": "Ъ ё ə ğ ı ş"})
    for text in (json.dumps(filled), json.dumps(filled, ensure_ascii=False)):
        back = json.loads(text.encode("utf-8").decode("utf-8"))
        assert back["6"]["inputs"]["text"] == prompt and back["7"]["inputs"]["text"] == "Ъ ё ə ğ ı ş"
    path = tmp_path / "filled_api.json"
    path.write_text(json.dumps(filled, ensure_ascii=False), encoding="utf-8")
    assert wf.load(path)["6"]["inputs"]["text"] == prompt


def test_content_key_follows_what_runs_not_how_it_is_written():
    graph = flow("wan22_t2v_api")
    key = wf.content_key(graph)
    assert key == wf.content_key(json.loads(json.dumps(dict(reversed(list(graph.items()))))))
    renamed = copy.deepcopy(graph)
    renamed["6"]["_meta"]["title"] = "Positive"
    assert wf.content_key(renamed) == key
    assert wf.content_key(wf.fill(graph, wf.analyse(graph), {"prompt": "another"})) != key
    assert len(key) == 64 and key == wf.content_key(flow("wan22_t2v_api"))

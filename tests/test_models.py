"""The model table: shipped entries, the user's file merged in, capabilities, refusals before
anything is sent, and how a shot's fields become a model's input."""

from __future__ import annotations

import base64
import io
import json
from fractions import Fraction

import pytest
from PIL import Image

from shotline.addon.services import inputs, models, registry
from shotline.addon.services.base import Request, ServiceError
from shotline.addon.services.fal import FalService
from shotline.addon.services.replicate import ReplicateService

SHOT = Request(shot_name="S", prompt="rain", frames=101, fps=Fraction(24), width=1920, height=1080, seed=9)


@pytest.fixture
def user_table(tmp_path):
    def use(content):
        folder = tmp_path / "config"
        folder.mkdir(exist_ok=True)
        (folder / "models.json").write_text(content if isinstance(content, str) else json.dumps(content))
        return models.use(folder)

    yield use
    models.use(None)


def test_the_shipped_table_is_whole():
    table = models.load()
    assert table.problems == ()
    ids = {m.service: [] for m in table.models}
    for m in table.models:
        ids[m.service].append(m.id)
    assert len(ids["fal"]) >= 15 and len(ids["replicate"]) >= 4
    for family in ("kling", "veo", "seedance", "hailuo", "wan", "ltx", "lipsync"):
        assert any(family in i for i in ids["fal"]), family
    assert all(m.label for m in table.models)


def test_both_services_are_registered_and_list_their_models():
    assert registry.get("fal").models()[0] == "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"
    assert "google/veo-3.1" in registry.get("replicate").models()


def test_capabilities_come_from_the_entry():
    caps = FalService().capabilities_for("fal-ai/kling-video/v2.5-turbo/pro/image-to-video")
    assert (caps.text_to_video, caps.first_frame, caps.last_frame, caps.lip_sync, caps.seed) == (
        False, True, True, False, False)
    assert caps.durations == (5.0, 10.0) and caps.price_per_second == 0.07
    veo = ReplicateService().capabilities_for("google/veo-3.1")
    assert veo.reference_images == 3 and veo.aspect_ratios == ("16:9", "9:16") and veo.text_to_video
    sync = FalService().capabilities_for("fal-ai/sync-lipsync/v2")
    assert (sync.text_to_video, sync.video_to_video, sync.lip_sync, sync.durations) == (False, True, True, ())
    assert FalService().capabilities_for("") == FalService().capabilities_for(FalService().models()[0])


@pytest.mark.parametrize("seconds, chosen", [(Fraction(3), 5), (Fraction(5), 5), (Fraction(121, 24), 10),
                                             (Fraction(10), 10)])
def test_the_shortest_duration_covering_the_shot(seconds, chosen):
    kling = models.table().find("fal", "fal-ai/kling-video/v2.5-turbo/pro/text-to-video")
    assert models.pick_duration(kling, seconds) == chosen


def test_durations_are_encoded_as_each_model_wants():
    shot = Request(**{**SHOT.__dict__, "frames": 100})
    assert models.build_input(models.table().find("fal", "fal-ai/veo3.1/fast"), shot, None)["duration"] == "6s"
    assert models.build_input(models.table().find("fal", "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"), shot,
                              None)["duration"] == "5"
    assert models.build_input(models.table().find("replicate", "google/veo-3.1"), shot, None)["duration"] == 6


def test_a_shot_longer_than_any_duration_is_refused_with_the_longest():
    with pytest.raises(ServiceError, match=r"Kling 2.5 Turbo Pro makes at most 10 s; this shot is 12.50 s"):
        FalService().check(Request(**{**SHOT.__dict__, "frames": 300}))


@pytest.mark.parametrize("size, ratio", [((1920, 1080), "16:9"), ((1080, 1920), "9:16"), ((2048, 858), "16:9"),
                                         ((1000, 1000), "1:1"), ((1080, 1350), "1:1")])
def test_the_nearest_aspect_ratio(size, ratio):
    assert inputs.nearest_ratio(*size, ("16:9", "9:16", "1:1")) == ratio


@pytest.mark.parametrize("size, resolution", [((1920, 1080), "1080p"), ((1280, 720), "720p"), ((320, 180), "720p"),
                                              ((4096, 2160), "4k"), ((8000, 4000), "4k")])
def test_the_smallest_resolution_covering_the_frame(size, resolution):
    assert inputs.pick_resolution(*size, ("720p", "1080p", "4k")) == resolution
    assert inputs.pick_resolution(1280, 720, ("512P", "768P")) == "768P"


def test_fields_a_model_has_no_input_for_are_not_sent_and_options_win():
    wan = models.table().find("fal", "fal-ai/wan/v2.2-a14b/image-to-video/lora")
    shot = Request(**{**SHOT.__dict__, "frames": 97, "fps": Fraction(30000, 1001), "reference_image": "/x.png",
                      "options": '{"resolution": "580p", "loras": []}'})
    body = models.build_input(wan, shot, lambda kind, path: f"<{kind} {path}>")
    assert body == {"prompt": "rain", "image_url": "<image /x.png>", "seed": 9, "num_frames": 97,
                    "frames_per_second": 30, "resolution": "580p", "loras": []}
    veo = models.table().find("fal", "fal-ai/veo3.1/fast")
    assert models.build_input(veo, Request(**{**SHOT.__dict__, "options": '{"generate_audio": true}'}),
                              None)["generate_audio"] is True


@pytest.mark.parametrize("service, changes, reason", [
    (FalService, {"model": "fal-ai/kling-video/v2.5-turbo/pro/image-to-video"}, "needs a first-frame image"),
    (FalService, {"model": "fal-ai/veo3.1/first-last-frame-to-video", "reference_image": "FILE"},
     "needs a last-frame image"),
    (FalService, {"last_frame_image": "FILE"}, "cannot end on a last-frame image"),
    (FalService, {"model": "fal-ai/minimax/hailuo-02/standard/image-to-video", "reference_image": "FILE",
                  "negative_prompt": "blur"}, "cannot take a negative prompt"),
    (FalService, {"model": "fal-ai/sync-lipsync/v2", "source_video": "FILE", "prompt": ""}, "needs an audio file"),
    (FalService, {"reference_image": "/no/such/still.png", "model": "fal-ai/veo3.1/image-to-video"},
     "Cannot read a first-frame image .*/no/such/still.png is not there"),
    (FalService, {"model": "fal-ai/wan/v2.2-a14b/image-to-video/lora", "reference_image": "FILE", "frames": 200},
     "at most 161 frames"),
    (FalService, {"model": "nobody/nothing"}, "fal has no model \"nobody/nothing\""),
    (FalService, {"options": "{cfg: 1}"}, "not valid JSON"),
    (FalService, {"options": "[1]"}, "must be a JSON object"),
    (ReplicateService, {"model": "google/veo-3.1", "reference_images": ("FILE",) * 4}, "at most 3 reference images"),
    (ReplicateService, {"model": "kwaivgi/kling-lip-sync", "audio": "FILE", "prompt": ""}, "needs a source video"),
])
def test_what_a_model_cannot_take_is_refused_before_sending(service, changes, reason, tmp_path):
    still = tmp_path / "still.png"
    Image.new("RGB", (16, 9)).save(still)
    fields = {k: (str(still) if v == "FILE" else tuple(str(still) for _ in v) if isinstance(v, tuple) else v)
              for k, v in changes.items()}
    with pytest.raises(ServiceError, match=reason):
        service().check(Request(**{**SHOT.__dict__, **fields}))


def test_estimates_use_the_price_per_second():
    veo = Request(**{**SHOT.__dict__, "model": "fal-ai/veo3.1/fast", "frames": 192})
    assert FalService().estimate_cost(veo) == pytest.approx(0.8)
    assert ReplicateService().estimate_cost(Request(**{**SHOT.__dict__, "model": "google/veo-3.1"})) is None


def test_the_users_file_adds_and_overrides(user_table):
    problems = user_table({"models": [
        {"service": "fal", "id": "fal-ai/veo3.1", "price_per_second": 0.2},  # a price the table lacked
        {"service": "replicate", "id": "acme/dream-video", "label": "Acme Dream",
         "inputs": {"prompt": "text", "duration": "seconds"}, "durations": [3, 6], "fps": "30000/1001"},
    ]})
    assert problems == ()
    veo = models.table().find("fal", "fal-ai/veo3.1")
    assert veo.price_per_second == 0.2 and veo.inputs["prompt"] == "prompt"  # the rest kept
    acme = models.table().find("replicate", "acme/dream-video")
    assert acme.fps == Fraction(30000, 1001) and "acme/dream-video" in ReplicateService().models()
    assert models.build_input(acme, SHOT, None) == {"text": "rain", "seconds": 6}


def test_a_broken_user_file_leaves_the_shipped_table_and_says_why(user_table):
    assert "models.json" in user_table("{not json")[0]
    assert len(models.table().for_service("fal")) == len(models.load().for_service("fal"))
    problems = user_table([{"service": "fal", "id": "x/y", "inputs": {"prompt": "prompt", "colour": "c"}},
                           {"label": "no id"},
                           {"service": "fal", "id": "x/z", "inputs": {"duration": "d"}}])
    assert len(problems) == 3
    assert any("unknown fields colour" in p for p in problems)
    assert any("lists no durations" in p for p in problems)
    assert models.table().find("fal", "x/y") is None


def test_a_missing_folder_is_the_shipped_table(tmp_path):
    assert models.load(tmp_path / "nowhere") == models.load()


def test_images_are_scaled_and_compressed_to_the_limit(tmp_path):
    big = tmp_path / "big.png"
    Image.effect_noise((2400, 1600), 80).convert("RGBA").save(big)  # noise: hard to compress; with alpha
    uri = inputs.image_data_uri(str(big), 300_000)
    assert uri.startswith("data:image/jpeg;base64,") and len(uri) <= 300_000
    decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert max(decoded.size) <= 2048 and decoded.size[0] / decoded.size[1] == pytest.approx(1.5, rel=0.01)
    small = tmp_path / "small.png"
    Image.new("RGB", (64, 36)).save(small)
    assert Image.open(io.BytesIO(base64.b64decode(
        inputs.image_data_uri(str(small), 10**6).split(",", 1)[1]))).size == (64, 36)  # never scaled up
    with pytest.raises(ServiceError, match="Cannot read the image"):
        inputs.image_data_uri(str(tmp_path / "nothing.png"), 10**6)

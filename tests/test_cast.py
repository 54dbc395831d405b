"""The project's cast: a member's stills go with every request of the shots it is in (named in the
shot's cast field or in its prompt, in any language and grammatical case), and with no other;
checked on what the fake services received, image by image."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from fractions import Fraction

import bpy
import numpy as np
import pytest
from PIL import Image

from fakes.clips import real_clip
from fakes.server import Cdn
from shotline.addon import cast as names
from shotline.addon.blend import cast, compat, runtime, shots
from shotline.addon.services import config, registry
from shotline.panels import cast as cast_panel
from test_panels import _draw, _draws, _labels, _operators, _props
from vse import add_shot, fixed_rate_service, op, select, set_fps

# -- which cast names a prompt mentions (addon/cast.py) ----------------------------------------------------------

CAST = ["Лейла", "Gülər", "Səməd", "İçərişəhər", "Ali", "Лейла Алиева", "Old Town"]


@pytest.mark.parametrize("prompt, named", [
    ("Лейла смотрит в окно", ["Лейла"]),
    ("Камера следит за Лейлой", ["Лейла"]),  # Russian case endings
    ("Дождь. Лейлы нет дома, Лейлу ждут", ["Лейла"]),
    ("ЛЕЙЛА", ["Лейла"]),
    ("Gülərin evi, Səmədə məktub", ["Gülər", "Səməd"]),  # Azerbaijani endings; prompt order
    ("GÜLƏR and SƏMƏD", ["Gülər", "Səməd"]),
    ("gecə İçərişəhərdə", ["İçərişəhər"]),
    ("gecə içərişəhərdə", ["İçərişəhər"]),  # the Turkic dotted capital İ folds to i
    ("Ali's car", ["Ali"]),
    ("Лейлы Алиевой дом", ["Лейла Алиева"]),  # the longest name at a place wins
    ("the old town at dusk", ["Old Town"]),
    ("Səməd meets Gülər, then Səməd leaves", ["Səməd", "Gülər"]),
    ("Gu\u0308lər", ["Gülər"]),  # decomposed ü
])
def test_a_prompt_names_cast_members_in_the_order_it_mentions_them(prompt, named):
    assert names.mentioned(prompt, CAST) == named


@pytest.mark.parametrize("prompt", [
    "Вывеска «Лейлани»",  # three letters past the stem: another word
    "Alice and Alina",  # short names match whole words only
    "Gülərimizdən",
    "Oldtown",
    "Лей ла",
    "",
])
def test_words_that_only_look_like_a_name_do_not_name_it(prompt):
    assert names.mentioned(prompt, CAST) == []


def test_the_field_comes_first_then_the_prompt_and_unknown_names_are_kept_apart():
    shot = names.in_shot(" gülər ; Nobody,ЛЕЙЛА, Gülər ", "Лейлу и Səmədi ждут в İçərişəhərdə", CAST)
    assert shot.names == ("Gülər", "Лейла", "Səməd", "İçərişəhər")
    assert shot.from_prompt == ("Səməd", "İçərişəhər")
    assert shot.unknown == ("Nobody",)
    assert names.field_names("a,, b ;\n  c  d ,A") == ["a", "b", "c d"]


# -- through Generate, against the fakes ---------------------------------------------------------------------------

COLOURS = {"own": (40, 60, 220), "leila": (220, 40, 40), "leila 2": (230, 150, 30), "place": (40, 180, 60),
           "place 2": (150, 50, 200)}
LEILA, PLACE = "Лейла", "İçərişəhər"


def _still(folder, label: str):
    path = folder / f"{label}-şəkil.png"
    Image.new("RGB", (64, 48), COLOURS[label]).save(path)
    return path


def _which(data: bytes) -> str:
    """The still whose colour this received image has (JPEG-recoded: compared by content, not name)."""
    with Image.open(io.BytesIO(data)) as image:
        mean = np.asarray(image.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)
    label, colour = min(COLOURS.items(), key=lambda kv: np.abs(mean - kv[1]).max())
    assert np.abs(mean - colour).max() < 12, f"an image no test still looks like: {mean}"
    return label


@dataclass
class Cloud:
    id: str
    model: str
    fake: object

    def received(self) -> dict[str, list[str]]:
        """Each request's prompt -> the stills it carried, in order."""
        if self.id == "replicate":  # data URIs
            inputs = [p["input"] for p in self.fake.predictions.values()]
            return {i["prompt"]: [_which(base64.b64decode(uri.split(",", 1)[1]))
                                  for uri in i.get("reference_images", [])] for i in inputs}
        instances = [b["instances"][0] for b in self.fake.bodies]
        return {i["prompt"]: [_which(base64.b64decode(r["image"]["bytesBase64Encoded"]))
                              for r in i.get("referenceImages", [])] for i in instances}


CLOUDS = [("replicate", "google/veo-3.1-fast"), ("veo", "veo-3.1-fast-generate-preview")]


def _start(spec, scene, monkeypatch) -> tuple[Cloud, Cdn]:
    service_id, model = spec
    cdn = Cdn()
    if service_id == "replicate":
        from fakes.replicate import ReplicateFake
        fake = ReplicateFake(cdn)
        key, url, env = fake.token, fake.api_url, "REPLICATE_API_TOKEN"
    else:
        from fakes.veo import KEY, FakeVeo
        fake = FakeVeo(cdn)
        key, url, env = KEY, fake.url, "GEMINI_API_KEY"
    fake.clip = lambda *_job: real_clip(Fraction(24), 48)
    monkeypatch.setenv(env, key)
    monkeypatch.setenv(f"SHOTLINE_{service_id.upper()}_URL", url)
    for store in (config._keys, config._urls):
        monkeypatch.delitem(store, service_id, raising=False)
    monkeypatch.setattr(registry.get(service_id), "poll_interval", 0.05)
    set_fps(scene, Fraction(24))
    return Cloud(service_id, model, fake), cdn


@pytest.fixture
def online():
    system = bpy.context.preferences.system
    was, system.use_online_access = system.use_online_access, True
    yield
    system.use_online_access = was


@pytest.fixture(params=CLOUDS, ids=[c[0] for c in CLOUDS])
def cloud(request, scene, monkeypatch, online):
    """A fake service whose model takes 3 reference images."""
    made, cdn = _start(request.param, scene, monkeypatch)
    yield made
    made.fake.close()
    cdn.close()


def _add(scene, **kw):
    """Add Cast Member (vse.op takes `name` for the operator's own)."""
    with compat.operators_on(scene):
        return bpy.ops.sequencer.shotline_cast_add(**kw)


def _member(scene, name: str, kind: str, *stills):
    assert _add(scene, name=name, kind=kind) == {'FINISHED'}
    for still in stills:
        assert op(scene, "shotline_cast_add_image", filepath=str(still)) == {'FINISHED'}
    return cast.find(scene, name)


def _shot(scene, cloud: Cloud, name: str, index: int, prompt: str):
    shot = add_shot(scene, name, 1 + index * 60, 48, channel=2)
    shot.shotline.prompt, shot.shotline.service, shot.shotline.model = prompt, cloud.id, cloud.model
    return shot


def _generate(scene, made) -> None:
    select(scene, made)
    assert op(scene, "shotline_generate") == {'FINISHED'}
    runtime.run_until_idle(120, interval=0.02)
    for shot in made:
        assert shot.shotline.status == 'PLACED', (shot.name, shot.shotline.status_message)


def test_a_cast_members_stills_reach_exactly_the_requests_of_their_shots(cloud, scene, tmp_path):
    _member(scene, LEILA, 'CHARACTER', _still(tmp_path, "leila"))
    _member(scene, PLACE, 'PLACE', _still(tmp_path, "place"))
    by_field = _shot(scene, cloud, "Окно", 0, "A woman at a rainy window")
    by_field.shotline.references.add().filepath = str(_still(tmp_path, "own"))
    by_prompt = _shot(scene, cloud, "Погоня", 1, "Камера следит за Лейлой по İçərişəhərdə, ночь")
    without = _shot(scene, cloud, "Пусто", 2, "Пустая улица, вывеска «Лейлани», рассвет")
    select(scene, [by_field])
    scene.shotline.cast_index = 0
    assert op(scene, "shotline_cast_assign") == {'FINISHED'}
    assert by_field.shotline.cast == LEILA
    without.shotline.cast = PLACE.upper()
    _generate(scene, [by_field, by_prompt, without])
    assert cloud.received() == {
        "A woman at a rainy window": ["own", "leila"],  # the shot's own still first
        "Камера следит за Лейлой по İçərişəhərdə, ночь": ["leila", "place"],  # in the order the prompt names them
        "Пустая улица, вывеска «Лейлани», рассвет": ["place"],
    }


REPLICATE_ONLY = pytest.mark.parametrize("cloud", CLOUDS[:1], ids=["replicate"], indirect=True)


@REPLICATE_ONLY
def test_a_model_taking_fewer_stills_gets_every_member_once_and_says_what_was_left_out(cloud, scene, tmp_path, capfd):
    _member(scene, LEILA, 'CHARACTER', _still(tmp_path, "leila"), _still(tmp_path, "leila 2"))
    _member(scene, PLACE, 'PLACE', _still(tmp_path, "place"), _still(tmp_path, "place 2"))
    shot = _shot(scene, cloud, "Встреча", 0, "Лейла в İçərişəhər")
    shot.shotline.references.add().filepath = str(_still(tmp_path, "own"))
    _generate(scene, [shot])
    assert cloud.received() == {"Лейла в İçərişəhər": ["own", "leila", "place"]}  # the model takes 3
    note = cast.left_out(scene, shot, registry.get("replicate"))
    assert note == ("2 of the cast's 4 reference image(s) left out, the model takes 3 in all: "
                    "Лейла: leila 2-şəkil.png, İçərişəhər: place 2-şəkil.png")
    assert note in capfd.readouterr().out  # said in Generate's report
    assert (note, 'INFO') in _labels(_draw(_draws(lambda layout: cast_panel.draw_shot_cast(layout, scene, shot)),
                                           scene))


@REPLICATE_ONLY
def test_a_missing_cast_image_fails_the_shot_and_names_the_member(cloud, scene, tmp_path):
    still = _still(tmp_path, "leila")
    _member(scene, LEILA, 'CHARACTER', still)
    shot = _shot(scene, cloud, "Лейла одна", 0, "Портрет Лейлы")
    still.unlink()
    select(scene, [shot])
    with pytest.raises(RuntimeError, match=f"Nothing was queued: Лейла одна: Cast member \"{LEILA}\": the image "
                                           f".*leila-şəkil.png is missing"):
        op(scene, "shotline_generate")
    assert shot.shotline.status == 'FAILED' and LEILA in shot.shotline.status_message
    assert cloud.fake.creates == 0


def test_a_model_without_reference_images_gets_no_cast_stills_and_its_own_are_still_refused(scene, tmp_path,
                                                                                             monkeypatch):
    service = fixed_rate_service(monkeypatch, Fraction(24))  # takes no reference images
    set_fps(scene, Fraction(24))
    _member(scene, LEILA, 'CHARACTER', _still(tmp_path, "leila"))
    shot = add_shot(scene, "Без стиля", 1, 24)
    shot.shotline.prompt, shot.shotline.service = "Лейла поёт", service.id
    planned = runtime.plan(scene, [shot])
    assert [p.request.reference_images for p in planned.ready] == [()] and planned.problems == []
    assert cast.left_out(scene, shot, service) == ""
    shot.shotline.references.add().filepath = str(_still(tmp_path, "own"))
    planned = runtime.plan(scene, [shot])
    assert planned.ready == [] and "takes no reference images, not 1" in planned.problems[0]


# -- editing the cast ----------------------------------------------------------------------------------------------

def test_members_are_added_with_unique_names_and_images_checked(scene, tmp_path):
    gular = _member(scene, "Gülər", 'CHARACTER')
    assert scene.shotline.cast_index == 0 and gular.kind == 'CHARACTER'
    with pytest.raises(RuntimeError, match="The cast already has \"Gülər\""):
        _add(scene, name="  GÜLƏR ")
    with pytest.raises(RuntimeError, match="no letters or digits"):
        _add(scene, name="«—»")
    for _ in range(2):
        assert _add(scene, kind='PLACE') == {'FINISHED'}
    assert [(m.name, m.kind) for m in scene.shotline.cast] == [("Gülər", 'CHARACTER'), ("Place", 'PLACE'),
                                                              ("Place 2", 'PLACE')]
    scene.shotline.cast_index = 0
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    with pytest.raises(RuntimeError, match="notes.txt is not an image"):
        op(scene, "shotline_cast_add_image", filepath=str(text))
    with pytest.raises(RuntimeError, match="No image at"):
        op(scene, "shotline_cast_add_image", filepath=str(tmp_path / "gone.png"))
    first, second = _still(tmp_path, "leila"), _still(tmp_path, "place")
    assert op(scene, "shotline_cast_add_image", directory=str(tmp_path),
              files=[{"name": first.name}, {"name": second.name}]) == {'FINISHED'}
    with pytest.raises(RuntimeError, match="already one of Gülər's images"):
        op(scene, "shotline_cast_add_image", filepath=str(first))
    assert [bpy.path.abspath(i.filepath) for i in gular.images] == [str(first), str(second)]
    assert op(scene, "shotline_cast_remove_image", index=0) == {'FINISHED'}
    assert [bpy.path.abspath(i.filepath) for i in gular.images] == [str(second)]
    with pytest.raises(RuntimeError, match="No image 5"):
        op(scene, "shotline_cast_remove_image", index=4)


def test_members_go_in_and_out_of_the_selected_shots(scene):
    leila = _member(scene, LEILA, 'CHARACTER')
    _member(scene, "Səməd", 'CHARACTER')
    first, second = add_shot(scene, "A", 1, 24), add_shot(scene, "B", 30, 24)
    first.shotline.cast = "Səməd"
    select(scene, [first, second])
    scene.shotline.cast_index = 0
    for _ in range(2):  # twice: no name twice
        assert op(scene, "shotline_cast_assign") == {'FINISHED'}
    assert (first.shotline.cast, second.shotline.cast) == (f"Səməd, {LEILA}", LEILA)
    assert [m.name for m in cast.members_in(scene, first)] == ["Səməd", LEILA]
    second.shotline.prompt = "Лейлу зовут"
    assert op(scene, "shotline_cast_unassign") == {'FINISHED'}
    assert (first.shotline.cast, second.shotline.cast) == ("Səməd", "")
    assert cast.members_in(scene, second) == [leila], "the prompt still names her"
    scene.shotline.cast_index = 1
    assert op(scene, "shotline_cast_remove") == {'FINISHED'}
    assert first.shotline.cast == "" and [m.name for m in scene.shotline.cast] == [LEILA]
    select(scene, [])
    with pytest.raises(RuntimeError):
        op(scene, "shotline_cast_assign")


def test_a_member_renamed_in_the_list_is_renamed_in_the_shots(scene):
    _member(scene, "Leyla", 'CHARACTER')
    first, second = add_shot(scene, "A", 1, 24), add_shot(scene, "B", 30, 24)
    first.shotline.cast, second.shotline.cast = "leyla, Səməd", "Səməd"
    scene.shotline.cast[0].name = LEILA  # a double-click on the name in the cast list
    assert cast.renamed(scene)
    _draw(_draws(lambda layout: cast_panel.draw_shot_cast(layout, scene, first)), scene)  # drawing may not write
    select(scene, [first])
    assert op(scene, "shotline_generate") == {'FINISHED'}  # Generate carries the rename first
    assert (first.shotline.cast, second.shotline.cast) == (f"{LEILA}, Səməd", "Səməd")
    assert not cast.renamed(scene) and [m.name for m in cast.members_in(scene, first)] == [LEILA]
    runtime.run_until_idle(120, interval=0.02)


def test_a_shot_with_only_a_cast_is_touched(scene):
    shot = add_shot(scene, "Laid out", 1, 24)
    shot.shotline.prompt = ""
    assert shots.is_untouched(shot)
    shot.shotline.cast = LEILA
    assert not shots.is_untouched(shot)


# -- panels --------------------------------------------------------------------------------------------------------

def test_the_cast_panel_lists_members_and_the_active_ones_images(scene, tmp_path):
    log = _draw(cast_panel.SEQUENCER_PT_shotline_cast, scene)
    assert _labels(log) == [("Characters, places and props whose stills go with their shots", 'INFO')]
    _member(scene, LEILA, 'CHARACTER', _still(tmp_path, "leila"), _still(tmp_path, "leila 2"))
    _member(scene, PLACE, 'PLACE')
    _member(scene, "Çətir", 'PROP')
    scene.shotline.cast_index = 0
    log = _draw(cast_panel.SEQUENCER_PT_shotline_cast, scene)
    rows = [(d.args["data"].name, d.args["icon"]) for d in log if d.method == "prop" and d.args["property"] == "name"]
    assert rows == [(LEILA, 'USER'), (PLACE, 'WORLD'), ("Çətir", 'PACKAGE')]
    assert [t for t, _i in _labels(log)] == ["2 image(s)", "no image", "no image", f"{LEILA}: 2 image(s)"]
    assert [p for p in _props(log) if p != "name"] == ["kind", "filepath", "filepath"]
    assert ("sequencer.shotline_cast_remove_image", "", {"index": 1}) in _operators(log)
    for name in ("add", "remove", "add_image", "assign", "unassign"):
        assert any(o == f"sequencer.shotline_cast_{name}" for o, _t, _p in _operators(log)), name


def test_the_shot_panel_lines_say_who_is_in_the_shot(scene, tmp_path, monkeypatch):
    _member(scene, LEILA, 'CHARACTER', _still(tmp_path, "leila"))
    _member(scene, PLACE, 'PLACE', _still(tmp_path, "place"))
    shot = add_shot(scene, "Shot", 1, 24)
    shot.shotline.prompt, shot.shotline.cast = "Лейла в İçərişəhərdə", "Nobody"
    shot.shotline.service = fixed_rate_service(monkeypatch, Fraction(24)).id

    def drawn():
        return _draw(_draws(lambda layout: cast_panel.draw_shot_cast(layout, scene, shot)), scene)

    log = drawn()
    assert _props(log) == ["cast"]
    assert _labels(log) == [
        (f"The prompt names: {LEILA}, {PLACE}", 'USER'), ("Not in the cast: Nobody", 'ERROR'),
        ("This model takes no reference images: the cast's stills are not sent", 'INFO')]
    shot.shotline.service, shot.shotline.model = "replicate", "google/veo-3.1-fast"
    assert _labels(drawn())[2:] == []
    (tmp_path / "place-şəkil.png").unlink()
    assert _labels(drawn())[2][1] == 'ERROR' and PLACE in _labels(drawn())[2][0]

"""Every Shotline panel and list row drawn in the states a director meets, into a layout that
refuses what Blender would not draw (nothing is drawn headless, so the layout records instead).

The recording layout checks each call against Blender's own description of UILayout: the
method and its keywords exist, enum values (icons above all) are real, `prop` and friends
name properties their data has, operators are registered and the properties set on them are
theirs. A panel that would show Blender's red "property not found" or a missing icon fails here.
"""

from __future__ import annotations

import re
from fractions import Fraction
from types import SimpleNamespace
from typing import NamedTuple

import bpy
import pytest

import signals
from shotline.addon.blend import compat, runtime, shots, song
from shotline.addon.services import registry
from shotline.panels import shot as shot_panels
from test_music import _write_wav
from vse import add_shot, generate, set_fps

UILAYOUT = bpy.types.UILayout.bl_rna
CONTAINERS = frozenset({"row", "column", "box", "split", "column_flow", "grid_flow"})
DRAWN = frozenset({"label", "prop", "prop_search", "operator", "template_list", "progress", "separator", "menu",
                   "separator_spacer"})
PROJECT, MUSIC, SHOT, TAKES = (shot_panels.SEQUENCER_PT_shotline_project, shot_panels.SEQUENCER_PT_shotline_music,
                               shot_panels.SEQUENCER_PT_shotline_shot, shot_panels.SEQUENCER_PT_shotline_takes)
# the shot's own settings and inputs (the panel also shows where pictures come from, the cast ...)
SETTINGS = {"prompt", "service", "options", "negative_prompt", "random_seed", "seed", "fit", "reference_image",
            "last_frame_image", "source_video", "audio"}


class Drawn(NamedTuple):
    method: str
    args: dict  # every argument by its parameter name; an operator's also has "props", the properties set on it


def _check_value(prop, value, where: str) -> None:
    """`value` fits the RNA property `prop` (a function parameter or an operator property)."""
    if prop.type == 'ENUM':
        items = set(prop.enum_items.keys())
        values = value if prop.is_enum_flag else {value}
        assert isinstance(value, set) if prop.is_enum_flag else isinstance(value, str), f"{where}: {value!r}"
        if items:  # dynamic enums list no items here
            assert values <= items, f"{where}: {value!r} is not one of Blender's values ({len(items)} of them)"
    elif prop.type == 'STRING':
        assert isinstance(value, str), f"{where}: expected text, got {value!r}"
    elif prop.type == 'BOOLEAN':
        assert isinstance(value, bool), f"{where}: expected True or False, got {value!r}"
    elif prop.type == 'INT':
        assert type(value) is int and prop.hard_min <= value <= prop.hard_max, f"{where}: {value!r}"
    elif prop.type == 'FLOAT':
        assert type(value) in (int, float) and prop.hard_min <= value <= prop.hard_max, f"{where}: {value!r}"
    elif prop.type == 'POINTER':
        assert isinstance(value, bpy.types.bpy_struct), f"{where}: expected Blender data, got {value!r}"


def _rna_property(data, name: str, where: str, kinds: set[str] | None = None):
    prop = data.bl_rna.properties.get(name)
    assert prop is not None and name != "rna_type", f"{where}: {data.bl_rna.identifier} has no property {name!r}"
    assert kinds is None or prop.type in kinds, \
        f"{where}: {data.bl_rna.identifier}.{name} is {prop.type}, not {sorted(kinds)}"
    return prop


class OperatorProperties:
    """What `layout.operator()` returns: only the operator's own properties, with fitting values, can be set."""

    def __init__(self, rna, props: dict):
        object.__setattr__(self, "_rna", rna)
        object.__setattr__(self, "_props", props)

    def __setattr__(self, name, value):
        prop = self._rna.properties.get(name)
        assert prop is not None and name != "rna_type", f"operator {self._rna.identifier} has no property {name!r}"
        _check_value(prop, value, f"{self._rna.identifier}.{name}")
        self._props[name] = value


class Layout:
    """A UILayout that records what is drawn and fails on anything Blender would not draw."""

    def __init__(self, log: list[Drawn], context):
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_context", context)

    def __getattr__(self, name):
        if name not in UILAYOUT.functions:
            raise AttributeError(f"UILayout has no {name!r}")  # hasattr() says False, a call fails the test
        assert name in CONTAINERS | DRAWN, f"layout.{name}() is not checked by this test yet: teach Layout"
        return lambda *args, **kwargs: self._call(name, args, kwargs)

    def __setattr__(self, name, value):
        prop = UILAYOUT.properties.get(name)
        assert prop is not None and not prop.is_readonly, f"UILayout has no settable {name!r}"
        _check_value(prop, value, f"layout.{name}")
        self._log.append(Drawn("set", {name: value}))

    def _call(self, name: str, args: tuple, kwargs: dict):
        params = {p.identifier: p for p in UILAYOUT.functions[name].parameters if not p.is_output}
        assert len(args) <= len(params), f"layout.{name}() takes at most {len(params)} positional arguments"
        bound = dict(zip(params, args))
        for key, value in kwargs.items():
            assert key in params, f"layout.{name}() has no parameter {key!r}"
            assert key not in bound, f"layout.{name}() got {key!r} twice"
            bound[key] = value
        missing = [key for key, p in params.items() if p.is_required and key not in bound]
        assert not missing, f"layout.{name}() misses {missing}"
        for key, value in bound.items():  # icon= included: an enum of every icon Blender has
            _check_value(params[key], value, f"layout.{name}({key}=)")
        entry = Drawn(name, bound)
        self._log.append(entry)
        if name in CONTAINERS:
            return Layout(self._log, self._context)
        return getattr(self, "_" + name, lambda _entry: None)(entry)

    def _prop(self, entry):
        _rna_property(entry.args["data"], entry.args["property"], "layout.prop()")

    def _prop_search(self, entry):
        a = entry.args
        _rna_property(a["data"], a["property"], "layout.prop_search()", {'STRING', 'POINTER'})
        _rna_property(a["search_data"], a["search_property"], "layout.prop_search() search", {'COLLECTION'})

    def _operator(self, entry):
        module, _, name = entry.args["operator"].partition(".")
        try:
            rna = getattr(getattr(bpy.ops, module), name).get_rna_type()
        except (AttributeError, KeyError):
            raise AssertionError(f"no operator {entry.args['operator']!r} is registered") from None
        entry.args["props"] = {}
        return OperatorProperties(rna, entry.args["props"])

    def _menu(self, entry):
        menu = getattr(bpy.types, entry.args["menu"], None)
        assert isinstance(menu, type) and issubclass(menu, bpy.types.Menu), \
            f"no menu {entry.args['menu']!r} is registered"

    def _template_list(self, entry):
        """Check the list's data as Blender does, then draw every row with the UIList's draw_item."""
        a = entry.args
        ui_list = getattr(bpy.types, a["listtype_name"], None)
        assert isinstance(ui_list, type) and issubclass(ui_list, bpy.types.UIList), \
            f"no UIList {a['listtype_name']!r} is registered"
        _rna_property(a["dataptr"], a["propname"], "layout.template_list()", {'COLLECTION'})
        _rna_property(a["active_dataptr"], a["active_propname"], "layout.template_list() active", {'INT'})
        row_self = SimpleNamespace(layout_type='DEFAULT', list_id=a["list_id"])
        for index, item in enumerate(getattr(a["dataptr"], a["propname"])):
            self._log.append(Drawn("item", {"index": index}))
            ui_list.draw_item(row_self, self._context, Layout(self._log, self._context), a["dataptr"], item, 0,
                              a["active_dataptr"], a["active_propname"], index)


def _draw(panel_cls, scene) -> list[Drawn]:
    with bpy.context.temp_override(**compat.scene_override(scene)):
        context = bpy.context
        if hasattr(panel_cls, "poll"):
            assert panel_cls.poll(context), f"{panel_cls.__name__} does not show"
        log: list[Drawn] = []
        panel_cls.draw(SimpleNamespace(layout=Layout(log, context)), context)
    return log


def _labels(log) -> list[tuple[str, str]]:
    return [(d.args.get("text", ""), d.args.get("icon", 'NONE')) for d in log if d.method == "label"]


def _operators(log) -> list[tuple[str, str | None, dict]]:
    return [(d.args["operator"], d.args.get("text"), d.args["props"]) for d in log if d.method == "operator"]


def _props(log) -> list[str]:
    return [d.args["property"] for d in log if d.method == "prop"]


def _settings(log) -> list[str]:
    return [name for name in _props(log) if name in SETTINGS]


def _add_song(scene, tmp_path, name="steady_120"):
    truth = signals.catalogue()[name]()
    path = _write_wav(tmp_path / f"{name}.wav", truth.audio, truth.rate)
    return compat.strips(scene.sequence_editor).new_sound("Song", str(path), channel=1, frame_start=1)


def _show(scene, strip) -> None:
    scene.sequence_editor.active_strip = strip


# -- the recording layout itself -------------------------------------------------------------------------------


def _draws(body):
    return type("Broken", (), {"draw": lambda self, context: body(self.layout)})


@pytest.mark.parametrize("body, complaint", [
    (lambda l: l.prop(bpy.context.scene.shotline, "sogn"), "has no property 'sogn'"),
    (lambda l: l.label(text="x", icon='NO_SUCH_ICON'), "'NO_SUCH_ICON'"),
    (lambda l: l.label(txt="x"), "has no parameter 'txt'"),
    (lambda l: l.operator("sequencer.shotline_no_such_thing"), "no operator"),
    (lambda l: setattr(l.operator("sequencer.shotline_cancel"), "everything", True), "has no property"),
    (lambda l: setattr(l.operator("sequencer.shotline_correct_grid"), "action", 'TRIPLE'), "'TRIPLE'"),
    (lambda l: setattr(l.operator("sequencer.shotline_use_take"), "index", "0"), "index: '0'"),
    (lambda l: l.template_ID(bpy.context.scene, "world"), "not checked by this test"),
    (lambda l: l.row().draw_anything(), "UILayout has no 'draw_anything'"),
    (lambda l: setattr(l, "enabeld", False), "no settable 'enabeld'"),
    (lambda l: l.template_list("SEQUENCER_UL_nothing", "", bpy.context.scene, "frame_start",
                               bpy.context.scene, "frame_end"), "no UIList"),
    (lambda l: l.template_list("SEQUENCER_UL_shotline_takes", "", bpy.context.scene, "frame_start",
                               bpy.context.scene, "frame_end"), "frame_start is INT, not ['COLLECTION']"),
    (lambda l: l.prop_search(bpy.context.scene.shotline, "song", bpy.context.scene.sequence_editor,
                             "active_strip"), "active_strip is POINTER, not ['COLLECTION']"),
])
def test_the_recording_layout_refuses_what_blender_would_not_draw(scene, body, complaint):
    with pytest.raises((AssertionError, AttributeError), match=re.escape(complaint)):
        _draw(_draws(body), scene)


# -- Shotline (the project) and Music ------------------------------------------------------------------------------


def test_a_fresh_scene_without_a_sequencer(scene):
    scene.sequence_editor_clear()
    log = _draw(PROJECT, scene)
    assert _labels(log) == [("No sound strip: add the song", 'INFO')]
    assert not any(d.method == "prop_search" for d in log)
    assert _props(log) == ["take_channel_offset", "media_folder", "workflow", "budget"]
    assert _operators(_draw(MUSIC, scene)) == [("sequencer.shotline_analyze_song", None, {})]


def test_no_song_yet(scene):
    log = _draw(PROJECT, scene)
    assert _labels(log) == [("No sound strip: add the song", 'INFO')]
    search = next(d.args for d in log if d.method == "prop_search")
    assert (search["data"], search["property"], search["search_data"]) == (scene.shotline, "song",
                                                                            scene.sequence_editor)
    for button in ("sequencer.shotline_make_shots", "sequencer.shotline_add_shot", "sequencer.shotline_generate"):
        assert (button, None, {}) in _operators(log)
    assert not any(name == "sequencer.shotline_cancel" for name, _text, _props in _operators(log))
    assert _labels(_draw(MUSIC, scene)) == [("Not analysed yet", 'NONE')]


def test_a_song_before_and_after_analysis(scene, tmp_path):
    set_fps(scene, Fraction(24))
    _add_song(scene, tmp_path)
    assert _labels(_draw(PROJECT, scene)) == [("Following: Song", 'INFO')]
    assert _labels(_draw(MUSIC, scene)) == [("Not analysed yet", 'NONE')]
    song.analyze(scene)
    log = _draw(MUSIC, scene)
    (tempo, icon), = _labels(log)
    assert re.fullmatch(r"(119\.[5-9]|120\.[0-4]) BPM · 4/4 · 80 beats", tempo) and icon == 'TIME', tempo
    buttons = _operators(log)
    assert [b for b in buttons if b[0] == "sequencer.shotline_correct_grid"] == [
        ("sequencer.shotline_correct_grid", "½×", {"action": 'HALVE'}),
        ("sequencer.shotline_correct_grid", "2×", {"action": 'DOUBLE'}),
        ("sequencer.shotline_correct_grid", "Downbeat +1", {"action": 'DOWNBEAT', "amount": 1}),
        ("sequencer.shotline_correct_grid", "", {"action": 'RESET'}),
    ]
    for button in (("sequencer.shotline_analyze_song", None, {}),
                   ("sequencer.shotline_analyze_song", "Bar Markers", {"markers": 'BARS'}),
                   ("sequencer.shotline_remove_markers", "", {}),
                   ("sequencer.shotline_lay_out", None, {}),
                   ("sequencer.shotline_snap", None, {})):
        assert button in buttons


def test_a_song_whose_tempo_changes_shows_its_range(scene, tmp_path):
    set_fps(scene, Fraction(24))
    _add_song(scene, tmp_path, "tempo_change")  # 10 bars at 120, 8 at 96
    song.analyze(scene)
    (tempo, _icon), = _labels(_draw(MUSIC, scene))
    assert re.fullmatch(r"9[5-7]-12[01] BPM · 4/4 · 72 beats", tempo), tempo


def test_running_jobs_can_all_be_cancelled(scene):
    set_fps(scene, Fraction(24))
    scene.render.resolution_x, scene.render.resolution_y = 64, 36
    shot = add_shot(scene, "Running", 1, 48, channel=2)
    try:
        assert runtime.submit(scene, [shot]) == (1, [], [])
        log = _draw(PROJECT, scene)
        assert _labels(log)[-1] == ("1 job(s) running", 'TIME')
        assert _operators(log)[-1] == ("sequencer.shotline_cancel", "Cancel All", {"all": True})
    finally:
        runtime.cancel()
        runtime.run_until_idle(timeout=60, interval=0.02)
    assert _labels(_draw(PROJECT, scene))[-1] != ("1 job(s) running", 'TIME')


# -- the Shot panel and its takes ------------------------------------------------------------------------------


def test_the_shot_panel_shows_for_shots_and_their_take_strips_only(scene, tmp_path):
    set_fps(scene, Fraction(24))
    shot = add_shot(scene, "Panel shot", 1, 24)
    plain = compat.new_effect(compat.strips(scene.sequence_editor), "plain", 'COLOR', 5, 1, 24)
    sound = _add_song(scene, tmp_path)
    with bpy.context.temp_override(**compat.scene_override(scene)):
        for strip, shows in ((plain, False), (sound, False), (shot, True)):
            _show(scene, strip)
            assert SHOT.poll(bpy.context) is shows, strip.name
        scene.sequence_editor.active_strip = None
        assert not SHOT.poll(bpy.context)


# What each status looks like: its name and icon, a bar with the percentage while it moves,
# Cancel while it can be cancelled.
STATUSES = [
    ('NONE', ("label", "Not Generated", 'BLANK1'), False),
    ('QUEUED', ("label", "Queued", 'SORTTIME'), True),
    ('GENERATING', ("progress", "Generating 40%", 'BAR'), True),
    ('DOWNLOADING', ("progress", "Downloading 40%", 'BAR'), True),
    ('PLACED', ("label", "Placed", 'CHECKMARK'), False),
    ('FAILED', ("label", "Failed", 'ERROR'), False),
    ('CANCELLED', ("label", "Cancelled", 'CANCEL'), False),
    ('SHORT', ("label", "Short", 'INFO'), False),
]


@pytest.mark.parametrize("status, shown, cancels", STATUSES, ids=[s[0] for s in STATUSES])
def test_every_status_of_a_shot(scene, status, shown, cancels):
    shot = add_shot(scene, "Status shot", 1, 24)
    shot.shotline.status, shot.shotline.progress = status, 0.4
    _show(scene, shot)
    log = _draw(SHOT, scene)
    assert _labels(log)[0] == ("Status shot", 'SEQUENCE')
    assert _settings(log) == ["prompt", "service", "negative_prompt", "random_seed", "seed", "fit", "reference_image",
                              "last_frame_image", "source_video", "audio"]
    method, text, style = shown
    drawn = [d.args for d in log if d.method == method and d.args.get("text") == text]
    assert len(drawn) == 1, (text, _labels(log))
    if method == "progress":
        assert drawn[0]["type"] == style and drawn[0]["factor"] == pytest.approx(0.4)
    else:
        assert drawn[0]["icon"] == style
    assert (("sequencer.shotline_cancel", None, {"all": False}) in _operators(log)) is cancels
    listed = next(d.args for d in _draw(TAKES, scene) if d.method == "template_list")
    assert (listed["dataptr"], listed["propname"], listed["active_propname"]) == (shot.shotline, "takes",
                                                                                  "active_take")


def test_a_failed_shot_shows_its_reason(scene):
    shot = add_shot(scene, "Broken", 1, 24)
    shot.shotline.status, shot.shotline.status_message = 'FAILED', "Shot \"Broken\" has no prompt"
    _show(scene, shot)
    labels = _labels(_draw(SHOT, scene))
    at = labels.index(("Failed", 'ERROR'))
    assert labels[at + 1] == ("Shot \"Broken\" has no prompt", 'NONE')


def test_a_text_shot_without_a_prompt_says_its_text_is_used(scene):
    shot = compat.new_effect(compat.strips(scene.sequence_editor), "Titled", 'TEXT', 2, 1, 24)
    shot.text = "A neon koi swims between skyscrapers"
    shots.make_shot(shot)
    _show(scene, shot)
    assert ("Using the strip's text: A neon koi swims between skyscrapers", 'INFO') in _labels(_draw(SHOT, scene))


def test_a_laid_out_shot_without_a_prompt_does_not_claim_its_placeholder_is_used(scene):
    shot = compat.new_effect(compat.strips(scene.sequence_editor), "Shot 01", 'TEXT', 2, 1, 24)
    shot.text = "bars 3-4"
    shots.make_shot(shot, placeholder="bars 3-4")  # as Lay Out Shots makes it for a row without a prompt
    _show(scene, shot)
    labels = [text for text, _icon in _labels(_draw(SHOT, scene))]
    assert not any(text.startswith("Using the strip's text") for text in labels), labels
    assert any(text.startswith("No prompt yet") for text in labels), labels


def test_a_placed_shot_lists_its_takes_from_its_take_strip_too(scene):
    set_fps(scene, Fraction(24))
    scene.render.resolution_x, scene.render.resolution_y = 64, 36
    shot = add_shot(scene, "Two takes", 1, 24, channel=2)
    shot.shotline.random_seed = False
    for seed in (11, 12):
        shot.shotline.seed = seed
        generate(scene, [shot])
    assert shot.shotline.status == 'PLACED', shot.shotline.status_message
    takes = shot.shotline.takes
    for active in (shot, shots.take_strip(scene, shot)):
        _show(scene, active)
        labels = _labels(_draw(SHOT, scene))
        assert labels[0] == ("Two takes", 'SEQUENCE') and ("Placed", 'CHECKMARK') in labels
        log = _draw(TAKES, scene)
        start = next(i for i, d in enumerate(log) if d.method == "template_list") + 1
        rows = [d for d in log[start:] if d.method != "row"][:8]
        assert [(d.method, d.args.get("text"), d.args.get("icon")) for d in rows] == [
            ("item", None, None),
            ("label", "Take 1", 'FILE_MOVIE'),
            ("label", f"animatic · seed 11 · {takes[0].created}", None),
            ("operator", "", 'SOLO_OFF'),
            ("item", None, None),
            ("label", "Take 2", 'CHECKMARK'),
            ("label", f"animatic · seed 12 · {takes[1].created}", None),
            ("operator", "", 'SOLO_OFF'),
        ]
        assert [props for name, _t, props in _operators(rows)] == [{"index": 0}, {"index": 1}]


@pytest.mark.parametrize("service, model, fields", [
    ("luma", "ray-2", ["prompt", "service", "options", "fit"]),
    ("luma", "ray-3.2", ["prompt", "service", "options", "fit", "reference_image", "last_frame_image"]),
    ("runway", "veo3.1", ["prompt", "service", "options", "negative_prompt", "fit", "reference_image",
                          "last_frame_image"]),
    ("runway", "aleph2", ["prompt", "service", "options", "random_seed", "seed", "fit", "source_video"]),
], ids=["luma ray-2", "luma ray-3.2", "runway veo3.1", "runway aleph2"])
def test_the_shot_panel_offers_only_what_the_model_takes(scene, service, model, fields):
    shot = add_shot(scene, "Model shot", 1, 24)
    shot.shotline.service, shot.shotline.model = service, model
    _show(scene, shot)
    log = _draw(SHOT, scene)
    assert _settings(log) == fields
    menus = [d.args for d in log if d.method == "menu"]
    assert menus == [{"menu": "SEQUENCER_MT_shotline_models", "text": model, "icon": 'NODE'}]
    shot.shotline.negative_prompt = "blurry"  # set for another model: still shown, and refused on Generate
    assert "negative_prompt" in _settings(_draw(SHOT, scene))
    from shotline.operators.services import SEQUENCER_MT_shotline_models

    choices = [props["model"] for name, _text, props in _operators(_draw(SEQUENCER_MT_shotline_models, scene))
               if name == "sequencer.shotline_set_model"]
    assert choices[0] == "" and model in choices and len(choices) == 1 + len(registry.get(service).models())

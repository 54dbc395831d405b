"""Cut on the music: analyse the song, correct its grid, lay out shots on bars, snap shot edges."""

from __future__ import annotations

import time

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..addon import beats, layout, shotlist
from ..addon.blend import compat, placement, song
from .common import scene_with_editor, selected_shots


def _summary(result: beats.Analysis) -> str:
    tempo = result.tempo_text + (f" (median {result.bpm:.1f})" if result.tempo_changes else "")
    return f"{tempo}, {result.beats_per_bar}/4, {len(result.beats)} beats, {len(beats.bars(result))} bars"


class _NeedsSong:
    @classmethod
    def poll(cls, context):
        scene = scene_with_editor(context)
        if scene is None or song.strip(scene) is None:
            cls.poll_message_set("Add the song (a sound strip) first")
            return False
        return True


class _NeedsAnalysis:
    @classmethod
    def poll(cls, context):
        scene = scene_with_editor(context)
        if scene is None or song.strip(scene) is None or song.analysis(scene) is None:
            cls.poll_message_set("Analyze the song first")
            return False
        return True


class SEQUENCER_OT_shotline_analyze_song(_NeedsSong, bpy.types.Operator):
    """Find the song's tempo, beats, bars and sections (cached until the song file changes)"""

    bl_idname = "sequencer.shotline_analyze_song"
    bl_label = "Analyze Song"
    # No REGISTER: redoing would run the whole analysis again, blocking; a background result is its own undo step.
    bl_options = {'UNDO'}

    force: BoolProperty(name="Analyze Again", description="Ignore the cached analysis and its corrections",
                        default=False)  # type: ignore
    markers: EnumProperty(name="Markers", items=[
        ('KEEP', "Keep", "Leave the timeline markers as they are"),
        ('BARS', "Bars", "A marker on every bar"),
        ('BEATS', "Beats", "A marker on every beat"),
    ], default='KEEP')  # type: ignore
    background: BoolProperty(name="In the Background", options={'SKIP_SAVE', 'HIDDEN'}, default=False,
                             description="Analyse on a worker thread and return at once; the result lands from "
                             "a timer (where timers do not run, song.run_until_analysed lands it)")  # type: ignore

    def invoke(self, context, _event):
        self.background = True  # the button: Blender stays responsive, the Music panel shows the progress
        return self.execute(context)

    def execute(self, context):
        scene = scene_with_editor(context)
        started = time.perf_counter()
        try:
            if self.background:
                song.start_analysis(scene, force=self.force, markers=self.markers)
                self.report({'INFO'}, f"Analysing {song.strip(scene).name}...")
                return {'FINISHED'}
            result, reused = song.analyze(scene, force=self.force)  # scripts and the command line: wait for it
        except song.SongError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        if self.markers != 'KEEP':
            song.add_markers(scene, result, every_beat=self.markers == 'BEATS')
        how = "cached" if reused else f"analysed in {time.perf_counter() - started:.1f} s"
        self.report({'INFO'}, f"{song.strip(scene).name}: {_summary(result)} ({how})")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_cancel_analysis(bpy.types.Operator):
    """Stop analysing the song (the stored analysis stays as it was)"""

    bl_idname = "sequencer.shotline_cancel_analysis"
    bl_label = "Cancel Analysis"

    @classmethod
    def poll(cls, context):
        scene = compat.sequencer_scene(context)
        return scene is not None and song.analysing(scene) is not None

    def execute(self, context):
        song.cancel_analysis()
        self.report({'INFO'}, "Analysis cancelled")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_correct_grid(_NeedsAnalysis, bpy.types.Operator):
    """Correct the beat grid: halve or double the tempo, shift the beats or the downbeat, or set the BPM"""

    bl_idname = "sequencer.shotline_correct_grid"
    bl_label = "Correct Beat Grid"
    bl_options = {'REGISTER', 'UNDO'}

    action: EnumProperty(name="Correction", items=[
        ('HALVE', "Half Tempo", "Keep every other beat"),
        ('DOUBLE', "Double Tempo", "Add a beat between each two"),
        ('PHASE', "Shift Beats", "Move every beat by a fraction of a beat"),
        ('DOWNBEAT', "Shift Downbeat", "Move the first beat of each bar by whole beats"),
        ('BPM', "Set BPM", "A steady grid at this tempo, anchored on the tracked bars"),
        ('METER', "Set Beats per Bar", "Bars of this many beats"),
        ('RESET', "Reset", "Back to the tracked grid"),
    ])  # type: ignore
    amount: FloatProperty(name="Amount", description="Beats to shift, BPM, or beats per bar", default=1.0)  # type: ignore

    def execute(self, context):
        scene = scene_with_editor(context)
        result = song.analysis(scene)
        try:
            result = {
                'HALVE': lambda: result.halve_tempo(),
                'DOUBLE': lambda: result.double_tempo(),
                'PHASE': lambda: result.shift_phase(beats=self.amount),
                'DOWNBEAT': lambda: result.shift_downbeat(round(self.amount)),
                'BPM': lambda: result.set_bpm(self.amount),
                'METER': lambda: result.set_beats_per_bar(round(self.amount)),
                'RESET': lambda: result.reset(),
            }[self.action]()
        except ValueError as err:
            label = self.properties.bl_rna.properties["action"].enum_items[self.action].name
            self.report({'ERROR'}, f"{label}: {err}; the grid is unchanged")
            return {'CANCELLED'}
        song.store(scene, result)
        song.refresh_markers(scene, result)
        self.report({'INFO'}, _summary(result))
        return {'FINISHED'}


class SEQUENCER_OT_shotline_remove_markers(bpy.types.Operator):
    """Remove Shotline's beat and bar markers (your own markers stay)"""

    bl_idname = "sequencer.shotline_remove_markers"
    bl_label = "Remove Beat Markers"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        scene = compat.sequencer_scene(context)
        return scene is not None and any(m.name.startswith(song.MARKER_PREFIX) for m in scene.timeline_markers)

    def execute(self, context):
        removed = song.remove_markers(compat.sequencer_scene(context))
        self.report({'INFO'}, f"Removed {removed} markers")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_lay_out(_NeedsAnalysis, bpy.types.Operator):
    """Create shots on the music: every N bars, one per section, or from a shot list"""

    bl_idname = "sequencer.shotline_lay_out"
    bl_label = "Lay Out Shots"
    bl_options = {'REGISTER', 'UNDO'}

    mode: EnumProperty(name="Mode", items=[
        ('BARS', "Every N Bars", "A shot every N bars over a range of bars"),
        ('SECTIONS', "Per Section", "One shot per section of the song (intro, verse, chorus...)"),
        ('LIST', "Shot List", "Shots whose lengths in bars and prompts come from a CSV or JSON file"),
    ], default='BARS')  # type: ignore
    bars: IntProperty(name="Bars per Shot", default=2, min=1, max=64)  # type: ignore
    first_bar: IntProperty(name="First Bar", default=1, min=1)  # type: ignore
    last_bar: IntProperty(name="Last Bar", description="0: to the end of the song", default=0, min=0)  # type: ignore
    filepath: StringProperty(name="Shot List", subtype='FILE_PATH')  # type: ignore
    channel: IntProperty(name="Channel", default=2, min=1, max=127)  # type: ignore

    def execute(self, context):
        scene = scene_with_editor(context)
        result = song.analysis(scene)
        bar_list = beats.bars(result)
        try:
            if self.mode == 'BARS':
                slots = layout.every_n_bars(bar_list, self.bars, self.first_bar - 1, self.last_bar or None)
            elif self.mode == 'SECTIONS':
                slots = layout.per_section(result.sections)
            else:
                rows = shotlist.read(bpy.path.abspath(self.filepath))
                slots = layout.from_bar_counts(bar_list, rows, self.first_bar - 1)
        except ValueError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        plan = song.plan_lay_out(scene, slots)
        if not plan.cuts and not plan.replaced:
            reason = "your shots are already there" if plan.kept_slots else "the range holds no audible bars"
            self.report({'WARNING'}, f"No shots: {reason}")
            return {'CANCELLED'}
        made = song.lay_out(scene, slots, self.channel)
        notes = [f"replaced {len(plan.replaced)} untouched shot(s)"] if plan.replaced else []
        if plan.kept_slots:
            names = ", ".join(s.name for s in plan.kept[:3]) + (", ..." if len(plan.kept) > 3 else "")
            notes.append(f"{plan.kept_slots} slot(s) left to your shots there ({names})")
        self.report({'INFO'}, f"Laid out {len(made)} shots" + (f"; {'; '.join(notes)}" if notes else ""))
        return {'FINISHED'}


class SEQUENCER_OT_shotline_snap(_NeedsAnalysis, bpy.types.Operator):
    """Move the selected shots' edges to the nearest beat or bar"""

    bl_idname = "sequencer.shotline_snap"
    bl_label = "Snap Shots"
    bl_options = {'REGISTER', 'UNDO'}

    to: EnumProperty(name="Snap To", items=[('BEAT', "Beat", ""), ('BAR', "Bar", "")], default='BAR')  # type: ignore

    def execute(self, context):
        scene = scene_with_editor(context)
        selected = selected_shots(context)
        if not selected:
            self.report({'WARNING'}, "Select the shots to snap")
            return {'CANCELLED'}
        result = song.analysis(scene)
        times = result.beats if self.to == 'BEAT' else result.downbeats
        grid = song.frames(scene, times)
        if len(grid) < 2:
            self.report({'ERROR'}, "The song has too few beats on the timeline to snap to")
            return {'CANCELLED'}
        moved = 0
        for shot in selected:
            left, right = compat.span(shot)
            new_left, new_right = int(layout.nearest(left, grid)), int(layout.nearest(right, grid))
            if new_right <= new_left:  # both edges found the same beat: keep the shot one grid step long
                new_right = next((g for g in grid if g > new_left), new_left + 1)
            if (new_left, new_right) == (left, right):
                continue
            moved += 1
            try:
                song.move_shot(scene, shot, new_left, new_right)
            except (placement.PlacementError, RuntimeError) as err:  # RuntimeError: Blender refused the retiming
                self.report({'WARNING'}, f"{shot.name}: its take could not follow the shot: {err}")
        self.report({'INFO'}, f"Snapped {moved} of {len(selected)} shots to the {self.to.lower()}s")
        return {'FINISHED'}


classes = (SEQUENCER_OT_shotline_analyze_song, SEQUENCER_OT_shotline_cancel_analysis,
           SEQUENCER_OT_shotline_correct_grid, SEQUENCER_OT_shotline_remove_markers, SEQUENCER_OT_shotline_lay_out,
           SEQUENCER_OT_shotline_snap)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    song.register()


def unregister():
    song.unregister()  # cancels a running analysis and joins its worker
    _unregister_classes()

"""Add-on preferences: each cloud service's key and address, and when to ask before paying.

Keys live in Blender's user preferences (never in a .blend). They reach the services through
`services.config` by `push()`, called before anything is sent: no update callbacks (Blender 4.5
may run those without the GIL while job workers run Python).
"""

from __future__ import annotations

import bpy
from bpy.props import FloatProperty, StringProperty

from ..services import config, models, registry
from ..services.base import Service

PACKAGE = __package__.rpartition(".addon.blend")[0]


def configurable_services() -> list[Service]:
    """Services with a key or an address to set."""
    return [s for s in registry.all_services() if s.key_env or s.default_url]


def _field(config_id: str) -> str:
    return config_id.replace("-", "_") + "_key"


def _fields_of(service) -> list[str]:
    """The preference fields of `service`, in the order they are drawn."""
    fields = [f"{service.id}_key"] if service.key_env else []
    fields += [_field(config_id) for config_id, _label, _env in service.extra_keys]
    return fields + ([f"{service.id}_url"] if service.default_url else [])


def _annotations() -> dict:
    fields = {}
    for service in configurable_services():
        if service.key_env:
            fields[f"{service.id}_key"] = StringProperty(
                name=f"{service.label} {service.key_label}", subtype='PASSWORD',
                description=f"Empty: the {service.key_env} environment variable")
        for config_id, label, env in service.extra_keys:
            fields[_field(config_id)] = StringProperty(
                name=label, subtype='PASSWORD', description=f"Empty: {env}, else the {service.label} key")
        if service.default_url:
            fields[f"{service.id}_url"] = StringProperty(
                name="Address", description=f"Empty: {service.default_url} (or SHOTLINE_{service.id.upper()}_URL); "
                "a company gateway or proxy otherwise")
    fields["flamenco_url"] = StringProperty(
        name="Flamenco Manager", description="The farm's Manager address (e.g. http://manager:8080)")
    fields["flamenco_batch_script"] = StringProperty(
        name="Batch Script on the Farm", subtype='FILE_PATH',
        description="Shotline's scripts/batch.py where the farm's workers see it (shared storage); "
        "empty: the one installed with this extension")
    fields["confirm_above"] = FloatProperty(
        name="Confirm Batches Above", description="Ask before sending a batch estimated to cost more (USD)",
        default=5.0, min=0.0, precision=2)
    return fields


class SHOTLINE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = PACKAGE
    __annotations__ = _annotations()

    def draw(self, context):
        draw(self.layout, self)


def draw(layout, prefs) -> None:
    from . import connection

    layout.prop(prefs, "confirm_above")
    box = layout.box()
    box.label(text="Render Farm", icon='NETWORK_DRIVE')
    box.prop(prefs, "flamenco_url")
    box.prop(prefs, "flamenco_batch_script")
    for service in configurable_services():
        box = layout.box()
        row = box.row()
        row.label(text=service.label, icon='URL')
        row.operator("preferences.shotline_test_connection", text="Test Connection").service = service.id
        for field in _fields_of(service):
            box.prop(prefs, field)
        answer = connection.answer(service.id)
        if answer:
            box.label(text=answer.text, icon='CHECKMARK' if answer.ok else 'ERROR')


def get() -> SHOTLINE_AP_preferences | None:
    addon = bpy.context.preferences.addons.get(PACKAGE)
    return addon.preferences if addon else None


def push() -> None:
    """Hand the keys and addresses to the services (main thread; workers read them from config)."""
    prefs = get()

    def value(field: str) -> str:
        return getattr(prefs, field, "") if prefs else ""

    for service in configurable_services():
        config.set_key(service.id, value(f"{service.id}_key"))
        config.set_url(service.id, value(f"{service.id}_url"))
        for config_id, _label, _env in service.extra_keys:
            config.set_key(config_id, value(_field(config_id)))


def confirm_above() -> float:
    prefs = get()
    return prefs.confirm_above if prefs else 5.0


classes = (SHOTLINE_AP_preferences,)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    from . import mediafolder

    _register()
    push()
    models.use(mediafolder.user_folder())  # models.json there adds models or overrides shipped ones


def unregister():
    from . import connection, farm
    connection.stop()
    farm.wait(5.0)
    _unregister()

"""Shotline's pure core: no bpy outside addon/blend/."""

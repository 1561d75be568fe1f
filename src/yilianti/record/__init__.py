"""Shared longitudinal record across members, and the access report (see record/sources.py)."""

from importlib import import_module

# Modules that register record sources (`@source(...)`); other domains append theirs here.
SOURCE_MODULES = ("yilianti.record.sources", "yilianti.recognition.record", "yilianti.chronic.record")

for _name in SOURCE_MODULES:
    import_module(_name)

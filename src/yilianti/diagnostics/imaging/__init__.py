"""Imaging: DICOM upload, the browser viewer, window/level, forwarding to Orthanc (service.py), its API and pages."""

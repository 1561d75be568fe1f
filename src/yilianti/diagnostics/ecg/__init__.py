"""12-lead ECG: import, measurements, the paper-grid display (service.py), its API and pages."""

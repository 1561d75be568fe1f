"""What arrives from devices and member systems: HL7 v2 MLLP (hl7.py, on PostgreSQL hl7_fast.py), DICOM C-STORE
(dicom.py), started together by start.py; ingest.py stores results and images and keeps the quarantine."""

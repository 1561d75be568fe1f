"""DICOMweb: QIDO-RS, WADO-RS and STOW-RS at /dicomweb."""

"""FHIR R4 over the platform's own tables (issue 21): no second copy of the data.

wire.py (media type, OperationOutcome, Bundle, paging links), search.py (parameters people use, parsed once,
declared in the CapabilityStatement and the OpenAPI from the same table), mapping.py (rows → resources),
repository.py (queries), service.py (reads and searches through authz.policy, audited), capability.py
(the CapabilityStatement, generated from the mounted routes), api.py (the routes under /fhir).
"""

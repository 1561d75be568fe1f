"""Diagnostic orders: the catalogue, ordering, the order state machine in use (workflow.py), their API and pages."""

"""Reading: critical values (危急值) raised from results and reports; the worklist, claims and reports are
in orders/workflow.py, which every move goes through."""

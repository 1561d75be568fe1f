"""Reading: the centre's worklist, claims, reports and TAT (service.py), and critical values (危急值)
raised from results and reports (critical.py); every move goes through orders/workflow.py's transition."""

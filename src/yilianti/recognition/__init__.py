"""Mutual recognition of results (检查检验结果互认, DOMAIN.md §6, issue 7).

Where results live — one place: every result, whether it went through a platform order
(diagnostics: a shared centre read it) or was imported from a member's own LIS/HIS (e.g.
香河县人民医院's own laboratory), is a `DiagnosticOrder` with its `LabObservation` rows.
Imported ones are written by `recognition.results.import_external_result` with an accession
number `EXT-<institution>-<their id>`, status `final`, `reported_at` the member's report time and
an order-history row saying where it came from. So the order-time lookup, the HR mark, the
shared record and the diagnostics report pages all read one table; a separate
`ExternalResult` table would have made every reader look in two places and merge them.

Modules:
- `service.py`  scopes, the HR mark (`hr_mark` / `hr_marks`, callable from other domains),
                the order-time lookup, reuse / re-test decisions, the monthly report;
- `catalogue.py` the spreadsheet import (CSV / XLSX) of items, rules and qualified institutions;
- `results.py`   import of a member's own results (numeric values need units);
- `api.py` / `pages.py` JSON API (member HIS systems with an API token) and pages.
"""

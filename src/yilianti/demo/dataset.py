"""The whole demo data set: the base (alliances, staff, accounts, patients: demo/loader.py), then each
domain's data behind a marker of its own."""

from __future__ import annotations

from sqlalchemy.orm import Session

from yilianti.demo import chronic as demo_chronic
from yilianti.demo import cockpit as demo_cockpit
from yilianti.demo import consultation as demo_consultation
from yilianti.demo import diagnostics as demo_diagnostics
from yilianti.demo import diagnostics_media as demo_media
from yilianti.demo import empi, loader, recognition, referrals, scheduling
from yilianti.demo import encounters as demo_encounters
from yilianti.demo.loader import DemoAccount


def load_demo(db: Session) -> list[DemoAccount]:
    """Load the demo data set unless it is already there; returns the demo accounts.

    Flushes, never commits. Alliances, institutions, memberships and departments that
    already exist (by key / name) are reused, so loading over a database that already
    holds some of the real alliances does not duplicate them. The booking data (schedules,
    eight weeks of booking history, wards, the wait-list) sits behind a marker of its own
    (demo/scheduling.py), so a database loaded before it existed gets it on the next load.
    """
    if not loader.is_loaded(db):
        loader.load_base(db)
    for part in (scheduling, referrals, recognition, empi, demo_consultation, demo_diagnostics, demo_media,
                 demo_cockpit, demo_chronic, demo_encounters):
        if not part.is_loaded(db):
            part.load(db)
    return loader.demo_accounts()

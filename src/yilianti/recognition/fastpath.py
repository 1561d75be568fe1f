"""The hot path of the order-time recognition lookup on PostgreSQL (B3), on asyncpg.

`service.lookup` is the reference implementation (and the only one on SQLite). Here the same
decision is taken with:

- a per-process snapshot of the catalogue (active items and their codes, active scopes with
  their areas, rules, QC qualifications with their periods, institutions' names/areas and
  memberships), reloaded when it is older than `CATALOGUE_SECONDS` (catalogue changes reach
  every process within that time; `invalidate()` drops it at once in this process);
- ONE prepared statement: the access check of `policy.decide`, built from the same clauses
  (`policy.access`: care relationship →
  `own`; else the unexpired, unrevoked grant expiring last → `grant` / `break_glass`; the
  shared record with the patient's sharing consent in force, break-glass seeing everything)
  and the patient's resulted orders for the item's codes inside the longest validity window,
  newest first, with their observations;
- the read's audit row queued on `audit.batch` (DOMAIN.md §4b: reads may be written in
  batches flushed at least every second and at shutdown), the same row `require_patient`
  writes.

The scope / QC-on-the-result-date / validity rules then run in Python on the snapshot: the
reference's own decision, `service.recognise`. What it cannot decide — no bearer token, a query the route's
validation would judge, a token that does not resolve or a non-clinical subject, an unknown
item code, a patient not visible, a statement error — goes to the regular route unchanged,
which answers (and audits) as before.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeGuard
from urllib.parse import parse_qs

import asyncpg
from fastapi import Request
from sqlalchemy import ColumnElement, any_, exists, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from starlette.types import Scope

from yilianti.audit import batch
from yilianti.authz import policy
from yilianti.authz.policy import read_basis, shared_of
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.diagnostics.states import RESULTED
from yilianti.exceptions import AppError, request_locale
from yilianti.fastdb.pool import connection, fetchrow, on_postgresql
from yilianti.fastdb.route import FastRoute
from yilianti.fastdb.subject import client_ip, route_subject
from yilianti.kit import clock
from yilianti.kit.i18n import translate
from yilianti.kit.schemas import parse_id
from yilianti.kit.sqlcompile import Params, sql
from yilianti.models.alliance import Membership
from yilianti.models.diagnostics import DiagnosticOrder, LabObservation
from yilianti.recognition import service
from yilianti.recognition.service import source_clause

PATH = "/api/v1/recognition/lookup"
CATALOGUE_SECONDS = 5.0
stats: Counter[str] = Counter()  # served by the "statement" / "fallback" to the route
__all__ = ["RecognitionRoute", "invalidate", "lookup", "stats"]


def enabled() -> bool:
    return get_settings().recognition_fast_path and on_postgresql()


# ------------------------------------------------------------------------------------ the catalogue snapshot


@dataclass
class Catalogue:
    loaded: float
    items: dict[str, tuple[int, str, str, str]]  # active item code → (id, code, name, kind)
    aliases: dict[str, int]  # mapped code → active item id
    by_id: dict[int, tuple[int, str, str, str]]
    codes: dict[int, list[str]]  # item id → every code that means it
    scopes: list[service.ScopeInfo]
    rules: dict[int, dict[int, int]]  # item id → scope id → valid days
    quals: dict[tuple[int, int], list[tuple[int, date, date, str]]]  # (inst, item) → (scope, from, to, name)
    names: dict[int, str]  # institution names
    areas: dict[int, tuple[str | None, str | None]]  # institution → (province, city), normalised
    memberships: dict[int, list[Membership]] = field(default_factory=dict)  # institution → its memberships
    database: str = ""  # the database it was read from (a process serving another database reloads it)
    _covering: dict[tuple[int, date], list[service.ScopeInfo]] = field(default_factory=dict)

    def find_item(self, code: str) -> tuple[int, str, str, str] | None:
        code = (code or "").strip()
        return self.by_code(code) if code else None

    def by_code(self, code: str) -> tuple[int, str, str, str] | None:
        """The active item an order's code means, as `service._items_by_code` finds it (exact code, then alias)."""
        hit = self.items.get(code)
        if hit is None and code in self.aliases:
            hit = self.by_id.get(self.aliases[code])
        return hit

    def hr_label(self, source: int, item_id: int, on: date) -> str:
        """The HR mark of a result of `source` on `on` (as `service.hr_marks` decides it): "HR 京津冀" or ""."""
        names = [name for _, name in service.qualified_on(self.quals.get((source, item_id), []), on)]
        return ("HR " + "、".join(names)) if names else ""

    def covering(self, inst_id: int, today: date) -> list[service.ScopeInfo]:
        """service.covering_scopes on the snapshot (remembered per institution and day for the snapshot's life)."""
        key = (inst_id, today)
        hit = self._covering.get(key)
        if hit is None:
            hit = self._covering[key] = self._cover(inst_id, today)
        return hit

    def _cover(self, inst_id: int, today: date) -> list[service.ScopeInfo]:
        if inst_id not in self.areas:
            return []
        alliances = {m.alliance_id for m in self.memberships.get(inst_id, []) if m.is_current(today)}
        return service.covering(self.scopes, alliances, *self.areas[inst_id])


_catalogue: Catalogue | None = None
_catalogue_lock: asyncio.Lock | None = None
_lock_loop: asyncio.AbstractEventLoop | None = None


def invalidate() -> None:
    """Drop this process's snapshot (the next lookup reloads it)."""
    global _catalogue
    _catalogue = None


async def _load(conn: asyncpg.Connection) -> Catalogue:
    items: dict[str, tuple[int, str, str, str]] = {}
    by_id: dict[int, tuple[int, str, str, str]] = {}
    codes: dict[int, list[str]] = defaultdict(list)
    for r in await conn.fetch("SELECT id, code, name, kind FROM recognition_item WHERE active ORDER BY id"):
        items[r["code"]] = by_id[r["id"]] = (r["id"], r["code"], r["name"], r["kind"])
        codes[r["id"]].append(r["code"])
    aliases: dict[str, int] = {}
    for r in await conn.fetch("SELECT c.item_id, c.code FROM recognition_item_code c "
                              "JOIN recognition_item i ON i.id = c.item_id WHERE i.active ORDER BY c.id"):
        aliases.setdefault(r["code"], r["item_id"])
        if r["code"] not in codes[r["item_id"]]:
            codes[r["item_id"]].append(r["code"])
    found: dict[int, tuple[Any, list[tuple[str, str | None]]]] = {}
    for r in await conn.fetch("SELECT s.id, s.code, s.name, s.kind, s.alliance_id, a.province, a.city "
                              "FROM recognition_scope s LEFT JOIN recognition_scope_area a ON a.scope_id = s.id "
                              "WHERE s.active ORDER BY s.id"):
        entry = found.setdefault(r["id"], (r, []))
        if r["province"] is not None:
            entry[1].append((service.norm_area(r["province"]) or "", service.norm_area(r["city"])))
    scopes = [service.ScopeInfo(s["id"], s["code"], s["name"], s["kind"], s["alliance_id"], tuple(a))
              for s, a in found.values()]
    rules: dict[int, dict[int, int]] = defaultdict(dict)
    for r in await conn.fetch("SELECT item_id, scope_id, valid_days FROM recognition_rule ORDER BY id"):
        rules[r["item_id"]][r["scope_id"]] = r["valid_days"]
    quals: dict[tuple[int, int], list[tuple[int, date, date, str]]] = defaultdict(list)
    for r in await conn.fetch(
            "SELECT q.institution_id, q.item_id, q.scope_id, q.qc_from, q.qc_to, s.name FROM recognition_qualified q "
            "JOIN recognition_scope s ON s.id = q.scope_id "
            "JOIN recognition_rule r ON r.scope_id = q.scope_id AND r.item_id = q.item_id "
            "WHERE s.active ORDER BY s.id"):
        quals[(r["institution_id"], r["item_id"])].append((r["scope_id"], r["qc_from"], r["qc_to"], r["name"]))
    names: dict[int, str] = {}
    areas: dict[int, tuple[str | None, str | None]] = {}
    for r in await conn.fetch("SELECT id, name, province, city FROM institution"):
        names[r["id"]] = r["name"]
        areas[r["id"]] = (service.norm_area(r["province"]), service.norm_area(r["city"]))
    memberships: dict[int, list[Membership]] = defaultdict(list)
    for r in await conn.fetch("SELECT institution_id, alliance_id, joined_on, left_on FROM membership"):
        memberships[r["institution_id"]].append(Membership(alliance_id=r["alliance_id"], joined_on=r["joined_on"],
                                                           left_on=r["left_on"]))
    return Catalogue(time.monotonic(), items, aliases, by_id, dict(codes), scopes, dict(rules), dict(quals), names,
                     areas, dict(memberships), database=get_settings().database_url)


def _fresh(snap: Catalogue | None) -> TypeGuard[Catalogue]:
    return (snap is not None and time.monotonic() - snap.loaded < CATALOGUE_SECONDS
            and snap.database == get_settings().database_url)


async def catalogue(conn: asyncpg.Connection) -> Catalogue:
    global _catalogue, _catalogue_lock, _lock_loop
    snap = _catalogue
    if _fresh(snap):
        return snap
    loop = asyncio.get_running_loop()
    if _catalogue_lock is None or _lock_loop is not loop:
        _catalogue_lock, _lock_loop = asyncio.Lock(), loop
    async with _catalogue_lock:
        snap = _catalogue
        if not _fresh(snap):
            snap = _catalogue = await _load(conn)
    return snap


# ------------------------------------------------------------------------------------ the statement

P = Params(patient="bigint", institution="bigint", user="bigint", now="timestamptz", today="date", codes="text[]",
           since="timestamptz")  # since: reported since (None when the institution is in no scope of the item)


def _statement() -> str:
    """The access decision (`policy.access`: care relationship, grant, or a booking into one of its sessions; the
    consent in force) and, only when the patient is visible, the resulted orders of the item's codes inside the
    longest validity window, newest first (at most 200, as the reference), with their observations."""
    acc = policy.access(P.patient, P.institution, P.user, P.now, P.today)
    d, ob = DiagnosticOrder, LabObservation
    o = (select(d.id, d.accession_number, d.item_code, d.item_name, d.reported_at, source_clause(d).label("src"))
         .where(exists().where(acc.c.basis.is_not(None)), P.since.is_not(None), d.patient_id == P.patient,
                d.item_code == any_(P.codes), d.status.in_(sorted(RESULTED)), d.reported_at.is_not(None),
                d.reported_at >= P.since)
         .order_by(d.reported_at.desc()).limit(200).cte("o"))
    empty: ColumnElement[Any] = literal_column("'[]'")
    observations = (select(func.coalesce(func.json_agg(aggregate_order_by(
        func.json_build_array(ob.code, ob.name, ob.value, ob.units, ob.reference_range, ob.abnormal_flags),
        ob.set_id, ob.id)), empty)).where(ob.order_id == o.c.id).scalar_subquery())
    orders = (select(func.coalesce(func.json_agg(aggregate_order_by(
        func.json_build_array(o.c.id, o.c.accession_number, o.c.item_code, o.c.item_name, o.c.reported_at, o.c.src,
                              observations), o.c.reported_at.desc())), empty)).scalar_subquery())
    return sql(select(acc.c.basis, acc.c.includes_shared, acc.c.consent, orders.label("orders")).select_from(acc))


LOOKUP = _statement()


def _decide(cat: Catalogue, item: tuple[int, str, str, str], inst_id: int, shared: bool,
            orders: list[list[Any]], today: date) -> dict[str, Any]:
    """service.recognise on the snapshot and the statement's rows; the LookupOut fields."""
    mine = {s.id: s for s in cat.covering(inst_id, today)}
    item_rules = cat.rules.get(item[0], {})
    rules = {sid: days for sid, days in item_rules.items() if sid in mine}
    scope_names = [mine[sid].name for sid in rules]  # in the rules' row order, as the reference reads them
    decided = service.recognise(orders, source=lambda o: o[5],
                                on=lambda o: clock.to_local(datetime.fromisoformat(o[4])).date(), item_id=item[0],
                                rules=rules, quals=lambda pairs: cat.quals, inst_id=inst_id, shared=shared,
                                today=today)
    results: list[dict[str, Any]] = []
    for v in decided.results:
        oid, accession, code, name, _reported, src, observations = v.order
        results.append({
            "order_id": oid, "accession_number": accession, "item_code": code, "item_name": name,
            "source_institution_id": src, "source_institution": cat.names.get(src, ""),
            "result_date": v.on, "valid_until": v.valid_until, "days_left": (v.valid_until - today).days,
            "hr_mark": "HR " + "、".join(v.scopes), "scopes": v.scopes, "own_institution": src == inst_id,
            "imported_from_member_system": accession.startswith("EXT-"),
            "observations": [dict(zip(_OBS, ob, strict=True)) for ob in observations]})
    return {"in_scope": decided.in_scope, "scopes": scope_names, "consent_missing": decided.consent_missing,
            "results": results}


_OBS = ("code", "name", "value", "units", "reference_range", "abnormal_flags")


_translated: dict[tuple[str, str], Any] = {}


def _reasons(locale: str) -> dict[str, str]:
    """The re-test reasons in the caller's language (translated once per process and locale)."""
    key = ("reasons", locale)
    hit = _translated.get(key)
    if hit is None:
        hit = _translated[key] = {k: translate(v, locale) for k, v in service.RETEST_REASONS.items()}
    return dict(hit)


def _say(message: str, locale: str) -> str:
    if not message:
        return ""
    key = (message, locale)
    hit = _translated.get(key)
    if hit is None:
        hit = _translated[key] = translate(message, locale)
    return str(hit)


def _message(in_scope: bool, consent_missing: bool, results: list[Any]) -> str:
    if not in_scope:
        return "本机构不在该项目的互认范围内"
    if consent_missing:
        return "患者未授权共享（或已撤回），无法显示其他成员机构的结果"
    if not results:
        return "没有在有效期内的互认结果"
    return ""


async def snapshot() -> Catalogue:
    """This process's catalogue snapshot (also the shared record's HR marks and names); a connection only
    when it must be (re)loaded (Busy as `fastdb.connection`)."""
    snap = _catalogue
    if _fresh(snap):
        return snap
    async with connection() as conn:
        return await catalogue(conn)


async def lookup(subject: Subject, patient_id: int, item_code: str, locale: str,
                 ip: str | None = None) -> dict[str, Any] | AppError | None:
    """The LookupOut of the reference (an AppError to answer), or None when the reference must decide; raises Busy."""
    inst_id = subject.acting_institution_id
    if inst_id is None or not subject.is_clinical:
        return None
    cat = await snapshot()
    item = cat.find_item(item_code)
    if item is None:
        return None  # the reference answers unknown_item_code
    now, today = clock.now(), clock.today_local()
    mine = {s.id for s in cat.covering(inst_id, today)}
    days = [d for sid, d in cat.rules.get(item[0], {}).items() if sid in mine]
    since = now - timedelta(days=max(days) + 1) if days else None
    row = await fetchrow(LOOKUP, *P.args(patient=patient_id, institution=inst_id, user=subject.user_id, now=now,
                                         today=today, codes=cat.codes.get(item[0], [item[1]]), since=since))
    if row is None or row["basis"] is None:
        return None  # not visible: the reference answers 404
    basis = row["basis"]
    shared = shared_of(basis, row["includes_shared"], row["consent"])
    decided = _decide(cat, item, inst_id, shared, json.loads(row["orders"]), today)
    shows_others = any(not r["own_institution"] for r in decided["results"])
    batch.read(subject, "recognition_lookup", item[1], patient_id=patient_id, basis=read_basis(basis, shows_others),
               detail={"item_code": item_code}, ip=ip, at=now)
    return {"patient_id": patient_id, "item_code": item[1], "item_name": item[2], "kind": item[3],
            "in_scope": decided["in_scope"], "scopes": decided["scopes"],
            "consent_missing": decided["consent_missing"],
            "message": _say(_message(decided["in_scope"], decided["consent_missing"], decided["results"]), locale),
            "results": decided["results"], "retest_reasons": _reasons(locale)}


# ------------------------------------------------------------------------------------ the ASGI route


class RecognitionRoute(FastRoute):
    """Pure ASGI: `GET /api/v1/recognition/lookup` with a bearer token, served before the framework stack.

    Everything it cannot decide goes to the app unchanged (a GET has no body to replay).
    """

    method = "GET"
    stats = stats

    def claim(self, scope: Scope) -> Any:
        return True if scope["path"] == PATH and enabled() else None

    async def serve(self, scope: Scope, token: str, claimed: Any, body: bytes) -> dict[str, Any] | AppError | None:
        return await self._lookup(scope, token)

    def dump(self, out: dict[str, Any]) -> bytes:
        return _dump(out)

    async def _lookup(self, scope: Scope, token: str) -> dict[str, Any] | AppError | None:
        try:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True,
                             strict_parsing=False)
        except ValueError:
            return None
        pids, codes = query.get("patient_id", []), query.get("item_code", [])
        if len(pids) != 1 or len(codes) != 1 or not 1 <= len(codes[0]) <= 64:
            return None
        patient_id = parse_id(pids[0].strip())
        if patient_id is None:
            return None
        subject = await route_subject(scope, token)
        if subject is None or not subject.is_clinical:
            return None
        try:
            return await lookup(subject, patient_id, codes[0], _locale(scope), client_ip(scope))
        except (asyncpg.PostgresError, OSError):
            return None


_locales: dict[tuple[bytes, bytes], str] = {}


def _locale(scope: Scope) -> str:
    """`request_locale` for this API path (the `lang` cookie, else Accept-Language), remembered per header pair."""
    cookie = accept = b""
    for name, value in scope["headers"]:
        if name == b"cookie":
            cookie = value
        elif name == b"accept-language":
            accept = value
    key = (cookie, accept)
    hit = _locales.get(key)
    if hit is None:
        if len(_locales) > 1000:
            _locales.clear()
        hit = _locales[key] = request_locale(Request(scope))
    return hit


def _iso(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_iso).encode


def _dump(out: dict[str, Any]) -> bytes:
    """The bytes the route's response model (api.LookupOut) would write: its field order, compact, UTF-8.

    `lookup` builds the dict in LookupOut / ResultOut / ObservationOut field order with the model's types
    (tests/recognition/test_fastpath.py compares the bodies byte for byte), so no model is validated here.
    """
    return _encode(out).encode()

"""Chronic-care JSON API (/api/v1/chronic/...): family-doctor teams and members, contracts (sign, renew,
terminate), signing rates, the registries (enrol, status, risk, TB phase, history; a TB registration's closing
assessment with it) and screening rounds with
their readings and the doctor's decisions. Member HIS systems post through it as the pages do; the rules and
errors are the services' (404 for another institution's records, 409 for a state conflict, 422 with `fields`)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from yilianti.auth.deps import DB, Clinical
from yilianti.authz.subject import Subject
from yilianti.chronic import registry, repository, screening, service, teams
from yilianti.chronic.schemas import (
    ContractIn,
    ContractOut,
    DecisionIn,
    EnrolIn,
    EventOut,
    MemberIn,
    MemberOut,
    NextFollowUpOut,
    PhaseIn,
    RateOut,
    ReadingIn,
    RecordOut,
    RegistrationDetailOut,
    RegistrationOut,
    RenewIn,
    RiskIn,
    RoundDetailOut,
    RoundIn,
    RoundOut,
    StatusIn,
    TbClosingOut,
    TeamOut,
    TeamRatesOut,
    TerminateIn,
)
from yilianti.exceptions import NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.schemas import Id, Limit, PageNo
from yilianti.models.chronic import FamilyDoctorContract

router = APIRouter(prefix="/api/v1/chronic", tags=["chronic care"])


def _institution(subject: Subject) -> int:
    if subject.acting_institution_id is None:
        raise NotFound()
    return subject.acting_institution_id


def _contract(c: FamilyDoctorContract) -> ContractOut:
    return ContractOut.model_validate({**{k: getattr(c, k) for k in ContractOut.model_fields if k != "state"},
                                       "state": teams.state(c, clock.today_local())})


@router.get("/teams", response_model=list[TeamOut])
def list_teams(db: DB, subject: Clinical) -> list[TeamOut]:
    """The family-doctor teams of the acting institution with their members."""
    return [TeamOut(id=t.id, institution_id=t.institution_id, name=t.name, village=t.village,
                    members=[MemberOut(id=m.id, user_id=m.user_id, role=m.role, is_lead=m.is_lead, name=name)
                             for m, name in repository.members_of(db, t.id)])
            for t in repository.teams_of(db, _institution(subject))]


@router.post("/teams/{team_id}/members", status_code=201, response_model=MemberOut)
def add_member(team_id: Id, data: MemberIn, db: DB, subject: Clinical) -> MemberOut:
    m = teams.add_member(db, subject, team_id, data.user_id, data.role, lead=data.lead)
    return MemberOut.model_validate(m)


@router.post("/teams/{team_id}/members/{member_id}/lead", response_model=MemberOut)
def make_lead(team_id: Id, member_id: Id, db: DB, subject: Clinical) -> MemberOut:
    return MemberOut.model_validate(teams.set_lead(db, subject, team_id, member_id))


@router.delete("/teams/{team_id}/members/{member_id}", status_code=204, response_class=Response)
def remove_member(team_id: Id, member_id: Id, db: DB, subject: Clinical) -> Response:
    teams.remove_member(db, subject, team_id, member_id)
    return Response(status_code=204)


@router.get("/teams/{team_id}/contracts", response_model=list[ContractOut])
def list_contracts(team_id: Id, db: DB, subject: Clinical, page: PageNo = 1, per_page: Limit = 50,
                   state: str | None = Query(default=None, pattern="^(active|expiring|pending|expired|terminated)$"),
                   ) -> list[ContractOut]:
    """The team's contracts, newest first, optionally of one state on today."""
    service.require_team(db, subject, team_id)
    today = clock.today_local()
    stmt = repository.contract_rows(subject, team_id, state or "", today,
                                    today + timedelta(days=teams.EXPIRING_DAYS))
    return [_contract(c) for c, _ in kit.page(db, stmt, page, per_page, count=False, scalars=False).items]


@router.post("/teams/{team_id}/contracts", status_code=201, response_model=ContractOut)
def sign(team_id: Id, data: ContractIn, db: DB, subject: Clinical) -> ContractOut:
    return _contract(service.sign_contract(db, subject, team_id, data.patient_id, data.package, data.start_on))


@router.post("/contracts/{contract_id}/renew", status_code=201, response_model=ContractOut)
def renew(contract_id: Id, data: RenewIn, db: DB, subject: Clinical) -> ContractOut:
    return _contract(teams.renew(db, subject, contract_id, data.package))


@router.post("/contracts/{contract_id}/terminate", response_model=ContractOut)
def terminate(contract_id: Id, data: TerminateIn, db: DB, subject: Clinical) -> ContractOut:
    return _contract(teams.terminate(db, subject, contract_id, data.reason, data.note, data.terminated_on))


@router.get("/signing-rates", response_model=list[TeamRatesOut])
def signing_rates(db: DB, subject: Clinical) -> list[TeamRatesOut]:
    """Each team's signing rate, then the institution's (team_id null), per population: all, elderly (65+),
    and each registry; `percent` is null when the population is empty."""
    return [TeamRatesOut(team_id=r.team_id, name=r.name, village=r.village,
                         rates=[RateOut(population=x.population, residents=x.residents, signed=x.signed,
                                        percent=x.percent) for x in r.rates.values()])
            for r in teams.signing_rates(db, subject)]


@router.get("/registrations", response_model=list[RegistrationOut])
def list_registrations(db: DB, subject: Clinical, page: PageNo = 1, per_page: Limit = 50,
                       condition: str = Query(default="", pattern="^(|hypertension|diabetes_t2|smi|tb)$"),
                       status: str = Query(default="", pattern="^(|under_care|lost|transferred|deceased)$"),
                       team_id: Id | None = None) -> list[RegistrationOut]:
    stmt = repository.registration_rows(subject, _institution(subject), condition=condition, team_id=team_id,
                                        status=status)
    return [RegistrationOut.model_validate(r)
            for r, _ in kit.page(db, stmt, page, per_page, count=False, scalars=False).items]


def _detail(db: Session, subject: Subject, registration_id: int) -> RegistrationDetailOut:
    reg = registry.require_registration(db, subject, registration_id)
    nxt = repository.open_follow_up(db, reg.id)
    closing = repository.tb_closing(db, reg.id) if reg.condition == "tb" else None
    return RegistrationDetailOut(
        **RegistrationOut.model_validate(reg).model_dump(),
        events=[EventOut.model_validate(e) for e, _ in repository.registration_events(db, reg.id)],
        next_follow_up=NextFollowUpOut.model_validate(nxt) if nxt else None,
        tb_closing=TbClosingOut.model_validate(closing[0]).model_copy(update={"assessed_by": closing[1]})
        if closing else None)


@router.post("/registrations", status_code=201, response_model=RegistrationDetailOut)
def enrol(data: EnrolIn, db: DB, subject: Clinical) -> RegistrationDetailOut:
    reg = registry.enrol(db, subject, registry.EnrolIn(**data.model_dump()))
    return _detail(db, subject, reg.id)


@router.get("/registrations/{registration_id}", response_model=RegistrationDetailOut)
def get_registration(registration_id: Id, db: DB, subject: Clinical) -> RegistrationDetailOut:
    return _detail(db, subject, registration_id)


@router.post("/registrations/{registration_id}/status", response_model=RegistrationDetailOut)
def change_status(registration_id: Id, data: StatusIn, db: DB, subject: Clinical) -> RegistrationDetailOut:
    registry.change_status(db, subject, registration_id, data.status, data.reason, data.effective_on)
    return _detail(db, subject, registration_id)


@router.post("/registrations/{registration_id}/risk", response_model=RegistrationDetailOut)
def set_risk(registration_id: Id, data: RiskIn, db: DB, subject: Clinical) -> RegistrationDetailOut:
    registry.set_risk(db, subject, registration_id, data.risk_level, data.reason, data.effective_on)
    return _detail(db, subject, registration_id)


@router.post("/registrations/{registration_id}/phase", response_model=RegistrationDetailOut)
def set_phase(registration_id: Id, data: PhaseIn, db: DB, subject: Clinical) -> RegistrationDetailOut:
    registry.set_phase(db, subject, registration_id, data.tb_phase, data.reason, data.effective_on)
    return _detail(db, subject, registration_id)


@router.get("/screening-rounds", response_model=list[RoundOut])
def list_rounds(db: DB, subject: Clinical, page: PageNo = 1, per_page: Limit = 50) -> list[RoundOut]:
    return [RoundOut.model_validate(r) for r in kit.page(
        db, repository.screening_rounds(_institution(subject)), page, per_page, count=False).items]


@router.post("/screening-rounds", status_code=201, response_model=RoundOut)
def create_round(data: RoundIn, db: DB, subject: Clinical) -> RoundOut:
    return RoundOut.model_validate(screening.create_round(db, subject, data.kind, data.held_on, data.team_id,
                                                          data.village))


@router.get("/screening-rounds/{round_id}", response_model=RoundDetailOut)
def get_round(round_id: Id, db: DB, subject: Clinical) -> RoundDetailOut:
    r = screening.require_round(db, subject, round_id)
    rows = kit.page(db, repository.screening_rows(subject, r.institution_id, round_id=r.id), 1, 500,
                    count=False, scalars=False).items
    return RoundDetailOut(**RoundOut.model_validate(r).model_dump(),
                          records=[RecordOut.model_validate(rec) for rec, _, _ in rows])


@router.post("/screening-rounds/{round_id}/records", status_code=201, response_model=RecordOut)
def record_reading(round_id: Id, data: ReadingIn, db: DB, subject: Clinical) -> RecordOut:
    rec = screening.record(db, subject, round_id, screening.ReadingIn(**data.model_dump()))
    return RecordOut.model_validate(rec)


@router.get("/screening-records", response_model=list[RecordOut])
def pending_records(db: DB, subject: Clinical, page: PageNo = 1, per_page: Limit = 50) -> list[RecordOut]:
    """The screening results awaiting the doctor's decision (suggested enrolments and referrals)."""
    rows = kit.page(db, repository.screening_rows(subject, _institution(subject), outcome="pending"), page, per_page,
                    count=False, scalars=False).items
    return [RecordOut.model_validate(rec) for rec, _, _ in rows]


@router.post("/screening-records/{record_id}/decision", response_model=RecordOut)
def decide(record_id: Id, data: DecisionIn, db: DB, subject: Clinical) -> RecordOut:
    return RecordOut.model_validate(screening.decide(db, subject, record_id, data.action, data.note))

"""One workflow kit: a declared state machine and the one `transition` that moves along it.

A domain declares its machine once, in `<domain>/states.py` (`Machine`: the status enum, the moves
with the sides allowed to make each, the final states, the labels and the 409 it answers), and binds
it to its rows and effects in its service (`Workflow`: the model, how the acting sides are found,
the roles needed, and the hooks — history row, next-step deadline, audit, notification).

`Workflow.transition` is the only writer of the status: the row is locked (SELECT … FOR UPDATE on
PostgreSQL; BEGIN IMMEDIATE already serialises writers on SQLite) and re-read, then

- no row, a non-clinical subject, a subject on neither side → 404 (`NotFound`);
- a move the machine does not declare, or a current status other than `expected_status` → 409
  with the machine's code and message naming the current status;
- a side not allowed to make the move → 403 (the workflow's message); a subject without the
  workflow's roles → 403;

and `Workflow.move` makes the step: status and `updated_at`, the next step's deadline, the domain's
effects, the history row, the audit event and the notification, in that order, then one flush.
Domain-specific consequences (grants, tasks, extra columns) stay in the domains, after the move.

The row builders here (`Workflow.history_row`, `move_detail`) and the domains' notification builders
are written so that they also take SQLAlchemy Core column expressions: the hand-written fast paths
(`referral/fastpath.py`, `diagnostics/receivers/hl7_fast.py`) compile them once, at import time, into their
SQL (`sql_json`, `sql_insert`, `sql_in`) instead of copying the rows they write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.exceptions import Conflict, Forbidden, NotFound
from yilianti.kit import clock

if TYPE_CHECKING:
    from yilianti.authz.subject import Subject

St = TypeVar("St", bound=StrEnum)
Sd = TypeVar("Sd", bound=StrEnum)
R = TypeVar("R")


@dataclass(frozen=True)
class Machine(Generic[St, Sd]):
    """A declared state machine: (from, to) → the sides allowed to make the move; nothing else moves."""

    status: type[St]
    moves: Mapping[tuple[St, St], frozenset[Sd]]
    final: frozenset[St]
    labels: Mapping[St, str]
    conflict_code: str
    conflict_message: str  # may name the current status as {current}

    @property
    def open(self) -> frozenset[St]:
        return frozenset(s for s in self.status if s not in self.final)

    def allowed(self, from_status: str, to_status: str) -> frozenset[Sd] | None:
        """The sides that may make this move, or None when the move is not declared."""
        try:
            return self.moves.get((self.status(from_status), self.status(to_status)))
        except ValueError:
            return None

    def next_moves(self, from_status: str, side: Sd) -> list[St]:
        return [to for (frm, to), sides in self.moves.items() if frm == from_status and side in sides]

    def label(self, status: str) -> str:
        try:
            return self.labels.get(self.status(status), status)
        except ValueError:
            return status

    def conflict(self, current: str) -> Conflict:
        if "{current}" in self.conflict_message:
            return Conflict(self.conflict_message, code=self.conflict_code, current=self.label(current))
        return Conflict(self.conflict_message, code=self.conflict_code)


@dataclass(frozen=True)
class Step(Generic[R]):
    """One move being made, as the hooks see it."""

    row: R
    before: str
    to: str
    side: Any  # the acting side (None: a move made on the side's behalf, nobody to notify)
    subject: Subject | None  # None: the system (receivers)
    at: datetime
    reason: str | None
    detail: dict[str, Any] | None


Hook = Callable[[Session, Step[Any]], None]


def move_detail(before: Any, to: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The audit detail of a move: from, to and what the caller adds."""
    return {"from": before, "to": to, **(extra or {})}


@dataclass(frozen=True)
class Workflow(Generic[R]):
    """A machine bound to its rows and effects: the one `transition` of a domain."""

    machine: Machine[Any, Any]
    model: type[R]
    # the sides the subject acts for on this row (None: the system); empty, or raising NotFound → 404
    sides: Callable[[Session, Subject | None, R], Iterable[Any]]
    wrong_side: str = "该操作应由另一方执行"
    roles: tuple[str, ...] = ()  # a subject must have one of these to move (none: no role check)
    roles_message: str | None = None
    side_first: bool = False  # refuse the wrong side (403) before a wrong status (409)
    history_model: type | None = None
    history_key: str = ""  # the history row's column naming the moved row
    history_detail: bool = True  # the history table has a `detail` column
    deadline: Callable[[Step[Any]], datetime | None] | None = None  # sets `due_at` when given
    effects: Callable[[Step[Any]], None] | None = None  # domain columns set with the status
    audit: Hook | None = None
    notify: Hook | None = None
    hooks: tuple[Hook, ...] = field(default=())  # anything else, after the notification

    # ---------------------------------------------------------------------------------- checks

    def lock(self, db: Session, subject: Subject | None, row_id: int, to_status: str, *,
             expected_status: str | None = None) -> tuple[R, Any]:
        """Lock the row and check that the subject may make this move now (404/409/403); the row and
        the acting side. Cross-domain flows call it first, to act while the row is held."""
        model: Any = self.model
        row: R | None = db.scalar(select(model).where(model.id == row_id)
                                  .with_for_update().execution_options(populate_existing=True))
        if row is None or (subject is not None and not subject.is_clinical):
            raise NotFound()
        mine = frozenset(self.sides(db, subject, row))
        if not mine:
            raise NotFound()
        current: str = row.status  # type: ignore[attr-defined]
        allowed = self.machine.allowed(current, to_status)
        if self.side_first:  # the sides of this move, or of any move to `to_status` when this one is undeclared
            sides = allowed if allowed is not None else self._any_side(to_status)
            if sides:
                self._check_side(subject, mine, sides)
        if allowed is None or (expected_status is not None and expected_status != current):
            raise self.machine.conflict(current)
        acting = self._check_side(subject, mine, allowed)
        return row, acting

    def _any_side(self, to_status: str) -> frozenset[Any]:
        return frozenset().union(*(s for (_, to), s in self.machine.moves.items() if to == to_status))

    def _check_side(self, subject: Subject | None, mine: frozenset[Any], allowed: frozenset[Any]) -> Any:
        acting = mine & allowed
        if not acting:
            raise Forbidden(self.wrong_side)
        if self.roles and subject is not None and not subject.has(*self.roles):
            raise Forbidden(self.roles_message)
        return sorted(acting)[0]

    # ---------------------------------------------------------------------------------- moving

    def transition(self, db: Session, subject: Subject | None, row_id: int, to_status: str, *,
                   reason: str | None = None, detail: dict[str, Any] | None = None,
                   expected_status: str | None = None) -> R:
        row, side = self.lock(db, subject, row_id, to_status, expected_status=expected_status)
        return self.move(db, subject, row, to_status, side, reason=reason, detail=detail)

    def move(self, db: Session, subject: Subject | None, row: R, to_status: str, side: Any, *,
             reason: str | None = None, detail: dict[str, Any] | None = None) -> R:
        """Make the step on a row already locked and checked (or created in this transaction).
        A move the machine does not declare is refused here too (409)."""
        before: str = row.status  # type: ignore[attr-defined]
        if self.machine.allowed(before, to_status) is None:
            raise self.machine.conflict(before)
        now = clock.now()
        step = Step(row, before, to_status, side, subject, now, reason, detail)
        row.status = to_status  # type: ignore[attr-defined]
        row.updated_at = now  # type: ignore[attr-defined]
        if self.deadline is not None:
            row.due_at = self.deadline(step)  # type: ignore[attr-defined]
        if self.effects is not None:
            self.effects(step)
        if self.history_model is not None:
            db.add(self.history_model(**self.history_row(
                row.id, at=now, user_id=subject.user_id if subject else None,  # type: ignore[attr-defined]
                institution_id=subject.acting_institution_id if subject else None,
                from_status=before, to_status=to_status, reason=reason, detail=detail)))
        for hook in (self.audit, self.notify, *self.hooks):
            if hook is not None:
                hook(db, step)
        db.flush()
        return row

    def history_row(self, row_id: Any, *, at: Any, user_id: Any, institution_id: Any, from_status: Any,
                    to_status: Any, reason: Any = None, detail: Any = None) -> dict[str, Any]:
        """The values of one history row (who, when, from, to, why). The fast paths call it with
        column expressions and compile it into their INSERT (`sql_insert`)."""
        values = {self.history_key: row_id, "at": at, "user_id": user_id, "acting_institution_id": institution_id,
                  "from_status": from_status, "to_status": to_status, "reason": reason}
        if self.history_detail:
            values["detail"] = detail
        return values

    def create(self, db: Session, subject: Subject | None, row: Any, *, at: datetime | None = None,
               detail: dict[str, Any] | None = None) -> None:
        """The first history row of a row just created in its initial status (from nothing)."""
        if self.history_model is not None:
            db.add(self.history_model(**self.history_row(
                row.id, at=at or clock.now(), user_id=subject.user_id if subject else None,
                institution_id=subject.acting_institution_id if subject else None,
                from_status=None, to_status=row.status, detail=detail)))


__all__ = ["Machine", "Step", "Workflow", "move_detail"]

"""Errors carrying every eligibility reason (mapped by ``cpm.base.api.exception_handler`` to 400 or 409)."""

from __future__ import annotations

from cpm.base.errors import ConflictError, DomainValidationError

from .eligibility import Reason


def _by_field(reasons: list[Reason]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for reason in reasons:
        errors.setdefault(reason.field, []).append(reason.message)
    return errors


class IneligibleError(DomainValidationError):
    """400: the request fails eligibility; ``reasons`` lists every failing check (code + sentence)."""

    def __init__(self, reasons: list[Reason]) -> None:
        self.reasons = list(reasons)
        super().__init__(_by_field(self.reasons), code="ineligible")

    def as_dict(self) -> dict:
        return {**super().as_dict(), "reasons": [r.as_dict() for r in self.reasons]}


class EnrollmentConflictError(ConflictError):
    """409: the request conflicts with another enrollment (named); ``reasons`` lists every failing check."""

    def __init__(self, reasons: list[Reason]) -> None:
        self.reasons = list(reasons)
        first = next((r for r in self.reasons if r.is_conflict), self.reasons[0])
        super().__init__(first.message, code=first.code if first.is_conflict else "conflict",
                         conflicting_enrollment=first.enrollment_id, conflicting_program=first.program_code)

    def as_dict(self) -> dict:
        return {**_by_field(self.reasons), **super().as_dict(), "reasons": [r.as_dict() for r in self.reasons]}


def eligibility_error(reasons: list[Reason]) -> DomainValidationError | ConflictError:
    """The error to raise for failing ``reasons``: 409 if any names a conflicting enrollment, else 400."""
    if any(r.is_conflict for r in reasons):
        return EnrollmentConflictError(reasons)
    return IneligibleError(reasons)

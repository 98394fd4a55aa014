"""Domain errors raised by services and mapped to HTTP status codes by ``cpm.base.api.exception_handler``.

- ``DomainValidationError`` -> 400, with per-field messages (``{"field": ["message", ...]}``).
- ``ConflictError`` -> 409, naming the conflicting object.
- ``TransitionNotAllowed`` -> 409, naming the status it was in and the one asked for.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class: ``code`` is machine-readable, ``message`` a plain sentence."""

    status_code = 400
    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None, **extra) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field
        self.extra = extra

    def as_dict(self) -> dict:
        body: dict = {"code": self.code, "detail": self.message}
        if self.field:
            body[self.field] = [self.message]
        body.update({k: v for k, v in self.extra.items() if v is not None})
        return body


class DomainValidationError(DomainError):
    """Bad input. ``errors`` maps field name to a list of messages (several fields may fail at once)."""

    def __init__(self, errors: dict[str, list[str]] | str, *, code: str = "invalid", field: str | None = None) -> None:
        if isinstance(errors, str):
            errors = {field or "non_field_errors": [errors]}
        self.errors = errors
        first = next(iter(errors.items()))
        super().__init__(f"{first[0]}: {first[1][0]}", code=code, field=None)

    def as_dict(self) -> dict:
        """``{"code": <machine code>, "detail": <the first message>, <field>: [messages], ...}``.

        A field named ``code`` (a program's or question's code) is reported as ``code_field`` so that it never hides
        the machine code.
        """
        fields = {("code_field" if k == "code" else k): v for k, v in self.errors.items()}
        return {"code": self.code, "detail": self.message, **fields}


class ConflictError(DomainError):
    status_code = 409
    default_code = "conflict"


class TransitionNotAllowed(ConflictError):
    default_code = "transition_not_allowed"


class NotFound(DomainError):
    status_code = 404
    default_code = "not_found"


class PermissionDenied(DomainError):
    status_code = 403
    default_code = "permission_denied"

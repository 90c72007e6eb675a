"""The one error family of the services layer. Pages turn these into messages, the API into problem+json."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base: a message a person can read, and a stable kind for the API's problem `type`."""

    kind = "error"
    status = 400

    def __init__(self, message: str, *, field: str | None = None, errors: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        # field -> message, so a form can put each message next to its field
        self.errors: dict[str, str] = dict(errors or {})
        if field and field not in self.errors:
            self.errors[field] = message
        self.extra = extra

    def __str__(self) -> str:
        return self.message


class InvalidInput(ServiceError):
    kind = "invalid-input"
    status = 422

    @classmethod
    def from_pydantic(cls, exc: Any) -> InvalidInput:
        """Turn a pydantic ValidationError into field -> message (first message per field)."""
        errors: dict[str, str] = {}
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__") or "input"
            msg = err.get("msg", "invalid value")
            msg = msg.removeprefix("Value error, ")
            errors.setdefault(loc, msg)
        summary = "; ".join(f"{k}: {v}" if k != "input" else v for k, v in errors.items())
        return cls(summary or "Invalid input", errors=errors)


class NotAuthenticated(ServiceError):
    kind = "not-authenticated"
    status = 401


class PermissionDenied(ServiceError):
    kind = "forbidden"
    status = 403


class NotFound(ServiceError):
    kind = "not-found"
    status = 404

    def __init__(self, what: str, ident: Any = None):
        super().__init__(f"No such {what}" + (f": {ident}" if ident is not None else ""))


class Conflict(ServiceError):
    kind = "conflict"
    status = 409


class PaymentsNotConfigured(ServiceError):
    kind = "payments-not-configured"
    status = 503


class ExternalServiceError(ServiceError):
    kind = "external-service"
    status = 502

"""Every API error as RFC 9457 `application/problem+json`, with a stable `type` per error kind.

One mapping for the whole API: a services error (services/errors.py) becomes a problem whose `type`
is `PROBLEM_BASE + error.kind`; FastAPI's request validation becomes a 422 `invalid-input` problem
naming each field; HTTP errors raised by the framework (404 route, 405 method, 401 from a security
dependency) keep their status; anything unexpected is a 500 `internal` problem that says nothing
about the code (the traceback goes to the log).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.errors import ServiceError

log = logging.getLogger("marketplace.api")

PROBLEM_BASE = "https://cloud-marketplace.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

# Kinds for statuses that do not come from a ServiceError (framework errors, body limit, ...).
KIND_BY_STATUS: dict[int, str] = {
    400: "bad-request",
    401: "not-authenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "request-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "too-many-requests",
    500: "internal",
    502: "external-service",
    503: "unavailable",
}


class FieldProblem(BaseModel):
    """One invalid field: where it is and what is wrong with it."""

    field: str = Field(description="Dotted path of the field, e.g. `replicas` or `metrics.cpu_pct`")
    message: str
    location: str | None = Field(default=None, description="body, query, path or header")


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = Field(description="Stable URI naming the kind of error", examples=[PROBLEM_BASE + "invalid-input"])
    title: str = Field(description="Short summary of the kind of error")
    status: int = Field(description="HTTP status code")
    detail: str = Field(default="", description="What went wrong this time, for a person to read")
    instance: str | None = Field(default=None, description="The request path")
    errors: list[FieldProblem] | None = Field(default=None, description="Invalid fields (validation errors)")


def kind_for_status(status: int) -> str:
    return KIND_BY_STATUS.get(status, "error" if status < 500 else "internal")


def problem_type(kind: str) -> str:
    return PROBLEM_BASE + kind


def title_for(kind: str, status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    titles = {
        "invalid-input": "Invalid input",
        "not-authenticated": "Not authenticated",
        "forbidden": "Forbidden",
        "not-found": "Not found",
        "conflict": "Conflict",
        "request-too-large": "Request body too large",
        "payments-not-configured": "Payments not configured",
        "external-service": "External service failed",
        "internal": "Internal error",
    }
    return titles.get(kind, phrase)


def problem_response(
    status: int,
    *,
    kind: str | None = None,
    detail: str = "",
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response (the one place that shapes error bodies)."""
    kind = kind or kind_for_status(status)
    body: dict[str, Any] = {
        "type": problem_type(kind),
        "title": title_for(kind, status),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


_UNPARSABLE_BODY = "There was an error parsing the body"
_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def field_errors_from_validation(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's validation errors as [{field, message, location}], one per field (first message wins)."""
    out: dict[str, dict[str, Any]] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        location = loc[0] if loc and loc[0] in _LOCATIONS else None
        parts = loc[1:] if location else loc
        field = ".".join(parts) or (location or "input")
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        entry = {"field": field, "message": message}
        if location:
            entry["location"] = location
        out.setdefault(field, entry)
    return list(out.values())


def _service_error_fields(exc: ServiceError) -> list[dict[str, Any]] | None:
    if not exc.errors:
        return None
    return [{"field": f, "message": m} for f, m in exc.errors.items()]


def install(app: FastAPI) -> None:
    """Register the exception handlers that turn every error into a problem."""

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(
            exc.status,
            kind=exc.kind,
            detail=exc.message,
            instance=request.url.path,
            errors=_service_error_fields(exc),
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors_from_validation(exc)
        detail = "; ".join(f"{e['field']}: {e['message'].rstrip('.')}" for e in errors) or "Invalid input"
        return problem_response(422, kind="invalid-input", detail=detail, instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else ""
        if exc.status_code == 400 and detail == _UNPARSABLE_BODY:
            # FastAPI's answer to a body it cannot decode (e.g. not UTF-8): the same 422 as malformed JSON
            message = "The body is not valid JSON text."
            errors = [{"field": "body", "message": message, "location": "body"}]
            return problem_response(422, kind="invalid-input", detail=message, instance=request.url.path, errors=errors)
        headers = dict(exc.headers or {})
        if exc.status_code == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        return problem_response(exc.status_code, detail=detail, instance=request.url.path, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, kind="internal", detail="Something went wrong on our side.")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses (documented as problem+json)."""
    descriptions = {
        400: "Bad request",
        401: "No token, or the token is not valid",
        403: "The token is valid but lacks the role for this action",
        404: "No such object (or it belongs to someone else)",
        409: "Conflict with the current state",
        413: "Request body too large",
        422: "Invalid input; `errors` names each field",
        502: "An external service failed",
        503: "Not configured or unavailable",
    }
    return {s: {"model": Problem, "description": descriptions.get(s, HTTPStatus(s).phrase)} for s in statuses}


def use_problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite every 4xx/5xx response in an OpenAPI document to `application/problem+json` with `Problem`."""
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, response in operation["responses"].items():
                if str(code)[:1] in ("4", "5"):
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": ref}}
    schema.setdefault("components", {}).setdefault("schemas", {})
    return schema

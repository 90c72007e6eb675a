"""The HTTP API (FastAPI), mounted under /api by streamlit_app.py.

Every module in api/routes that defines `router` is included (each area owns its module). Errors are
RFC 9457 problems (api/problems.py), request bodies are limited to MARKETPLACE_API_MAX_BODY_BYTES,
and the OpenAPI document (`/api/openapi.json`) and interactive docs (`/api/docs`) work under the
`/api` mount: FastAPI reads the mount's root_path per request and puts it in `servers`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import api.routes
from api import problems
from services.config import get_settings
from services.db.health import database_ok

DESCRIPTION = """
The Cloud Marketplace HTTP API: the same service functions as the dashboard pages, seen from another door.

**Authentication.** Send `Authorization: Bearer <access token>` issued by the marketplace's identity
provider (RS256, checked against its JWKS; roles come from the roles claim and from grants in the
database). Node agents use their node token instead (`Authorization: Bearer cmn_...`), shown once
when a provider registers or rotates a node. The Stripe webhook uses Stripe's signature.

**Errors** are `application/problem+json` (RFC 9457). `type` is stable per kind of error
(`https://cloud-marketplace.example/problems/<kind>`), and validation errors list each invalid
field under `errors`. 401: no or bad token; 403: valid token without the role; 404: no such
object, or one that belongs to someone else; 409: conflict (e.g. a stale pricing version); 413:
body too large; 422: invalid input.

**Lists** are paginated: pass `limit` and the previous answer's `next_cursor` as `cursor`
until `next_cursor` is null. Cursors are opaque.
"""

TAGS = [
    {"name": "health", "description": "Liveness (no authentication)"},
    {"name": "session", "description": "Who the bearer token belongs to"},
    {"name": "deployments", "description": "A cloud user's own deployments"},
    {"name": "provider", "description": "Provider applications, nodes and maintenance windows"},
    {"name": "operator", "description": "Marketplace settings, pricing and provider requests"},
    {"name": "payments", "description": "Top-ups, payment methods and the Stripe webhook"},
    {"name": "agent", "description": "Node agents: heartbeats, assignments, deployment status (node token)"},
]


class BodySizeLimit:
    """Refuse request bodies larger than MARKETPLACE_API_MAX_BODY_BYTES with a 413 problem.

    A declared Content-Length over the limit is refused before reading; a body without one
    (chunked) is counted while the endpoint reads it, and refused once it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int | None = None):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes if self.max_bytes is not None else get_settings().api_max_body_bytes
        too_large = f"The request body is larger than {limit} bytes."
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await problems.problem_response(400, detail="Content-Length is not a number.")(scope, receive, send)
                return
            if int(declared) > limit:
                await problems.problem_response(413, detail=too_large)(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPExceptions from body reading; the problem handler answers 413.
                    raise StarletteHTTPException(413, detail=too_large)
            return message

        await self.app(scope, limited_receive, send)


class HealthOut(BaseModel):
    status: str = Field(examples=["ok"])
    database: str = Field(examples=["ok"])


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _include_routers(app: FastAPI) -> None:
    """Include the `router` of every module in api/routes (each area owns its module)."""
    for info in sorted(pkgutil.iter_modules(api_routes_path()), key=lambda i: i.name):
        module = importlib.import_module(f"api.routes.{info.name}")
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)


def api_routes_path() -> list[str]:
    return list(api.routes.__path__)


def _openapi_for(app: FastAPI):
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (problems.Problem, problems.FieldProblem):
                generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in generated.pop("$defs", {}).items():
                    schemas.setdefault(name, sub)
                schemas.setdefault(model.__name__, generated)
            app.openapi_schema = problems.use_problem_media_type(schema)
        return app.openapi_schema

    return openapi


def create_api() -> FastAPI:
    app = FastAPI(
        title="Cloud Marketplace API",
        summary="Deployments, providers, nodes, pricing and payments of the Cloud Marketplace",
        description=DESCRIPTION,
        version="1",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        openapi_tags=TAGS,
    )
    problems.install(app)
    app.add_middleware(BodySizeLimit)

    @app.get(
        "/health",
        tags=["health"],
        summary="Liveness and database check (no auth)",
        response_model=HealthOut,
        responses={503: {"model": problems.Problem, "description": "The database is unreachable"}},
    )
    def health() -> Any:
        if not database_ok():
            return problems.problem_response(503, kind="unavailable", detail="The database is unreachable.")
        return HealthOut(status="ok", database="ok")

    _include_routers(app)
    app.openapi = _openapi_for(app)  # type: ignore[method-assign]
    return app

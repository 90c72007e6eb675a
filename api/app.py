"""The HTTP API (FastAPI), mounted under /api by streamlit_app.py."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import FastAPI
from fastapi.responses import JSONResponse

import api.routes
from services.db.health import database_ok


def _include_routers(api: FastAPI) -> None:
    """Include the `router` of every module in api/routes (each area owns its module)."""
    for info in sorted(pkgutil.iter_modules(api_routes_path()), key=lambda i: i.name):
        module = importlib.import_module(f"api.routes.{info.name}")
        router = getattr(module, "router", None)
        if router is not None:
            api.include_router(router)


def api_routes_path() -> list[str]:
    return list(api.routes.__path__)


def create_api() -> FastAPI:
    app = FastAPI(
        title="Cloud Marketplace API",
        version="1",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )

    @app.get("/health", tags=["health"], summary="Liveness and database check (no auth)")
    def health() -> JSONResponse:
        if not database_ok():
            return JSONResponse({"status": "unhealthy", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    _include_routers(app)
    return app

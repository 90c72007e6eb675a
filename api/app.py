"""The HTTP API (FastAPI), mounted under /api by streamlit_app.py."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.db.health import database_ok


def create_api() -> FastAPI:
    api = FastAPI(
        title="Cloud Marketplace API",
        version="1",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )

    @api.get("/health", tags=["health"], summary="Liveness and database check (no auth)")
    def health() -> JSONResponse:
        if not database_ok():
            return JSONResponse({"status": "unhealthy", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return api

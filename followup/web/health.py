"""Health and metrics: liveness, readiness (the database answers) and Prometheus counts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from followup.db.session import get_engine
from followup.web.state import state_of

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no dependencies checked)."""
    return {"status": "ok"}


def _db_ok(url: str) -> bool:
    try:
        with get_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except (SQLAlchemyError, OSError):
        return False


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """The database answers; load balancers send traffic only then."""
    ok = await run_in_threadpool(_db_ok, state_of(request).context.db_url)
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "database": ok}, status_code=200 if ok else 503
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus counts from the database (no personal data: only statuses, channels and rules)."""
    from followup.db.session import session_factory
    from followup.ops.metrics import render_metrics

    body = await run_in_threadpool(render_metrics, session_factory(state_of(request).context.db_url))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

"""A cloud user's own deployments: list, launch, read, stop, start, delete.

The same service functions as the launcher and "My deployments" pages (services/deployments), so
validation, placement and pricing are identical. Another person's deployment is a 404, never a 403.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from api.access import Caller, needs
from api.pagination import Page, PageRequest, offset_page, page_params
from api.problems import problem_responses
from services.auth.permissions import Action
from services.db.engine import UnitOfWork
from services.deployments import service as deployments
from services.deployments.schemas import DeploymentDetail, DeploymentRow, LaunchInput

router = APIRouter(prefix="/v1/deployments", tags=["deployments"])

DeploymentId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The deployment's id")]
Status = Literal["pending", "running", "stopped", "failed", "deleted"]


@router.get(
    "",
    response_model=Page[DeploymentRow],
    summary="My deployments, newest first by default (paginated)",
    responses=problem_responses(401, 403, 422),
    **needs(Action.DEPLOYMENT_MANAGE_OWN),
)
def list_deployments(
    me: Caller[Action.DEPLOYMENT_MANAGE_OWN],
    page: Annotated[PageRequest, Depends(page_params)],
    status: Annotated[list[Status] | None, Query(description="Only these statuses (default: all but deleted)")] = None,
    search: Annotated[
        str | None, Query(max_length=100, pattern=r"^[^\x00]*$", description="In name or workload")
    ] = None,
    sort: Literal["created_at", "name", "status", "price"] = "created_at",
    order: Literal["asc", "desc"] = "desc",
) -> Page[DeploymentRow]:
    result = deployments.list_own(
        UnitOfWork(),
        me,
        statuses=status,
        search=search,
        sort=sort,
        descending=order == "desc",
        limit=page.limit + 1,
        offset=page.offset,
    )
    items, cursor = offset_page(result.rows, page)
    return Page[DeploymentRow](items=items, next_cursor=cursor)


@router.post(
    "",
    status_code=201,
    response_model=DeploymentDetail,
    summary="Launch a deployment: validated, priced and placed like the launcher page",
    responses=problem_responses(401, 403, 409, 413, 422),
    **needs(Action.DEPLOYMENT_LAUNCH),
)
def launch(
    me: Caller[Action.DEPLOYMENT_LAUNCH], body: LaunchInput, request: Request, response: Response
) -> DeploymentDetail:
    detail = deployments.launch(UnitOfWork(), me, body)
    response.headers["Location"] = str(request.url_for("get_deployment", deployment_id=detail.id))
    return detail


@router.get(
    "/{deployment_id}",
    response_model=DeploymentDetail,
    summary="One of my deployments with placement, events and daily cost",
    responses=problem_responses(401, 403, 404, 422),
    **needs(Action.DEPLOYMENT_MANAGE_OWN),
)
def get_deployment(me: Caller[Action.DEPLOYMENT_MANAGE_OWN], deployment_id: DeploymentId) -> DeploymentDetail:
    return deployments.get_own(UnitOfWork(), me, deployment_id)


@router.post(
    "/{deployment_id}/stop",
    response_model=DeploymentDetail,
    summary="Stop a pending or running deployment (charges stop)",
    responses=problem_responses(401, 403, 404, 409, 422),
    **needs(Action.DEPLOYMENT_MANAGE_OWN),
)
def stop(me: Caller[Action.DEPLOYMENT_MANAGE_OWN], deployment_id: DeploymentId) -> DeploymentDetail:
    return deployments.stop(UnitOfWork(), me, deployment_id)


@router.post(
    "/{deployment_id}/start",
    response_model=DeploymentDetail,
    summary="Start a stopped or failed deployment again (it is pending until its node reports running)",
    responses=problem_responses(401, 403, 404, 409, 422),
    **needs(Action.DEPLOYMENT_MANAGE_OWN),
)
def start(me: Caller[Action.DEPLOYMENT_MANAGE_OWN], deployment_id: DeploymentId) -> DeploymentDetail:
    return deployments.start(UnitOfWork(), me, deployment_id)


@router.delete(
    "/{deployment_id}",
    response_model=DeploymentDetail,
    summary="Delete a deployment (charges stop, capacity and name are freed)",
    responses=problem_responses(401, 403, 404, 409, 422),
    **needs(Action.DEPLOYMENT_MANAGE_OWN),
)
def delete(me: Caller[Action.DEPLOYMENT_MANAGE_OWN], deployment_id: DeploymentId) -> DeploymentDetail:
    return deployments.delete(UnitOfWork(), me, deployment_id)

"""Providers: apply to become one, manage nodes (register, list, rotate the agent token), maintenance windows.

The same service functions as the "Become a provider", "Nodes" and "Maintenance" pages. A node or a
window of another provider is a 404. A node token appears in exactly two answers (registration and
rotation) and nowhere else; the database keeps only its hash.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from api.access import Caller, needs
from api.pagination import Page, PageRequest, offset_page, page_params
from api.problems import problem_responses
from services.auth.permissions import Action
from services.db.engine import UnitOfWork
from services.maintenance import service as maintenance
from services.maintenance.service import MAX_NODES_PER_WINDOW, ScheduledWindow, WindowInput, WindowView
from services.nodes import service as nodes
from services.nodes.service import NodeInput, NodeView, RegisteredNode
from services.providers import service as providers
from services.providers.service import ApplicationInput, ApplicationView

router = APIRouter(prefix="/v1/provider", tags=["provider"])

NodeId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The node's id")]
WindowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The maintenance window's id")]


class WindowBody(WindowInput):
    """WindowInput with node ids kept inside the database's integer range (a huge id is a 422, not a 500)."""

    node_ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(min_length=1, max_length=MAX_NODES_PER_WINDOW)


class NodeWithToken(BaseModel):
    """A node and its agent token. Shown this once: store it where the agent runs."""

    node: NodeView
    token: str = Field(description="The node agent's token (`cmn_...`); only its hash is kept")

    @classmethod
    def of(cls, registered: RegisteredNode) -> NodeWithToken:
        return cls(node=registered.node, token=registered.token)


@router.post(
    "/register",
    status_code=201,
    response_model=ApplicationView,
    summary="Apply to become a provider (an operator reviews the application)",
    responses=problem_responses(401, 403, 409, 413, 422),
    **needs(Action.PROVIDER_APPLY),
)
def apply(me: Caller[Action.PROVIDER_APPLY], body: ApplicationInput) -> ApplicationView:
    return providers.submit_application(UnitOfWork(), me, body)


@router.get(
    "/nodes",
    response_model=Page[NodeView],
    summary="My nodes with their effective status (paginated)",
    responses=problem_responses(401, 403, 422),
    **needs(Action.NODE_MANAGE),
)
def list_nodes(
    me: Caller[Action.NODE_MANAGE],
    page: Annotated[PageRequest, Depends(page_params)],
    status: Literal["online", "offline", "draining", "decommissioned"] | None = None,
    region: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9-]+$")] = None,
    search: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$", description="In the name")] = None,
    sort: Literal["name", "region", "status", "last_heartbeat", "created", "deployments"] = "name",
    order: Literal["asc", "desc"] = "asc",
) -> Page[NodeView]:
    result = nodes.list_for_provider(
        UnitOfWork(),
        me,
        status=status,
        region=region,
        search=search,
        sort=sort,
        descending=order == "desc",
        limit=page.limit + 1,
        offset=page.offset,
    )
    items, cursor = offset_page(result.rows, page)
    return Page[NodeView](items=items, next_cursor=cursor)


@router.post(
    "/nodes",
    status_code=201,
    response_model=NodeWithToken,
    summary="Register a node; the answer holds its agent token, shown this once",
    responses=problem_responses(401, 403, 409, 413, 422),
    **needs(Action.NODE_MANAGE),
)
def register_node(me: Caller[Action.NODE_MANAGE], body: NodeInput) -> NodeWithToken:
    return NodeWithToken.of(nodes.register_node(UnitOfWork(), me, body))


@router.post(
    "/nodes/{node_id}/token",
    response_model=NodeWithToken,
    summary="Rotate the node's agent token: the old one stops working at once",
    responses=problem_responses(401, 403, 404, 409, 422),
    **needs(Action.NODE_MANAGE),
)
def rotate_token(me: Caller[Action.NODE_MANAGE], node_id: NodeId) -> NodeWithToken:
    return NodeWithToken.of(nodes.rotate_token(UnitOfWork(), me, node_id))


@router.get(
    "/maintenance",
    response_model=Page[WindowView],
    summary="My maintenance windows in one phase: upcoming (soonest first), active, or past (latest first)",
    responses=problem_responses(401, 403, 422),
    **needs(Action.MAINTENANCE_MANAGE),
)
def list_windows(
    me: Caller[Action.MAINTENANCE_MANAGE],
    page: Annotated[PageRequest, Depends(page_params)],
    phase: Literal["upcoming", "active", "past"] = "upcoming",
) -> Page[WindowView]:
    result = maintenance.list_windows(UnitOfWork(), me, phase=phase, limit=page.limit + 1, offset=page.offset)
    items, cursor = offset_page(result.rows, page)
    return Page[WindowView](items=items, next_cursor=cursor)


@router.post(
    "/maintenance",
    status_code=201,
    response_model=ScheduledWindow,
    summary="Schedule a maintenance window; affected users are notified; the answer says whom it affects",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
    **needs(Action.MAINTENANCE_MANAGE),
)
def schedule_window(
    me: Caller[Action.MAINTENANCE_MANAGE], body: WindowBody, request: Request, response: Response
) -> ScheduledWindow:
    scheduled = maintenance.schedule(UnitOfWork(), me, body)
    response.headers["Location"] = str(request.url_for("cancel_window", window_id=scheduled.window.id))
    return scheduled


@router.delete(
    "/maintenance/{window_id}",
    response_model=ScheduledWindow,
    summary="Cancel an upcoming maintenance window (affected users are told)",
    responses=problem_responses(401, 403, 404, 409, 422),
    **needs(Action.MAINTENANCE_MANAGE),
)
def cancel_window(me: Caller[Action.MAINTENANCE_MANAGE], window_id: WindowId) -> ScheduledWindow:
    return maintenance.cancel(UnitOfWork(), me, window_id)

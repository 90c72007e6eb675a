"""Node agent endpoints (node token, not a person's token): heartbeat, assignments, deployment status.

The agent sends `Authorization: Bearer cmn_...`, the token shown once when the provider registered
the node or rotated its token. 401 for a missing, unknown or rotated token; 403 for a decommissioned node.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.pagination import Page, PageRequest, keyset_page, page_params
from api.problems import problem_responses
from services.db.engine import UnitOfWork
from services.errors import InvalidInput
from services.nodes import heartbeat as agent_service
from services.nodes import ingest
from services.nodes.heartbeat import Assignment, HeartbeatIn, HeartbeatOut, StatusReport, StatusReportOut

router = APIRouter(prefix="/v1/agent", tags=["agent"])

node_token_scheme = HTTPBearer(
    scheme_name="NodeToken",
    bearerFormat="cmn_...",
    description="The node token shown once when the node was registered or its token rotated",
    auto_error=False,
)


async def node_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(node_token_scheme)],
) -> str | None:
    return credentials.credentials if credentials else None  # async: no thread hop for a string


NodeToken = Annotated[str | None, Depends(node_token)]


def current_node(token: NodeToken) -> agent_service.NodeCaller:
    """The node the token belongs to (401 unknown/rotated, 403 decommissioned)."""
    return agent_service.authenticate(UnitOfWork(), token)


CurrentNode = Annotated[agent_service.NodeCaller, Depends(current_node)]


@router.post(
    "/heartbeat",
    response_model=HeartbeatOut,
    summary="Report the node alive, with host metrics (CPU, RAM, disk, network)",
    responses=problem_responses(401, 403, 413, 422),
)
async def heartbeat(body: HeartbeatIn, token: NodeToken) -> Response:
    # The hot path (every node, every interval): checked here, written by the process's heartbeat
    # writer together with the heartbeats that arrive at the same time (group commit, services/nodes/
    # ingest.py), answered once committed; serialised once by its model (response_model documents it).
    out = await ingest.submit(token, body)
    return Response(out.model_dump_json(), media_type="application/json")


@router.get(
    "/assignments",
    response_model=Page[Assignment],
    summary="Deployments placed on this node and the state each should be in",
    responses=problem_responses(401, 403, 422),
)
def assignments(node: CurrentNode, page: Annotated[PageRequest, Depends(page_params)]) -> Page[Assignment]:
    after = None
    if page.offset:  # this list pages by key only
        raise InvalidInput("This cursor is not valid; start again without one.", field="cursor")
    if page.after is not None:
        if len(page.after) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in page.after):
            raise InvalidInput("This cursor is not valid; start again without one.", field="cursor")
        after = (page.after[0], page.after[1])
    rows = agent_service.assignments(UnitOfWork(), node, limit=page.limit + 1, after=after)
    items, cursor = keyset_page(rows, page, key=lambda a: (a.deployment_id, a.slot))
    return Page[Assignment](items=items, next_cursor=cursor)


@router.post(
    "/deployments/{deployment_id}/status",
    response_model=StatusReportOut,
    summary="Report a deployment placed on this node as running, failed (with a reason) or stopped",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
)
def report_status(
    node: CurrentNode,
    body: StatusReport,
    deployment_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> StatusReportOut:
    return agent_service.report_status(UnitOfWork(), node, deployment_id, body)

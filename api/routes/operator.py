"""Operators: marketplace settings, versioned pricing, provider-request review.

The same service functions as the operator pages. Both editable resources use optimistic
concurrency, so two operators cannot silently overwrite each other:
- settings: GET answers each setting's `version`; PUT sends the changed settings with the versions
  it loaded (`expected_versions`); a setting changed by someone else meanwhile is a 409.
- pricing: GET answers the `latest` version; PUT sends the new rates with `version` = the version it
  edits; when that is no longer the latest the answer is 409 ("changed by X at T, reload").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, create_model

from api.access import Caller, needs
from api.pagination import Page, PageRequest, offset_page, page_params
from api.problems import problem_responses
from services.auth.permissions import Action
from services.db.engine import UnitOfWork
from services.errors import Conflict
from services.pricing import service as pricing
from services.pricing.service import PricingInput, PricingVersionView
from services.providers import review
from services.providers.review import RequestView
from services.settings import service as settings
from services.settings.service import MarketplaceSettings

router = APIRouter(prefix="/v1/operator", tags=["operator"])

RequestId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The provider request's id")]


# ---------------------------------------------------------------- settings
class SettingsOut(BaseModel):
    settings: MarketplaceSettings
    versions: dict[str, int] = Field(description="Each setting's version (0: never saved); send back when saving")


# Every setting optional: a PUT changes the ones it names. Types here, bounds and cross-checks in the service.
SettingsChanges = create_model(
    "SettingsChanges",
    __config__=ConfigDict(extra="forbid"),
    **{name: (info.annotation | None, None) for name, info in MarketplaceSettings.model_fields.items()},
)


class SettingsPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    changes: SettingsChanges = Field(description="The settings to change; the others stay as they are")  # type: ignore[valid-type]
    expected_versions: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="Setting -> version loaded (from GET); a newer stored version is a 409"
    )


def _settings_out(me) -> SettingsOut:
    uow = UnitOfWork()
    return SettingsOut(settings=settings.get(uow), versions={k: s.version for k, s in settings.states(uow, me).items()})


@router.get(
    "/settings",
    response_model=SettingsOut,
    summary="The marketplace settings and their versions",
    responses=problem_responses(401, 403),
    **needs(Action.SETTINGS_EDIT),
)
def get_settings(me: Caller[Action.SETTINGS_EDIT]) -> SettingsOut:
    return _settings_out(me)


@router.put(
    "/settings",
    response_model=SettingsOut,
    summary="Change settings (validated, audited); a setting changed meanwhile by someone else is a 409",
    responses=problem_responses(401, 403, 409, 413, 422),
    **needs(Action.SETTINGS_EDIT),
)
def put_settings(me: Caller[Action.SETTINGS_EDIT], body: SettingsPut) -> SettingsOut:
    changes: dict[str, Any] = body.changes.model_dump(mode="json", exclude_none=True)
    settings.update(UnitOfWork(), me, changes, expected_versions=body.expected_versions)
    return _settings_out(me)


# ---------------------------------------------------------------- pricing
class PricingOut(BaseModel):
    in_force: PricingVersionView | None = Field(description="The version charged for launches now")
    latest: PricingVersionView | None = Field(description="The newest version (maybe scheduled): edit this one")
    history: Page[PricingVersionView] = Field(description="Every version, newest first (paginated)")


class PricingPut(PricingInput):
    """A new pricing version, naming the version it was edited from."""

    version: int = Field(ge=0, le=2**31, description="The `latest.version` the edit started from (0: none yet)")


@router.get(
    "/pricing",
    response_model=PricingOut,
    summary="The pricing in force, the latest version and the history",
    responses=problem_responses(401, 403, 422),
    **needs(Action.PRICING_EDIT),
)
def get_pricing(me: Caller[Action.PRICING_EDIT], page: Annotated[PageRequest, Depends(page_params)]) -> PricingOut:
    uow = UnitOfWork()
    rows, _total = pricing.list_versions(uow, me, limit=page.limit + 1, offset=page.offset)
    items, cursor = offset_page(rows, page)
    return PricingOut(
        in_force=pricing.in_force_version(uow, me),
        latest=pricing.latest_version(uow, me),
        history=Page[PricingVersionView](items=items, next_cursor=cursor),
    )


@router.put(
    "/pricing",
    response_model=PricingVersionView,
    summary="Save a new pricing version; 409 when `version` is no longer the latest",
    responses=problem_responses(401, 403, 409, 413, 422),
    **needs(Action.PRICING_EDIT),
)
def put_pricing(me: Caller[Action.PRICING_EDIT], body: PricingPut) -> PricingVersionView:
    data = PricingInput.model_validate(body.model_dump(exclude={"version"}))
    try:
        return pricing.save_version(UnitOfWork(), me, data, expected_version=body.version)
    except Conflict as stale:
        if "expected_version" in stale.errors:  # the service's name for what this API calls `version`
            stale.errors["version"] = stale.errors.pop("expected_version")
        raise


# ---------------------------------------------------------------- provider requests
class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=2000, description="Shown to the applicant (required to reject)")


@router.get(
    "/provider-requests",
    response_model=Page[RequestView],
    summary="Provider applications: pending first (oldest first), then decided ones",
    responses=problem_responses(401, 403, 422),
    **needs(Action.PROVIDER_REQUEST_REVIEW),
)
def list_requests(
    me: Caller[Action.PROVIDER_REQUEST_REVIEW],
    page: Annotated[PageRequest, Depends(page_params)],
    status: Literal["pending", "approved", "rejected"] | None = None,
) -> Page[RequestView]:
    rows, _total = review.list_requests(UnitOfWork(), me, status=status, limit=page.limit + 1, offset=page.offset)
    items, cursor = offset_page(rows, page)
    return Page[RequestView](items=items, next_cursor=cursor)


@router.post(
    "/provider-requests/{request_id}/approve",
    response_model=RequestView,
    summary="Approve: creates the provider and grants cloud-provider; 409 if already decided",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
    **needs(Action.PROVIDER_REQUEST_REVIEW),
)
def approve(
    me: Caller[Action.PROVIDER_REQUEST_REVIEW],
    request_id: RequestId,
    body: Annotated[ReviewBody | None, Body()] = None,
) -> RequestView:
    return review.approve(UnitOfWork(), me, request_id, note=(body.note if body else ""))


@router.post(
    "/provider-requests/{request_id}/reject",
    response_model=RequestView,
    summary="Reject with a note the applicant sees; 409 if already decided",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
    **needs(Action.PROVIDER_REQUEST_REVIEW),
)
def reject(me: Caller[Action.PROVIDER_REQUEST_REVIEW], request_id: RequestId, body: ReviewBody) -> RequestView:
    return review.reject(UnitOfWork(), me, request_id, note=body.note)

"""Payments: the Stripe webhook, top-ups and saved cards (the same service functions as the Billing page).

The webhook takes no bearer token: Stripe proves itself with `Stripe-Signature` over the raw body.
Card endpoints need `billing.manage_own`; another person's card or payment is a 404. Without Stripe
keys every card endpoint answers 503 `payments-not-configured`.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.access import Caller, needs
from api.problems import problem_responses
from services.auth.permissions import Action
from services.db.engine import UnitOfWork
from services.payments import service as payments
from services.payments import webhooks
from services.payments.service import PAYMENT_METHOD_ID

router = APIRouter(prefix="/v1/payments", tags=["payments"])

PaymentId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The payment's id")]
PaymentMethodId = Annotated[str, Path(pattern=PAYMENT_METHOD_ID, description="A saved card's id (pm_...)")]
CARD_ERRORS = problem_responses(401, 403, 404, 413, 422, 502, 503)


class WebhookAnswer(BaseModel):
    received: bool = True
    event_id: str
    type: str
    outcome: str = Field(description="applied, duplicate, ignored:<why> or rejected:<why> (nothing changed)")


class TopupRequest(BaseModel):
    amount_cents: int = Field(strict=True, description="Amount in cents within the operator's top-up limits")
    payment_method_id: str = Field(pattern=PAYMENT_METHOD_ID, description="One of your saved cards")


class TopupAnswer(BaseModel):
    payment_id: int
    status: str = Field(description="requires_action, processing, succeeded, failed or canceled")
    amount_cents: int
    message: str
    client_secret: str | None = Field(
        default=None, description="Only with status requires_action: confirm it with Stripe.js (3-D Secure)"
    )


class Card(BaseModel):
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool


class SetupIntentAnswer(BaseModel):
    setup_intent_id: str
    client_secret: str = Field(description="Confirm it with Stripe.js `confirmCardSetup`, then POST the id back")
    publishable_key: str


class SaveCardRequest(BaseModel):
    setup_intent_id: str = Field(pattern=r"^seti_[A-Za-z0-9_]{1,200}$")


@router.post(
    "/webhook",
    response_model=WebhookAnswer,
    summary="Stripe webhook endpoint (Stripe-Signature over the raw body; no bearer token)",
    responses=problem_responses(400, 409, 413, 503),
)
async def stripe_webhook(request: Request) -> JSONResponse:
    payload = await request.body()
    signature = request.headers.get("stripe-signature")
    result = await anyio.to_thread.run_sync(webhooks.handle, UnitOfWork(), payload, signature)
    return JSONResponse(WebhookAnswer(event_id=result.event_id, type=result.type, outcome=result.outcome).model_dump())


def _topup(result: payments.TopupResult) -> TopupAnswer:
    return TopupAnswer(
        payment_id=result.payment_id,
        status=result.status,
        amount_cents=result.amount_cents,
        message=result.message,
        client_secret=result.client_secret,
    )


@router.post(
    "/intents",
    status_code=201,
    response_model=TopupAnswer,
    summary="Top up credits with a saved card (credits land when Stripe confirms the payment)",
    responses=problem_responses(401, 402, 403, 404, 413, 422, 502, 503),
    **needs(Action.BILLING_MANAGE_OWN),
)
def create_topup(me: Caller[Action.BILLING_MANAGE_OWN], body: TopupRequest) -> TopupAnswer:
    return _topup(payments.create_topup(UnitOfWork(), me, body.model_dump()))


@router.get(
    "/intents/{payment_id}",
    response_model=TopupAnswer,
    summary="Where one of my top-ups stands",
    responses=problem_responses(401, 403, 404, 422),
    **needs(Action.BILLING_MANAGE_OWN),
)
def get_topup(me: Caller[Action.BILLING_MANAGE_OWN], payment_id: PaymentId) -> TopupAnswer:
    return _topup(payments.topup_status(UnitOfWork(), me, payment_id))


@router.get(
    "/methods",
    response_model=list[Card],
    summary="My saved cards (brand, last 4, expiry), the default first",
    responses=CARD_ERRORS,
    **needs(Action.BILLING_MANAGE_OWN),
)
def list_cards(me: Caller[Action.BILLING_MANAGE_OWN]) -> list[Card]:
    return [
        Card(id=c.id, brand=c.brand, last4=c.last4, exp_month=c.exp_month, exp_year=c.exp_year, is_default=c.is_default)
        for c in payments.list_cards(UnitOfWork(), me)
    ]


@router.post(
    "/methods/setup-intents",
    status_code=201,
    response_model=SetupIntentAnswer,
    summary="Start adding a card: a SetupIntent to confirm in the browser with Stripe.js",
    responses=CARD_ERRORS,
    **needs(Action.BILLING_MANAGE_OWN),
)
def start_card_setup(me: Caller[Action.BILLING_MANAGE_OWN]) -> SetupIntentAnswer:
    intent = payments.start_card_setup(UnitOfWork(), me)
    return SetupIntentAnswer(
        setup_intent_id=intent.id,
        client_secret=intent.client_secret,
        publishable_key=payments.public_config().publishable_key,
    )


@router.post(
    "/methods",
    status_code=201,
    response_model=Card,
    summary="Save the card of a SetupIntent confirmed in the browser (checked with Stripe first)",
    responses=problem_responses(401, 402, 403, 404, 413, 422, 502, 503),
    **needs(Action.BILLING_MANAGE_OWN),
)
def save_card(me: Caller[Action.BILLING_MANAGE_OWN], body: SaveCardRequest) -> Card:
    c = payments.finish_card_setup(UnitOfWork(), me, body.model_dump())
    return Card(
        id=c.id, brand=c.brand, last4=c.last4, exp_month=c.exp_month, exp_year=c.exp_year, is_default=c.is_default
    )


@router.post(
    "/methods/{payment_method_id}/default",
    status_code=204,
    summary="Make one of my cards the default",
    responses=CARD_ERRORS,
    **needs(Action.BILLING_MANAGE_OWN),
)
def set_default_card(me: Caller[Action.BILLING_MANAGE_OWN], payment_method_id: PaymentMethodId) -> None:
    payments.set_default_card(UnitOfWork(), me, {"payment_method_id": payment_method_id})


@router.delete(
    "/methods/{payment_method_id}",
    status_code=204,
    summary="Remove one of my cards",
    responses=CARD_ERRORS,
    **needs(Action.BILLING_MANAGE_OWN),
)
def remove_card(me: Caller[Action.BILLING_MANAGE_OWN], payment_method_id: PaymentMethodId) -> None:
    payments.remove_card(UnitOfWork(), me, {"payment_method_id": payment_method_id})

"""Stripe webhook handling, in-process: a signed `payment_intent.succeeded` applied by `webhooks.handle`,
against verifying the signature alone.

Each event is new (its own id), signed like Stripe signs it, and does the whole job: verify, record
the event id, find our payment, check customer and amount, post the top-up to the ledger, notify,
audit. It runs in a unit of work whose commit is left out, so leaving it rolls the top-up back: the
data set stays as seeded and every event does the same work. The payment it settles (and the
Stripe customer id of its owner) is set up once, beside the seeded data.
"""

from __future__ import annotations

import json
import os
import time

import stripe
from sqlalchemy import select

from bench.core import Row, failed_row, median, ms, percentile, ratio
from bench.metering import RolledBack
from services.config import reload_settings
from services.db.engine import UnitOfWork

TARGET = "p99 ≤ 50 ms"
MAX_P99_MS = 50.0
SECRET = "whsec_bench_marketplace"  # noqa: S105 - a test signing secret made up for this benchmark
INTENT = "pi_bench_webhook"
CUSTOMER = "cus_bench_webhook"
AMOUNT = 5_000


def _setup(url: str) -> tuple[int, str]:
    """One top-up waiting for Stripe's word, owned by a seeded user with a Stripe customer id; its payment id."""
    from services.payments.models import Payment
    from services.users.models import User

    uow = UnitOfWork(url)
    with uow:
        s = uow.session
        payment = s.scalar(select(Payment).where(Payment.stripe_payment_intent_id == INTENT))
        if payment is None:
            user = s.scalar(select(User).where(User.is_demo.is_(False)).order_by(User.id.desc()).limit(1))
            user.stripe_customer_id = user.stripe_customer_id or CUSTOMER
            payment = Payment(
                user_id=user.id,
                kind="topup",
                stripe_payment_intent_id=INTENT,
                amount_cents=AMOUNT,
                currency="USD",
                status="processing",
                card_brand="visa",
                card_last4="4242",
            )
            s.add(payment)
            uow.commit()
        customer = s.get(User, payment.user_id).stripe_customer_id
        return payment.id, customer


def _event(n: int, customer: str) -> bytes:
    body = {
        "id": f"evt_bench_{n}_{time.time_ns()}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "api_version": "2017-08-15",
        "data": {
            "object": {
                "id": INTENT,
                "object": "payment_intent",
                "amount": AMOUNT,
                "currency": "usd",
                "customer": customer,
                "status": "succeeded",
                "latest_charge": f"ch_bench_{n}",
                "metadata": {},
            }
        },
    }
    return json.dumps(body).encode()


def measure(ctx) -> list[Row]:
    """p50/p99 of handling one signed event against p50/p99 of checking its signature."""
    what = "Stripe webhook: signed payment_intent.succeeded, in-process"
    os.environ["STRIPE_WEBHOOK_SECRET"] = SECRET
    reload_settings()
    count, budget = (20, 10.0) if ctx.quick else (400, 60.0)
    try:
        from services.payments import webhooks

        _payment_id, customer = _setup(ctx.url)
        events = [_event(n, customer) for n in range(count + 5)]
        signed = [(body, stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET)) for body in events]
        outcomes: set[str] = set()
        figure: list[float] = []
        deadline = time.monotonic() + budget
        for i, (body, header) in enumerate(signed):
            start = time.perf_counter()
            result = webhooks.handle(RolledBack(ctx.url), body, header)
            elapsed = time.perf_counter() - start
            outcomes.add(result.outcome)
            if i >= 5:  # the first few warm caches and connections
                figure.append(elapsed)
            if time.monotonic() > deadline and len(figure) >= 5:
                break
        if outcomes != {"applied"}:
            raise RuntimeError(f"the events were not applied: {sorted(outcomes)}")
        floor: list[float] = []
        for body, header in signed[: len(figure) + 5]:
            start = time.perf_counter()
            stripe.WebhookSignature.verify_header(body, header, SECRET, 300)
            floor.append(time.perf_counter() - start)
        floor = floor[5:]
    except Exception as exc:
        return [failed_row(what, TARGET, f"{type(exc).__name__}: {exc}")]
    p50, p99 = ms(median(figure)), ms(percentile(figure, 99))
    f50, f99 = ms(median(floor)), ms(percentile(floor, 99))
    return [
        Row(
            what=what,
            figure=f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            floor=f"p50 {f50:.2f} ms, p99 {f99:.2f} ms",
            ratio=ratio(p99, f99),
            target=TARGET,
            met=p99 <= MAX_P99_MS,
            values={"p50_ms": p50, "p99_ms": p99, "n": len(figure)},
            floor_values={"p50_ms": f50, "p99_ms": f99, "n": len(floor)},
        )
    ]

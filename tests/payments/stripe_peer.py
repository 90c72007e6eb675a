"""localstripe, a stateful Stripe-compatible server, run in this process on a free loopback port.

It binds 127.0.0.1 only and keeps no state file (its stock CLI binds every interface and pickles its
store to /tmp). Its event loop runs on a daemon thread; `clear()` empties the store between tests
(throughput falls as the store grows), `register_webhook` makes it deliver signed events to a URL.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalStripe:
    """One localstripe server per test session (its store and webhooks are module-global)."""

    def __init__(self) -> None:
        from aiohttp import web
        from localstripe import resources, server

        resources.Store.dump_to_disk = lambda self: None
        resources.Store.try_load_from_disk = lambda self: None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.js_url = f"{self.url}/js.stripe.com/v3/"
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(server.app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._thread = threading.Thread(target=self._loop.run_forever, name="localstripe", daemon=True)
        self._thread.start()

    def clear(self) -> None:
        """Forget every object (customers, intents, ...); registered webhooks stay."""
        httpx.delete(f"{self.url}/_config/data", timeout=10).raise_for_status()

    def register_webhook(self, name: str, url: str, secret: str, events: list[str] | None = None) -> None:
        """Deliver events (all, or only `events`) to `url`, signed with `secret`, like a Stripe endpoint."""
        data: dict = {"url": url, "secret": secret}
        if events is not None:
            data["events"] = events
        httpx.post(f"{self.url}/_config/webhooks/{name}", json=data, timeout=10).raise_for_status()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # --- what Stripe.js does in the browser (the same requests localstripe's Stripe.js sends)

    def confirm_card_setup(
        self, client_secret: str, number: str, publishable_key: str, *, authenticate: bool = True
    ) -> dict:
        """confirmCardSetup with a typed card; for a 3-D Secure card, complete (or fail) the authentication."""
        setup_id = client_secret.split("_secret_")[0]
        body = {
            "key": publishable_key,
            "use_stripe_sdk": True,
            "client_secret": client_secret,
            "payment_method_data": {
                "type": "card",
                "card": {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"},
            },
        }
        answer = httpx.post(f"{self.url}/v1/setup_intents/{setup_id}/confirm", json=body, timeout=10)
        result = answer.json()
        if answer.status_code == 200 and result.get("status") == "requires_action":
            step = "confirm" if authenticate else "cancel"
            again = {"key": publishable_key, "use_stripe_sdk": True, "client_secret": client_secret}
            result = httpx.post(f"{self.url}/v1/setup_intents/{setup_id}/{step}", json=again, timeout=10).json()
        return result

    def authenticate_payment(self, client_secret: str, publishable_key: str, *, success: bool) -> dict:
        """confirmCardPayment on an intent that requires action: the person completes or fails 3-D Secure."""
        intent_id = client_secret.split("_secret_")[0]
        body = {"key": publishable_key, "client_secret": client_secret}
        url = f"{self.url}/v1/payment_intents/{intent_id}/_authenticate?success={'true' if success else 'false'}"
        return httpx.post(url, json=body, timeout=10).json()

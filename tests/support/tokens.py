"""A token issuer for API tests: RSA keys, a JWKS served over real HTTP on loopback, signed tokens.

    with TokenIssuer() as idp:            # serves http://127.0.0.1:<port>/.well-known/jwks.json
        idp.configure(monkeypatch)        # points MARKETPLACE_AUTH_* at it, clears caches
        token = idp.token(sub="auth0|alice", roles=["cloud-provider"])

Keys and tokens are made with joserfc (the same library that verifies them). `rotate()` publishes a
new key and withdraws the old ones; `publish()` / `withdraw()` change the served set by hand.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from services.auth import tokens
from services.config import get_settings

AUDIENCE = "https://api.cloud-marketplace.test"


def new_key(kid: str | None = None) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid or f"k-{uuid.uuid4().hex[:8]}", "use": "sig"})


class TokenIssuer:
    """An RS256 issuer whose JWKS is served over HTTP on 127.0.0.1 (a real socket, a real fetch)."""

    def __init__(self, audience: str = AUDIENCE):
        self.audience = audience
        self.key = new_key()
        self.published: dict[str, RSAKey] = {self.key.kid: self.key}
        self.jwks_requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                if self.path != "/.well-known/jwks.json":
                    self.send_error(404)
                    return
                issuer.jwks_requests += 1
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.jwks_url = f"{self.url}.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> TokenIssuer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- the served key set
    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) | {"alg": "RS256"} for k in self.published.values()]}

    def publish(self, key: RSAKey) -> None:
        self.published[key.kid] = key

    def withdraw(self, key: RSAKey) -> None:
        self.published.pop(key.kid, None)

    def rotate(self) -> RSAKey:
        """Publish a new signing key and withdraw every old one; returns the new key."""
        self.key = new_key()
        self.published = {self.key.kid: self.key}
        return self.key

    # --- settings
    def configure(self, monkeypatch, *, jwks_url: str | None = None) -> None:
        """Point the app's issuer, audience and JWKS settings at this issuer; forget cached keys."""
        monkeypatch.setenv("MARKETPLACE_AUTH_ISSUER", self.url)
        monkeypatch.setenv("MARKETPLACE_AUTH_AUDIENCE", self.audience)
        if jwks_url is not None:
            monkeypatch.setenv("MARKETPLACE_AUTH_JWKS_URL", jwks_url)
        else:
            monkeypatch.delenv("MARKETPLACE_AUTH_JWKS_URL", raising=False)
        get_settings.cache_clear()
        tokens.reset_cache()

    # --- tokens
    def claims(self, *, sub: str = "auth0|alice", email: str | None = "alice@example.com", roles=(), **extra) -> dict:
        now = int(time.time())
        out: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            get_settings().roles_claim: list(roles),
        }
        if email is not None:
            out["email"] = email
            out["email_verified"] = True
        out.update(extra)
        return {k: v for k, v in out.items() if v is not None}

    def sign(self, claims: dict, *, key: RSAKey | None = None, header: dict | None = None) -> str:
        key = key or self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid, **(header or {})}, claims, key, algorithms=["RS256"])

    def token(self, *, key: RSAKey | None = None, **claim_args) -> str:
        return self.sign(self.claims(**claim_args), key=key)

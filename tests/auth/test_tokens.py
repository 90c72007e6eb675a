"""API bearer tokens against GET /v1/session of the real FastAPI app (the one mounted under /api).

Keys and the JWKS are real: tests/support/tokens.py generates RSA keys and serves the JWKS over HTTP
on loopback, and the app fetches it with httpx. Every refusal must look the same to the caller:
401, `WWW-Authenticate: Bearer`, and one generic JSON message that does not say which check failed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time

import pytest
from fastapi.testclient import TestClient

from services.auth import tokens
from services.auth.identity import identity_from_claims
from services.auth.permissions import Role
from services.config import get_settings
from services.db.engine import UnitOfWork
from tests.auth.app_api import app_api
from tests.support.people import make_person
from tests.support.tokens import TokenIssuer, new_key

# words that would tell an attacker which check failed
REVEALING = ("expired", "signature", "kid", "issuer", "audience", "alg", "key", "nbf", "claim", "jwks")


class FakeClock:
    """A monotonic clock the test moves by hand (for the JWKS refetch rate limit)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def idp(monkeypatch, sqlite_db):
    with TokenIssuer() as issuer:
        monkeypatch.setenv("MARKETPLACE_DEMO_MODE", "false")
        issuer.configure(monkeypatch)
        yield issuer
    tokens.reset_cache()


@pytest.fixture
def clock(idp, monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(tokens.verifier().jwks, "_clock", fake)
    return fake


@pytest.fixture
def client(idp) -> TestClient:
    with app_api() as api:
        yield TestClient(api.app.create_api())


def session(client: TestClient, token: str | None = None, *, header: str | None = None):
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.get("/v1/session", headers=headers)


@pytest.fixture(autouse=True)
def _token_log(caplog):
    caplog.set_level(logging.DEBUG, logger="marketplace.auth")


def refusal_reasons(caplog) -> str:
    """What the server logged about refused tokens (the caller never sees this)."""
    return "\n".join(r.getMessage() for r in caplog.records if "refused" in r.getMessage())


def assert_refused(response, caplog=None, because: str | None = None) -> None:
    """401, a Bearer challenge, one generic JSON message; `because`: the check the server log names."""
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"].startswith("application/")
    assert "json" in response.headers["content-type"]
    body = response.text.lower()
    assert tokens.GENERIC.lower() in body
    for word in REVEALING:
        assert word not in body, f"the refusal reveals {word!r}: {response.text}"
    if because is not None:
        reasons = refusal_reasons(caplog)
        assert because in reasons, reasons
        caplog.clear()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> list[str]:
    return token.split(".")


# --- success


def test_a_valid_token_gives_subject_email_and_roles(client, idp):
    r = session(client, idp.token(sub="auth0|alice", email="alice@example.com", roles=["cloud-provider"]))
    assert r.status_code == 200, r.text
    assert r.json() == {"sub": "auth0|alice", "email": "alice@example.com", "roles": ["cloud-provider", "cloud-user"]}


def test_roles_are_the_claim_united_with_database_grants(client, idp):
    first = session(client, idp.token(sub="auth0|bob", email="bob@example.com"))
    assert first.json()["roles"] == ["cloud-user"]
    # an operator grants bob the provider role in the database: his next request has it
    from services.users import roles as role_service

    bob = identity_from_claims(UnitOfWork(), {"sub": "auth0|bob"})
    operator = make_person(UnitOfWork(), Role.OPERATOR)
    role_service.grant(UnitOfWork(), operator, user_id=bob.user_id, role=Role.PROVIDER)
    r = session(client, idp.token(sub="auth0|bob", email="bob@example.com", roles=["cloud-operator"]))
    assert r.json()["roles"] == ["cloud-operator", "cloud-provider", "cloud-user"]


def test_operator_emails_bootstrap_operators_only_when_verified(client, idp, monkeypatch):
    monkeypatch.setenv("MARKETPLACE_OPERATOR_EMAILS", "boss@example.com, other@example.com")
    get_settings.cache_clear()
    verified = session(client, idp.token(sub="auth0|boss", email="Boss@example.com"))
    assert "cloud-operator" in verified.json()["roles"]
    unverified = session(client, idp.token(sub="auth0|fake", email="other@example.com", email_verified=False))
    assert unverified.status_code == 200
    assert "cloud-operator" not in unverified.json()["roles"]


def test_clock_skew_within_a_minute_is_tolerated(client, idp):
    now = int(time.time())
    late = idp.token(exp=now - 30)  # expired 30 s ago: within the 60 s leeway
    early = idp.token(nbf=now + 30, iat=now + 30)  # clocks 30 s apart
    assert session(client, late).status_code == 200
    assert session(client, early).status_code == 200


def test_the_jwks_is_fetched_once_and_cached(client, idp):
    for _ in range(3):
        assert session(client, idp.token()).status_code == 200
    assert idp.jwks_requests == 1


# --- every refusal


def test_no_token(client):
    assert_refused(session(client))
    assert session(client).headers["www-authenticate"] == 'Bearer realm="cloud-marketplace"'


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer ...",
        "Token abc.def.ghi",
    ],
)
def test_malformed_tokens(client, header):
    assert_refused(session(client, header=header))


def test_a_signed_token_whose_payload_is_not_json(client, idp, caplog):
    from joserfc import jws

    token = jws.serialize_compact({"alg": "RS256", "kid": idp.key.kid}, b"not json", idp.key, algorithms=["RS256"])
    assert_refused(session(client, token), caplog, "InvalidPayloadError")
    token = jws.serialize_compact({"alg": "RS256", "kid": idp.key.kid}, b"[1, 2]", idp.key, algorithms=["RS256"])
    assert_refused(session(client, token), caplog, "InvalidPayloadError")


def test_alg_none(client, idp, caplog):
    claims = idp.claims(roles=["cloud-operator"])
    payload = b64(json.dumps(claims).encode())
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "none", "kid": idp.key.kid}, {"alg": "None"}):
        head = b64(json.dumps(header).encode())
        assert_refused(session(client, f"{head}.{payload}."), caplog, "not a compact JWS")
        assert_refused(session(client, f"{head}.{payload}.{b64(b'x')}"), caplog, "algorithm not allowed")


def test_hs256_signed_with_the_public_key(client, idp, caplog):
    # the classic confusion attack: the public key (PEM, also served in the JWKS) used as an HMAC secret.
    # joserfc refuses to build such a token, so it is assembled by hand here.
    public_pem = idp.key.as_pem(private=False)
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": idp.key.kid}).encode())
    payload = b64(json.dumps(idp.claims(roles=["cloud-operator"])).encode())
    signature = hmac.new(public_pem, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    assert_refused(session(client, f"{head}.{payload}.{b64(signature)}"), caplog, "algorithm not allowed")
    # and with the JWK's modulus bytes as the secret
    n = base64.urlsafe_b64decode(idp.key.as_dict()["n"] + "==")
    signature = hmac.new(n, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    assert_refused(session(client, f"{head}.{payload}.{b64(signature)}"), caplog, "algorithm not allowed")


def test_other_asymmetric_algorithms_are_refused(client, idp, caplog):
    # RS256 only: the same key signing with PS256 or RS512 is still refused
    from joserfc import jwt

    for alg in ("PS256", "RS512"):
        token = jwt.encode({"alg": alg, "kid": idp.key.kid}, idp.claims(), idp.key, algorithms=[alg])
        assert_refused(session(client, token), caplog, "algorithm not allowed")


def test_unknown_kid(client, idp, caplog):
    stranger = new_key()
    assert_refused(session(client, idp.token(key=stranger)), caplog, "unknown kid")


def test_no_kid(client, idp, caplog):
    from joserfc import jwt

    token = jwt.encode({"alg": "RS256"}, idp.claims(), idp.key, algorithms=["RS256"])
    assert_refused(session(client, token), caplog, "no kid")


def test_bad_signature(client, idp, caplog):
    impostor = new_key(kid=idp.key.kid)  # same kid, different private key
    assert_refused(session(client, idp.token(key=impostor)), caplog, "BadSignatureError")
    good = segments(idp.token())
    flipped = good[2][:-4] + ("AAAA" if not good[2].endswith("AAAA") else "BBBB")
    assert_refused(session(client, f"{good[0]}.{good[1]}.{flipped}"), caplog, "BadSignatureError")


def test_tampered_payload(client, idp, caplog):
    head, _, signature = segments(idp.token(sub="auth0|mallory", roles=[]))
    promoted = b64(json.dumps(idp.claims(sub="auth0|mallory", roles=["cloud-operator"])).encode())
    assert_refused(session(client, f"{head}.{promoted}.{signature}"), caplog, "BadSignatureError")


def test_expired(client, idp, caplog):
    now = int(time.time())
    assert_refused(session(client, idp.token(iat=now - 900, nbf=now - 900, exp=now - 120)), caplog, "ExpiredTokenError")


def test_missing_expiry(client, idp, caplog):
    claims = idp.claims()
    del claims["exp"]
    assert_refused(session(client, idp.sign(claims)), caplog, "Missing claim: 'exp'")


def test_not_yet_valid(client, idp, caplog):
    now = int(time.time())
    assert_refused(session(client, idp.token(nbf=now + 120)), caplog, "not yet valid")


def test_issued_in_the_future(client, idp, caplog):
    now = int(time.time())
    assert_refused(session(client, idp.token(iat=now + 120, nbf=now)), caplog, "issued in the future")


def test_wrong_issuer(client, idp, caplog):
    assert_refused(session(client, idp.token(iss="https://evil.example/")), caplog, "'iss'")
    assert_refused(session(client, idp.token(iss=idp.url.rstrip("/"))), caplog, "'iss'")  # close is not equal


def test_wrong_audience(client, idp, caplog):
    assert_refused(session(client, idp.token(aud="https://another-api.example")), caplog, "'aud'")
    assert_refused(session(client, idp.token(aud=["https://another-api.example"])), caplog, "'aud'")
    missing = idp.claims()
    del missing["aud"]
    assert_refused(session(client, idp.sign(missing)), caplog, "'aud'")


def test_a_token_with_an_audience_list_including_ours_is_accepted(client, idp):
    r = session(client, idp.token(aud=["https://another-api.example", idp.audience]))
    assert r.status_code == 200


def test_no_subject(client, idp, caplog):
    claims = idp.claims()
    del claims["sub"]
    assert_refused(session(client, idp.sign(claims)), caplog, "'sub'")


def test_all_refusals_look_the_same(client, idp):
    now = int(time.time())
    bodies = {
        session(client).text,
        session(client, "junk").text,
        session(client, idp.token(exp=now - 600)).text,
        session(client, idp.token(aud="x")).text,
        session(client, idp.token(key=new_key())).text,
    }
    assert len(bodies) == 1


# --- key rotation and the JWKS cache


def test_a_new_kid_refetches_the_jwks(client, idp, clock):
    assert session(client, idp.token()).status_code == 200
    assert idp.jwks_requests == 1
    new = idp.rotate()
    clock.advance(61)
    r = session(client, idp.token(key=new))
    assert r.status_code == 200
    assert idp.jwks_requests == 2


def test_unknown_kids_refetch_at_most_once_a_minute(client, idp, clock, caplog):
    assert session(client, idp.token()).status_code == 200
    assert idp.jwks_requests == 1
    clock.advance(61)
    for _ in range(5):  # a burst of made-up kids
        assert_refused(session(client, idp.token(key=new_key())), caplog, "unknown kid")
    assert idp.jwks_requests == 2
    # a key the provider publishes now is only picked up once the minute has passed
    later = new_key()
    idp.publish(later)
    assert_refused(session(client, idp.token(key=later)), caplog, "unknown kid")
    assert idp.jwks_requests == 2
    clock.advance(61)
    assert session(client, idp.token(key=later)).status_code == 200
    assert idp.jwks_requests == 3


def test_a_key_rotated_out_is_refused_once_a_new_key_is_seen(client, idp, clock, caplog):
    old = idp.key
    old_token = idp.token(key=old)
    assert session(client, old_token).status_code == 200
    new = idp.rotate()  # the provider withdraws the old key
    clock.advance(61)
    assert session(client, idp.token(key=new)).status_code == 200  # refetch: the set is now {new}
    assert_refused(session(client, old_token), caplog, "unknown kid")


def test_a_key_rotated_out_is_refused_when_the_cache_ages(client, idp, clock, caplog):
    old_token = idp.token()
    assert session(client, old_token).status_code == 200
    idp.rotate()
    clock.advance(tokens.MAX_AGE + 1)  # no new-kid token came; the cached set simply ages out
    assert_refused(session(client, old_token), caplog, "unknown kid")
    assert idp.jwks_requests == 2


def test_a_jwks_outage_keeps_the_cached_keys_for_a_while_then_refuses(client, idp, clock, monkeypatch, caplog):
    token = idp.token()
    assert session(client, token).status_code == 200
    monkeypatch.setenv("MARKETPLACE_AUTH_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json")  # nothing listens
    v = tokens.verifier()
    broken = tokens.Jwks("http://127.0.0.1:9/.well-known/jwks.json", clock=clock)
    broken._keys, broken._fetched_at = dict(v.jwks._keys), v.jwks._fetched_at
    monkeypatch.setattr(v, "jwks", broken)
    clock.advance(tokens.MAX_AGE + 1)
    assert session(client, token).status_code == 200  # fetch failed: the recent set still serves
    clock.advance(tokens.REFETCH_INTERVAL)
    assert_refused(session(client, token), caplog, "no current key set")  # too old, no fresh set: refuse


def test_unconfigured_api_tokens_refuse_everything(client, idp, monkeypatch):
    monkeypatch.delenv("MARKETPLACE_AUTH_AUDIENCE")
    get_settings.cache_clear()
    assert_refused(session(client, idp.token()))


def test_the_jwks_url_defaults_to_the_issuers_well_known_path(monkeypatch, idp):
    assert get_settings().jwks_url == idp.jwks_url
    monkeypatch.delenv("MARKETPLACE_AUTH_ISSUER")
    monkeypatch.setenv("AUTH0_DOMAIN", "tenant.example.auth0.com")
    get_settings.cache_clear()
    assert get_settings().issuer == "https://tenant.example.auth0.com/"
    assert get_settings().jwks_url == "https://tenant.example.auth0.com/.well-known/jwks.json"

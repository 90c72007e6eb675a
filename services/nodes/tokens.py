"""Node agent tokens: made here, stored only as a hash, looked up by that hash.

A node token is shown to the provider once (on registration or rotation); the database keeps
only `hash_token(token)`. The heartbeat API and the node agent authenticate with
`find_node_by_token`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.nodes.models import Node

TOKEN_PREFIX = "cmn_"  # noqa: S105 - a public marker that makes leaked tokens easy to spot, not a secret
# 32 random bytes = 256 bits; url-safe base64 gives 43 characters after the prefix.
TOKEN_BYTES = 32
# The prefix plus at least this many characters; shorter strings are not tokens we issued.
_MIN_TOKEN_LENGTH = len(TOKEN_PREFIX) + 40
_MAX_TOKEN_LENGTH = 200


def new_token() -> str:
    """A fresh node token: the recognisable prefix plus 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, hex.

    A fast hash is right here, unlike for passwords: the token carries 256 bits of randomness
    from `secrets`, so there is no small space to brute-force or precompute, and a slow KDF
    (bcrypt/argon2) would only make every heartbeat expensive. A plain digest also allows an
    indexed equality lookup, which a salted hash would not.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(token: object) -> bool:
    """Cheap shape check before touching the database (prefix and length only)."""
    return (
        isinstance(token, str)
        and token.startswith(TOKEN_PREFIX)
        and _MIN_TOKEN_LENGTH <= len(token) <= _MAX_TOKEN_LENGTH
    )


def find_node_by_token(session: Session, token: str | None) -> Node | None:
    """The node whose current token is `token`, or None (unknown, rotated away, or decommissioned).

    The query compares hashes, never the token itself, so the database index sees only a digest
    of a secret the caller already holds; the final compare_digest keeps the comparison in
    Python constant-time as well.
    """
    if not looks_like_token(token):
        return None
    digest = hash_token(token)  # type: ignore[arg-type]
    node = session.scalar(select(Node).where(Node.token_hash == digest))
    if node is None or node.token_hash is None or not hmac.compare_digest(node.token_hash, digest):
        return None
    if node.status == "decommissioned":
        return None
    return node

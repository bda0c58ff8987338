"""Bearer JWT authentication (PyJWT): HS256 or EdDSA (Ed25519) keys.

A verified token is cached until it expires, so the hot path pays for one
signature check per token, not per request. The tenant and the scopes come
from the token's claims, never from a request body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import Forbidden, TenantRequired, Unauthenticated
from ..store.text import storable

SCOPES = frozenset({"orch:read", "orch:operate", "orch:worker", "orch:quota", "orch:backfill"})
CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    tenant: str | None
    project: str | None
    scopes: frozenset[str]
    expires: float

    def require(self, *any_of: str) -> str:
        """The tenant, if the principal holds one of ``any_of``; raises otherwise."""
        if self.scopes.isdisjoint(any_of):
            raise Forbidden(f"this operation needs scope {' or '.join(any_of)}")
        if not self.tenant:
            raise TenantRequired("the token carries no tenant")
        return self.tenant


@dataclass(frozen=True, slots=True)
class KeySet:
    """The keys tokens are verified with (and, for development, signed with)."""

    algorithm: str  # "EdDSA" or "HS256"
    verify_key: object
    sign_key: object | None = None

    @staticmethod
    def hs256(secret: bytes) -> KeySet:
        if len(secret) < 32:
            raise ValueError("an HS256 secret needs at least 32 bytes")
        return KeySet("HS256", secret, secret)

    @staticmethod
    def ed25519_file(path: Path, create: bool = False) -> KeySet:
        """Load a PEM Ed25519 private key; with ``create``, make one on first use (mode 0600)."""
        if not path.exists():
            if not create:
                raise FileNotFoundError(f"no signing key at {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            path.touch(mode=0o600)
            path.write_bytes(pem)
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return KeySet("EdDSA", private.public_key(), private)

    @staticmethod
    def ed25519_public(pem: bytes) -> KeySet:
        public = serialization.load_pem_public_key(pem)
        if not isinstance(public, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return KeySet("EdDSA", public)

    def sign(self, claims: dict[str, object]) -> str:
        if self.sign_key is None:
            raise ValueError("this key set can only verify")
        return jwt.encode(claims, self.sign_key, algorithm=self.algorithm)  # type: ignore[arg-type]


def issue_token(
    keys: KeySet,
    tenant: str,
    scopes: str,
    subject: str = "dev",
    project: str | None = None,
    ttl_s: int = 24 * 3600,
) -> str:
    unknown = set(scopes.split()) - SCOPES
    if unknown:
        raise ValueError(f"unknown scopes: {' '.join(sorted(unknown))}")
    if not all(storable(value) for value in (tenant, subject, project or "")):
        raise ValueError("tenant, subject and project must be text a ledger can store (no NUL)")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": subject,
        "tenant": tenant,
        "scope": scopes,
        "iat": now,
        "exp": now + ttl_s,
    }
    if project:
        claims["project"] = project
    return keys.sign(claims)


class Authenticator:
    def __init__(self, keys: KeySet) -> None:
        self.keys = keys
        self._cache: dict[str, Principal] = {}

    def principal(self, authorization: str | None, tenant_header: str | None) -> Principal:
        # the scheme name is case-insensitive (RFC 9110 section 11.1)
        if not authorization or authorization[:7].lower() != "bearer ":
            raise Unauthenticated("missing bearer token")
        token = authorization[7:].strip()
        if not token.isascii():
            # a JWT is ASCII; other header bytes arrive as (surrogate-escaped) text
            raise Unauthenticated("invalid token: not ASCII")
        now = time.time()
        found = self._cache.get(token)
        if found is None or found.expires <= now:
            found = self._verify(token)
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[token] = found
        if tenant_header is not None and tenant_header != found.tenant:
            raise Forbidden("X-Stella-Tenant differs from the token's tenant")
        return found

    def _verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self.keys.verify_key,  # type: ignore[arg-type]
                algorithms=[self.keys.algorithm],
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        scope = claims.get("scope", "")
        tenant = claims.get("tenant")
        project = claims.get("project")
        if not isinstance(scope, str) or not (tenant is None or isinstance(tenant, str)):
            raise Unauthenticated("malformed claims")
        if not all(storable(str(value)) for value in (claims["sub"], tenant, project or "")):
            raise Unauthenticated("malformed claims: text a ledger cannot store")
        return Principal(
            subject=str(claims["sub"]),
            tenant=tenant or None,
            project=project if isinstance(project, str) else None,
            scopes=frozenset(scope.split()),
            expires=float(claims["exp"]),
        )

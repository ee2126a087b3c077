"""Bearer-token authentication: HS256 for development, OIDC JWTs checked against a JWKS in production.

The tenant is taken from the token only (claim ``tenant_id``); roles from claim ``roles`` (a list or
one string). Roles are ordered viewer < operator < admin and a higher role includes the lower ones.

JWKS keys are cached for ``cache_seconds``. A token whose ``kid`` is unknown triggers a refetch (the
provider rotated its keys), at most once per ``min_refresh_seconds`` so that tokens with made-up key
ids cannot make the gateway hammer the provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

__all__ = [
    "ROLES",
    "AuthError",
    "JwksKeySet",
    "Principal",
    "TokenVerifier",
    "issue_token",
    "role_rank",
]

logger = logging.getLogger(__name__)

#: Roles from least to most privileged.
ROLES: tuple[str, ...] = ("viewer", "operator", "admin")
_ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384", "PS512", "EdDSA"]


def role_rank(role: str) -> int:
    """Position of ``role`` in :data:`ROLES`; -1 for an unknown role."""
    try:
        return ROLES.index(role)
    except ValueError:
        return -1


class AuthError(Exception):
    """The caller is not authenticated (HTTP 401); ``reason`` says why, ``error`` is the RFC 6750 code."""

    def __init__(self, reason: str, error: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: subject, tenant and roles, as the verified token says."""

    subject: str
    tenant_id: str
    roles: tuple[str, ...]

    @property
    def role(self) -> str:
        """The highest role the caller has."""
        return max(self.roles, key=role_rank)

    def has_role(self, needed: str) -> bool:
        return role_rank(self.role) >= role_rank(needed)


def _principal(claims: dict[str, Any]) -> Principal:
    tenant = claims.get("tenant_id")
    if not isinstance(tenant, str) or not tenant:
        raise AuthError("token has no tenant_id claim")
    raw_roles = claims.get("roles", [])
    roles = (raw_roles,) if isinstance(raw_roles, str) else tuple(r for r in raw_roles if isinstance(r, str))
    known = tuple(r for r in roles if r in ROLES)
    if not known:
        raise AuthError(f"token has no known role in claim roles (one of {', '.join(ROLES)})")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("token has no sub claim")
    return Principal(subject=subject, tenant_id=tenant, roles=known)


class JwksKeySet:
    """Keys of a JWKS URL, cached, refetched on expiry and (rate-limited) on an unknown key id."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 300.0,
        min_refresh_seconds: float = 10.0,
        timeout: float = 3.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _refresh(self) -> None:
        self.fetches += 1
        self._fetched_at = time.monotonic()
        try:
            response = await self._client.get(self.url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("cannot fetch JWKS %s: %s", self.url, exc)
            raise AuthError("signing keys unavailable (JWKS fetch failed)") from exc
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []):
            if entry.get("use", "sig") != "sig" or "kid" not in entry:
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK(entry)
            except jwt.PyJWTError as exc:
                logger.warning("skipping JWKS key %s: %s", entry.get("kid"), exc)
        self._keys = keys
        logger.info("fetched JWKS %s: %d keys", self.url, len(keys))

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key with id ``kid``, refetching the JWKS when it is stale or the id is unknown."""
        now = time.monotonic()
        if now - self._fetched_at > self.cache_seconds:
            async with self._lock:
                if time.monotonic() - self._fetched_at > self.cache_seconds:
                    await self._refresh()
        found = self._keys.get(kid)
        if found is not None:
            return found
        async with self._lock:
            found = self._keys.get(kid)
            if found is None and time.monotonic() - self._fetched_at >= self.min_refresh_seconds:
                await self._refresh()
                found = self._keys.get(kid)
        if found is None:
            raise AuthError(f"unknown signing key id {kid!r}")
        return found


class TokenVerifier:
    """Verifies bearer tokens and returns the :class:`Principal`; raises :class:`AuthError`.

    Successful verifications are cached by token (bounded, until the token's ``exp``), which takes
    the signature check off the hot path of clients that send the same token on every call.
    """

    def __init__(
        self,
        *,
        audience: str,
        issuer: str,
        secret: str | None = None,
        keys: JwksKeySet | None = None,
        leeway: int = 5,
        cache_size: int = 4096,
    ) -> None:
        if (secret is None) == (keys is None):
            raise ValueError("give exactly one of secret (HS256) or keys (JWKS)")
        self.audience = audience
        self.issuer = issuer
        self._secret = secret
        self.keys = keys
        self.leeway = leeway
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires:
                self._cache.move_to_end(token)
                return principal
            del self._cache[token]
        claims = await self._decode(token)
        principal = _principal(claims)
        self._cache[token] = (principal, float(claims["exp"]))
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    async def _decode(self, token: str) -> dict[str, Any]:
        options: Any = {"require": ["exp", "iat", "sub", "aud", "iss"]}
        try:
            if self._secret is not None:
                return jwt.decode(
                    token,
                    self._secret,
                    algorithms=["HS256"],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options=options,
                )
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            if not kid:
                raise AuthError("token header has no kid")
            if header.get("alg") not in _ASYMMETRIC:
                raise AuthError(f"algorithm {header.get('alg')!r} not allowed")
            assert self.keys is not None
            key = await self.keys.key(kid)
            return jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options=options,
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError(f"wrong audience (expected {self.audience})") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(f"wrong issuer (expected {self.issuer})") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthError("bad signature") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks claim {exc.claim}") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthError("token not valid yet") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {exc}") from exc


def issue_token(
    secret: str,
    *,
    tenant_id: str,
    roles: list[str] | tuple[str, ...],
    subject: str = "dev",
    audience: str = "fleetstream",
    issuer: str = "fleetstream-dev",
    ttl_seconds: int = 3600,
    now: float | None = None,
) -> str:
    """An HS256 token for development and tests (``fleet token``)."""
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": subject,
        "tenant_id": tenant_id,
        "roles": list(roles),
        "aud": audience,
        "iss": issuer,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")

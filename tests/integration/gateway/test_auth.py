"""Authentication (401) vs authorization (403), JWKS rotation, and per-tenant rate limits (429)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth import issue_token
from tests.integration.gateway.conftest import SECRET

pytestmark = pytest.mark.timeout(120)
TASK = {"site_id": "s1", "spec": {"category": "delivery"}}


def _www(r: httpx.Response) -> str:
    return r.headers.get("www-authenticate", "")


def test_no_token_is_401_with_challenge(gateway) -> None:
    r = httpx.get(f"{gateway.url}/v1/tasks")
    assert r.status_code == 401
    assert _www(r).startswith('Bearer realm="fleetstream"')
    assert r.json()["error"] == "unauthorized" and "Bearer" in r.json()["message"]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"ttl_seconds": -120}, "token expired"),
        ({"audience": "someone-else"}, "wrong audience"),
        ({"issuer": "evil"}, "wrong issuer"),
    ],
)
def test_invalid_tokens_are_401_with_reason(gateway, new_tenant, kwargs, reason) -> None:
    token = issue_token(SECRET, tenant_id=new_tenant(), roles=["admin"], **kwargs)
    r = httpx.get(f"{gateway.url}/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in _www(r) and reason in _www(r)
    assert reason in r.json()["message"]


def test_bad_signature_and_garbage_are_401(gateway, new_tenant) -> None:
    forged = issue_token("another-secret-that-is-long-enough!!", tenant_id=new_tenant(), roles=["admin"])
    r = httpx.get(f"{gateway.url}/v1/tasks", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and "bad signature" in _www(r)
    r = httpx.get(f"{gateway.url}/v1/tasks", headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401 and "malformed token" in r.json()["message"]
    none_alg = jwt.encode({"sub": "x", "tenant_id": "t", "roles": ["admin"]}, key=None, algorithm="none")
    r = httpx.get(f"{gateway.url}/v1/tasks", headers={"Authorization": f"Bearer {none_alg}"})
    assert r.status_code == 401


def test_token_without_tenant_or_role_is_401(gateway) -> None:
    now = int(time.time())
    base = {"sub": "x", "aud": "fleetstream", "iss": "fleetstream-dev", "iat": now, "exp": now + 60}
    no_tenant = jwt.encode({**base, "roles": ["admin"]}, SECRET, algorithm="HS256")
    no_role = jwt.encode({**base, "tenant_id": "t", "roles": ["superuser"]}, SECRET, algorithm="HS256")
    for token, reason in ((no_tenant, "tenant_id"), (no_role, "no known role")):
        r = httpx.get(f"{gateway.url}/v1/tasks", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and reason in r.json()["message"]


def test_roles_are_403_when_insufficient(gateway, auth, new_tenant) -> None:
    tenant = new_tenant()
    robot = {"robot_id": "r1", "site_id": "s1", "fleet_id": "f", "name": "R"}
    cases = [
        ("viewer", "post", "/v1/tasks", TASK, 403),
        ("operator", "post", "/v1/tasks", TASK, 202),
        ("operator", "post", "/v1/robots", robot, 403),
        ("admin", "post", "/v1/robots", robot, 202),
        ("viewer", "get", "/v1/alerts", None, 200),
    ]
    for role, method, path, body, expected in cases:
        r = httpx.request(method, f"{gateway.url}{path}", json=body, headers=auth(tenant, role))
        assert r.status_code == expected, (role, path, r.text)
        if expected == 403:
            assert r.json()["error"] == "forbidden" and "needs role" in r.json()["message"]
            assert 'error="insufficient_scope"' in _www(r)


# --------------------------------------------------------------------------------------------- JWKS


class _Jwks:
    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.hits = 0

    def add(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def document(self) -> bytes:
        out = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return json.dumps({"keys": out}).encode()

    def token(
        self, kid: str, tenant: str, role: str = "viewer", key: rsa.RSAPrivateKey | None = None, **claims
    ) -> str:
        now = int(time.time())
        body = {
            "sub": "oidc-user",
            "tenant_id": tenant,
            "roles": [role],
            "aud": "fleetstream",
            "iss": "https://idp.test",
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def jwks() -> Iterator[tuple[_Jwks, str]]:
    state = _Jwks()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits += 1
            body = state.document()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()


def test_jwks_rotation_and_refetch_rate_limit(gateway_factory, jwks, new_tenant) -> None:
    state, url = jwks
    state.add("k1")
    gw = gateway_factory(
        auth_mode="jwks", jwks_url=url, issuer="https://idp.test", jwks_min_refresh_seconds=1.0
    )
    tenant = new_tenant()

    def get(token: str) -> httpx.Response:
        return httpx.get(f"{gw.url}/v1/alerts", headers={"Authorization": f"Bearer {token}"})

    assert get(state.token("k1", tenant)).status_code == 200
    assert state.hits == 1
    assert get(state.token("k1", tenant, sub="again")).status_code == 200
    assert state.hits == 1  # cached

    # The IdP rotates: k2 appears, k1 goes. A token signed with k2 triggers one refetch and passes.
    state.keys.pop("k1")
    state.add("k2")
    time.sleep(1.1)
    assert get(state.token("k2", tenant)).status_code == 200
    assert state.hits == 2

    # Unknown key ids do not hammer the IdP: within min_refresh_seconds no refetch happens.
    forged_kid = jwt.encode(
        {
            "sub": "x",
            "tenant_id": tenant,
            "roles": ["admin"],
            "aud": "fleetstream",
            "iss": "https://idp.test",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        state.keys["k2"],
        algorithm="RS256",
        headers={"kid": "made-up"},
    )
    hits = state.hits
    for _ in range(5):
        r = get(forged_kid)
        assert r.status_code == 401 and "unknown signing key id" in r.json()["message"]
    assert state.hits - hits <= 1

    # Bad signature with a known kid, wrong issuer, and HS256 (algorithm confusion) are refused.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert get(state.token("k2", tenant, key=other)).status_code == 401
    assert "wrong issuer" in get(state.token("k2", tenant, iss="https://evil")).json()["message"]
    hs = issue_token(SECRET, tenant_id=tenant, roles=["admin"], issuer="https://idp.test")
    assert get(hs).status_code == 401


# ---------------------------------------------------------------------------------------- rate limit


def test_rate_limit_per_tenant_is_429_with_retry_after(gateway_factory, auth, new_tenant) -> None:
    gw = gateway_factory(rate_limit_requests=5, rate_limit_window_seconds=60)
    busy, calm = new_tenant(), new_tenant()
    codes = [httpx.get(f"{gw.url}/v1/alerts", headers=auth(busy, "viewer")).status_code for _ in range(8)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3
    r = httpx.get(f"{gw.url}/v1/alerts", headers=auth(busy, "viewer"))
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 120
    # Another tenant is not affected.
    assert httpx.get(f"{gw.url}/v1/alerts", headers=auth(calm, "viewer")).status_code == 200

"""``fleet token``: mint an HS256 development token with the gateway's settings (secret, audience, issuer)."""

from __future__ import annotations

import argparse
import sys

from gateway.auth import ROLES, issue_token
from gateway.settings import GatewaySettings
from pipelines.settings import ConfigError, load_settings

__all__ = ["add_token_parser", "mint_token"]


def mint_token(
    settings: GatewaySettings, *, tenant: str, roles: list[str], subject: str = "dev", ttl_seconds: int = 3600
) -> str:
    """A token the gateway configured by ``settings`` accepts (auth_mode hs256 only)."""
    if settings.auth_mode != "hs256":
        raise ConfigError("fleet token mints HS256 tokens; the gateway is configured for jwks (use your IdP)")
    return issue_token(
        settings.jwt_secret.get_secret_value(),
        tenant_id=tenant,
        roles=roles,
        subject=subject,
        audience=settings.audience,
        issuer=settings.issuer,
        ttl_seconds=ttl_seconds,
    )


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(GatewaySettings)
    token = mint_token(
        settings, tenant=args.tenant, roles=args.role, subject=args.subject, ttl_seconds=args.ttl
    )
    sys.stdout.write(token + "\n")
    return 0


def add_token_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "token",
        help="mint a development token for the gateway (HS256)",
        description="Prints a JWT signed with FLEET_JWT_SECRET for FLEET_AUDIENCE / FLEET_ISSUER, e.g.\n"
        '  curl -H "Authorization: Bearer $(fleet token --tenant acme --role operator)" :8080/v1/tasks\n'
        "or open the dashboard at http://127.0.0.1:8080/ and paste it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tenant", required=True, help="tenant_id claim")
    p.add_argument("--role", action="append", choices=ROLES, required=True, help="role (repeat for several)")
    p.add_argument("--subject", default="dev", help="sub claim (default: dev)")
    p.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default: 3600)")
    p.set_defaults(func=_run)

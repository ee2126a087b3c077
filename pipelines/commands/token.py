"""``fleet token --tenant acme --role operator``: a development token for the gateway."""

from __future__ import annotations

import argparse

from gateway.cli import add_token_parser

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    add_token_parser(sub)

"""Subcommands of ``fleet``: one module each, with ``add_parser(subparsers)``."""

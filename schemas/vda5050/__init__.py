"""Vendored VDA 5050 JSON schemas 2.1.0 and 3.0.0 (data only, MIT; see README.md)."""

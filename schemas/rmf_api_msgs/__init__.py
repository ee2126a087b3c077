"""Vendored Open-RMF rmf_api_msgs JSON schemas (data only, Apache-2.0; see README.md)."""

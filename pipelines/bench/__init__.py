"""Benchmarks run by ``fleet bench`` (``make bench``): one module each with ``run() -> list[dict]``.

Each row: ``{"name", "value", "unit", "baseline", "ratio", "goal"}`` where ``baseline`` is a raw figure
measured in the same run on the same data (e.g. schemaless fastavro, a raw COPY), ``ratio`` is
value/baseline and ``goal`` states the target. Benchmarks measure; they never assert.
"""

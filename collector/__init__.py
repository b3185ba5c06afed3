"""Fluoro's collector engine: receivers, normalization, ingest pipeline, storage and queries.

It receives OTLP/HTTP and the X-Ray daemon protocol, stores spans in DuckDB and answers the
query API; ``fluoro serve`` (in ``ui``) runs it. See docs/ARCHITECTURE.md.
"""

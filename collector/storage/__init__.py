"""Storage behind small Protocols; only duckdb_store imports duckdb."""

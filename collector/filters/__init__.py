"""X-Ray's filter expression language: the parsed expression's values and the parser.

Shared by the API (which parses what users type) and storage (which compiles an expression to
its query language: collector/storage/filter_sql.py for DuckDB's SQL).
"""

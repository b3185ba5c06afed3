"""The service map's hops: which calls a span makes on the map, by one set of rules.

roles.py says what a hop is; linker.py is the one pure function that turns spans into calls
(run_spans.py, keys.py and call_rows.py are its parts). Storage reads what the linker asks for
and keeps what it answers (collector/storage/duckdb_calls.py); the map is drawn from the calls
(collector/query/service_map.py).
"""

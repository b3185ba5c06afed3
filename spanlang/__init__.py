"""The language of spans, shared by the collector and the tracer's pytest plugin.

- ``derive``: what a span means (error, fault, throttle, its target, origin and service), the
  one rule set every receiver asks, the collector's C decoder included;
- ``filter_ast`` and ``filter_parser``: AWS X-Ray's filter expression language, parsed once
  (the collector compiles it to SQL: collector/storage/filter_sql.py);
- ``memory_filter`` and ``hops``: the same language evaluated over spans held in memory, as
  the pytest plugin captures them (tested to agree with the SQL back end).

It imports the tracer's attribute names and nothing else of Fluoro's.
"""

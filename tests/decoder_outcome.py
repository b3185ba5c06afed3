"""What a decoder makes of a body, in a form two decoders can be compared by: the rows with their
JSON columns parsed (so JSON that cannot be read back fails here), annotations, links and the
rejections, or "refused"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from collector.model import SpanBatch
from collector.normalize.otlp_proto import UndecodableBody

JSON_COLUMNS = ("attributes", "events", "resource")


def outcome(decode: Callable[[bytes], SpanBatch], body: bytes) -> Any:
    try:
        batch = decode(body)
    except UndecodableBody:
        return "refused"
    rows = batch.spans.to_pylist()
    for row in rows:
        for column in JSON_COLUMNS:
            if row[column] is not None:
                row[column] = orjson.loads(row[column])
    return rows, batch.annotations.to_pylist(), batch.links.to_pylist(), batch.rejected, batch.rejection_reason

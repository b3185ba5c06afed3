# The C decoder's interface (collector/normalize/_otlpfast.c), for the type checker.
from collections.abc import Callable, Iterable
from typing import Any

def configure(
    fact_keys: Iterable[str],
    text_read_keys: Iterable[str],
    annotation_prefix: str,
    annotation_list_key: str,
    span_meaning: Callable[..., Any],
    resource_meaning: Callable[..., Any],
) -> None: ...

# (spans, annotations, links) as Arrow C-data capsules, spans rejected, their reasons, bytes held;
# None when the request needs the Python path.
def decode(body: bytes) -> tuple[object, object, object, int, list[str], int] | None: ...

"""Differential fuzzing: on every request either decoder accepts, both give identical rows.

Hypothesis writes hostile requests at the wire level (tests/fuzz/strategies.py); the saved
corpus (tests/fuzz/corpus/, grown by `make fuzz`) is replayed too. The rows' JSON columns are
parsed, so the C path can never store JSON that cannot be read back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from collector.normalize import otlp_proto
from collector.normalize.otlp_proto import decode_protobuf, decode_protobuf_python
from tests.decoder_outcome import outcome
from tests.fuzz.strategies import requests

CORPUS = Path(__file__).parent / "corpus"
pytestmark = pytest.mark.skipif(not otlp_proto.FAST_DECODER_AVAILABLE, reason="the C decoder is not built here")


def assert_agree(body: bytes) -> None:
    assert outcome(decode_protobuf, body) == outcome(decode_protobuf_python, body)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(requests())
def test_decoders_agree_on_generated_requests(body: bytes) -> None:
    assert_agree(body)


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*")) if CORPUS.exists() else [], ids=lambda p: p.name)
def test_decoders_agree_on_the_corpus(path: Path) -> None:
    assert_agree(path.read_bytes())

#!/usr/bin/env python3
"""atheris target: the sanitized C decoder against the Python reference path, input by input.

Run by tests/fuzz/run.py (never imported by pytest), in a process that LD_PRELOADs
build/fuzz/asan_with_fuzzer.so and names the sanitized decoder in FLUORO_FUZZ_DECODER. Each
input either is refused by both paths or decodes to the same rows (JSON columns parsed), or
the fuzzer stops and writes it out; ASan and UBSan stop it on any memory or undefined-behaviour
error in the C walk, and libFuzzer's coverage of that walk guides the mutations.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def load_sanitized_decoder() -> None:
    """Import the sanitized build as collector.normalize._otlpfast, before otlp_proto does."""
    name = "collector.normalize._otlpfast"
    path = os.environ["FLUORO_FUZZ_DECODER"]
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[name] = module


load_sanitized_decoder()

with atheris.instrument_imports(include=["collector.normalize"]):
    from collector.normalize import otlp_proto
    from collector.normalize.otlp_proto import decode_protobuf, decode_protobuf_python
    from tests.decoder_outcome import outcome

assert otlp_proto.FAST_DECODER_AVAILABLE and "build/fuzz" in otlp_proto._otlpfast.__file__


def test_one_input(data: bytes) -> None:
    fast, reference = outcome(decode_protobuf, data), outcome(decode_protobuf_python, data)
    if fast != reference:
        raise AssertionError(f"the decoders disagree:\nC:      {str(fast)[:2000]}\nPython: {str(reference)[:2000]}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

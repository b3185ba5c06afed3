"""The fuzzers' short pass in `make test`, and the C decoder's presence where it can be built.

`make fuzz` runs the same coverage-guided differential fuzzer for as long as FUZZ_SECONDS says
and keeps what it finds in tests/fuzz/corpus/; here it runs briefly over that corpus, adding
nothing, so a regression of the decoders' agreement or a sanitizer finding fails the suite.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from collector.normalize import otlp_proto

HERE = Path(__file__).resolve().parent
SHORT_PASS_S = 8  # the corpus replays in ~1 s; the rest explores from it


def test_the_c_decoder_is_built_wherever_a_compiler_is() -> None:
    # A missing build would quietly run every request through the Python path (6x the CPU),
    # and skip the tests that hold the two paths to the same rows: that must fail, not skip.
    if shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"):
        assert otlp_proto.FAST_DECODER_AVAILABLE, "collector/normalize/_otlpfast.c did not build: see `make install`"


def test_the_corpus_is_there() -> None:
    assert len(list((HERE / "corpus").iterdir())) >= 30


@pytest.mark.skipif(
    shutil.which("clang") is None, reason="clang is needed (make installs it as root: apt-get install clang)"
)
def test_a_short_pass_of_the_sanitized_differential_fuzzer_finds_nothing() -> None:
    run = subprocess.run(
        [sys.executable, str(HERE / "run.py"), "--seconds", str(SHORT_PASS_S), "--scratch"],
        capture_output=True,
        text=True,
        timeout=SHORT_PASS_S + 240,
    )
    report = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, report
    assert "stat::number_of_executed_units" in report

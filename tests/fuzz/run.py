"""Runs the coverage-guided differential fuzzer of the OTLP decoders for a given time.

    python tests/fuzz/run.py --seconds 300            # what `make fuzz` runs (FUZZ_SECONDS)
    python tests/fuzz/run.py --seconds 20 --scratch   # make test's short pass: the corpus is read only

Builds the sanitized decoder (tests/fuzz/sanitized_build.py), then runs atheris over the
corpus in tests/fuzz/corpus/; afterwards the fewest new inputs that reach new code are merged
into it (unless --scratch). Exits non-zero, with the input saved under build/fuzz/, when the decoders disagree
or a sanitizer reports an error.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.fuzz.sanitized_build import BUILD, preload_library, sanitized_decoder  # noqa: E402

CORPUS = HERE / "corpus"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60, help="how long to fuzz")
    parser.add_argument("--scratch", action="store_true", help="add nothing to tests/fuzz/corpus")
    args = parser.parse_args()
    preload, decoder = preload_library(), sanitized_decoder()
    env = {
        **os.environ,
        "LD_PRELOAD": str(preload),
        "FLUORO_FUZZ_DECODER": str(decoder),
        # Python itself leaks at start and exit; UBSan findings stop the run like ASan's.
        "ASAN_OPTIONS": "detect_leaks=0:allocator_may_return_null=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
        # libFuzzer's merge runs the target again by its path: its #! finds this interpreter first.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    target = [sys.executable, str(HERE / "differential_target.py")]
    limits = ["-max_len=65536", "-rss_limit_mb=4096", "-timeout=20", f"-artifact_prefix={BUILD}/"]
    with tempfile.TemporaryDirectory() as found:
        fuzz = [*target, found, str(CORPUS), f"-max_total_time={args.seconds}", *limits, "-print_final_stats=1"]
        code = subprocess.run(fuzz, env=env).returncode
        if code == 0 and not args.scratch:
            # Keep only what reaches new code: libFuzzer's merge adds the fewest inputs that do.
            subprocess.run([*target, "-merge=1", str(CORPUS), found, *limits], env=env, check=True)
        return code


if __name__ == "__main__":
    raise SystemExit(main())

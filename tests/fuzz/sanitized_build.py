"""Builds what the coverage-guided fuzzer needs, with clang, into build/fuzz/ (cached by content):

- the C decoder (collector/normalize/_otlpfast.c) with AddressSanitizer, UndefinedBehavior-
  Sanitizer (every finding fatal) and libFuzzer's coverage instrumentation;
- ``asan_with_fuzzer.so``: clang's ASan runtime with libFuzzer linked in, to LD_PRELOAD. atheris
  makes this file when it is built from source; its wheel does not carry it, and without it the
  decoder's coverage would go to ASan's weak symbols instead of libFuzzer (atheris's
  native_extension_fuzzing.md says why). Made the way atheris makes it: the runtime's objects
  but its .preinit_array one, which a shared object may not hold.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "collector" / "normalize" / "_otlpfast.c"
BUILD = ROOT / "build" / "fuzz"
FLAGS = [
    "-O1",
    "-g",
    "-std=c11",
    "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined,fuzzer-no-link",
    "-fno-sanitize-recover=all",
]


class NoClang(RuntimeError):
    """clang is not installed: `make fuzz` installs it as root (apt-get install clang)."""


def clang() -> str:
    found = shutil.which("clang")
    if found is None:
        raise NoClang("clang is needed to build the fuzzer: apt-get install clang")
    return found


def runtime_dir() -> Path:
    resource = subprocess.run([clang(), "-print-resource-dir"], check=True, capture_output=True, text=True).stdout
    return Path(resource.strip()) / "lib" / "linux"


def preload_library() -> Path:
    """asan_with_fuzzer.so, made once."""
    target = BUILD / "asan_with_fuzzer.so"
    if target.exists():
        return target
    BUILD.mkdir(parents=True, exist_ok=True)
    runtime = runtime_dir()
    with tempfile.TemporaryDirectory() as scratch:
        objects = Path(scratch)
        for archive in ("libclang_rt.asan-x86_64.a", "libclang_rt.asan_cxx-x86_64.a"):
            subprocess.run(["ar", "x", str(runtime / archive)], cwd=objects, check=True)
        (objects / "asan_preinit.cpp.o").unlink(missing_ok=True)
        subprocess.run(
            [
                clang(),
                "-shared",
                "-o",
                str(target),
                "-Wl,--whole-archive",
                *map(str, sorted(objects.glob("*.o"))),
                str(runtime / "libclang_rt.fuzzer_no_main-x86_64.a"),
                "-Wl,--no-whole-archive",
                "-lpthread",
                "-ldl",
                "-lrt",
                "-lm",
                "-lstdc++",
            ],
            check=True,
        )
    return target


def sanitized_decoder() -> Path:
    """The decoder's extension module built for fuzzing; rebuilt when its source changes."""
    sources = [SOURCE, *sorted((SOURCE.parent / "otlpfast").glob("*.h"))]  # the parts it includes
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources) + " ".join(FLAGS).encode()).hexdigest()[:16]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    target = BUILD / digest / f"_otlpfast{suffix}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        include = sysconfig.get_paths()["include"]
        subprocess.run(
            [clang(), *FLAGS, "-shared", "-fPIC", f"-I{include}", str(SOURCE), "-o", str(target)], check=True
        )
    return target


if __name__ == "__main__":
    print(preload_library())
    print(sanitized_decoder())
    sys.exit(0)

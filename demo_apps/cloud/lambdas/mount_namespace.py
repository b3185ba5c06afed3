"""Each execution environment's own /tmp, the size of its function's EphemeralStorage, and its
own /opt (its layers), as on AWS.

The emulator makes a sparse file holding an empty ext4 filesystem of that size (``make_image``:
``mkfs.ext4``, no journal, ~10 ms); the worker, before it imports the handler, leaves the host's
mount namespace (``unshare(CLONE_NEWNS)`` through libc: Python 3.11 has no ``os.unshare``), mounts
the image on ``/tmp`` through a loop device, and binds back the folders of the host's /tmp its
configuration names (its code in a checkout under /tmp, a folder an environment variable gives,
as pytest's tmp_path handed to a function to write to), reached through a descriptor of the
host's /tmp kept open across the mount (``enter``). Code writing to a literal ``/tmp`` then sees
only its own environment's files, and a write past the size fails inside the handler with
ENOSPC, "No space left on device". The function's layers, merged (``layers.py``), are bound on
``/opt`` in the same namespace. The namespace, and with it the mount and the loop device
(auto-cleared), goes when the environment's process does.

Why a disk image and not a tmpfs: tmpfs pages are charged to the writer's memory cgroup, so a
128 MB function writing 200 MB to /tmp would be killed for memory; AWS's /tmp is a disk, apart
from the function's memory.

Where the machine refuses (not root, no loop devices, no mount namespaces), ``probe`` says why,
and the caller falls back to a TMPDIR measured after each invocation, with one warning line.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

CLONE_NEWNS: Final = 0x00020000
MS_RDONLY: Final = 0x1
MS_BIND: Final = 0x1000
MS_REC: Final = 0x4000
MS_PRIVATE: Final = 0x40000
# ext4's own structures take ~4% of a small filesystem: the image is that much larger, so the
# function can write its whole EphemeralStorage and no more.
METADATA_SHARE: Final = 0.04
_MIB: Final = 1024 * 1024


def image_bytes(size_mb: int) -> int:
    return math.ceil(size_mb * (1 + METADATA_SHARE)) * _MIB


def make_image(path: Path, size_mb: int) -> None:
    """A sparse file with an empty ext4 filesystem holding `size_mb` MB of files."""
    with path.open("wb") as image:
        image.truncate(image_bytes(size_mb))
    command = ["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard"]
    subprocess.run([*command, str(path)], check=True, capture_output=True, timeout=30)


def _libc_call(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def _host_tops(paths: Iterable[Path], host_tmp: Path) -> set[str]:
    """The first folder under the host's /tmp of each path that lies there."""
    tops = set()
    for path in paths:
        resolved = path.resolve()
        if resolved.is_relative_to(host_tmp) and resolved != host_tmp:
            tops.add(resolved.relative_to(host_tmp).parts[0])
    return tops


def enter(image: Path, keep: Iterable[Path], opt: Path | None = None, tmp: Path = Path("/tmp")) -> None:
    """Make `image` this process's /tmp, in a mount namespace of its own, and `opt` (its layers,
    merged) its /opt; `keep`'s folders under the host's /tmp stay reachable at their paths.
    Raises OSError or CalledProcessError."""
    libc = ctypes.CDLL(None, use_errno=True)
    tops = _host_tops(keep, tmp.resolve())
    _libc_call(libc.unshare(CLONE_NEWNS), "unshare")
    _libc_call(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "making / private")
    if opt is not None:  # before /tmp is covered: the merged layers may live there
        _libc_call(libc.mount(str(opt).encode(), b"/opt", None, MS_BIND | MS_REC, None), "binding /opt")
    else:  # no layers: an empty /opt, as AWS's, not the host's
        _libc_call(libc.mount(b"none", b"/opt", b"tmpfs", MS_RDONLY, b"size=64k,mode=755"), "emptying /opt")
    host_tmp = os.open(tmp, os.O_PATH | os.O_DIRECTORY)
    try:
        subprocess.run(
            ["mount", "-o", "loop,noinit_itable", str(image), str(tmp)], check=True, capture_output=True, timeout=30
        )
        os.chmod(tmp, 0o1777)
        (tmp / "lost+found").rmdir()  # mkfs's, absent from AWS's empty /tmp
        for top in sorted(tops):
            (tmp / top).mkdir()
            source = f"/proc/self/fd/{host_tmp}/{top}".encode()
            _libc_call(libc.mount(source, str(tmp / top).encode(), None, MS_BIND | MS_REC, None), f"binding {top}")
    finally:
        os.close(host_tmp)


def probe() -> str | None:
    """None where an environment can have its own /tmp here, else why not (one line)."""
    with tempfile.TemporaryDirectory(prefix="fluoro-tmp-probe-") as folder:
        image = Path(folder) / "tmp.ext4"
        try:
            make_image(image, 1)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"mkfs.ext4 failed ({exc})"
        checked = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from {__name__} import enter; from pathlib import Path; enter(Path({str(image)!r}), ())",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    if checked.returncode != 0:
        return (checked.stderr.strip().splitlines() or ["the probe failed"])[-1]
    return None


def _probe_in_this_process(image: Path) -> None:
    """The probe's child: take `image` (1 MB) as /tmp and fail to write 2 MB into it."""
    enter(image, ())
    try:
        Path("/tmp/probe").write_bytes(bytes(2 * _MIB))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            return
        raise
    raise SystemExit("a write past the image's size did not fail")


if __name__ == "__main__":
    _probe_in_this_process(Path(sys.argv[1]))

"""An execution environment's CPU share and memory size held by the kernel, in a cgroup of its own.

Each environment's process is moved into a group made for it under a group of this emulator's
(``fluoro-lambda-<pid>``, beside this process's own group), and the kernel does the rest:
CFS bandwidth control lets it use ``share x period`` of CPU time per period (only CPU it
uses: a handler waiting on a socket is not slowed, as on AWS), and the memory controller
kills it past its size (no swap), which the group's OOM counter tells apart from other deaths.

Two layouts, the same rules: cgroup v2 (``cpu.max``, ``memory.max``, ``memory.swap.max``,
``memory.events``, ``memory.peak``) and the legacy v1 hierarchies some machines still mount
(``cpu.cfs_quota_us``, ``memory.limit_in_bytes`` and ``memsw``, ``memory.oom_control``,
``memory.max_usage_in_bytes``). ``open_cgroups`` probes both by making a group and writing
a limit; a machine that refuses raises OSError and the caller falls back (``sandbox.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import Final

PERIOD_US: Final = 100_000  # CFS's default period: a 128 MB function gets 7.2 ms of each 100 ms
MIN_QUOTA_US: Final = 1_000  # the kernel refuses a quota under 1 ms
_OOM_KILL = re.compile(rb"^oom_kill (\d+)$", re.MULTILINE)


def own_group(controller: str, proc_cgroup: str) -> str:
    """This process's group in `controller`'s hierarchy ("" is v2's), from /proc/self/cgroup."""
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise OSError(f"no cgroup line for {controller or 'the unified hierarchy'}")


def mount_point(controller: str, mounts: str) -> Path:
    """Where `controller`'s v1 hierarchy ("" for the v2 one) is mounted, from /proc/self/mounts."""
    for line in mounts.splitlines():
        _, point, fs_type, options, *_ = line.split()
        if (not controller and fs_type == "cgroup2") or (fs_type == "cgroup" and controller in options.split(",")):
            return Path(point)
    raise OSError(f"no {controller or 'cgroup2'} hierarchy is mounted")


def resident_peak_bytes(pid: int) -> int:
    """VmHWM of /proc/<pid>/status: the most resident memory the process has had; 0 if gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else 0


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _remove(directory: Path) -> None:
    """rmdir a group; a just-killed process may take a moment to leave it."""
    for _ in range(50):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def _sweep_stale(parent: Path) -> None:
    """Groups of emulators that died without removing theirs (a kill -9), emptied and removed."""
    with contextlib.suppress(OSError):
        for stale in parent.glob("fluoro-lambda-*"):
            pid = stale.name.rsplit("-", 1)[-1]
            if pid.isascii() and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                for group in stale.iterdir():
                    if group.is_dir():
                        _remove(group)
                _remove(stale)


class CgroupLimits:
    """One environment's group (v1: one in each of the cpu and memory hierarchies)."""

    def __init__(self, cpu_dir: Path, memory_dir: Path, unified: bool, memory_bytes: int, pid: int) -> None:
        self._cpu_dir, self._memory_dir, self._unified = cpu_dir, memory_dir, unified
        for directory in {cpu_dir, memory_dir}:
            directory.mkdir()
        if unified:
            _write(memory_dir / "memory.max", str(memory_bytes))
            with contextlib.suppress(FileNotFoundError):  # a kernel without swap accounting has no file
                _write(memory_dir / "memory.swap.max", "0")
        else:
            _write(memory_dir / "memory.limit_in_bytes", str(memory_bytes))
            with contextlib.suppress(FileNotFoundError):  # memsw exists only with swap accounting
                _write(memory_dir / "memory.memsw.limit_in_bytes", str(memory_bytes))
            with contextlib.suppress(OSError):  # what the interpreter's start took, charged here too
                _write(memory_dir / "memory.move_charge_at_immigrate", "3")
        self._pid = pid
        for directory in {cpu_dir, memory_dir}:
            _write(directory / "cgroup.procs", str(pid))

    def share_cpu(self, share: float) -> None:
        quota_us = max(MIN_QUOTA_US, round(share * PERIOD_US))
        if self._unified:
            _write(self._cpu_dir / "cpu.max", f"{quota_us} {PERIOD_US}")
        else:
            _write(self._cpu_dir / "cpu.cfs_period_us", str(PERIOD_US))
            _write(self._cpu_dir / "cpu.cfs_quota_us", str(quota_us))

    def begin(self) -> None:
        """Nothing to do: the kernel holds the limits all the time."""

    def end(self) -> None:
        """Nothing to do: the kernel holds the limits all the time."""

    def out_of_memory(self) -> bool:
        name = "memory.events" if self._unified else "memory.oom_control"
        try:
            found = _OOM_KILL.search((self._memory_dir / name).read_bytes())
        except OSError:
            return False
        return found is not None and int(found.group(1)) > 0

    def peak_memory_bytes(self) -> int:
        """The group's peak, or the process's own (its resident high-water mark) if higher: a
        v2 group is charged only from the move on, the interpreter's start stays with ours."""
        name = "memory.peak" if self._unified else "memory.max_usage_in_bytes"
        try:
            group_bytes = int((self._memory_dir / name).read_text())
        except (OSError, ValueError):
            group_bytes = 0
        return max(group_bytes, resident_peak_bytes(self._pid))

    def close(self) -> None:
        for directory in {self._cpu_dir, self._memory_dir}:
            _remove(directory)


class CgroupSandbox:
    """Makes each environment's group under this emulator's, in v2 or v1 layout."""

    def __init__(self, unified: bool, proc: Path = Path("/proc/self")) -> None:
        """`proc`: where this process's ``cgroup`` and ``mounts`` files are read (tests give a tree)."""
        self.unified = unified
        self.kind = "cgroup v2" if unified else "cgroup v1"
        proc_cgroup, mounts = (proc / "cgroup").read_text(), (proc / "mounts").read_text()
        name = f"fluoro-lambda-{os.getpid()}"
        if unified:
            parent = mount_point("", mounts) / own_group("", proc_cgroup).lstrip("/")
            if not {"cpu", "memory"} <= set((parent / "cgroup.controllers").read_text().split()):
                raise OSError(f"{parent} cannot hand its children the cpu and memory controllers")
            self._cpu_root = self._memory_root = parent / name
            self._cpu_root.mkdir(exist_ok=True)
            _write(self._cpu_root / "cgroup.subtree_control", "+cpu +memory")
        else:
            cpu_parent = mount_point("cpu", mounts) / own_group("cpu", proc_cgroup).lstrip("/")
            memory_parent = mount_point("memory", mounts) / own_group("memory", proc_cgroup).lstrip("/")
            _sweep_stale(cpu_parent)
            _sweep_stale(memory_parent)
            self._cpu_root, self._memory_root = cpu_parent / name, memory_parent / name
            self._cpu_root.mkdir(exist_ok=True)
            self._memory_root.mkdir(exist_ok=True)
        self._probe()

    @property
    def roots(self) -> set[Path]:
        """This emulator's group in each hierarchy (one in v2), its environments' groups beneath."""
        return {self._cpu_root, self._memory_root}

    def _probe(self) -> None:
        """Make a group and write both limits (no process in it): OSError where refused."""
        probe = self.enclose(None, "probe", 64 * 1024 * 1024)
        try:
            probe.share_cpu(0.5)
        finally:
            probe.close()

    def enclose(self, pid: int | None, name: str, memory_bytes: int) -> CgroupLimits:
        """A group for one environment's process (None: an empty group, for the probe)."""
        cpu_dir, memory_dir = self._cpu_root / name, self._memory_root / name
        if pid is None:
            return _EmptyGroup(cpu_dir, memory_dir, self.unified, memory_bytes)
        return CgroupLimits(cpu_dir, memory_dir, self.unified, memory_bytes, pid)

    def close(self) -> None:
        for root in {self._cpu_root, self._memory_root}:
            _remove(root)


class _EmptyGroup(CgroupLimits):
    """A group with no process: the probe's."""

    def __init__(self, cpu_dir: Path, memory_dir: Path, unified: bool, memory_bytes: int) -> None:
        self._cpu_dir, self._memory_dir, self._unified, self._pid = cpu_dir, memory_dir, unified, 0
        for directory in {cpu_dir, memory_dir}:
            directory.mkdir(exist_ok=True)
        limit = "memory.max" if unified else "memory.limit_in_bytes"
        _write(memory_dir / limit, str(memory_bytes))


def open_cgroups() -> CgroupSandbox:
    """cgroup v2 where its cpu and memory controllers can be delegated, else v1; OSError if neither."""
    errors: list[str] = []
    for unified in (True, False):
        try:
            return CgroupSandbox(unified)
        except (OSError, ValueError) as exc:
            errors.append(f"{'v2' if unified else 'v1'}: {exc}")
    raise OSError("; ".join(errors))

"""The cgroup files each layout writes and reads, on a tree shaped as the kernel's: v2's here (this
machine mounts v1, whose files the integration tests drive for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo_apps.cloud.lambdas.cgroups import CgroupSandbox, mount_point, own_group


def kernel_tree(tmp_path: Path, controllers: str = "cpu memory io") -> Path:
    """A cgroup2 mount at tmp/cg, this process in /app; a proc folder naming both."""
    mount = tmp_path / "cg"
    (mount / "app").mkdir(parents=True)
    (mount / "app" / "cgroup.controllers").write_text(controllers + "\n")
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text("0::/app\n")
    (proc / "mounts").write_text(f"cgroup2 {mount} cgroup2 rw,nosuid,nodev 0 0\nproc /proc proc rw 0 0\n")
    return proc


def test_v2_writes_cpu_max_memory_max_and_reads_oom_kills_and_the_peak(tmp_path: Path) -> None:
    proc = kernel_tree(tmp_path)
    sandbox = CgroupSandbox(unified=True, proc=proc)
    (root,) = sandbox.roots
    assert root.parent == tmp_path / "cg" / "app" and (root / "cgroup.subtree_control").read_text() == "+cpu +memory"
    limits = sandbox.enclose(4242, "env-1", 128 * 1024 * 1024)
    group = root / "env-1"
    assert (group / "memory.max").read_text() == str(128 * 1024 * 1024)
    assert (group / "memory.swap.max").read_text() == "0" and (group / "cgroup.procs").read_text() == "4242"
    limits.share_cpu(128 / 1769)
    assert (group / "cpu.max").read_text() == "7236 100000"
    assert not limits.out_of_memory()
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (group / "memory.peak").write_text(str(90 * 1024 * 1024))
    assert limits.out_of_memory() and limits.peak_memory_bytes() == 90 * 1024 * 1024


def test_v2_refuses_a_group_that_cannot_hand_down_cpu_and_memory(tmp_path: Path) -> None:
    proc = kernel_tree(tmp_path, controllers="io pids")
    with pytest.raises(OSError, match="cannot hand its children the cpu and memory controllers"):
        CgroupSandbox(unified=True, proc=proc)


def test_where_the_hierarchies_are_and_which_group_this_process_is_in() -> None:
    mounts = "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
    assert mount_point("memory", mounts) == Path("/sys/fs/cgroup/memory")
    with pytest.raises(OSError, match="no cgroup2 hierarchy"):
        mount_point("", mounts)
    assert own_group("memory", "4:memory:/process_api/x\n1:cpu:/\n0::/\n") == "/process_api/x"
    assert own_group("", "0::/user.slice\n") == "/user.slice"

"""A throwaway PostgreSQL cluster on a loopback port, for lake mode's catalog.

Debian's server binaries (``make postgres`` installs them) run from a temporary directory.
``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
Each test takes a database of its own (`new_database`), so tests never see each other's lakes.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import psycopg

from demo_apps.local_collector import free_port

SUPERUSER = "fluoro"


def server_binaries() -> Path:
    """The newest installed server's bin directory; AssertionError naming the fix when absent."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    assert found, "lake-mode tests need PostgreSQL's server: make postgres (apt-get install postgresql)"
    return Path(found[-1]).parent


PORT_TRIES = 3


class PostgresCluster:
    """initdb + pg_ctl start on 127.0.0.1:`port`; trust authentication, loopback only."""

    def __init__(self, password: str | None = None) -> None:
        self.password = password  # None: trust; else the superuser's, checked (scram-sha-256)
        self.bin = server_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="fluoro-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._names = itertools.count(1)
        self._as_user: Sequence[str] = ()
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            self._owner = (owner.pw_uid, owner.pw_gid)
            os.chown(self.root, *self._owner)
            self._as_user = ("runuser", "-u", "postgres", "--")

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as_user, *argv], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresCluster:
        auth = ["-A", "trust"]
        if self.password is not None:
            password_file = self.root / "password"
            password_file.write_text(self.password)
            if self._owner:
                os.chown(password_file, *self._owner)
            auth = ["-A", "scram-sha-256", f"--pwfile={password_file}"]
        self._run(str(self.bin / "initdb"), "-D", str(self.data), *auth, "-U", SUPERUSER, "--no-sync")
        log = self.root / "log"
        for attempt in range(PORT_TRIES):
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(log), "-w", "start")
                return self
            except subprocess.CalledProcessError:
                # A port found free can be bound by another test worker first: try another.
                if attempt + 1 == PORT_TRIES or "Address already in use" not in log.read_text(errors="replace"):
                    raise
                self.port = free_port()
        return self

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        secret = password if password is not None else self.password
        credentials = SUPERUSER if secret is None else f"{SUPERUSER}:{secret}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh database's URL."""
        name = f"lake_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")  # a name made here, never input
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

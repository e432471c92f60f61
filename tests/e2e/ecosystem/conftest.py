"""Fixtures of the ecosystem tests: the plugins' venv, and a private PostgreSQL server."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ecosystem_helpers import PYTHON, SKIP_POSTGRES_VARIABLE, SKIP_VARIABLE


@pytest.fixture(scope="session", autouse=True)
def _ecosystem_venv() -> None:
    """Every ecosystem test needs `.venv-ecosystem` (made by `make test`): fail without it.

    Session-scoped, so that it comes before the module fixtures that run the plain runs."""
    if os.environ.get(SKIP_VARIABLE):
        pytest.skip(f"{SKIP_VARIABLE} is set: ecosystem tests skipped")
    if not PYTHON.exists():
        pytest.fail(
            f"{PYTHON} is missing: run `make ecosystem-venv` (or set {SKIP_VARIABLE}=1 to skip "
            "the ecosystem tests)",
            pytrace=False,
        )


@dataclass
class Postgres:
    host: str
    port: int
    socket_dir: Path
    user: str


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version_key)
    return Path(found[-1]).parent if found else None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parents[1].name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _postgres_processes(data_dir: Path) -> list[int]:
    """Live processes whose command line names ``data_dir`` (the postmaster and children)."""
    found = []
    needle = str(data_dir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if needle in cmdline and "\nState:\tZ" not in status:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A private PostgreSQL cluster: initdb into a temporary directory, a free port on
    127.0.0.1 and its unix socket in that directory; stopped (and checked gone) afterwards.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user
    (Debian's package creates it) and its commands run with runuser.
    """
    if os.environ.get(SKIP_POSTGRES_VARIABLE):
        pytest.skip(f"{SKIP_POSTGRES_VARIABLE} is set: PostgreSQL tests skipped")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.fail(
            "PostgreSQL is missing (no /usr/lib/postgresql/*/bin/pg_ctl): run "
            f"`sh tests/e2e/ecosystem/install_postgres.sh` (or set {SKIP_POSTGRES_VARIABLE}=1)",
            pytrace=False,
        )
    as_root = os.getuid() == 0
    user = "postgres" if as_root else pwd.getpwuid(os.getuid()).pw_name
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    # Under /tmp itself, not pytest's basetemp: that one is private to root (mode 0700).
    base = Path(tempfile.mkdtemp(prefix="ecosystem-pg-"))
    data_dir = base / "data"
    if as_root:
        entry = pwd.getpwnam("postgres")
        os.chown(base, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    log = base / "server.log"

    def pg(*command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=base,
            check=False,
        )

    started = False
    try:
        initdb = pg(
            str(bindir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        if initdb.returncode:
            pytest.fail(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}", pytrace=False)
        options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        start = pg(
            str(bindir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if start.returncode:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(
                f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{server_log}",
                pytrace=False,
            )
        started = True
        yield Postgres(host="127.0.0.1", port=port, socket_dir=base, user=user)
    finally:
        try:
            if started:
                stop = pg(str(bindir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop")
                assert stop.returncode == 0, f"pg_ctl stop failed:\n{stop.stdout}\n{stop.stderr}"
            deadline = time.monotonic() + 10
            while _postgres_processes(data_dir) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = _postgres_processes(data_dir)
            assert not left, f"PostgreSQL processes left behind: {left}"
        finally:
            shutil.rmtree(base, ignore_errors=True)

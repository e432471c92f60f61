"""Remote hosts of ``--agents-tx``: a directory per run on each, rsync, what the controller reads
or signals there after an agent dies, cleanup; and the path mapping agents apply on a host.

The functions prefixed ``_on_host`` run on the host: execnet sends their source, so they use
nothing but the standard library and import it themselves.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, final

from pytest_parallel_agents.planning.txspecs import TxSpec
from pytest_parallel_agents.transport.gateways import ControlLink
from pytest_parallel_agents.transport.scoreboard import (
    crash_log_path,
    parse_slot,
    slot_path,
)

# Never copied by --agents-rsync: version control, caches, virtual environments.
DEFAULT_RSYNC_IGNORE: Final = (
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".tox",
    ".nox",
    ".venv",
    "venv",
    "node_modules",
    "*.egg-info",
    ".coverage",
    ".coverage.*",
)


def rsync_ignore(patterns: Sequence[str]) -> Any:
    """A filter for RSync: True for paths whose name matches an ignore pattern."""
    globs = (*DEFAULT_RSYNC_IGNORE, *patterns)

    def ignored(path: str) -> bool:
        name = os.path.basename(path)
        return any(fnmatch.fnmatch(name, glob) for glob in globs)

    return ignored


@final
class Host:
    """One remote host (one distinct spec), reached over its control gateway."""

    def __init__(self, spec: TxSpec, link: ControlLink, run_id: str) -> None:
        self.spec = spec
        self.run_id = run_id
        self._link = link
        self.run_dir = ""
        self.root = ""  # where the rootdir's files are on the host; "" = the same paths

    def prepare(
        self, rootdir: Path, rsync: Sequence[Path], ignore: Sequence[str], inifile: Path | None
    ) -> None:
        """Create the run's directory on the host; copy the rsync directories into it."""
        self.run_dir, cwd = self._link.call(
            _on_host_make_run_dir, name=f"pytest-agents-{self.run_id}"
        )
        if rsync:
            self.root = f"{self.run_dir}/root"
            skip = rsync_ignore(ignore)
            for directory in rsync:
                relative = directory.relative_to(rootdir).as_posix()
                target = self.root if relative == "." else f"{self.root}/{relative}"
                self._link.rsync(str(directory), target, skip)
            if inifile is not None and rootdir in inifile.parents:
                self._link.call(
                    _on_host_write_file,
                    path=f"{self.root}/{inifile.relative_to(rootdir).as_posix()}",
                    data=inifile.read_bytes(),
                )
        elif self.spec.chdir:
            self.root = str(cwd)

    def agent_dir(self, agent_id: str) -> str:
        return f"{self.run_dir}/{agent_id}"

    def read_slot(self, agent_id: str) -> tuple[int | None, float]:
        files = self._read([str(slot_path(self.agent_dir(agent_id), agent_id))])
        data = next(iter(files.values()), None)
        return parse_slot(data) if data is not None else (None, 0.0)

    def read_crash_log(self, agent_id: str) -> str:
        files = self._read([str(crash_log_path(self.agent_dir(agent_id), agent_id))])
        data = next(iter(files.values()), None)
        return data.decode(errors="replace")[-20_000:].strip() if data else ""

    def coverage_files(self, agent_id: str) -> dict[str, bytes]:
        """An agent's coverage data files (read after it died; a live agent sends its own)."""
        try:
            found: dict[str, bytes] = self._link.call(
                _on_host_read_tree, directory=f"{self.agent_dir(agent_id)}/coverage"
            )
        except Exception:
            return {}
        return found

    def signal(self, pid: int, signum: int) -> bool:
        try:
            return bool(
                self._link.call(_on_host_signal, pid=int(pid), signum=int(signum), timeout=10.0)
            )
        except Exception:
            return False

    def cleanup(self, pids: Sequence[int] = ()) -> bool:
        """End this run's agents still alive on the host (their gateways were given their
        grace already), then remove the run's directory; False if it could not be removed."""
        try:
            if pids and self.run_dir:
                self._link.call(
                    _on_host_kill_agents, pids=[int(p) for p in pids], run_dir=self.run_dir
                )
            return bool(self.run_dir) and bool(
                self._link.call(_on_host_remove_tree, path=self.run_dir)
            )
        except Exception:
            return False
        finally:
            self._link.close()

    def _read(self, paths: list[str]) -> dict[str, bytes | None]:
        try:
            found: dict[str, bytes | None] = self._link.call(
                _on_host_read_files, paths=paths, timeout=10.0
            )
        except Exception:
            return {}
        return found


# --- run on the host ------------------------------------------------------------------------
# Untyped on purpose: execnet refuses a function whose annotations name non-builtin globals.


def _on_host_make_run_dir(channel, name):  # type: ignore[no-untyped-def]
    import os
    import tempfile

    # In the host's temporary directory, never inside a shared checkout (chdir=).
    path = os.path.join(tempfile.gettempdir(), name)
    os.makedirs(path, exist_ok=True)
    channel.send((path, os.getcwd()))


def _on_host_write_file(channel, path, data):  # type: ignore[no-untyped-def]
    import os

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    channel.send(True)


def _on_host_read_files(channel, paths):  # type: ignore[no-untyped-def]
    found: dict[str, bytes | None] = {}
    for path in paths:
        try:
            with open(path, "rb") as handle:
                found[path] = handle.read()
        except OSError:
            found[path] = None
    channel.send(found)


def _on_host_read_tree(channel, directory):  # type: ignore[no-untyped-def]
    import os

    found = {}
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    found[name] = handle.read()
    channel.send(found)


def _on_host_signal(channel, pid, signum):  # type: ignore[no-untyped-def]
    import os

    try:
        os.kill(pid, signum)
    except OSError:
        channel.send(False)
        return
    channel.send(True)


def _on_host_kill_agents(channel, pids, run_dir):  # type: ignore[no-untyped-def]
    import os
    import signal

    # Only a process holding a file in this run's directory is ours (pids are reused).
    # Plain loops: execnet cannot send a function with comprehensions (nested scopes).
    killed = []
    for pid in pids:
        ours = False
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(run_dir + "/"):
                    ours = True
                    break
        except OSError:
            continue
        if ours:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
    channel.send(killed)


def _on_host_remove_tree(channel, path):  # type: ignore[no-untyped-def]
    import os
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    channel.send(not os.path.exists(path))

"""Where a remote agent's files are: the controller's paths mapped onto the agent's host."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Final

from pytest_parallel_agents.transport.protocol import StartSession

# StartSession.host_root value meaning "the directory execnet's chdir= put the agent in".
HOST_CWD: Final = "."


def translate(path: str, rootdir: str, host_root: str) -> str:
    """``path`` under the controller's rootdir, as the same file under ``host_root``."""
    if not host_root or not rootdir or host_root == rootdir:
        return path
    if path == rootdir:
        return host_root
    prefix = rootdir.rstrip(os.sep) + os.sep
    if path.startswith(prefix):
        return os.path.join(host_root, path[len(prefix) :])
    return path


def translate_arg(arg: str, rootdir: str, host_root: str) -> str:
    """A command-line argument naming a path under the rootdir (``PATH`` or ``--opt=PATH``)."""
    option, eq, value = arg.partition("=")
    if eq and option.startswith("-"):
        return f"{option}={translate(value, rootdir, host_root)}"
    return translate(arg, rootdir, host_root)


def is_under(path: str, rootdir: str) -> bool:
    return path == rootdir or path.startswith(rootdir.rstrip(os.sep) + os.sep)


def place(start: StartSession) -> tuple[StartSession, str | None]:
    """The start message as it applies on a remote agent's host, and a directory the agent
    created for itself (to remove when it ends), if any. Local agents are left as they are.

    Only sys.path entries under the rootdir travel: the host's interpreter keeps its own
    site-packages, the controller's would not exist there.
    """
    if not start.remote:
        return start, None
    root = os.getcwd() if start.host_root == HOST_CWD else (start.host_root or start.rootdir)
    own: str | None = None
    if start.host_dir:
        base = start.host_dir
        os.makedirs(base, exist_ok=True)
    else:
        base = own = tempfile.mkdtemp(prefix=f"pytest-agent-{start.agent_id}-")
    coverage = start.coverage
    if coverage is not None:
        coverage = dataclasses.replace(coverage, directory=os.path.join(base, "coverage"))
        os.makedirs(coverage.directory, exist_ok=True)

    def mapped(path: str) -> str:
        return translate(path, start.rootdir, root)

    placed = dataclasses.replace(
        start,
        invocation_dir=mapped(start.invocation_dir),
        sys_path=tuple(mapped(p) for p in start.sys_path if is_under(p, start.rootdir)),
        args=tuple(translate_arg(a, start.rootdir, root) for a in start.args),
        files=tuple(mapped(f) for f in start.files),
        basetemp=os.path.join(base, "basetemp"),
        status_dir=base,
        coverage=coverage,
        host_root=root,
    )
    return placed, own

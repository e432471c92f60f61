"""A real OpenSSH server on 127.0.0.1 for the remote-agent tests: own keys, own port, own config.

`make test` installs openssh-server when it is missing (tests/install_sshd.sh); this module
starts a private sshd in a temporary directory and stops it afterwards. Nothing of the
machine's own ssh configuration is read or changed.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
HOST_ALIAS = "agents-test"


class SshUnavailable(RuntimeError):
    """sshd or ssh-keygen is not installed (make test installs them)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SshServer:
    """sshd -D on 127.0.0.1:port, accepting one generated client key for the current user."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.user = getpass.getuser()
        self.client_config = directory / "ssh_config"
        self.log = directory / "sshd.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SshServer:
        if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
            raise SshUnavailable(f"{SSHD} or ssh-keygen missing; `make test` installs them")
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)],
                check=True,
            )
        (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
        os.chmod(d / "authorized_keys", 0o600)
        (d / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {d / 'host_key'}",
                    f"PidFile {d / 'sshd.pid'}",
                    f"AuthorizedKeysFile {d / 'authorized_keys'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        self.client_config.write_text(
            "\n".join(
                [
                    f"Host {HOST_ALIAS}",
                    "  HostName 127.0.0.1",
                    f"  Port {self.port}",
                    f"  User {self.user}",
                    f"  IdentityFile {d / 'client_key'}",
                    "  IdentitiesOnly yes",
                    "  StrictHostKeyChecking no",
                    "  UserKnownHostsFile /dev/null",
                    "  BatchMode yes",
                    "  LogLevel ERROR",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            # sshd insists on its privilege separation directory when started as root.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "wb"),  # noqa: SIM115 - closed with the process
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text(errors='replace')}")
            probe = subprocess.run(
                ["ssh", "-F", str(self.client_config), HOST_ALIAS, "true"],
                capture_output=True,
                timeout=10,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"sshd did not accept a login in {timeout} s: {self.log}")

    def spec(self, python: str, **extra: str) -> str:
        """An ``--agents-tx`` spec reaching this server (without a multiplier)."""
        parts = [f"ssh={HOST_ALIAS}", f"ssh_config={self.client_config}", f"python={python}"]
        parts += [f"{key}={value}" for key, value in extra.items()]
        return "//".join(parts)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(5)
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

"""Agent gateway specs (``--agents-tx``): parsed, validated and expanded into agent slots (pure)."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, final

# Keys execnet's XSpec understands besides the gateway type; ``id`` is ours to set.
_EXECNET_KEYS: Final = frozenset(
    {"python", "chdir", "nice", "dont_write_bytecode", "ssh_config", "via", "execmodel"}
)
_KINDS: Final = ("popen", "ssh", "socket", "vagrant_ssh")
_COUNT: Final = re.compile(r"^\s*(\d+)\s*\*\s*(.*)$")
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class TxSpecError(ValueError):
    """A gateway spec that cannot be used; the message is one line naming the spec."""


@final
@dataclass(frozen=True)
class TxSpec:
    """One ``--agents-tx`` value: ``[N*]TYPE[=ADDRESS][//key=value...][//suite=NAME]``."""

    raw: str
    count: int
    kind: str  # popen | ssh | socket | vagrant_ssh
    address: str  # ssh destination, socket host:port, vagrant machine; "" for popen
    execnet_spec: str  # what execnet is given: without the count and without suite=
    suite: str | None  # the suite this host is bound to, if any
    chdir: str | None

    @property
    def remote(self) -> bool:
        """Whether agents of this spec run elsewhere (another file system, maybe)."""
        return self.kind != "popen"

    @property
    def host(self) -> str:
        """How the metrics and the summary name the host."""
        return self.kind if self.kind == "popen" else f"{self.kind}={self.address}"


@final
@dataclass(frozen=True)
class TxSlot:
    """One agent place: which spec starts it; slots of a spec share its host."""

    number: int
    spec: TxSpec


def parse_tx(raw: str, *, allow_remote_socket: bool = False) -> TxSpec:
    """Parse and check one spec; raise TxSpecError naming it on anything wrong."""
    text = raw.strip()
    count = 1
    match = _COUNT.match(text)
    if match:
        count = int(match.group(1))
        text = match.group(2).strip()
        if count < 1:
            raise TxSpecError(f"--agents-tx {raw!r}: the multiplier must be at least 1")
    if not text:
        raise TxSpecError(f"--agents-tx {raw!r}: empty gateway spec")
    kind = ""
    address = ""
    suite: str | None = None
    chdir: str | None = None
    kept: list[str] = []
    for part in text.split("//"):
        key, has_value, value = part.partition("=")
        key = key.strip()
        if not key:
            raise TxSpecError(f"--agents-tx {raw!r}: empty part between '//'")
        if key in _KINDS:
            if kind:
                raise TxSpecError(f"--agents-tx {raw!r}: more than one gateway type")
            kind, address = key, value.strip()
            if key == "popen" and has_value:
                raise TxSpecError(f"--agents-tx {raw!r}: popen takes no address")
            if key != "popen" and not address:
                raise TxSpecError(f"--agents-tx {raw!r}: {key}= needs an address")
        elif key == "suite":
            if not value.strip():
                raise TxSpecError(f"--agents-tx {raw!r}: suite= needs a suite name")
            suite = value.strip()
            continue
        elif key == "id":
            raise TxSpecError(f"--agents-tx {raw!r}: id= is set by pytest-parallel-agents")
        elif key == "chdir":
            chdir = value.strip()
            if not chdir:
                raise TxSpecError(f"--agents-tx {raw!r}: chdir= needs a directory")
        elif key not in _EXECNET_KEYS and not key.startswith("env:"):
            raise TxSpecError(
                f"--agents-tx {raw!r}: unknown key {key!r} (expected popen, ssh=, socket=, "
                "vagrant_ssh=, python=, chdir=, ssh_config=, via=, nice=, env:NAME=, suite=)"
            )
        kept.append(part.strip())
    if not kind:
        raise TxSpecError(
            f"--agents-tx {raw!r}: no gateway type (popen, ssh=HOST, socket=HOST:PORT)"
        )
    if kind == "socket":
        host = _socket_host(raw, address)
        if not allow_remote_socket and not _is_loopback(host):
            raise TxSpecError(
                f"--agents-tx {raw!r}: a socket gateway to {host} runs whatever code reaches "
                "its port; pass --agents-tx-allow-socket to use one that is not on loopback"
            )
    return TxSpec(raw.strip(), count, kind, address, "//".join(kept), suite, chdir)


def _socket_host(raw: str, address: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TxSpecError(f"--agents-tx {raw!r}: socket= expects HOST:PORT, got {address!r}")
    return host.strip("[]")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name this pure code does not resolve: not known to be loopback


def expand(specs: Sequence[TxSpec]) -> list[TxSlot]:
    """One slot per agent place, in the order given (``N*`` repeats a spec N times)."""
    slots: list[TxSlot] = []
    for spec in specs:
        for _ in range(spec.count):
            slots.append(TxSlot(len(slots), spec))
    return slots


def suite_capacity(slots: Sequence[TxSlot], suites: Sequence[str]) -> dict[str, int]:
    """How many slots each suite may use: its bound slots if it has any, else the unbound.

    A slot bound to a suite (``//suite=NAME``) serves that suite alone.
    """
    bound: dict[str, int] = {}
    free = 0
    for slot in slots:
        if slot.spec.suite is None:
            free += 1
        else:
            bound[slot.spec.suite] = bound.get(slot.spec.suite, 0) + 1
    return {suite: bound.get(suite, free) for suite in suites}


def fits(slot: TxSlot, suite: str, bound_suites: frozenset[str]) -> bool:
    """Whether an agent of ``suite`` may run in ``slot``."""
    if slot.spec.suite is not None:
        return slot.spec.suite == suite
    return suite not in bound_suites


def can_fork() -> bool:
    """Fork start is offered where fork is the platform's safe default (Linux and BSDs)."""
    return hasattr(os, "fork") and sys.platform != "darwin" and not sys.platform.startswith("win")

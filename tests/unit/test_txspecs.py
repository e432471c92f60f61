"""Gateway specs, agent slots and remote path mapping (pure, no gateway started)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_parallel_agents.planning.txspecs import (
    TxSpecError,
    expand,
    fits,
    parse_tx,
    suite_capacity,
)
from pytest_parallel_agents.transport.placement import translate, translate_arg


def test_popen_with_multiplier() -> None:
    spec = parse_tx("4*popen//python=python3.12")
    assert (spec.count, spec.kind, spec.address, spec.suite) == (4, "popen", "", None)
    assert spec.execnet_spec == "popen//python=python3.12"
    assert not spec.remote and spec.host == "popen"


def test_ssh_bound_to_a_suite() -> None:
    spec = parse_tx(" 2 * ssh=ci@build-1//python=python3//chdir=/srv/app//suite=e2e ")
    assert (spec.count, spec.kind, spec.address) == (2, "ssh", "ci@build-1")
    assert spec.suite == "e2e" and spec.chdir == "/srv/app"
    # suite= is ours: execnet never sees it.
    assert spec.execnet_spec == "ssh=ci@build-1//python=python3//chdir=/srv/app"
    assert spec.remote and spec.host == "ssh=ci@build-1"


@pytest.mark.parametrize("address", ["127.0.0.1:8888", "localhost:1", "[::1]:8888", "127.1.2.3:80"])
def test_socket_on_loopback_is_allowed(address: str) -> None:
    assert parse_tx(f"socket={address}").kind == "socket"


@pytest.mark.parametrize("address", ["10.0.0.5:8888", "build-1:8888", "0.0.0.0:8888"])
def test_socket_elsewhere_needs_the_opt_in(address: str) -> None:
    with pytest.raises(TxSpecError, match="--agents-tx-allow-socket"):
        parse_tx(f"socket={address}")
    assert parse_tx(f"socket={address}", allow_remote_socket=True).address == address


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty gateway spec"),
        ("0*popen", "multiplier must be at least 1"),
        ("python=python3", "no gateway type"),
        ("popen//ssh=host", "more than one gateway type"),
        ("popen=x", "popen takes no address"),
        ("ssh=", "ssh= needs an address"),
        ("socket=host", "socket= expects HOST:PORT"),
        ("socket=host:99999", "socket= expects HOST:PORT"),
        ("popen//id=gw1", "id= is set by pytest-parallel-agents"),
        ("popen//suite=", "suite= needs a suite name"),
        ("popen//chdir=", "chdir= needs a directory"),
        ("popen////python=x", "empty part"),
        ("popen//colour=blue", "unknown key 'colour'"),
    ],
)
def test_bad_specs_name_themselves(raw: str, message: str) -> None:
    with pytest.raises(TxSpecError, match=message) as info:
        parse_tx(raw)
    assert repr(raw.strip()) in str(info.value)


def test_env_and_ssh_config_keys_pass_through() -> None:
    spec = parse_tx("ssh=h//ssh_config=/x/cfg//env:FOO=1//nice=5")
    assert spec.execnet_spec == "ssh=h//ssh_config=/x/cfg//env:FOO=1//nice=5"


def test_slots_and_capacity() -> None:
    slots = expand(
        [parse_tx("2*popen"), parse_tx("ssh=b//suite=e2e"), parse_tx("3*ssh=c//suite=perf")]
    )
    assert [s.number for s in slots] == list(range(6))
    assert suite_capacity(slots, ["unit", "e2e", "perf"]) == {"unit": 2, "e2e": 1, "perf": 3}
    bound = frozenset({"e2e", "perf"})
    assert [fits(s, "unit", bound) for s in slots] == [True, True, False, False, False, False]
    assert [fits(s, "e2e", bound) for s in slots] == [False, False, True, False, False, False]


@given(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=6))
def test_expand_gives_one_slot_per_agent(counts: list[int]) -> None:
    slots = expand([parse_tx(f"{n}*popen") for n in counts])
    assert len(slots) == sum(counts)
    assert [s.number for s in slots] == list(range(sum(counts)))


def test_translate_maps_only_paths_under_the_rootdir() -> None:
    assert translate("/work/app/tests/t.py", "/work/app", "/tmp/run/root") == (
        "/tmp/run/root/tests/t.py"
    )
    assert translate("/work/app", "/work/app", "/tmp/run/root") == "/tmp/run/root"
    assert translate("/work/application/x", "/work/app", "/r") == "/work/application/x"
    assert translate("/usr/lib/python3", "/work/app", "/r") == "/usr/lib/python3"
    assert translate("/work/app/x", "/work/app", "") == "/work/app/x"


def test_translate_arg_handles_option_values() -> None:
    assert translate_arg("--rootdir=/work/app", "/work/app", "/r") == "--rootdir=/r"
    assert translate_arg("/work/app/tests", "/work/app", "/r") == "/r/tests"
    assert translate_arg("-k", "/work/app", "/r") == "-k"
    assert translate_arg("tests/a.py::b", "/work/app", "/r") == "tests/a.py::b"

"""Remote agents end to end, over a real OpenSSH server on 127.0.0.1 and execnet's socket server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import execnet
import pytest
from helpers import (
    QUIET_PLUGINS,
    compare,
    interruptible_children,
    read_metrics,
    wait_until_gone,
    write_files,
)
from sshd import SshServer

# Several suites, outcomes of every kind, fixtures, parametrisation: a plain run's equal.
MIXED = {
    "conftest.py": """
        import pytest

        @pytest.fixture
        def resource():
            yield {"ok": True}
    """,
    "tests/unit/test_logic.py": """
        import pytest

        @pytest.mark.parametrize("n", range(12))
        def test_square(n):
            assert n * n >= 0

        def test_fails():
            assert 1 + 1 == 3

        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert False

        def test_fixture(resource):
            assert resource["ok"]
    """,
    "tests/integration/test_flow.py": """
        import os
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("setup breaks")

        def test_error(broken):
            pass

        @pytest.mark.parametrize("word", ["a", "bb", "ccc", "dddd"])
        def test_words(word):
            assert len(word) == len(word.encode())

        def test_cwd_is_the_checkout():
            assert os.path.isfile(os.path.join(os.getcwd(), "conftest.py"))
    """,
}


def _hosts(metrics: dict[str, Any]) -> set[str]:
    return {agent["host"] for agent in metrics["agents"]}


def _run_dir(metrics: dict[str, Any]) -> Path:
    return Path("/tmp") / f"pytest-agents-{metrics['run_id']}"


def test_two_ssh_agents_on_a_shared_checkout(pytester: pytest.Pytester, sshd: SshServer) -> None:
    write_files(pytester.path, MIXED)
    spec = sshd.spec(sys.executable, chdir=str(pytester.path))
    _, parallel = compare(pytester, agents_args=("--agents-tx", f"2*{spec}"))
    metrics = read_metrics(parallel.metrics_path)  # type: ignore[attr-defined]
    assert _hosts(metrics) == {"ssh=agents-test"}
    assert metrics["lost"] == [] and metrics["duplicates"] == []
    assert not _run_dir(metrics).exists()


def test_rsync_into_a_fresh_directory(pytester: pytest.Pytester, sshd: SshServer) -> None:
    write_files(pytester.path, MIXED)
    record = pytester.path.parent / f"{pytester.path.name}-where"
    write_files(
        pytester.path,
        {
            "tests/unit/test_where.py": f"""
                def test_where():
                    with open({str(record)!r}, "a") as out:
                        out.write(__file__ + "\\n")
            """
        },
    )
    spec = sshd.spec(sys.executable)
    _, parallel = compare(pytester, agents_args=("--agents-tx", f"2*{spec}", "--agents-rsync", "."))
    metrics = read_metrics(parallel.metrics_path)  # type: ignore[attr-defined]
    run_dir = _run_dir(metrics)
    where = record.read_text().split()
    # The plain run wrote the checkout's path; the agents ran the copy in the run directory.
    assert where[0] == str(pytester.path / "tests/unit/test_where.py")
    assert where[1] == str(run_dir / "root/tests/unit/test_where.py")
    assert not run_dir.exists(), "the run directory on the host must be removed"


SLOW = """
import os
import time
from pathlib import Path

MARK = Path({mark!r})


def test_victim():
    if not MARK.exists():
        MARK.write_text(str(os.getpid()))
        time.sleep(3)


{others}
"""


def _start_on_two_ssh_agents(
    pytester: pytest.Pytester, sshd: SshServer, metrics: Path
) -> subprocess.Popen[bytes]:
    """The project's run on two ssh agents (shared checkout), in the background."""
    spec = sshd.spec(sys.executable, chdir=str(pytester.path))
    with interruptible_children():
        return pytester.popen(
            [
                sys.executable,
                "-m",
                "pytest",
                *QUIET_PLUGINS,
                "-p",
                "no:cacheprovider",
                "--agents-tx",
                f"2*{spec}",
                f"--agents-metrics={metrics}",
            ],
            stdin=subprocess.DEVNULL,
        )


def test_killed_ssh_session_is_recovered(pytester: pytest.Pytester, sshd: SshServer) -> None:
    mark = pytester.path.parent / f"{pytester.path.name}-agent-pid"
    others = "\n\n".join(f"def test_other_{n}():\n    time.sleep(0.1)" for n in range(16))
    pytester.makepyfile(test_slow=SLOW.format(mark=str(mark), others=others))
    metrics_path = pytester.path / "metrics.json"
    process = _start_on_two_ssh_agents(pytester, sshd, metrics_path)
    deadline = time.monotonic() + 60
    while not mark.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert mark.exists(), "the victim test never started"
    time.sleep(0.2)
    agent_pid = int(mark.read_text())
    # The agent's ssh session on the server side: killing it drops the connection as a
    # vanished host would.
    session = int(Path(f"/proc/{agent_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert b"sshd" in Path(f"/proc/{session}/cmdline").read_bytes()
    os.kill(session, signal.SIGKILL)
    out, err = process.communicate(timeout=120)
    text = out.decode() + err.decode()
    assert process.returncode == 0, text
    assert "17 passed" in text, text
    metrics = read_metrics(metrics_path)
    assert any(agent["crashed"] for agent in metrics["agents"]), metrics
    assert metrics["retried"] == ["test_slow.py::test_victim"], metrics
    assert metrics["lost"] == [] and metrics["duplicates"] == [], (metrics, text)
    # Nothing remains on the "remote" side: the agent process ends, the run directory goes.
    assert wait_until_gone([agent_pid], timeout=20) == []
    assert not _run_dir(metrics).exists()


def test_ctrl_c_leaves_nothing_on_the_host(pytester: pytest.Pytester, sshd: SshServer) -> None:
    pids = pytester.path.parent / f"{pytester.path.name}-pids"
    pids.mkdir()
    pytester.makepyfile(
        test_block=f"""
        import os
        import time
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_blocks(n):
            open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.05)
        """
    )
    metrics_path = pytester.path / "metrics.json"
    process = _start_on_two_ssh_agents(pytester, sshd, metrics_path)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    agents = {int(p.name) for p in pids.iterdir()}
    assert len(agents) == 2, "the agents never started their tests"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    text = out.decode() + err.decode()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, text
    assert "INTERNALERROR" not in text, text
    metrics = read_metrics(metrics_path)
    # The remote agents end (their gateways are stopped, stragglers killed through the
    # host's control gateway) and the run's directory on the host is removed.
    assert wait_until_gone(agents, timeout=10) == []
    assert not _run_dir(metrics).exists()


def test_remote_timeout_kills_through_the_host(pytester: pytest.Pytester, sshd: SshServer) -> None:
    pytester.makepyfile(
        test_hang="""
        import time

        def test_hangs():
            time.sleep(60)

        def test_fine():
            pass
        """
    )
    spec = sshd.spec(sys.executable, chdir=str(pytester.path))
    result = pytester.runpytest(
        *QUIET_PLUGINS, "--agents-tx", f"1*{spec}", "--agents-timeout=2", "-p", "no:cacheprovider"
    )
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*timeout: still running after 2 s*", "*1 failed, 1 passed*"])
    result.stdout.fnmatch_lines(["*test_hang.py*line*in test_hangs*"])  # the dumped stack


def test_collection_mismatch_names_the_first_differing_node_ids(
    pytester: pytest.Pytester, sshd: SshServer
) -> None:
    pytester.makepyfile(test_a="def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    other = pytester.path.parent / f"{pytester.path.name}-host-copy"
    shutil.copytree(pytester.path, other)
    (other / "test_a.py").write_text("def test_one():\n    pass\n\ndef test_2():\n    pass\n")
    spec = sshd.spec(sys.executable, chdir=str(other))
    result = pytester.runpytest(
        *QUIET_PLUGINS, "--agents-tx", f"1*{spec}", "-p", "no:cacheprovider"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*collection mismatch*first differing node ids: the controller collected "
            "'test_a.py::test_two', the agent collected 'test_a.py::test_2' instead*",
            "*1 failed, 1 passed*",
        ]
    )


def test_suite_bound_to_a_host(pytester: pytest.Pytester, sshd: SshServer) -> None:
    probe = """
        import os

        def test_{n}(agent_id):
            assert ("SSH_CONNECTION" in os.environ) == agent_id.startswith("e2e"), agent_id
    """
    for n in range(4):
        write_files(pytester.path, {f"tests/e2e/test_e{n}.py": probe.format(n=n)})
        write_files(pytester.path, {f"tests/unit/test_u{n}.py": probe.format(n=n)})
    spec = sshd.spec(sys.executable, chdir=str(pytester.path), suite="e2e")
    metrics_path = pytester.path / "m.json"
    result = pytester.runpytest(
        *QUIET_PLUGINS,
        "--agents-tx",
        spec,
        "--agents-tx",
        "2*popen",
        f"--agents-metrics={metrics_path}",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*8 passed*"])
    hosts = {a["id"]: a["host"] for a in read_metrics(metrics_path)["agents"]}
    assert {h for a, h in hosts.items() if a.startswith("e2e")} == {"ssh=agents-test"}
    assert {h for a, h in hosts.items() if a.startswith("unit")} == {"popen"}


def test_a_freed_ssh_slot_goes_to_a_suite_still_running(
    pytester: pytest.Pytester, sshd: SshServer
) -> None:
    """Pool growth over ssh: the slot a finished suite frees on the host is reserved for, and
    starts, one more agent of the suite still running there."""
    pytester.makeini(
        """
        [pytest]
        agents_suites =
            quick: path=test_quick.py
            unit: path=test_slow.py
        """
    )
    write_files(
        pytester.path,
        {
            "test_quick.py": """
                def test_q():
                    pass
            """,
            # A pool grows only while one more agent's share of the work left exceeds the
            # measured start-up: 0.7 s tests leave that share ~8 s after the first test, above
            # ssh start-ups of a loaded machine (4.4 s seen, where 0.4 s tests gave 4.6 s).
            "test_slow.py": """
                import os
                import time
                import pytest

                @pytest.mark.parametrize("n", range(24))
                def test_s(n):
                    assert "SSH_CONNECTION" in os.environ
                    time.sleep(0.7)
            """,
        },
    )
    spec = sshd.spec(sys.executable, chdir=str(pytester.path))
    metrics_path = pytester.path / "m.json"
    result = pytester.runpytest(
        *QUIET_PLUGINS,
        "--agents-tx",
        f"2*{spec}",
        f"--agents-metrics={metrics_path}",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=25)
    metrics = read_metrics(metrics_path)
    assert metrics["lost"] == [] and metrics["duplicates"] == [], metrics
    assert metrics["suites"]["unit"]["agents_added"] == 1, metrics["suites"]
    agents = {a["id"]: a for a in metrics["agents"]}
    assert sorted(agents) == ["quick-0", "unit-0", "unit-1"], agents
    assert {a["host"] for a in agents.values()} == {"ssh=agents-test"}
    assert agents["unit-1"]["tests"] >= 2 and not agents["unit-1"]["crashed"], agents
    assert agents["unit-0"]["tests"] + agents["unit-1"]["tests"] == 24, agents
    assert not _run_dir(metrics).exists()


def test_host_functions_can_be_sent(tmp_path: Path) -> None:
    """execnet sends these functions' source: no globals, no comprehensions (nested scopes)."""
    from pytest_parallel_agents.transport import hosts

    calls = {
        hosts._on_host_make_run_dir: {"name": f"pytest-agents-test-{os.getpid()}"},
        hosts._on_host_write_file: {"path": str(tmp_path / "a/b.txt"), "data": b"x"},
        hosts._on_host_read_files: {"paths": [str(tmp_path / "a/b.txt")]},
        hosts._on_host_read_tree: {"directory": str(tmp_path / "a")},
        hosts._on_host_signal: {"pid": os.getpid(), "signum": 0},
        hosts._on_host_kill_agents: {"pids": [os.getpid()], "run_dir": str(tmp_path / "none")},
        hosts._on_host_remove_tree: {"path": str(tmp_path / "a")},
    }
    gateway = execnet.makegateway(f"popen//python={sys.executable}")
    try:
        answers = {f.__name__: gateway.remote_exec(f, **kw).receive(10) for f, kw in calls.items()}
    finally:
        gateway.exit()
    run_dir, _ = answers["_on_host_make_run_dir"]
    os.rmdir(run_dir)
    assert answers["_on_host_read_files"] == {str(tmp_path / "a/b.txt"): b"x"}
    assert answers["_on_host_read_tree"] == {"b.txt": b"x"}
    assert answers["_on_host_signal"] is True
    assert answers["_on_host_kill_agents"] == []  # this process holds nothing of that run
    assert answers["_on_host_remove_tree"] is True and not (tmp_path / "a").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _socket_server() -> tuple[subprocess.Popen[bytes], int]:
    """execnet's own socket server on loopback (it runs what it is sent, in its process)."""
    port = _free_port()
    server_script = Path(execnet.__file__).parent / "script" / "socketserver.py"
    server = subprocess.Popen(
        [sys.executable, str(server_script), f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return server, port


def test_socket_gateway_on_loopback(pytester: pytest.Pytester) -> None:
    write_files(pytester.path, MIXED)
    server, port = _socket_server()
    try:
        spec = f"socket=127.0.0.1:{port}//chdir={pytester.path}"
        _, parallel = compare(pytester, agents_args=("--agents-tx", spec))
        metrics = read_metrics(parallel.metrics_path)  # type: ignore[attr-defined]
        assert _hosts(metrics) == {f"socket=127.0.0.1:{port}"}
    finally:
        server.kill()
        server.wait()


def test_socket_agent_death_blames_its_first_unreported_test(pytester: pytest.Pytester) -> None:
    """No slot to read on a socket gateway: the first test it had not reported is blamed,
    retried on the other agent, and the run carries on without the dead server."""
    marker = pytester.path.parent / f"{pytester.path.name}-died"
    source = textwrap.dedent(
        f"""
        import os
        from pathlib import Path

        def test_dies_once():
            flag = Path({str(marker)!r})
            if not flag.exists():
                flag.touch()
                os._exit(3)
        """
    )
    pytester.makepyfile(test_a=source + "".join(f"\ndef test_{n}():\n    pass\n" for n in range(8)))
    servers = [_socket_server() for _ in range(2)]
    metrics_path = pytester.path / "m.json"
    try:
        args = [a for _, port in servers for a in ("--agents-tx", f"socket=127.0.0.1:{port}")]
        specs = [f"{a}//chdir={pytester.path}" if a.startswith("socket") else a for a in args]
        result = pytester.runpytest(
            *QUIET_PLUGINS, *specs, "--agents-items=1", f"--agents-metrics={metrics_path}"
        )
    finally:
        for server, _ in servers:
            server.kill()
            server.wait()
    result.assert_outcomes(passed=9)
    metrics = read_metrics(metrics_path)
    assert metrics["retried"] == ["test_a.py::test_dies_once"], metrics
    assert metrics["lost"] == [] and metrics["duplicates"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agents-tx", "bogus"], "*'bogus': unknown key 'bogus'*"),
        (["--agents-tx", "0*popen"], "*'0*popen': the multiplier must be at least 1"),
        (["--agents-tx", "ssh="], "*'ssh=': ssh= needs an address"),
        (["--agents-tx", "socket=example"], "*socket= expects HOST:PORT, got 'example'"),
        (["--agents-tx", "socket=10.1.2.3:8888"], "*pass --agents-tx-allow-socket*"),
        (["--agents-tx", "popen//id=x"], "*id= is set by pytest-parallel-agents"),
        (["--agents-tx", "popen//suite=nosuch"], "*unknown suite 'nosuch'*"),
        (["--agents-tx", "2*popen", "--agents", "3"], "*--agents 3 and --agents-tx (2 agents)*"),
        (["--agents-tx", "popen", "--agents-rsync", "."], "*--agents-rsync copies over ssh*"),
        (
            ["--agents-tx", "ssh=h//python=python3", "--agents-rsync=.."],
            "*--agents-rsync: .. is outside the rootdir*",
        ),
        (
            ["--agents-tx", "popen//suite=unit"],
            "*suite 'integration' has no --agents-tx gateway to run on*",
        ),
    ],
)
def test_bad_gateway_input_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    write_files(pytester.path, MIXED)
    result = pytester.runpytest_subprocess(*QUIET_PLUGINS, *args)
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_unreachable_host_is_one_line(pytester: pytest.Pytester, tmp_path: Path) -> None:
    write_files(pytester.path, MIXED)
    config = tmp_path / "ssh_config"
    config.write_text("Host nowhere\n  HostName 127.0.0.1\n  Port 1\n  BatchMode yes\n")
    result = pytester.runpytest_subprocess(
        *QUIET_PLUGINS, "--agents-tx", f"ssh=nowhere//ssh_config={config}//python=python3"
    )
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["ERROR: --agents-tx 'ssh=nowhere*cannot prepare the host*"])
    assert "Traceback" not in result.stderr.str()

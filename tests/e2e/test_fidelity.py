"""A run on agents must look like a plain run: outcomes, exit codes, reports, options."""

from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter

import pytest
from helpers import (
    BARRIER_SOURCE,
    PARALLEL,
    assert_parallel,
    compare,
    junit_cases,
    junit_properties,
    read_metrics,
    run,
    short_summary,
    summary_counts,
)

# Agents start by forking the controller after collection (the default here) or as fresh
# interpreters that collect for themselves; the tests most sensitive to that run with both.
BOTH_STARTS = pytest.mark.parametrize("start", ["fork", "spawn"])


def _agents(start: str) -> tuple[str, ...]:
    return (*PARALLEL, "--agents-start", start)


def _barrier_conftest(pytester: pytest.Pytester) -> None:
    """Every test first waits until two agents run tests, so work is really spread."""
    folder = pytester.path.parent / f"{pytester.path.name}-barrier"
    pytester.makeconftest(
        BARRIER_SOURCE
        + textwrap.dedent(
            f"""
            import pytest

            @pytest.fixture(autouse=True)
            def _spread():
                wait_for_agents({str(folder)!r})
            """
        )
    )


# --- outcomes -------------------------------------------------------------------------


@BOTH_STARTS
def test_passes_and_failures(pytester: pytest.Pytester, start: str) -> None:
    pytester.makepyfile(
        test_mixed="""
        import pytest

        def test_ok():
            assert 1 + 1 == 2

        def test_assert_fails():
            assert [1, 2, 3] == [1, 2, 4]

        def test_raises():
            raise ValueError("boom")

        def test_prints():
            print("hello from a test")

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_param(n):
            assert n != 2
        """
    )
    _plain, parallel = compare(pytester, agents_args=_agents(start))
    assert summary_counts(parallel) == {"failed": 3, "passed": 4}
    assert parallel.ret == pytest.ExitCode.TESTS_FAILED
    assert "ValueError: boom" in parallel.stdout.str()
    assert "assert [1, 2, 3] == [1, 2, 4]" in parallel.stdout.str()


def test_errors_in_setup_and_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fixtures="""
        import pytest

        @pytest.fixture
        def broken_setup():
            raise RuntimeError("setup broke")

        @pytest.fixture
        def broken_teardown():
            yield
            raise RuntimeError("teardown broke")

        def test_setup_error(broken_setup):
            pass

        def test_teardown_error(broken_teardown):
            pass

        def test_fails_and_teardown_error(broken_teardown):
            assert False, "call failed"

        def test_fine():
            pass
        """
    )
    _plain, parallel = compare(pytester)
    assert summary_counts(parallel) == {"failed": 1, "passed": 2, "errors": 3}
    # A failing call plus a broken teardown: two JUnit entries for one test, in both runs.
    cases = junit_cases(parallel.junit_path)  # type: ignore[attr-defined]
    assert cases[("test_fixtures", "test_fails_and_teardown_error", "failure")] == 1
    assert cases[("test_fixtures", "test_fails_and_teardown_error", "error")] == 1
    for pattern in (
        "*ERROR at setup of test_setup_error*",
        "*ERROR at teardown of test_teardown_error*",
    ):
        parallel.stdout.fnmatch_lines([pattern])


def test_skips(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_skipping="""
        import sys
        import pytest

        @pytest.mark.skip(reason="marker skip")
        def test_marker():
            pass

        def test_imperative():
            pytest.skip("skipped inside")

        @pytest.mark.skipif(sys.platform != "nonexistent", reason="skipif true")
        def test_skipif_true():
            pass

        @pytest.mark.skipif(sys.platform == "nonexistent", reason="skipif false")
        def test_skipif_false():
            pass

        @pytest.fixture
        def skipping_fixture():
            pytest.skip("skipped by fixture")

        def test_fixture_skip(skipping_fixture):
            pass
        """
    )
    plain, parallel = compare(pytester, "-rs")
    assert summary_counts(parallel) == {"passed": 1, "skipped": 4}
    assert sorted(short_summary(parallel)) == sorted(short_summary(plain))


def test_xfail_and_xpass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_xfails="""
        import pytest

        @pytest.mark.xfail(reason="known")
        def test_xfail_fails():
            assert False

        @pytest.mark.xfail(reason="known")
        def test_xfail_passes():
            pass

        @pytest.mark.xfail(reason="strict", strict=True)
        def test_strict_xpass():
            pass

        @pytest.mark.xfail(reason="strict", strict=True)
        def test_strict_xfail():
            assert False

        @pytest.mark.xfail(raises=KeyError, reason="wrong exception")
        def test_xfail_other_exception():
            raise ValueError("not a KeyError")

        def test_imperative_xfail():
            pytest.xfail("imperative")

        @pytest.mark.xfail(run=False, reason="not run")
        def test_not_run():
            raise SystemExit(1)
        """
    )
    plain, parallel = compare(pytester, "-rxX")
    assert summary_counts(parallel) == {"failed": 2, "xfailed": 4, "xpassed": 1}
    assert sorted(short_summary(parallel)) == sorted(short_summary(plain))


@BOTH_STARTS
def test_parametrize_with_awkward_ids(pytester: pytest.Pytester, start: str) -> None:
    pytester.makepyfile(
        test_ids="""
        import pytest

        IDS = ["with spaces in it", "back\\\\slash\\\\path", "ünïcødé-✓", "x" * 260, "a[b]::c"]

        @pytest.mark.parametrize("value", range(len(IDS)), ids=IDS)
        def test_id(value):
            assert value != 3

        @pytest.mark.parametrize("a", [1, 2])
        @pytest.mark.parametrize("b", ["p q", "r/s"])
        def test_matrix(a, b):
            pass
        """
    )
    plain, parallel = compare(pytester, "-rA", agents_args=_agents(start))
    assert summary_counts(parallel) == {"failed": 1, "passed": 8}
    assert sorted(short_summary(parallel)) == sorted(short_summary(plain))
    assert any(len(name) > 250 for _, name, _ in junit_cases(parallel.junit_path))  # type: ignore[attr-defined]


def test_classes_with_class_scoped_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_classes="""
        import pytest

        @pytest.fixture(scope="class")
        def resource():
            yield ["shared"]

        @pytest.mark.usefixtures("resource")
        class TestFirst:
            def test_a(self, resource):
                assert resource[0] == "shared"

            def test_b(self, resource):
                resource.append("b")

            def test_c(self):
                assert False, "fails in a class"

        class TestSecond:
            @pytest.fixture(scope="class", autouse=True)
            @classmethod
            def prepared(cls):
                cls.state = "ready"
                yield
                cls.state = "gone"

            def test_d(self):
                assert self.state == "ready"

            def test_e(self):
                assert self.state == "ready"

            @pytest.mark.parametrize("n", [1, 2])
            def test_f(self, n):
                assert n == 1
        """
    )
    _plain, parallel = compare(pytester)
    assert summary_counts(parallel) == {"failed": 2, "passed": 5}


# --- collection ---------------------------------------------------------------------------


def _collection_error_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_good="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_good(n):
            assert n != 4
        """,
        test_broken="""
        import no_such_module_anywhere

        def test_never():
            pass
        """,
    )


def test_collection_error_interrupts_like_plain(pytester: pytest.Pytester) -> None:
    _collection_error_project(pytester)
    _plain, parallel = compare(pytester, expect_parallel=False)
    assert parallel.ret == pytest.ExitCode.INTERRUPTED
    parallel.stdout.fnmatch_lines(["*Interrupted: 1 error during collection*"])
    assert summary_counts(parallel) == {"errors": 1}


@BOTH_STARTS
def test_continue_on_collection_errors(pytester: pytest.Pytester, start: str) -> None:
    _collection_error_project(pytester)
    _plain, parallel = compare(
        pytester, "--continue-on-collection-errors", agents_args=_agents(start)
    )
    assert parallel.ret == pytest.ExitCode.TESTS_FAILED
    assert summary_counts(parallel) == {"failed": 1, "passed": 5, "errors": 1}
    parallel.stdout.fnmatch_lines(["*ModuleNotFoundError*no_such_module_anywhere*"])


# --- warnings ---------------------------------------------------------------------------


@BOTH_STARTS
def test_warnings_counted_once(pytester: pytest.Pytester, start: str) -> None:
    pytester.makepyfile(
        test_import_warns="""
        import warnings

        warnings.warn(UserWarning("warned at import time"))

        import pytest

        @pytest.mark.parametrize("n", range(8))
        def test_quiet(n):
            pass
        """,
        test_runtime_warns="""
        import warnings

        def test_warns():
            warnings.warn(DeprecationWarning("old api"))

        def test_warns_twice():
            warnings.warn(UserWarning("first"))
            warnings.warn(RuntimeWarning("second"))
        """,
    )
    _barrier_conftest(pytester)
    plain, parallel = compare(pytester, agents_args=_agents(start))
    # The import-time warning is counted once although several agents import the module.
    assert summary_counts(parallel) == {"passed": 10, "warnings": 4}
    for pattern in ("*warnings summary*", "*warned at import time*", "*old api*", "*second*"):
        parallel.stdout.fnmatch_lines([pattern])
    text = "warned at import time"
    assert parallel.stdout.str().count(text) == plain.stdout.str().count(text)


def test_filterwarnings_error_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        filterwarnings =
            error
            ignore:tolerated:UserWarning
        """
    )
    pytester.makepyfile(
        test_strict_warnings="""
        import warnings

        def test_warns_and_fails():
            warnings.warn(UserWarning("turned into an error"))

        def test_ignored_warning():
            warnings.warn(UserWarning("tolerated"))

        def test_plain():
            pass

        def test_deprecation():
            warnings.warn(DeprecationWarning("also an error"))
        """
    )
    _plain, parallel = compare(pytester)
    assert summary_counts(parallel) == {"failed": 2, "passed": 2}


# --- stopping early ---------------------------------------------------------------------


@BOTH_STARTS
def test_exitfirst_stops_the_whole_run(pytester: pytest.Pytester, start: str) -> None:
    failed_marker = pytester.path.parent / f"{pytester.path.name}-test3-ran"
    pytester.makepyfile(
        test_many=f"""
        import time
        from pathlib import Path

        import pytest

        FAILED_MARKER = Path({str(failed_marker)!r})

        @pytest.mark.parametrize("n", range(30))
        def test_n(n):
            if n == 3:
                FAILED_MARKER.touch()
                assert False, "test 3 fails"
            if n > 3:
                # Later tests wait (polling) for #3, so -x has something left to stop,
                # then do some work: a stop takes a moment to reach every agent.
                deadline = time.monotonic() + 10
                while not FAILED_MARKER.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.3)
        """
    )
    _barrier_conftest(pytester)
    plain = run(pytester, "-x", "-rA")
    assert plain.ret == pytest.ExitCode.TESTS_FAILED
    assert summary_counts(plain) == {"failed": 1, "passed": 3}
    failed_marker.unlink()
    metrics_path = pytester.path / "metrics.json"
    xml = pytester.path / "junit.xml"
    parallel = run(
        pytester,
        "-x",
        "-rA",
        *_agents(start),
        f"--agents-metrics={metrics_path}",
        f"--junitxml={xml}",
    )
    assert_parallel(parallel, read_metrics(metrics_path))
    assert parallel.ret == pytest.ExitCode.TESTS_FAILED
    counts = summary_counts(parallel)
    assert counts["failed"] == 1, counts
    assert counts.get("passed", 0) <= 15, counts
    parallel.stdout.fnmatch_lines(["*stopping after 1 failures*"])
    reported = [line.split()[1] for line in short_summary(parallel)]
    assert "test_many.py::test_n[3]" in reported
    assert len(reported) == len(set(reported)), reported
    cases = junit_cases(xml)
    assert all(count == 1 for count in cases.values()), cases
    assert sum(cases.values()) == counts["failed"] + counts.get("passed", 0)


def test_maxfail_two(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_maxfail="""
        import time
        import pytest

        @pytest.mark.parametrize("n", range(24))
        def test_n(n):
            time.sleep(0.05)
            assert n not in (2, 5, 14, 20)
        """
    )
    plain = run(pytester, "--maxfail=2")
    assert summary_counts(plain) == {"failed": 2, "passed": 4}
    parallel = run(pytester, "--maxfail=2", *PARALLEL, "-rA")
    assert_parallel(parallel)
    assert parallel.ret == plain.ret == pytest.ExitCode.TESTS_FAILED
    counts = summary_counts(parallel)
    assert counts["failed"] == 2, counts
    assert counts["failed"] + counts.get("passed", 0) < 24, counts
    parallel.stdout.fnmatch_lines(["*stopping after * failures*"])
    reported = [line.split()[1] for line in short_summary(parallel)]
    assert len(reported) == len(set(reported)), reported


@pytest.mark.parametrize(
    ("option", "limit"), [("-x", 1), ("--maxfail=2", 2)], ids=["exitfirst", "maxfail"]
)
def test_stop_limit_is_exact_when_every_test_fails(
    pytester: pytest.Pytester, option: str, limit: int
) -> None:
    pytester.makepyfile(
        test_all_fail="""
        import pytest

        @pytest.mark.parametrize("n", range(12))
        def test_n(n):
            assert False, n
        """
    )
    plain = run(pytester, option)
    assert summary_counts(plain) == {"failed": limit}
    parallel = run(pytester, option, *PARALLEL)
    assert_parallel(parallel)
    assert parallel.ret == pytest.ExitCode.TESTS_FAILED
    assert summary_counts(parallel) == {"failed": limit}


# --- selection ----------------------------------------------------------------------------


def _selection_project(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        markers =
            slow: slow tests
        """
    )
    pytester.makepyfile(
        test_alpha="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_alpha(n):
            pass

        @pytest.mark.slow
        def test_alpha_slow():
            pass

        def test_alpha_fails():
            assert False
        """,
        test_beta="""
        import pytest

        @pytest.mark.slow
        @pytest.mark.parametrize("n", range(4))
        def test_beta_slow(n):
            pass

        def test_beta_quick():
            pass
        """,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("-k", "alpha and not fails"), {"passed": 7, "deselected": 6}),
        (("-m", "not slow"), {"passed": 7, "failed": 1, "deselected": 5}),
        (
            ("--deselect", "test_alpha.py::test_alpha_fails", "--deselect", "test_beta.py"),
            {"passed": 7, "deselected": 6},
        ),
    ],
    ids=["-k", "-m", "--deselect"],
)
def test_selection_counts_deselected(
    pytester: pytest.Pytester, args: tuple[str, ...], expected: dict[str, int]
) -> None:
    _selection_project(pytester)
    _plain, parallel = compare(pytester, *args)
    assert summary_counts(parallel) == expected


def _lf_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_first="""
        import pytest

        @pytest.mark.parametrize("n", range(5))
        def test_first(n):
            assert n != 1
        """,
        test_second="""
        import pytest

        @pytest.mark.parametrize("n", range(5))
        def test_second(n):
            assert n != 3
        """,
        test_third="""
        def test_third():
            pass
        """,
    )


@BOTH_STARTS
def test_last_failed(pytester: pytest.Pytester, start: str) -> None:
    _lf_project(pytester)
    first = run(pytester)
    assert summary_counts(first) == {"failed": 2, "passed": 9}
    plain, parallel = compare(pytester, "--lf", "-rA", agents_args=_agents(start))
    assert summary_counts(parallel)["failed"] == 2
    assert "passed" not in summary_counts(parallel)
    parallel.stdout.fnmatch_lines(["*run-last-failure: rerun previous 2 failures*"])
    assert sorted(short_summary(parallel)) == sorted(short_summary(plain))
    # The parallel run's cache still knows the failures: a later --lf run repeats them.
    again = run(pytester, "--lf")
    assert summary_counts(again) == summary_counts(plain)


def test_last_failed_cache_written_by_parallel_run(pytester: pytest.Pytester) -> None:
    _lf_project(pytester)
    first = run(pytester, *PARALLEL)
    assert_parallel(first)
    assert summary_counts(first) == {"failed": 2, "passed": 9}
    rerun = run(pytester, "--lf", "-rf")
    assert summary_counts(rerun)["failed"] == 2
    assert sorted(line.split()[1] for line in short_summary(rerun)) == [
        "test_first.py::test_first[1]",
        "test_second.py::test_second[3]",
    ]


def test_failed_first(pytester: pytest.Pytester) -> None:
    _lf_project(pytester)
    run(pytester)
    _plain, parallel = compare(pytester, "--ff")
    assert summary_counts(parallel) == {"failed": 2, "passed": 9}
    parallel.stdout.fnmatch_lines(["*run-last-failure: rerun previous 2 failures first*"])


# --- reporting ------------------------------------------------------------------------------


def test_report_chars_all(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_report="""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_pass(n):
            pass

        def test_fail():
            assert 0, "nope"

        @pytest.mark.skip(reason="skipped")
        def test_skip():
            pass

        @pytest.mark.xfail(reason="expected")
        def test_xfail():
            assert 0

        @pytest.mark.xfail(reason="unexpectedly fine")
        def test_xpass():
            pass

        @pytest.fixture
        def broken():
            raise RuntimeError("bad fixture")

        def test_error(broken):
            pass
        """
    )
    plain, parallel = compare(pytester, "-rA")
    lines = short_summary(parallel)
    assert sorted(lines) == sorted(short_summary(plain))
    assert {line.split()[0] for line in lines} == {
        "PASSED",
        "FAILED",
        "SKIPPED",
        "XFAIL",
        "XPASS",
        "ERROR",
    }


def test_durations_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_timed="""
        import time
        import pytest

        def test_slow():
            time.sleep(0.3)

        @pytest.mark.parametrize("n", range(5))
        def test_fast(n):
            pass
        """
    )
    plain, parallel = compare(pytester, "--durations=5")
    for result in (plain, parallel):
        result.stdout.fnmatch_lines(["*slowest 5 durations*"])
        slow = [
            float(match.group(1))
            for line in result.outlines
            if (match := re.fullmatch(r"(\d+\.\d+)s call\s+test_timed\.py::test_slow", line))
        ]
        assert len(slow) == 1 and slow[0] >= 0.3, result.stdout.str()


@pytest.mark.skipif(pytest.version_tuple < (9,), reason="the subtests fixture is pytest 9's")
def test_subtests_counted_identically(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sub="""
        def test_some_fail(subtests):
            for i in range(4):
                with subtests.test(msg=f"case {i}"):
                    assert i % 2 == 0

        def test_all_pass(subtests):
            for i in range(3):
                with subtests.test(msg=f"fine {i}"):
                    pass

        def test_no_subtests():
            pass
        """
    )
    # Passed subtests are counted in the summary from -q on.
    plain, parallel = compare(pytester, "-q", "-rA")
    counts = summary_counts(parallel)
    # Two failed subtests and the test that contains them.
    assert counts == {"failed": 3, "passed": 2, "subtests passed": 5}
    assert sorted(short_summary(parallel)) == sorted(short_summary(plain))


def test_subtest_kwargs_shown_identically(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sub_kwargs="""
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_kwargs(subtests, n):
            with subtests.test(msg="m", i=1):
                assert False
        """
    )
    plain, parallel = compare(pytester, "-rA")
    assert sorted(short_summary(parallel)) == sorted(short_summary(plain))


def test_record_property_in_parallel_junit(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        junit_family = xunit1
        """
    )
    pytester.makepyfile(
        test_props="""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_props(record_property, n):
            record_property("number", n)
            record_property("label", f"case-{n}")

        def test_no_props():
            pass
        """
    )
    plain, parallel = compare(pytester)
    props = junit_properties(parallel.junit_path)  # type: ignore[attr-defined]
    assert props == junit_properties(plain.junit_path)  # type: ignore[attr-defined]
    assert props[("test_props", "test_props[2]")] == [("number", "2"), ("label", "case-2")]
    assert props[("test_props", "test_no_props")] == []


def test_record_property_xunit2_warning_with_spawned_agents(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_props_warn="""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_props(record_property, n):
            record_property("number", n)
        """
    )
    _plain, parallel = compare(pytester, agents_args=_agents("spawn"))
    assert summary_counts(parallel) == {"passed": 4, "warnings": 4}


# --- options and configuration ---------------------------------------------------------------


def _small_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_small="""
        import logging
        import sys
        import pytest

        log = logging.getLogger("small")

        @pytest.mark.parametrize("n", range(5))
        def test_logs(n):
            log.warning("logging %d", n)
            print("stdout", n)
            print("stderr", n, file=sys.stderr)

        def test_fails_with_output():
            print("captured before failing")
            log.error("logged before failing")
            assert False
        """
    )


@BOTH_STARTS
@pytest.mark.parametrize(
    "args",
    [("-p", "no:logging"), ("--capture=sys",), ("--capture=fd", "-rA")],
    ids=["no-logging", "capture-sys", "capture-fd"],
)
def test_capture_and_logging_options(
    pytester: pytest.Pytester, args: tuple[str, ...], start: str
) -> None:
    _small_project(pytester)
    plain, parallel = compare(pytester, *args, agents_args=_agents(start))
    assert summary_counts(parallel) == {"failed": 1, "passed": 5}
    if "-rA" in args:
        assert sorted(short_summary(parallel)) == sorted(short_summary(plain))
    for pattern in ("*Captured stdout call*", "*captured before failing*"):
        parallel.stdout.fnmatch_lines([pattern])


@pytest.mark.parametrize(
    "start",
    [
        "fork",
        "spawn",
    ],
)
def test_captured_output_belongs_to_its_test(pytester: pytest.Pytester, start: str) -> None:
    pytester.makepyfile(
        test_out="""
        import sys
        import time
        import pytest

        @pytest.mark.parametrize("n", range(12))
        def test_out(n):
            print(f"marker-out-{n}")
            print(f"marker-err-{n}", file=sys.stderr)
            time.sleep(0.1)  # some work, while the other agents finish theirs
        """
    )
    plain, parallel = compare(pytester, "-o", "junit_logging=all", agents_args=_agents(start))
    for result in (plain, parallel):
        root = ET.parse(result.junit_path).getroot()  # type: ignore[attr-defined]
        cases = list(root.iter("testcase"))
        assert len(cases) == 12
        for case in cases:
            n = case.get("name", "").partition("[")[2].rstrip("]")
            for tag, stream in (("system-out", "out"), ("system-err", "err")):
                element = case.find(tag)
                text = element.text if element is not None and element.text else ""
                markers = [word for word in text.split() if word.startswith("marker-")]
                assert markers == [f"marker-{stream}-{n}"], (case.get("name"), tag, text)


@BOTH_STARTS
def test_no_capture_forwards_output(pytester: pytest.Pytester, start: str) -> None:
    pytester.makepyfile(
        test_loud="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_loud(n):
            print(f"loud line {n}")
            assert n != 4
        """
    )
    _plain, parallel = compare(pytester, "-s", agents_args=_agents(start))
    assert summary_counts(parallel) == {"failed": 1, "passed": 5}
    for n in range(6):
        # Each printed line reaches the terminal once, tagged with the agent that printed it.
        lines = [line for line in parallel.outlines if f"loud line {n}" in line]
        assert len(lines) == 1, (n, lines)
        assert re.search(r"\[unit-\d+\] loud line", lines[0]), lines


def test_log_cli(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        log_cli = true
        log_cli_level = INFO
        """
    )
    pytester.makepyfile(
        test_live="""
        import logging
        import pytest

        @pytest.mark.parametrize("n", range(5))
        def test_live(n):
            logging.getLogger("live").info("live message %d", n)
        """
    )
    _plain, parallel = compare(pytester)
    assert parallel.ret == pytest.ExitCode.OK
    assert summary_counts(parallel) == {"passed": 5}


@BOTH_STARTS
def test_import_mode_importlib(pytester: pytest.Pytester, start: str) -> None:
    # Same basename in two directories without __init__.py: fine under importlib only.
    for folder in ("one", "two"):
        pytester.mkdir(folder)
        (pytester.path / folder / "test_same.py").write_text(
            textwrap.dedent(
                f"""
                import pytest

                @pytest.mark.parametrize("n", range(3))
                def test_{folder}(n):
                    assert n != 2 or "{folder}" == "one"
                """
            ),
            encoding="utf-8",
        )
    _plain, parallel = compare(pytester, "--import-mode=importlib", agents_args=_agents(start))
    assert summary_counts(parallel) == {"failed": 1, "passed": 5}


@BOTH_STARTS
def test_import_mode_prepend_packages(pytester: pytest.Pytester, start: str) -> None:
    pkg = pytester.mkpydir("pkg")
    (pkg / "helper.py").write_text("VALUE = 42\n", encoding="utf-8")
    (pkg / "test_pkg.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from pkg.helper import VALUE

            @pytest.mark.parametrize("n", range(4))
            def test_value(n):
                assert VALUE == 42
            """
        ),
        encoding="utf-8",
    )
    pytester.makepyfile(
        test_top="""
        def test_top():
            import pkg.helper
            assert pkg.helper.VALUE == 42
        """
    )
    _plain, parallel = compare(pytester, "--import-mode=prepend", agents_args=_agents(start))
    assert summary_counts(parallel) == {"passed": 5}


@BOTH_STARTS
def test_unittest_testcase(pytester: pytest.Pytester, start: str) -> None:
    pytester.makepyfile(
        test_unit_style="""
        import unittest

        class TestWithClassSetup(unittest.TestCase):
            @classmethod
            def setUpClass(cls):
                cls.shared = {"ready": True}

            @classmethod
            def tearDownClass(cls):
                cls.shared.clear()

            def test_one(self):
                self.assertTrue(self.shared["ready"])

            def test_two(self):
                self.assertEqual(1 + 1, 2)

            def test_three_fails(self):
                self.assertEqual(1, 2)

            @unittest.skip("not today")
            def test_skipped(self):
                pass

            @unittest.expectedFailure
            def test_expected_failure(self):
                self.fail("expected")

        class TestBrokenClassSetup(unittest.TestCase):
            @classmethod
            def setUpClass(cls):
                raise RuntimeError("class setup broke")

            def test_never_runs(self):
                pass
        """
    )
    _plain, parallel = compare(pytester, agents_args=_agents(start))
    assert summary_counts(parallel) == {
        "failed": 1,
        "passed": 2,
        "skipped": 1,
        "xfailed": 1,
        "errors": 1,
    }


@BOTH_STARTS
def test_doctest_modules(pytester: pytest.Pytester, start: str) -> None:
    pytester.makepyfile(
        mathlib='''
        def double(x):
            """
            >>> double(2)
            4
            >>> double(3)
            6
            """
            return 2 * x


        def broken(x):
            """
            >>> broken(1)
            3
            """
            return x


        def untested():
            return None
        ''',
        test_mathlib="""
        from mathlib import double

        def test_double():
            assert double(5) == 10
        """,
    )
    _plain, parallel = compare(pytester, "--doctest-modules", agents_args=_agents(start))
    assert summary_counts(parallel) == {"failed": 1, "passed": 2}
    cases = junit_cases(parallel.junit_path)  # type: ignore[attr-defined]
    assert ("mathlib", "mathlib.broken", "failure") in cases


@BOTH_STARTS
def test_custom_collector_items(pytester: pytest.Pytester, start: str) -> None:
    pytester.makeconftest(
        """
        import pytest

        def pytest_collect_file(parent, file_path):
            if file_path.suffix == ".data" and file_path.name.startswith("check"):
                return DataFile.from_parent(parent, path=file_path)

        class DataFile(pytest.File):
            def collect(self):
                for line in self.path.read_text().splitlines():
                    name, _, expected = line.partition(":")
                    yield DataItem.from_parent(self, name=name.strip(), expected=expected.strip())

        class DataItem(pytest.Item):
            def __init__(self, *, expected, **kwargs):
                super().__init__(**kwargs)
                self.expected = expected

            def runtest(self):
                if self.expected != "ok":
                    raise DataError(self.expected)

            def repr_failure(self, excinfo):
                if isinstance(excinfo.value, DataError):
                    return f"data check {self.name!r} failed: {excinfo.value}"
                return super().repr_failure(excinfo)

            def reportinfo(self):
                return self.path, 0, f"data: {self.name}"

        class DataError(Exception):
            pass
        """
    )
    (pytester.path / "check_values.data").write_text(
        "alpha: ok\nbeta: ok\ngamma: wrong value\n: ok\ndelta: ok\n", encoding="utf-8"
    )
    (pytester.path / "check_more.data").write_text(
        "one: ok\ntwo: ok\nthree: broken\n", encoding="utf-8"
    )
    plain, parallel = compare(pytester, "-rA", agents_args=_agents(start))
    assert summary_counts(parallel) == {"failed": 2, "passed": 6}
    lines = short_summary(parallel)
    assert sorted(lines) == sorted(short_summary(plain))
    # The item with an empty name: its node id ends with "::".
    assert any(line.split()[1] == "check_values.data::" for line in lines), lines
    parallel.stdout.fnmatch_lines(["*data check 'gamma' failed: wrong value*"])


def test_junit_counts_match_outcomes(pytester: pytest.Pytester) -> None:
    """A larger mixed project: every test case appears exactly as often as in a plain run."""
    pytester.makepyfile(
        **{
            f"test_file{number}": f"""
            import pytest

            @pytest.mark.parametrize("n", range(6))
            def test_case(n):
                if n == {number}:
                    pytest.skip("skip one")
                assert n != {number + 1}
            """
            for number in range(3)
        }
    )
    _plain, parallel = compare(pytester)
    cases = junit_cases(parallel.junit_path)  # type: ignore[attr-defined]
    assert sum(cases.values()) == 18
    assert Counter(outcome for _, _, outcome in cases.elements()) == Counter(
        {"passed": 12, "failure": 3, "skipped": 3}
    )


@BOTH_STARTS
def test_tests_see_the_garbage_collector_as_they_left_it(
    pytester: pytest.Pytester, start: str
) -> None:
    # The plugin collects and plans with relaxed collector thresholds (fewer rescans of
    # tens of thousands of items); tests must run with the thresholds the run started with.
    pytester.makeconftest(
        """
        import gc
        import pytest

        START = gc.get_threshold()
        DURING = []

        def pytest_collection_modifyitems(items):
            DURING.append(gc.get_threshold())

        @pytest.fixture
        def thresholds():
            return START, DURING[0]
        """
    )
    # A forked agent inherits the controller's collection; a spawned one collects for itself,
    # with the default thresholds.
    pytester.makepyfile(
        test_gc=f"""
        import gc
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_threshold(thresholds, i):
            start, during = thresholds
            assert (during != start) is {start == "fork"}
            assert gc.get_threshold() == start
        """
    )
    result = run(pytester, *_agents(start))
    result.assert_outcomes(passed=6)
    assert_parallel(result)


def test_thresholds_a_conftest_sets_while_collecting_are_kept(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import gc

        def pytest_collection_modifyitems(items):
            gc.set_threshold(1234, 5, 5)
        """
    )
    pytester.makepyfile(
        test_gc="""
        import gc
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_threshold(i):
            assert gc.get_threshold() == (1234, 5, 5)
        """
    )
    result = run(pytester, *PARALLEL)
    result.assert_outcomes(passed=4)
    assert_parallel(result)


def test_installed_but_not_asked_for_the_plugin_plans_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --agents (or a shard, or a plan) no test's markers are read for planning."""
    from pytest_parallel_agents import collected

    def refuse(item: pytest.Item) -> object:
        raise AssertionError(f"planning walked {item.nodeid} in a plain run")

    monkeypatch.setattr(collected, "closest_marks", refuse)
    pytester.makepyfile(
        test_plain="""
        import pytest

        @pytest.mark.integration
        @pytest.mark.parametrize("i", range(3))
        def test_x(i):
            pass
        """
    )
    run(pytester).assert_outcomes(passed=3)
    # The same run planned does walk them (the check above can fail).
    planned = run(pytester, "--agents-plan")
    assert planned.ret == pytest.ExitCode.INTERNAL_ERROR
    assert "planning walked test_plain.py::test_x[0] in a plain run" in planned.stdout.str()

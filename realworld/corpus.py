"""The real-world corpus: published projects whose own test suites `realworld/run.py` runs plainly
and under `--agents`, comparing every test's outcome (docs/fidelity.md).

Each project is its published sdist from PyPI at a pinned version (the sdists below all carry
their tests), installed from that sdist into a venv of its own with its test dependencies pinned.
Only the direct test dependencies are pinned; what pip resolved for them is written beside each
venv (`.realworld/venvs/NAME/freeze.txt`).

Suites are chosen for the quirks that break runners (`quirks` says which each one brings):
unittest classes and `subTest`, doctests, custom collectors, very many parametrised ids,
hypothesis, asyncio and trio, threads and subprocesses, tz/locale state, C extensions, plugins
disabled with `-p no:...`, `--import-mode=importlib`, `filterwarnings = error`, `xfail_strict`.

A deselect is listed with the reason it exists; at the pinned versions none of these suites needs
the network (only PyPI is reachable here, and only for installs).
"""

from __future__ import annotations

from dataclasses import dataclass

# Installed in every venv beside the project's own test dependencies, so that every suite runs
# on the same pytest, execnet and xdist (the plugin itself comes from this checkout, editable).
COMMON_DEPS: tuple[str, ...] = (
    "pytest==9.2.0",
    "pluggy==1.7.0",
    "execnet==2.1.2",
    "pytest-xdist==3.8.0",
    "coverage==7.17.5",
    "filelock==4.3.2",
    "iniconfig==2.3.1",
)


@dataclass(frozen=True)
class Project:
    name: str  # the PyPI name, as `pip download` takes it
    version: str
    deps: tuple[str, ...]  # its test dependencies, pinned
    # pytest arguments after the common ones (test paths, -p no:..., -m ...), run in the sdist's
    # extracted directory (so its pytest configuration applies).
    args: tuple[str, ...] = ("tests",)
    # (node id, why) pairs, each passed as --deselect.
    deselect: tuple[tuple[str, str], ...] = ()
    quirks: str = ""
    quick: bool = False  # in the CI subset (`--quick`, `make realworld-quick`)
    timeout: int = 300  # seconds, for each pytest run of this suite
    env: tuple[tuple[str, str], ...] = ()
    # Install the project from its sdist (False: the tests import it from the source tree).
    install: bool = True
    # (regex, replacement) pairs applied to the JUnit keys of every run before comparing, for
    # test ids that differ from one collection to the next (ids made of the current time).
    normalize_ids: tuple[tuple[str, str], ...] = ()


PROJECTS: tuple[Project, ...] = (
    Project(
        "attrs",
        "26.1.0",
        deps=("hypothesis==6.170.17", "cloudpickle==3.1.3", "pympler==1.1"),
        deselect=(
            (
                "tests/test_converters.py::TestPipe::test_wrapped_annotation",
                "fails plainly on CPython 3.11 (bool is None: the wrapped converter's return "
                "annotation is not found), whatever the runner",
            ),
        ),
        quirks="hypothesis, --import-mode=importlib, --strict-config, xfail_strict, "
        "very many parametrised ids",
    ),
    Project(
        "click",
        "8.5.1",
        deps=(),
        quirks="filterwarnings=error, addopts -m 'not stress', CliRunner swapping std streams, "
        "threads",
    ),
    Project(
        "jinja2",
        "3.1.6",
        deps=("markupsafe==3.0.4", "trio==0.35.0"),
        quirks="asyncio and trio event loops, filterwarnings=error",
    ),
    Project(
        "markupsafe",
        "3.0.4",
        deps=(),
        quirks="C extension built from the sdist, tests parametrised over both implementations "
        "by a fixture, filterwarnings=error, a test counting gc.get_objects()",
        # In the CI subset for test_markup_leaks: it sees any object an agent's own threads
        # leave or allocate while it counts.
        quick=True,
    ),
    Project(
        "itsdangerous",
        "2.2.0",
        deps=("freezegun==1.5.5",),
        quirks="freezegun patching time, test classes inheriting tests, filterwarnings=error",
        quick=True,
    ),
    Project(
        "marshmallow",
        "4.4.0",
        deps=("simplejson==4.3.0",),
        # test_invalid_datetime_deserialization is parametrised with dt.datetime.now() in two
        # formats: its ids change every second, in any two runs.
        normalize_ids=(
            (r"\d\d:\d\d:\d\d \d{4}-\d\d-\d\d", "<now: time date>"),
            (r"\d\d-\d\d-\d{4} \d\d:\d\d:\d\d", "<now: date time>"),
        ),
        quirks="very many parametrised ids, ids made of the current time (so that spawned "
        "agents, collecting later, collect other ids than the controller)",
    ),
    Project(
        "more-itertools",
        "11.2.1",
        deps=(),
        # The package's docstrings are doctests too (its unittest suite loads them by
        # load_tests, which pytest ignores, so they are collected with --doctest-modules).
        args=("tests", "more_itertools", "--doctest-modules"),
        deselect=(
            (
                "tests/test_more.py::tests.test_more.IterOnlyRange",
                "not a doctest: a docstring that shows a TypeError without its traceback lines, "
                "collected only because --doctest-modules reaches tests/ (fails plainly too)",
            ),
        ),
        quirks="unittest.TestCase classes with subTest, doctests (--doctest-modules)",
        install=False,
    ),
    Project(
        "packaging",
        "26.4",
        deps=("hypothesis==6.170.17", "pretend==1.0.9", "tomli-w==1.2.0", "pip==26.3"),
        # tests/test_version.py alone is 51,524 parametrised cases and 80 % of the suite's time
        # (over two minutes plainly on 2 CPUs): left out to keep the corpus to minutes. The
        # 12,700 cases left, and click's 33,000 collected ids, keep the many-ids quirk.
        args=("tests", "--ignore=tests/test_version.py"),
        quirks="addopts disabling plugins (-p no:tmpdir, no:logging, no:threadexception, "
        "no:legacypath), --capture=sys, --showlocals, xfail_strict, filterwarnings=error, "
        "very many parametrised ids",
    ),
    Project(
        "pygments",
        "2.21.0",
        deps=("wcag-contrast-ratio==0.9",),
        quirks="a conftest's custom collector (pytest_collect_file: one item per snippet and "
        "example file, thousands), a conftest option (--update-goldens), tmp files",
        install=False,
        timeout=600,
    ),
    Project(
        "pyparsing",
        "3.3.3",
        deps=("railroad-diagrams==3.0.1", "jinja2==3.1.6"),
        # The randomised nested-expression and numeric-expression tests, run once per mixin
        # class, are two thirds of the suite's four minutes on 2 CPUs: left out.
        args=("tests", "-k", "not Random and not testNumericExpressions"),
        quirks="large unittest.TestCase classes with subTest, mixin test classes, "
        "tests that change global parser state",
        install=False,
    ),
    Project(
        "python-dateutil",
        "4.0.0",
        # attrs for tests/test_tzfile.py and test_zoneinfo.py; pytest-cov for its no_cover
        # marker, which the suite uses (filterwarnings=error makes an unknown mark an error).
        deps=(
            "hypothesis==6.170.17",
            "freezegun==1.5.5",
            "tzdata==2026.6",
            "attrs==26.1.0",
            "pytest-cov==7.1.0",
        ),
        deselect=tuple(
            (
                nodeid,
                "fails plainly here, whatever the runner: expects other data than this "
                "machine's system time zone database (/usr/share/zoneinfo)",
            )
            for nodeid in (
                "tests/test_tz.py::test_gettz_link[tzpath-Europe/Monaco-Europe/Paris]",
                "tests/test_tzfile.py::test_gettz_local_abbreviation_without_time_zone_data",
                "tests/test_tzpath_data.py::test_dst_matches_tzdata_zi[tzpath]",
            )
        ),
        quirks="unittest classes, hypothesis, TZ changes with time.tzset, xfail_strict, "
        "filterwarnings=error (with DeprecationWarning), many markers",
    ),
    Project(
        "sqlparse",
        "0.6.1",
        deps=(),
        quirks="many parametrised ids, file fixtures",
        install=False,
        quick=True,
    ),
    Project(
        "werkzeug",
        "3.1.9",
        deps=(
            "cffi==2.1.1",
            "cryptography==50.0.2",
            "ephemeral-port-reserve==1.1.4",
            "pytest-timeout==2.4.0",
            "watchdog==7.1.0",
            "markupsafe==3.0.4",
        ),
        # Not the dev-server tests (marker dev_server; each starts a server in a subprocess):
        # they take minutes on 2 CPUs, and test_reloader_sys_path[watchdog] among them hangs here
        # plainly (its reloaded child never answers).
        args=("tests", "-m", "not dev_server"),
        quirks="pytest-timeout, filterwarnings=error with an 'always' override, threads, "
        "request/response fixtures, an addopts-free marker filter",
    ),
)


def by_name() -> dict[str, Project]:
    return {project.name: project for project in PROJECTS}

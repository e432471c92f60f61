"""pytest-django on a real PostgreSQL server (the private cluster of the ``postgres`` fixture),
with a named test database (``DATABASES["default"]["TEST"]["NAME"]``).

A plain run creates the test database, runs the tests in transactions (and one with
``transaction=True``, which flushes the tables) and drops the database at the end. On agents
each agent needs a test database of its own, as pytest-xdist's workers get (``_gw0`` ...):
sharing one, an agent would drop or flush the database another is using (issue 15 §1).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import Postgres, _postgres_bin
from ecosystem_helpers import (
    AGENT_MODES,
    Run,
    assert_same_outcomes,
    run_pytest,
    write_files,
)

PROJECT = {
    "pytest.ini": """
        [pytest]
        DJANGO_SETTINGS_MODULE = settings
        django_find_project = false
        pythonpath = .
    """,
    "settings.py": """
        import os

        SECRET_KEY = "ecosystem"
        INSTALLED_APPS = ["shop"]
        USE_TZ = True
        DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "ecosystem",
                "USER": os.environ["PGUSER"],
                "HOST": os.environ["PGHOST"],
                "PORT": os.environ["PGPORT"],
                "TEST": {"NAME": "test_ecosystem_named"},
            }
        }
    """,
    "shop/__init__.py": "",
    "shop/models.py": """
        from django.db import models


        class Item(models.Model):
            name = models.CharField(max_length=50)
            price = models.IntegerField(default=0)
    """,
    "test_shop.py": """
        import time

        import pytest
        from django.db import connection

        from shop.models import Item


        @pytest.mark.django_db
        @pytest.mark.parametrize("n", range(4))
        def test_create_in_transaction(n):
            Item.objects.bulk_create(Item(name=f"item{i}", price=i) for i in range(n + 1))
            time.sleep(0.2)
            assert Item.objects.count() == n + 1


        @pytest.mark.django_db(transaction=True)
        @pytest.mark.parametrize("n", range(2))
        def test_transactional(n):
            Item.objects.create(name="kept", price=n)
            time.sleep(0.2)
            assert Item.objects.filter(name="kept").count() == 1


        @pytest.mark.django_db
        def test_test_database_name():
            assert connection.settings_dict["NAME"].startswith("test_ecosystem_named")
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_database()")
                assert cursor.fetchone()[0] == connection.settings_dict["NAME"]


        @pytest.mark.django_db
        def test_num_queries(django_assert_num_queries):
            with django_assert_num_queries(1):
                list(Item.objects.all())


        def test_no_database_without_the_marker():
            with pytest.raises(RuntimeError, match="Database access not allowed"):
                Item.objects.count()


        def test_settings_fixture(settings):
            settings.USE_TZ = False
            from django.conf import settings as django_settings

            assert django_settings.USE_TZ is False


        @pytest.mark.django_db
        def test_fails():
            assert Item.objects.count() == 1
    """,
}


def databases(server: Postgres) -> set[str]:
    """The databases on the server, less the ones initdb makes."""
    bindir = _postgres_bin()
    assert bindir is not None
    listed = subprocess.run(
        [
            *(str(bindir / "psql"), "-h", server.host, "-p", str(server.port)),
            *("-U", server.user, "-d", "postgres", "-Atc", "SELECT datname FROM pg_database"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return set(listed.stdout.split()) - {"postgres", "template0", "template1"}


def _run(project: Path, server: Postgres, mode: str) -> Run:
    env = {"PGHOST": server.host, "PGPORT": str(server.port), "PGUSER": server.user}
    run = run_pytest(project, mode, env=env)
    # Every test database was dropped at the end, as in a plain run.
    assert databases(server) == set(), run.describe()
    return run


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("django"), PROJECT)


@pytest.fixture(scope="module")
def plain(project: Path, postgres: Postgres) -> Run:
    run = _run(project, postgres, "plain")
    assert run.summary == "1 failed, 10 passed", run.describe()
    return run


@pytest.mark.parametrize("mode", AGENT_MODES)
def test_django_postgres_same_as_plain(
    project: Path, postgres: Postgres, plain: Run, mode: str
) -> None:
    run = _run(project, postgres, mode)
    assert_same_outcomes(plain, run)

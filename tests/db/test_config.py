"""DatabaseConfig: production defaults, the environment, URL normalisation, secrecy of the
password, and the pool chosen for tests."""

import os

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import URL
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool

from db.connection.config import DatabaseConfig
from db.connection.database import Database

PASSWORD = "pa55-w0rd-xyz"
REMOTE = f"postgresql://bughive:{PASSWORD}@db.internal.example:5432/bughive"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the variables it sets itself (the suite may run with DATABASE_URL)."""
    for name in ("DATABASE_URL", "TESTING", "BUGHIVE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.upper().startswith("BUGHIVE_DB_")]:
        monkeypatch.delenv(name)


def config_from_env() -> DatabaseConfig:
    return DatabaseConfig(_env_file=None)


def test_pool_defaults_are_the_production_ones() -> None:
    config = config_from_env()
    assert config.pool_size == 5
    assert config.max_overflow == 10
    assert config.pool_timeout == 30
    assert config.pool_recycle == 3600
    assert config.pool_pre_ping is True
    assert config.echo is False
    assert config.testing is False


def test_without_database_url_no_url_is_configured() -> None:
    config = config_from_env()
    assert config.database_url is None
    assert config.url is None


def test_database_url_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:p@envhost:6543/envdb")
    url = config_from_env().url
    assert url is not None
    assert (url.host, url.port, url.database, url.username) == ("envhost", 6543, "envdb", "u")


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://u:p@h:5432/d",
        "postgres://u:p@h:5432/d",
        "postgresql+psycopg://u:p@h:5432/d",
        "postgresql+asyncpg://u:p@h:5432/d",
    ],
)
def test_postgres_urls_are_turned_into_asyncpg_urls(given: str) -> None:
    config = DatabaseConfig(_env_file=None, database_url=given)
    assert config.database_url is not None
    assert config.database_url.get_secret_value() == "postgresql+asyncpg://u:p@h:5432/d"
    assert config.url is not None
    assert config.url.drivername == "postgresql+asyncpg"


def test_postgres_url_from_the_environment_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@h/d")
    url = config_from_env().url
    assert url is not None
    assert url.drivername == "postgresql+asyncpg"


@pytest.mark.parametrize(
    "given",
    [f"mysql://bughive:{PASSWORD}@db.example/bughive", f"sqlite:///{PASSWORD}.db"],
    ids=["mysql", "sqlite"],
)
def test_non_postgres_url_is_refused_with_a_clear_message(given: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        DatabaseConfig(_env_file=None, database_url=given)
    assert "must be a PostgreSQL URL" in str(excinfo.value)


@pytest.mark.parametrize(
    "given",
    [f"mysql://bughive:{PASSWORD}@db.example/bughive", f"bughive:{PASSWORD}@db.example/bughive"],
    ids=["wrong-scheme", "no-scheme"],
)
def test_refused_url_does_not_show_its_password_in_the_error(given: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        DatabaseConfig(_env_file=None, database_url=given)
    assert PASSWORD not in str(excinfo.value)
    assert PASSWORD not in repr(excinfo.value)


def test_password_is_not_in_repr_or_str_of_the_config() -> None:
    config = DatabaseConfig(_env_file=None, database_url=REMOTE)
    assert PASSWORD not in repr(config)
    assert PASSWORD not in str(config)
    assert PASSWORD not in str(config.url)
    assert PASSWORD not in repr(config.url)


def test_safe_url_masks_the_password_and_keeps_the_rest() -> None:
    config = DatabaseConfig(_env_file=None, database_url=REMOTE)
    assert config.safe_url == "postgresql+asyncpg://bughive:***@db.internal.example:5432/bughive"


def test_password_is_not_in_repr_of_the_database() -> None:
    config = DatabaseConfig(_env_file=None, database_url=REMOTE)
    database = Database(config)  # creating the engine does not connect
    assert PASSWORD not in repr(database)
    assert "db.internal.example" in repr(database)


def test_testing_flag_selects_nullpool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTING", "1")
    monkeypatch.setenv("DATABASE_URL", REMOTE)
    config = config_from_env()
    assert config.testing is True
    assert isinstance(Database(config).engine.pool, NullPool)


def test_without_testing_flag_a_sized_queue_pool_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", REMOTE)
    pool = Database(config_from_env()).engine.pool
    assert isinstance(pool, AsyncAdaptedQueuePool)
    assert pool.size() == 5
    assert pool._max_overflow == 10
    assert pool._timeout == 30
    assert pool._recycle == 3600
    # pre-ping is db.connection.liveness's checkout check, not SQLAlchemy's three-round-trip ping
    assert pool._pre_ping is False
    assert config_from_env().pool_pre_ping_idle_seconds == 10.0


def test_explicit_url_wins_over_the_configured_one() -> None:
    config = DatabaseConfig(_env_file=None, database_url=REMOTE)
    url = URL.create("postgresql+asyncpg", host="/tmp/elsewhere", database="other")
    assert Database(config, url=url).url == url

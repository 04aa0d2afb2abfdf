"""Every statement the data layer sends is tied to the schema: prepared against the migrated
database, its parameters named after what they are assigned or compared to, the columns it
returns covering the model it is read into. A renamed column, a swapped pair of parameters or
a model field no statement returns fails here, whichever test happens to run the statement.

And every public repository method declares how it runs (db.connection.unit_of_work)."""

import inspect
import re

import asyncpg
import pytest

import db.repositories  # registers every statement
from db.repositories import BugRepository, CrawlSessionRepository, PageRepository
from db.repositories.bugs import FILE_BUG
from db.repositories.statements import FAMILIES, REGISTRY, Statement

# ``column = :parameter`` (and ``column = CAST(:parameter AS …)``), in SET lists and WHERE.
_COMPARED = re.compile(r"(\w+)\s*=\s*(?:CAST\(\s*)?:(\w+)")
_INSERT = re.compile(
    r"INSERT INTO (\w+)\s*\(([^)]*)\)\s*VALUES\s*\((.*?)\)\s*(?:ON|RETURNING|$)", re.S
)
_UPDATE = re.compile(r"UPDATE (\w+)(?: AS \w+)?\s+SET (.*?)\sWHERE", re.S)
# A parameter compared to an ``id`` column may name its entity: ``crawl.id = :session_id``.
_ID_PARAMETERS = {"session_id", "page_id", "bug_id"}


def every_statement() -> dict[str, Statement]:
    statements = dict(REGISTRY)
    statements.update({name: sample() for name, sample in FAMILIES.items()})
    return statements


def mismatches(statement: Statement) -> list[str]:
    """Where a parameter is not named after the column it is assigned or compared to."""
    found = []
    for column, parameter in _COMPARED.findall(statement.source):
        if column != parameter and not (column == "id" and parameter in _ID_PARAMETERS):
            found.append(f"{column} = :{parameter}")
    for table, columns, values in _INSERT.findall(statement.source):
        names = [c.strip() for c in columns.split(",")]
        given = [v.strip() for v in values.split(",")]
        for column, value in zip(names, given, strict=True):
            if value.startswith(":") and value[1:] != column:
                found.append(f"INSERT INTO {table} ({column}) VALUES ({value})")
    return found


@pytest.mark.parametrize("name", sorted(every_statement()))
async def test_the_statement_prepares_against_the_schema_with_its_named_parameters(
    raw: asyncpg.Connection, name: str
) -> None:
    statement = every_statement()[name]
    prepared = await raw.prepare(statement.sql)
    assert len(prepared.get_parameters()) == len(statement.parameter_names), statement.sql
    assert mismatches(statement) == []
    if statement.returns is not None:
        returned = {attribute.name for attribute in prepared.get_attributes()}
        missing = set(statement.returns.model_fields) - returned
        assert not missing, f"{name} does not return {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(every_statement()))
def test_every_update_moves_updated_at(name: str) -> None:
    """``updated_at`` is set by the statement that changes the row, in every one of them."""
    for table, assignments in _UPDATE.findall(every_statement()[name].source):
        assert "updated_at = now()" in assignments, f"{name}: UPDATE {table} SET {assignments}"


def test_swapped_parameters_fail_the_check() -> None:
    """The defect the check is for: two text columns given each other's values type-check,
    prepare, and store nonsense."""
    swapped = FILE_BUG.source.replace(
        ":expected_behavior, :actual_behavior", ":actual_behavior, :expected_behavior"
    )
    assert swapped != FILE_BUG.source
    found = mismatches(Statement("swapped", swapped, writes=True, register=False))
    assert found == [
        "INSERT INTO bugs (expected_behavior) VALUES (:actual_behavior)",
        "INSERT INTO bugs (actual_behavior) VALUES (:expected_behavior)",
    ]


async def test_a_renamed_column_fails_to_prepare(raw: asyncpg.Connection) -> None:
    renamed = FILE_BUG.sql.replace("expected_behavior,", "expected_behaviour,", 1)
    with pytest.raises(asyncpg.UndefinedColumnError):
        await raw.prepare(renamed)


def test_a_parameter_hidden_by_a_cast_is_refused_at_import() -> None:
    with pytest.raises(ValueError, match="CAST"):
        Statement("hidden", "SELECT :id::uuid", writes=False, register=False)


@pytest.mark.parametrize("repository", [CrawlSessionRepository, PageRepository, BugRepository])
def test_every_public_repository_method_declares_how_it_runs(repository: type) -> None:
    undeclared = [
        name
        for name, method in inspect.getmembers(repository, inspect.iscoroutinefunction)
        if not name.startswith("_") and "runs_as" not in method.__dict__
    ]
    assert undeclared == []


def test_the_registry_holds_the_statements_of_every_repository() -> None:
    """A statement built but not registered would escape the checks above."""
    modules = [
        db.repositories.sessions,
        db.repositories.bugs,
        db.repositories.frontier,
        db.repositories.discovery,
        db.repositories.page_reads,
    ]
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, Statement):
                assert REGISTRY.get(value.name) is value

"""A unit of work PostgreSQL rolled back for a conflict runs again (``Database.run``), so a
caller sees "conflict" only when it persists; any other failure is not retried."""

import uuid
from collections.abc import Awaitable, Callable

import anyio
import pytest

from db.connection.database import CONFLICT_ATTEMPTS, Database
from db.connection.unit_of_work import UnitOfWork
from db.errors import ConcurrentUpdate, InvalidArgument
from db.repositories import CrawlSessionRepository

RAISE_DEADLOCK = "DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '40P01'; END $$"
RAISE_SERIALIZATION = "DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '40001'; END $$"
TOUCH = "UPDATE crawl_sessions SET total_cost = total_cost + 1 WHERE id = :id"


async def two_sessions(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    async with db.session() as s:
        first = await CrawlSessionRepository(s).create_session("https://a.example")
        second = await CrawlSessionRepository(s).create_session("https://b.example")
    return first.id, second.id


async def test_a_real_deadlock_is_run_again_and_both_units_of_work_succeed(db: Database) -> None:
    first, second = await two_sessions(db)
    both_hold_their_first_row = anyio.Event()
    holding = 0
    tries = 0

    def locking(one: uuid.UUID, other: uuid.UUID) -> Callable[[UnitOfWork], Awaitable[None]]:
        async def work(uow: UnitOfWork) -> None:
            nonlocal holding, tries
            tries += 1
            await uow.execute(TOUCH, {"id": one})
            if not both_hold_their_first_row.is_set():  # only the first round collides
                holding += 1
                if holding == 2:
                    both_hold_their_first_row.set()
                await both_hold_their_first_row.wait()
            await uow.execute(TOUCH, {"id": other})

        return work

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(db.run, locking(first, second))
            group.start_soon(db.run, locking(second, first))

    assert tries == 3  # PostgreSQL rolled one back; it ran again and went through
    async with db.session() as s:
        costs = [
            (await CrawlSessionRepository(s).get(session)).total_cost for session in (first, second)
        ]
    assert costs == [2, 2]  # each unit of work counted once: the rolled-back try left nothing


@pytest.mark.parametrize("statement", [RAISE_DEADLOCK, RAISE_SERIALIZATION])
async def test_a_conflict_that_persists_is_reported_after_the_attempts(
    db: Database, statement: str
) -> None:
    first, _ = await two_sessions(db)
    tries = 0

    async def work(uow: UnitOfWork) -> None:
        nonlocal tries
        tries += 1
        await uow.execute(TOUCH, {"id": first})
        await uow.execute(statement)

    with pytest.raises(ConcurrentUpdate, match="nothing was changed, retry the call"):
        await db.run(work)

    assert tries == CONFLICT_ATTEMPTS
    async with db.session() as s:
        assert (await CrawlSessionRepository(s).get(first)).total_cost == 0


async def test_any_other_failure_is_not_run_again(db: Database) -> None:
    tries = 0

    async def work(uow: UnitOfWork) -> None:
        nonlocal tries
        tries += 1
        raise InvalidArgument("limit", "must be positive")

    with pytest.raises(InvalidArgument):
        await db.run(work)
    assert tries == 1

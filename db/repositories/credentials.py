"""Stored site credentials as a whole: the start-up check that the configured keys open them,
and key rotation. The cipher and the stored form are the rule in ``db.rules.secrets``; this
module is the part that reads and writes ``crawl_sessions``."""

import json

from db.connection.unit_of_work import UnitOfWork
from db.rules.secrets import (
    ENCRYPTED,
    KEY_SETTING,
    STORED_CREDENTIALS,
    CredentialCipher,
    CredentialsUnavailable,
)


async def check_stored_credentials(session: UnitOfWork, cipher: CredentialCipher | None) -> int:
    """At server start: fail fast (:class:`CredentialsUnavailable`) when sessions hold encrypted
    credentials but no key is configured, or when the configured keys cannot open the newest
    of them (a wrong or dropped key). Returns how many sessions hold credentials."""
    if await session.scalar("SELECT to_regclass('crawl_sessions')") is None:
        return 0  # a database not migrated yet (e.g. read-only mode on a new one) stores none
    if await session.scalar(f"SELECT to_regprocedure('{STORED_CREDENTIALS}')") is not None:
        # Every tenant's sessions, also for a role the tenant policies bind (revision 0006).
        stored, newest = (await session.execute(f"SELECT * FROM {STORED_CREDENTIALS}")).one()
    else:  # a database at a revision before 0006 (read-only mode does not migrate)
        tokens = (
            await session.execute(
                f"SELECT config->'credentials'->>'{ENCRYPTED}' AS token FROM crawl_sessions "
                f"WHERE config->'credentials'->>'{ENCRYPTED}' IS NOT NULL "
                "ORDER BY created_at DESC"
            )
        ).scalars()
        stored, newest = len(tokens), (tokens[0] if tokens else None)
    if not stored or newest is None:
        return 0
    if cipher is None:
        raise CredentialsUnavailable(
            f"{stored} crawl session(s) hold encrypted site credentials but {KEY_SETTING} "
            "is not set: set it to the key(s) they were encrypted with"
        )
    cipher.decrypt(newest)
    return int(stored)


async def rotate(session: UnitOfWork, cipher: CredentialCipher) -> int:
    """Re-encrypt every stored password under the first key (idempotent); returns how many.
    Also encrypts passwords stored in clear text by a version before encryption at rest."""
    rows = await session.execute(
        f"SELECT id, config FROM crawl_sessions WHERE config->'credentials'->'{ENCRYPTED}' "
        "IS NOT NULL OR config->'credentials'->'password' IS NOT NULL FOR UPDATE"
    )
    changed = 0
    for row in rows:
        config = dict(row.config)
        stored = dict(config["credentials"])
        if ENCRYPTED in stored:
            token = cipher.rotate(stored[ENCRYPTED])
        else:
            token = cipher.encrypt(str(stored.pop("password")))
        config["credentials"] = {**stored, ENCRYPTED: token}
        await session.execute(
            "UPDATE crawl_sessions SET config = CAST(:config AS jsonb), updated_at = now() "
            "WHERE id = :id",
            {"config": json.dumps(config), "id": row.id},
        )
        changed += 1
    return changed

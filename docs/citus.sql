-- BugHive on Citus: every crawl session, with its pages, bugs and bug occurrences, on one shard.
--
-- Run on the Citus coordinator, on a database that `bughive-mcp migrate` brought to the newest
-- revision (empty or not: create_distributed_table copies existing rows to the shards):
--
--     psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f docs/citus.sql
--
-- The distribution column is the session: crawl_sessions.id, and session_id everywhere else;
-- the four tables are co-located, so a session's rows live in shards of one worker and every
-- query or transaction about one session runs there alone. Citus requires the distribution
-- column in every primary key, every unique constraint and both sides of every foreign key
-- between distributed tables: the keys below gain session_id. None of them changes what is
-- unique (an id already determines its session). See docs/scaling.md, "Past one PostgreSQL".
-- tests/db/test_citus_layout.py applies this file to plain PostgreSQL (with stand-ins for the
-- two Citus functions) and checks it against the models.

-- 1. Foreign keys that point at the primary keys about to change.
ALTER TABLE bug_occurrences DROP CONSTRAINT fk_bug_occurrences_bug_id_bugs;
ALTER TABLE bug_occurrences DROP CONSTRAINT fk_bug_occurrences_page_id_pages;
ALTER TABLE bugs DROP CONSTRAINT fk_bugs_page_id_pages;
ALTER TABLE pages DROP CONSTRAINT fk_pages_parent_page_id_pages;

-- 2. Primary keys and unique indexes, each with the distribution column.
ALTER TABLE pages DROP CONSTRAINT pk_pages;
ALTER TABLE pages ADD CONSTRAINT pk_pages PRIMARY KEY (session_id, id);
ALTER TABLE bugs DROP CONSTRAINT pk_bugs;
ALTER TABLE bugs ADD CONSTRAINT pk_bugs PRIMARY KEY (session_id, id);
ALTER TABLE bug_occurrences DROP CONSTRAINT pk_bug_occurrences;
ALTER TABLE bug_occurrences ADD CONSTRAINT pk_bug_occurrences PRIMARY KEY (session_id, id);
-- uq_pages_url_session_id (url, session_id) and uq_bugs_session_id_fingerprint
-- (session_id, fingerprint) already include it.
DROP INDEX uq_bug_occurrences_bug_id_page_id;
CREATE UNIQUE INDEX uq_bug_occurrences_session_id_bug_id_page_id
    ON bug_occurrences (session_id, bug_id, page_id);
-- A retried create_session with the same idempotency key: the one unique rule that cannot
-- include the session (it exists to find the session). On Citus the server must derive the
-- session id from (tenant, idempotency_key) instead — a name-based UUID — so the primary key
-- enforces it; until then the index stays, not unique, for the lookup.
DROP INDEX uq_crawl_sessions_tenant_idempotency_key;
CREATE INDEX ix_crawl_sessions_tenant_idempotency_key ON crawl_sessions (tenant, idempotency_key);

-- 3. Foreign keys between co-located tables: session_id on both sides.
ALTER TABLE pages ADD CONSTRAINT fk_pages_parent_page_id_pages
    FOREIGN KEY (session_id, parent_page_id) REFERENCES pages (session_id, id)
    ON DELETE SET NULL (parent_page_id);  -- PostgreSQL 15+: keep session_id, clear the parent
ALTER TABLE bugs ADD CONSTRAINT fk_bugs_page_id_pages
    FOREIGN KEY (session_id, page_id) REFERENCES pages (session_id, id) ON DELETE CASCADE;
ALTER TABLE bug_occurrences ADD CONSTRAINT fk_bug_occurrences_bug_id_bugs
    FOREIGN KEY (session_id, bug_id) REFERENCES bugs (session_id, id) ON DELETE CASCADE;
ALTER TABLE bug_occurrences ADD CONSTRAINT fk_bug_occurrences_page_id_pages
    FOREIGN KEY (session_id, page_id) REFERENCES pages (session_id, id) ON DELETE CASCADE;
-- fk_pages_session_id_crawl_sessions, fk_bugs_session_id_crawl_sessions and
-- fk_bug_occurrences_session_id_crawl_sessions already join session_id to crawl_sessions.id.

-- 4. Distribute, parents first, all co-located with crawl_sessions.
SELECT create_distributed_table('crawl_sessions', 'id');
SELECT create_distributed_table('pages', 'session_id', colocate_with => 'crawl_sessions');
SELECT create_distributed_table('bugs', 'session_id', colocate_with => 'crawl_sessions');
SELECT create_distributed_table('bug_occurrences', 'session_id', colocate_with => 'crawl_sessions');

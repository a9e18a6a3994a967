-- Intents of changes: an audit record is written with outcome 'unknown' before a change reaches
-- Zoom, and completed afterwards. SQLite cannot alter a CHECK constraint, so the table is rebuilt.

CREATE TABLE audit_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    caller      TEXT   NOT NULL,
    operation   TEXT   NOT NULL,
    account     TEXT,
    zoom_user   TEXT,
    meeting_id  BIGINT,
    outcome     TEXT   NOT NULL CHECK (outcome IN ('allowed', 'denied', 'failed', 'unknown')),
    detail      TEXT
);
INSERT INTO audit_new (id, at, caller, operation, account, zoom_user, meeting_id, outcome, detail)
    SELECT id, at, caller, operation, account, zoom_user, meeting_id, outcome, detail FROM audit;
-- Ids are never reused: the new table continues the old one's AUTOINCREMENT sequence, which may
-- be above the highest id left.
DELETE FROM sqlite_sequence WHERE name = 'audit_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'audit_new', seq FROM sqlite_sequence WHERE name = 'audit';
DROP TABLE audit;
ALTER TABLE audit_new RENAME TO audit;

CREATE INDEX audit_at ON audit (at, id);
CREATE INDEX audit_caller_at ON audit (caller, at, id);
CREATE INDEX audit_meeting_at ON audit (meeting_id, at, id);

-- One row, rewritten by the write check that start-up and readiness run.
CREATE TABLE write_check (
    id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    at  BIGINT  NOT NULL
);

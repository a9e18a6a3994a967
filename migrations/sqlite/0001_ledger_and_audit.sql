-- Meeting ledger and audit log.
-- Portable on purpose: BIGINT ids, TEXT, timestamps as BIGINT unix milliseconds (UTC). The only
-- SQLite-specific line is the audit id column; PostgreSQL uses BIGINT GENERATED ALWAYS AS IDENTITY.

-- Which gateway account owns a meeting, so later requests skip probing Zoom accounts.
CREATE TABLE meetings (
    meeting_id  BIGINT NOT NULL PRIMARY KEY,
    account     TEXT   NOT NULL,
    host_id     TEXT   NOT NULL,
    host_email  TEXT   NOT NULL,
    created_by  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Append-only record of every decision and its outcome. `zoom_user` avoids PostgreSQL's reserved `user`.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    caller      TEXT   NOT NULL,
    operation   TEXT   NOT NULL,
    account     TEXT,
    zoom_user   TEXT,
    meeting_id  BIGINT,
    outcome     TEXT   NOT NULL CHECK (outcome IN ('allowed', 'denied', 'failed')),
    detail      TEXT
);

-- Every query reads newest first (at DESC, id DESC); the filtered ones narrow by caller or meeting.
CREATE INDEX audit_at ON audit (at, id);
CREATE INDEX audit_caller_at ON audit (caller, at, id);
CREATE INDEX audit_meeting_at ON audit (meeting_id, at, id);

-- The whole store for PostgreSQL, as the SQLite migrations 0001-0006 leave it: the same tables and
-- columns (timestamps as BIGINT unix milliseconds, UTC), so both backends read rows alike.

-- Which gateway account owns a meeting.
CREATE TABLE meetings (
    meeting_id  BIGINT NOT NULL PRIMARY KEY,
    account     TEXT   NOT NULL,
    host_id     TEXT   NOT NULL,
    host_email  TEXT   NOT NULL,
    created_by  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Every decision and its outcome; 'unknown' while a change's intent waits for its outcome.
CREATE TABLE audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    caller      TEXT   NOT NULL,
    operation   TEXT   NOT NULL,
    account     TEXT,
    zoom_user   TEXT,
    meeting_id  BIGINT,
    outcome     TEXT   NOT NULL CHECK (outcome IN ('allowed', 'denied', 'failed', 'unknown')),
    detail      TEXT
);
CREATE INDEX audit_at ON audit (at, id);
CREATE INDEX audit_caller_at ON audit (caller, at, id);
CREATE INDEX audit_meeting_at ON audit (meeting_id, at, id);

-- One row, rewritten by the write check that start-up and readiness run.
CREATE TABLE write_check (
    id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    at  BIGINT  NOT NULL
);

-- Route overrides set through the Admin API.
CREATE TABLE user_routes (
    email    TEXT    NOT NULL PRIMARY KEY,
    account  TEXT    NOT NULL,
    set_by   TEXT    NOT NULL,
    set_at   BIGINT  NOT NULL,
    forced   BOOLEAN NOT NULL
);

-- Zoom's user directory as the last sync read it.
CREATE TABLE directory (
    email      TEXT   NOT NULL,
    account    TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    synced_at  BIGINT NOT NULL,
    PRIMARY KEY (email, account)
);
CREATE INDEX directory_account ON directory (account);

-- Each host user's creates and updates on one Zoom day.
CREATE TABLE user_calls (
    account  TEXT   NOT NULL,
    user_key TEXT   NOT NULL,
    day      BIGINT NOT NULL,
    calls    BIGINT NOT NULL,
    PRIMARY KEY (account, user_key)
);

-- Creates sent with a request_id: `running`, `unknown` or `done`.
CREATE TABLE create_requests (
    caller      TEXT   NOT NULL,
    request_id  TEXT   NOT NULL,
    body_sha256 TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    account     TEXT,
    meeting_id  BIGINT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (caller, request_id)
);
CREATE INDEX create_requests_created_at ON create_requests (created_at);

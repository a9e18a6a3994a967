-- Creates sent with a request_id (AIP-155): the same id from the same caller must not create a
-- second meeting, even after a restart. `state` is `running` while the create is in flight,
-- `unknown` when it ended without knowing whether Zoom applied it, `done` with the meeting.
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

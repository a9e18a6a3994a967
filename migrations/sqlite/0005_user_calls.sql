-- Zoom allows each host user 100 meeting creates and updates per UTC day. The count of the day
-- lives here so that a restart does not hand out a second hundred. One row per user: a new
-- day overwrites the old one.
CREATE TABLE user_calls (
    account  TEXT    NOT NULL,
    user_key TEXT    NOT NULL,
    day      BIGINT  NOT NULL,
    calls    INTEGER NOT NULL,
    PRIMARY KEY (account, user_key)
);

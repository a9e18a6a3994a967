-- Zoom's user directory as the last sync read it: which account each user is in. A user in two
-- accounts has two rows (a conflict the sync reports).
CREATE TABLE directory (
    email      TEXT   NOT NULL,
    account    TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    synced_at  BIGINT NOT NULL,
    PRIMARY KEY (email, account)
);
CREATE INDEX directory_account ON directory (account);

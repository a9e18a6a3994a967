-- Route overrides set through the Admin API: a user (by lowercased email) goes to this account,
-- whatever the config rules say.
CREATE TABLE user_routes (
    email    TEXT    NOT NULL PRIMARY KEY,
    account  TEXT    NOT NULL,
    set_by   TEXT    NOT NULL,
    set_at   BIGINT  NOT NULL,
    -- Put without checking that the user exists in the account.
    forced   INTEGER NOT NULL CHECK (forced IN (0, 1))
);

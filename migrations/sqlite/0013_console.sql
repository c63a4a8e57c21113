-- The web console: passwords and disabling on users, browser sessions, failed logins.

-- argon2id PHC string; NULL: the user has no password (API tokens only).
ALTER TABLE users ADD COLUMN password_hash TEXT;
-- When set, the user can no longer log in and their sessions and tokens are ended.
ALTER TABLE users ADD COLUMN disabled_at TEXT;

-- A logged-in browser. The cookie carries a random secret; only its SHA-256 is stored.
CREATE TABLE web_sessions (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    csrf        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    ended_at    TEXT
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);

-- Failed logins by the name tried (also names that do not exist), for slowing down guessing.
CREATE TABLE login_failures (
    id         INTEGER PRIMARY KEY,
    user_name  TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX login_failures_name_at ON login_failures (user_name, at);

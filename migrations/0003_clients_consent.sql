-- Client settings for the admin area and configuration as code, and remembered consent.

ALTER TABLE clients ADD COLUMN require_pkce INTEGER NOT NULL DEFAULT 0;
-- 1: ask people to consent on their first authorization (and when the scopes grow).
ALTER TABLE clients ADD COLUMN ask_consent INTEGER NOT NULL DEFAULT 0;
-- Where the landing page sends people to use the app; NULL: not listed there.
ALTER TABLE clients ADD COLUMN launch_url TEXT;
-- Token lifetimes in seconds; NULL: the defaults.
ALTER TABLE clients ADD COLUMN access_token_ttl INTEGER;
ALTER TABLE clients ADD COLUMN refresh_token_ttl INTEGER;

CREATE TABLE consents (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,                  -- the scopes consented to, space-separated
    granted_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Group rows keep their id when renamed; clients reference groups by id.
CREATE INDEX audit_events_by_event ON audit_events(event, id);

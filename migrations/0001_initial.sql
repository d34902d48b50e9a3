-- Latchkey schema, version 1.
-- Times are Unix seconds (UTC). Secrets (session ids, link tokens, codes, access and
-- refresh tokens) are stored only as hex SHA-256 hashes; client secrets as argon2id PHC.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,            -- opaque, stable: the `sub` claim
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    email         TEXT,
    email_verified INTEGER NOT NULL DEFAULT 0,  -- 1: set by an administrator
    given_name    TEXT,
    family_name   TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE groups (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    declared    INTEGER NOT NULL DEFAULT 0,    -- 1: comes from the config file
    created_at  INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id  INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id   TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_by_user ON group_members(user_id);

CREATE TABLE clients (
    client_id                  TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    secret_hash                TEXT,              -- argon2id PHC; NULL for public clients
    public                     INTEGER NOT NULL DEFAULT 0,
    redirect_uris              TEXT NOT NULL,     -- JSON array of exact strings
    post_logout_redirect_uris  TEXT NOT NULL DEFAULT '[]',
    declared                   INTEGER NOT NULL DEFAULT 0,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
);

CREATE TABLE client_allowed_groups (
    client_id  TEXT    NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    group_id   INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (client_id, group_id)
);

CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    auth_time     INTEGER NOT NULL,
    amr           TEXT NOT NULL,                 -- JSON array (RFC 8176)
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    ip            TEXT,
    user_agent    TEXT
);
CREATE INDEX sessions_by_user ON sessions(user_id);

-- One-time links: `login` links for a user, and the first-run `setup` link (no user).
CREATE TABLE login_links (
    token_hash  TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL CHECK (purpose IN ('login', 'setup')),
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);

-- An authorization request waiting for the person to sign in.
CREATE TABLE pending_authorizations (
    id_hash     TEXT PRIMARY KEY,
    params      TEXT NOT NULL,                   -- JSON object of the request's parameters
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- A grant ties together what one authorization produced: its code, and every access and
-- refresh token descended from it. Revoking the grant revokes them all.
CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    auth_time   INTEGER NOT NULL,
    amr         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX grants_by_user ON grants(user_id);

CREATE TABLE authorization_codes (
    code_hash       TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    redirect_uri    TEXT NOT NULL,
    nonce           TEXT,
    code_challenge  TEXT,                        -- S256 only
    session_hash    TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
);

CREATE TABLE access_tokens (
    token_hash  TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX access_tokens_by_grant ON access_tokens(grant_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens(grant_id);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,               -- RFC 7638 thumbprint
    alg          TEXT NOT NULL,
    private_jwk  TEXT NOT NULL,
    public_jwk   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    retired_at   INTEGER                         -- no longer signs; published until tokens expire
);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    event       TEXT NOT NULL,
    user_id     TEXT,
    username    TEXT,
    client_id   TEXT,
    ip          TEXT,
    user_agent  TEXT,
    detail      TEXT
);
CREATE INDEX audit_events_by_time ON audit_events(at);

-- Small facts about this installation, such as the issuer `serve` last published.
CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- Passkeys (WebAuthn credentials) and the server-side state of WebAuthn ceremonies.

CREATE TABLE passkeys (
    id             INTEGER PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id  TEXT NOT NULL UNIQUE,         -- base64url, as the browser reports it
    name           TEXT NOT NULL,
    aaguid         TEXT,
    passkey        TEXT NOT NULL,                -- webauthn-rs `Passkey` as JSON
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER
);
CREATE INDEX passkeys_by_user ON passkeys(user_id);

-- A ceremony's state lives here, never in a cookie: single use, short-lived.
CREATE TABLE webauthn_ceremonies (
    id_hash     TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('register', 'authenticate', 'setup')),
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    state       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

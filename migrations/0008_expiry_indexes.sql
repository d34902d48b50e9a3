-- What expires is found by its expiry: the purge at start and every hour reads only what it
-- deletes, instead of every token, code and session (a full scan of a million tokens made a
-- start take over 100 ms).
CREATE INDEX access_tokens_by_expiry ON access_tokens(expires_at);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens(expires_at);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes(expires_at);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);
CREATE INDEX pending_authorizations_by_expiry ON pending_authorizations(expires_at);
CREATE INDEX login_links_by_expiry ON login_links(expires_at);

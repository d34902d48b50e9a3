-- The algorithm a client's ID tokens are signed with (OIDC Dynamic Client Registration §2):
-- RS256, ES256 or EdDSA. Every existing client keeps RS256. Each algorithm's signing key is
-- created at the next start.
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT 'RS256';

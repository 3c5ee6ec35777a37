-- Scoped API tokens (worker/tokens.ts, core/tokens.ts): each stored by the SHA-256 of the token,
-- never the token. API_TOKEN, the bootstrap admin token, is a secret and not a row.
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  scope TEXT NOT NULL CHECK (scope IN ('read', 'submit', 'admin')),
  token_hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER
);

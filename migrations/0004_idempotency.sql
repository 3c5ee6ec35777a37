-- Submissions made with an Idempotency-Key (POST /api/dags, worker/idempotency.ts): for a day, the
-- same key from the same token answers with the run it made, if it came with the same body (its
-- sha256); the retention sweep deletes older keys, and deleting a run deletes its keys.
CREATE TABLE idempotency_keys (
  token TEXT NOT NULL,
  key TEXT NOT NULL,
  body_sha256 TEXT NOT NULL,
  run TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (token, key)
);
CREATE INDEX idempotency_keys_run ON idempotency_keys (run);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

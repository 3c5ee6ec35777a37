-- The coordinator's D1 schema as worker/db.ts created it at request time before migrations
-- existed. IF NOT EXISTS, so that a database made that way (which also got cache.device on first
-- use) takes this migration as a no-op, and the later ones as any database does.

-- The index of recent runs (GET /api/dags, /metrics), kept current by each run's object.
CREATE TABLE IF NOT EXISTS run_index (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  status TEXT NOT NULL,
  tasks INTEGER NOT NULL,
  counts TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER,
  metrics TEXT
);
CREATE INDEX IF NOT EXISTS run_index_created ON run_index (created_at DESC);

-- Module names pinned to sha256 (the bytes are in R2).
CREATE TABLE IF NOT EXISTS modules (
  name TEXT PRIMARY KEY,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  uploaded_at INTEGER NOT NULL
);

-- Blobs the operator uploaded for runs' inputs, so that a submission checks thousands at once.
CREATE TABLE IF NOT EXISTS input_blobs (
  sha256 TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  uploaded_at INTEGER NOT NULL
);

-- The result cache: cache key -> output, inline or in R2.
CREATE TABLE IF NOT EXISTS cache (
  key TEXT PRIMARY KEY,
  output BLOB,
  output_sha TEXT,
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  -- the device that produced the output: an entry of none is never served
  device TEXT
);

-- Enrollments and enrolled devices (worker/devices.ts), by hashes of their tokens and credentials.
CREATE TABLE IF NOT EXISTS enrollments (
  id TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  labels TEXT NOT NULL,
  trusted INTEGER NOT NULL,
  uses INTEGER NOT NULL,
  used INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  labels TEXT NOT NULL,
  trusted INTEGER NOT NULL,
  enrollment TEXT,
  enrolled_at INTEGER NOT NULL,
  last_seen INTEGER,
  revoked_at INTEGER
);

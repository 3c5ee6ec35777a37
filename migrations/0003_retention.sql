-- What the retention sweep reads (worker/retention.ts), so that it needs to visit no run:
-- every blob uploaded to R2's outputs/ (task outputs, the files of runs' inputs) since this
-- migration, with when it last arrived and since when a sweep found nothing holding it (it is
-- deleted at a later sweep only if that is still so), and which runs hold which of them (outputs they accepted, files of their inputs,
-- outputs they reused from the cache or from the run they retry).
CREATE TABLE blobs (
  sha256 TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  uploaded_at INTEGER NOT NULL,
  doomed_at INTEGER
);
CREATE TABLE blob_refs (
  sha256 TEXT NOT NULL,
  run TEXT NOT NULL,
  PRIMARY KEY (sha256, run)
);
CREATE INDEX blob_refs_run ON blob_refs (run);
CREATE INDEX cache_output_sha ON cache (output_sha);
CREATE INDEX cache_created ON cache (created_at);

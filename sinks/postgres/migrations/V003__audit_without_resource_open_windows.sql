-- V003: rows the sink could not write before.
-- An audit event of a refused or invalid request names no resource (the gateway sends an empty
-- resource_id): every audit event is kept, with resource_id null when it has none.
ALTER TABLE audit ALTER COLUMN resource_id DROP NOT NULL;
UPDATE audit SET resource_id = NULL WHERE resource_id = '';

-- A traffic conflict whose window is still open has no end: window_end is null (never a sentinel time).
ALTER TABLE conflicts ALTER COLUMN window_end DROP NOT NULL;

-- Failures anyone can cause (wrong client secrets, unknown links) are counted on one row per
-- address, event and reason a minute instead of one row each.
ALTER TABLE audit_events ADD COLUMN repeats INTEGER NOT NULL DEFAULT 1;

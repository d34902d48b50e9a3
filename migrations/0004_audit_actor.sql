-- Who made a change, when it is not the person it concerns: an administrator's username,
-- "command line", or "config file".
ALTER TABLE audit_events ADD COLUMN actor TEXT;

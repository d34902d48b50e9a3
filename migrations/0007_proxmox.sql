-- Proxmox targets: a client's Proxmox VE or Backup Server, whose @realm users, groups and
-- ACL entries Latchkey keeps in step with its groups (see src/proxmox/).
CREATE TABLE proxmox_targets (
    client_id     TEXT PRIMARY KEY REFERENCES clients(client_id) ON DELETE CASCADE,
    product       TEXT NOT NULL CHECK (product IN ('pbs', 'pve')),
    api_url       TEXT NOT NULL,
    token_id      TEXT NOT NULL,
    token_secret  TEXT NOT NULL,                 -- never shown again, never logged
    trust         TEXT NOT NULL CHECK (trust IN ('fingerprint', 'ca', 'system')),
    trust_value   TEXT,                          -- the fingerprint, or the CA certificate (PEM)
    realm         TEXT NOT NULL,
    leavers       TEXT NOT NULL CHECK (leavers IN ('disable', 'delete')),
    manage_realm  INTEGER NOT NULL DEFAULT 0,
    declared      INTEGER NOT NULL DEFAULT 0,    -- 1: comes from the config file
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Members of a group get a role at a path. A group that a rule names cannot be removed.
CREATE TABLE proxmox_rules (
    client_id  TEXT    NOT NULL REFERENCES proxmox_targets(client_id) ON DELETE CASCADE,
    group_id   INTEGER NOT NULL REFERENCES groups(id),
    role       TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    propagate  INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (client_id, group_id, role, path)
);

-- The sync queue and each target's status. `due_at` is when a sync should run next (NULL:
-- nothing pending; 0: as soon as possible); `generation` counts the changes asked for, so
-- that a run clears only what it saw. `realm_secret` is a new client secret not yet written
-- into a managed realm: kept until it is delivered, then dropped.
CREATE TABLE proxmox_sync (
    client_id        TEXT PRIMARY KEY REFERENCES proxmox_targets(client_id) ON DELETE CASCADE,
    due_at           INTEGER,
    generation       INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    realm_secret     TEXT,
    last_run_at      INTEGER,
    last_success_at  INTEGER,
    last_error       TEXT,
    last_error_at    INTEGER,
    last_applied     INTEGER
);

-- Every change that can alter what a Proxmox server should hold asks every target for a sync:
-- memberships, people (names, emails, enabled, removed), group names, rules and targets. Kept
-- here so that no path (admin page, CLI in another process, config file) can forget it.
CREATE TRIGGER proxmox_sync_on_member_added AFTER INSERT ON group_members
BEGIN UPDATE proxmox_sync SET due_at = 0, generation = generation + 1; END;
CREATE TRIGGER proxmox_sync_on_member_removed AFTER DELETE ON group_members
BEGIN UPDATE proxmox_sync SET due_at = 0, generation = generation + 1; END;
CREATE TRIGGER proxmox_sync_on_user_changed
AFTER UPDATE OF username, display_name, email, given_name, family_name, disabled ON users
BEGIN UPDATE proxmox_sync SET due_at = 0, generation = generation + 1; END;
CREATE TRIGGER proxmox_sync_on_user_removed AFTER DELETE ON users
BEGIN UPDATE proxmox_sync SET due_at = 0, generation = generation + 1; END;
CREATE TRIGGER proxmox_sync_on_group_renamed AFTER UPDATE OF name ON groups
BEGIN UPDATE proxmox_sync SET due_at = 0, generation = generation + 1; END;
CREATE TRIGGER proxmox_sync_on_rule_added AFTER INSERT ON proxmox_rules
BEGIN UPDATE proxmox_sync SET due_at = 0, generation = generation + 1
      WHERE client_id = NEW.client_id; END;
CREATE TRIGGER proxmox_sync_on_rule_removed AFTER DELETE ON proxmox_rules
BEGIN UPDATE proxmox_sync SET due_at = 0, generation = generation + 1
      WHERE client_id = OLD.client_id; END;
CREATE TRIGGER proxmox_sync_on_target_added AFTER INSERT ON proxmox_targets
BEGIN INSERT INTO proxmox_sync (client_id, due_at, generation) VALUES (NEW.client_id, 0, 1);
END;
CREATE TRIGGER proxmox_sync_on_target_changed AFTER UPDATE ON proxmox_targets
BEGIN UPDATE proxmox_sync SET due_at = 0, generation = generation + 1, attempts = 0
      WHERE client_id = NEW.client_id; END;

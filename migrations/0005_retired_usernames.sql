-- Usernames once held by someone who was deleted or renamed. Apps such as Proxmox key their
-- accounts on the username, so a newcomer with such a name would inherit the old account:
-- it is given again only when an administrator says so. `user_id` is who held it (their
-- `sub`), kept without a reference since they may be gone.
CREATE TABLE retired_usernames (
    username    TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    retired_at  INTEGER NOT NULL
);

-- Names given up before this table existed, as far as the audit log remembers them.
INSERT OR IGNORE INTO retired_usernames (username, user_id, retired_at)
    SELECT username, user_id, MAX(at) FROM audit_events
    WHERE event = 'user.removed' AND username IS NOT NULL AND user_id IS NOT NULL
      AND username NOT IN (SELECT username FROM users)
    GROUP BY username;
INSERT OR IGNORE INTO retired_usernames (username, user_id, retired_at)
    SELECT substr(detail, 5), user_id, MAX(at) FROM audit_events
    WHERE event = 'user.renamed' AND detail LIKE 'was %' AND user_id IS NOT NULL
      AND substr(detail, 5) NOT IN (SELECT username FROM users)
    GROUP BY substr(detail, 5);

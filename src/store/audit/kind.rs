//! What an audit event records: one kind per action, stored as its name in
//! `audit_events.event`.

use std::str::FromStr;

/// Declares `EventKind` from one table of variants and the names they are stored and shown as,
/// so that the enum, its names and `EventKind::ALL` cannot drift apart.
macro_rules! event_kinds {
    ($($kind:ident => $name:literal,)+) => {
        /// The kind of an audit event.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($kind,)+
        }

        impl EventKind {
            /// Every kind, in the order declared.
            pub const ALL: &[EventKind] = &[$(EventKind::$kind,)+];

            /// The name stored in the log and shown in it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$kind => $name,)+
                }
            }
        }
    };
}

event_kinds! {
    AuthorizationDenied => "authorization.denied",
    AuthorizationGranted => "authorization.granted",
    ClientAuthFailed => "client.auth_failed",
    ClientCreated => "client.created",
    ClientDeclared => "client.declared",
    ClientRemoved => "client.removed",
    ClientSecretRotated => "client.secret_rotated",
    ClientUndeclared => "client.undeclared",
    ClientUpdated => "client.updated",
    CodeReplayed => "code.replayed",
    ConsentDenied => "consent.denied",
    ConsentGranted => "consent.granted",
    ConsentRevoked => "consent.revoked",
    GroupCreated => "group.created",
    GroupDeclared => "group.declared",
    GroupMemberAdded => "group.member_added",
    GroupMemberRemoved => "group.member_removed",
    GroupRemoved => "group.removed",
    GroupRenamed => "group.renamed",
    KeysRotated => "keys.rotated",
    LoginLinkIssued => "login_link.issued",
    PasskeyAdded => "passkey.added",
    PasskeyCounterRegression => "passkey.counter_regression",
    PasskeyRemoved => "passkey.removed",
    PasskeyRenamed => "passkey.renamed",
    PasskeyUsed => "passkey.used",
    ProxmoxApplied => "proxmox.applied",
    ProxmoxRuleAdded => "proxmox.rule_added",
    ProxmoxRuleRemoved => "proxmox.rule_removed",
    ProxmoxSyncFailed => "proxmox.sync_failed",
    ProxmoxSyncRequested => "proxmox.sync_requested",
    ProxmoxTargetSet => "proxmox.target_set",
    ProxmoxTargetUndeclared => "proxmox.target_undeclared",
    ProxmoxTargetUnset => "proxmox.target_unset",
    RefreshReplayed => "refresh.replayed",
    SessionRevoked => "session.revoked",
    SetupCompleted => "setup.completed",
    Signin => "signin",
    SigninFailed => "signin.failed",
    Signout => "signout",
    TokenIssued => "token.issued",
    TokenRevoked => "token.revoked",
    UserAdminGranted => "user.admin_granted",
    UserAdminRevoked => "user.admin_revoked",
    UserCreated => "user.created",
    UserDisabled => "user.disabled",
    UserEnabled => "user.enabled",
    UserProfileChanged => "user.profile_changed",
    UserRemoved => "user.removed",
    UserRenamed => "user.renamed",
    UserUpdated => "user.updated",
}

/// A name that no kind of event is recorded under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no audit event is called {0:?}")]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    /// The kind stored under exactly `name`.
    fn from_str(name: &str) -> Result<EventKind, UnknownEventKind> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownEventKind(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for &kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse(), Ok(kind), "{kind:?}");
        }
    }

    #[test]
    fn names_are_unique() {
        let names: HashSet<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
    }

    #[test]
    fn only_an_exact_name_parses() {
        for name in ["", "Signin", "signin ", "signin.", "user", "old.event"] {
            assert_eq!(
                name.parse::<EventKind>(),
                Err(UnknownEventKind(name.to_string())),
                "{name:?}"
            );
        }
    }
}

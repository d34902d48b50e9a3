//! Running syncs: loading a target's inputs from the store, one run with its status and audit
//! events recorded, the queue worker of a running server, and the periodic repair of drift.
//!
//! A Proxmox server that is down or refuses never blocks anything else: runs happen on their
//! own task, and failures are kept as the target's status and retried with backoff.

use std::time::Duration;

use super::plan::Person;
use super::sync::{self, Inputs, Report, SyncError};
use super::target::{Rule, Target};
use crate::clock::{self, UnixTime};
use crate::names::ClientId;
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::proxmox::{self as stored, Finished};
use crate::store::{Store, StoreError, users};

/// Why a run did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("client {0:?} has no Proxmox target")]
    NoTarget(String),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the sync task stopped: {0}")]
    Task(String),
}

/// What a run needs from the store.
struct Loaded {
    target: Target,
    rules: Vec<Rule>,
    people: Vec<Person>,
    realm_secret: Option<String>,
    generation: i64,
}

/// Every person, with their groups, in one statement.
fn people(conn: &crate::store::Db) -> Result<Vec<Person>, StoreError> {
    Ok(users::list_with_groups(conn)?
        .into_iter()
        .map(|(user, groups)| Person {
            groups,
            username: user.username.to_string(),
            display_name: user.display_name,
            given_name: user.given_name,
            family_name: user.family_name,
            email: user.email,
            enabled: !user.disabled,
        })
        .collect())
}

fn load(conn: &crate::store::Db, client_id: &ClientId) -> Result<Loaded, RunError> {
    let target = stored::target(conn, client_id)?
        .ok_or_else(|| RunError::NoTarget(client_id.to_string()))?
        .target;
    let status = stored::status(conn, client_id)?.unwrap_or_default();
    Ok(Loaded {
        rules: stored::rules(conn, client_id)?,
        people: people(conn)?,
        realm_secret: stored::realm_secret(conn, client_id)?,
        generation: status.generation,
        target,
    })
}

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RunError> + Send + 'static,
) -> Result<T, RunError> {
    actix_web::rt::task::spawn_blocking(work)
        .await
        .map_err(|e| RunError::Task(e.to_string()))?
}

/// How long to wait before retrying after `attempts` failures in a row: 30 s, doubling, at
/// most 10 minutes.
pub fn backoff_secs(attempts: i64) -> i64 {
    30_i64.saturating_mul(1 << attempts.clamp(0, 5)).min(600)
}

/// Syncs one target now: reads what the server has, plans, and (unless `dry_run`) applies,
/// then records the status and audit events. `now` is read when the run ends, as runs take
/// network time.
pub async fn run_one(
    store: &Store,
    issuer: &str,
    client_id: &ClientId,
    dry_run: bool,
    origin: &Origin,
    now: fn() -> UnixTime,
) -> Result<Report, RunError> {
    let (from, id) = (store.clone(), client_id.clone());
    let loaded = blocking(move || from.read(|conn| load(conn, &id))).await?;
    let inputs = Inputs {
        target: &loaded.target,
        rules: &loaded.rules,
        people: &loaded.people,
        issuer,
        realm_secret: loaded.realm_secret.as_deref(),
    };
    let outcome = sync::run(&inputs, dry_run).await;
    if dry_run {
        return Ok(outcome?);
    }
    let recorded = Recorded {
        client_id: client_id.clone(),
        generation: loaded.generation,
        realm_secret: loaded.realm_secret.clone(),
        origin: origin.clone(),
    };
    let (to, summary) = (store.clone(), outcome_summary(&outcome));
    blocking(move || {
        let now = now();
        to.write(|tx| recorded.write(tx, &summary, now))
            .map_err(RunError::from)
    })
    .await?;
    Ok(outcome?)
}

/// What a run did, as the status and the audit log keep it: the changes applied (also by a
/// run that failed part way), whether the realm got the new secret, and the failure.
struct Summary {
    changes: Vec<String>,
    secret_written: bool,
    failure: Option<String>,
}

fn outcome_summary(outcome: &Result<Report, SyncError>) -> Summary {
    let report = match outcome {
        Ok(report) => Some(report),
        Err(error) => error.report(),
    };
    Summary {
        changes: report
            .map(|r| {
                r.planned[..r.applied]
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        secret_written: report.is_some_and(|r| r.realm_secret_written),
        failure: outcome.as_ref().err().map(ToString::to_string),
    }
}

struct Recorded {
    client_id: ClientId,
    generation: i64,
    realm_secret: Option<String>,
    origin: Origin,
}

impl Recorded {
    fn write(
        &self,
        tx: &crate::store::Db,
        summary: &Summary,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let event = |kind, detail: String| {
            Event::new(kind)
                .client(self.client_id.as_str())
                .detail(detail)
        };
        for change in &summary.changes {
            audit::record(
                tx,
                &event(EventKind::ProxmoxApplied, change.clone()),
                &self.origin,
                now,
            )?;
        }
        let status = stored::status(tx, &self.client_id)?.unwrap_or_default();
        if let Some(error) = &summary.failure {
            // A server that stays down is logged when it starts failing, not at every retry.
            if status.last_error.as_deref() != Some(error.as_str())
                || status.last_success_at > status.last_error_at
            {
                audit::record(
                    tx,
                    &event(EventKind::ProxmoxSyncFailed, error.clone()),
                    &self.origin,
                    now,
                )?;
            }
        }
        let finished = Finished {
            generation: self.generation,
            applied: summary.changes.len() as i64,
            delivered_secret: self
                .realm_secret
                .as_deref()
                .filter(|_| summary.secret_written),
            failure: summary
                .failure
                .as_deref()
                .map(|error| (error, now + backoff_secs(status.attempts))),
        };
        stored::finish(tx, &self.client_id, &finished, now)
    }
}

/// How often a running server looks at the queue.
const QUEUE_POLL: Duration = Duration::from_secs(1);

/// The queue worker of a running server: runs every due target, one at a time, and asks for
/// a sync of every target every `repair_every` to repair drift made on the servers.
/// How long a run may take before another instance may run the same target: a run that
/// never reports (its instance died) is taken up again after this.
const CLAIM_SECS: i64 = 15 * 60;

/// Takes `client_id` for one run, unless another instance sharing the database has.
async fn claim(store: &Store, client_id: &ClientId) -> bool {
    let (store, id) = (store.clone(), client_id.clone());
    let claimed = blocking(move || {
        let now = clock::now();
        Ok(store.write(|tx| stored::claim(tx, &id, now, now + CLAIM_SECS))?)
    })
    .await;
    claimed.unwrap_or_else(|e: RunError| {
        tracing::warn!("proxmox: cannot take {client_id} from the sync queue: {e}");
        false
    })
}

pub async fn work(store: Store, issuer: String, repair_every: Duration) {
    let mut poll = actix_web::rt::time::interval(QUEUE_POLL);
    let mut last_repair = std::time::Instant::now();
    let pending = store.clone();
    if let Err(e) = blocking(move || Ok(pending.write(stored::retry_pending_now)?)).await {
        tracing::warn!("proxmox: cannot read the sync queue: {e}");
    }
    loop {
        poll.tick().await;
        if last_repair.elapsed() >= repair_every {
            last_repair = std::time::Instant::now();
            let all = store.clone();
            if let Err(e) = blocking(move || Ok(all.write(stored::request_all)?)).await {
                tracing::warn!("proxmox: cannot ask for the periodic sync: {e}");
            }
        }
        let due_store = store.clone();
        let due =
            match blocking(move || Ok(due_store.read(|c| stored::due(c, clock::now()))?)).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!("proxmox: cannot read the sync queue: {e}");
                    continue;
                }
            };
        for client_id in due {
            if !claim(&store, &client_id).await {
                continue;
            }
            let origin = Origin::sync();
            match run_one(&store, &issuer, &client_id, false, &origin, clock::now).await {
                Ok(report) => tracing::info!(
                    "proxmox: {client_id} in step ({} changes applied)",
                    report.applied
                ),
                Err(e) => tracing::warn!("proxmox: {client_id}: {e}"),
            }
        }
    }
}

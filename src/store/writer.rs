//! Group commit: one thread with its own connection takes every write that is waiting, runs
//! each in a savepoint of one transaction, and commits them together with a single fsync.
//! Nobody is answered before that commit returns, so an answer still means "on disk".
//!
//! A write that fails rolls back to its savepoint and leaves the others of its batch alone;
//! a commit that fails fails every write of the batch.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::Connection;

use super::Db;
use tokio::sync::oneshot;

use super::{StoreError, WaitObserver};

/// The most writes one commit takes; the rest wait for the next.
const MAX_BATCH: usize = 64;

/// One write waiting for its turn and then for the batch's commit.
trait Job: Send {
    /// Runs the write; true when what it wrote is to be kept.
    fn run(&mut self, conn: &Connection, waited: &Option<WaitObserver>) -> bool;
    /// Answers the caller once the batch's fate is known.
    fn answer(self: Box<Self>, committed: Result<(), Arc<rusqlite::Error>>);
}

struct Pending<T, E, F> {
    work: Option<F>,
    outcome: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
    asked: Instant,
    /// The request's span, so that the write's log lines belong to it.
    span: tracing::Span,
}

impl<T, E, F> Job for Pending<T, E, F>
where
    F: FnOnce(&Db) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
{
    fn run(&mut self, conn: &Connection, waited: &Option<WaitObserver>) -> bool {
        if let Some(observer) = waited {
            observer(self.asked.elapsed());
        }
        let Some(work) = self.work.take() else {
            return false;
        };
        let outcome = self.span.in_scope(|| work(&Db::Sqlite(conn)));
        let keep = outcome.is_ok();
        self.outcome = Some(outcome);
        keep
    }

    fn answer(self: Box<Self>, committed: Result<(), Arc<rusqlite::Error>>) {
        let outcome = match (committed, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (Err(error), _) => Err(E::from(StoreError::Commit(error))),
            (Ok(()), None) => Err(E::from(StoreError::WriteLost)),
        };
        // The caller may have gone (its request was cancelled); the write stands.
        let _ = self.reply.send(outcome);
    }
}

/// The way to the writer thread; cheap to clone.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn`. Each batch takes `turn`, which this process's other
    /// writers also take, so that SQLite's busy handler never runs between them.
    pub(super) fn start(
        conn: Connection,
        turn: Arc<Mutex<()>>,
        waits: Option<WaitObserver>,
    ) -> std::io::Result<Writer> {
        let (jobs, queue) = channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("latchkey-writer".into())
            .spawn(move || serve(&conn, &queue, &turn, &waits))?;
        Ok(Writer { jobs })
    }

    /// Queues `work` and waits for the commit of its batch.
    pub(super) async fn write<T, E>(
        &self,
        work: impl FnOnce(&Db) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work: Some(work),
            outcome: None,
            reply,
            asked: Instant::now(),
            span: tracing::Span::current(),
        });
        self.jobs
            .send(job)
            .map_err(|_| E::from(StoreError::WriteLost))?;
        answer
            .await
            .unwrap_or_else(|_| Err(E::from(StoreError::WriteLost)))
    }
}

/// The writer thread: batches until every `Writer` handle is gone.
fn serve(
    conn: &Connection,
    queue: &Receiver<Box<dyn Job>>,
    turn: &Mutex<()>,
    waits: &Option<WaitObserver>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let committed = {
            let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
            commit_batch(conn, &mut batch, waits)
        };
        for job in batch {
            job.answer(committed.clone());
        }
    }
}

/// Runs every job of `batch` in its own savepoint of one immediate transaction, and commits.
fn commit_batch(
    conn: &Connection,
    batch: &mut [Box<dyn Job>],
    waits: &Option<WaitObserver>,
) -> Result<(), Arc<rusqlite::Error>> {
    let run = |sql: &str| conn.prepare_cached(sql)?.execute([]).map(drop);
    let mut attempt = || -> rusqlite::Result<()> {
        run("BEGIN IMMEDIATE")?;
        for job in batch.iter_mut() {
            run("SAVEPOINT job")?;
            // A panicking write is treated like a failed one: its savepoint is rolled back.
            let keep = catch_unwind(AssertUnwindSafe(|| job.run(conn, waits))).unwrap_or(false);
            if !keep {
                run("ROLLBACK TO job")?;
            }
            run("RELEASE job")?;
        }
        run("COMMIT")
    };
    attempt().map_err(|error| {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        Arc::new(error)
    })
}

#[cfg(test)]
pub(super) mod tests {
    use crate::store::{Store, StoreError};

    async fn insert(store: &Store, x: i64, fail: bool) -> Result<(), StoreError> {
        store
            .write_async(move |conn| {
                conn.execute("INSERT INTO t (x) VALUES (?1)", crate::args![x])?;
                if fail {
                    // What it wrote must not survive; the rest of its batch must.
                    return Err(StoreError::Corrupt {
                        table: "t",
                        detail: "refused".into(),
                    });
                }
                Ok(())
            })
            .await
    }

    /// A fresh store with an empty table `t (x)`; the directory lives as long as the store.
    pub(in crate::store) async fn store_with_table() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write_async(|conn| conn.batch("CREATE TABLE t (x)"))
            .await
            .unwrap();
        (dir, store)
    }

    fn rows(store: &Store) -> Vec<i64> {
        store
            .read(|conn| conn.column("SELECT x FROM t ORDER BY x", crate::args![]))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_leaves_the_rest_of_its_batch_committed() {
        let (_dir, store) = store_with_table().await;
        let writes = (0..40).map(|x| {
            let store = store.clone();
            tokio::spawn(async move { insert(&store, x, x % 10 == 3).await })
        });
        let mut failed = Vec::new();
        for (x, write) in writes.collect::<Vec<_>>().into_iter().enumerate() {
            if write.await.unwrap().is_err() {
                failed.push(x as i64);
            }
        }
        assert_eq!(failed, vec![3, 13, 23, 33]);
        let kept: Vec<i64> = (0..40).filter(|x| x % 10 != 3).collect();
        assert_eq!(rows(&store), kept);
    }

    #[tokio::test]
    async fn a_panicking_write_is_rolled_back_and_the_writer_goes_on() {
        let (_dir, store) = store_with_table().await;
        let panicked = store
            .write_async(|conn| -> Result<(), StoreError> {
                conn.execute("INSERT INTO t (x) VALUES (1)", crate::args![])?;
                panic!("a bug in a rule")
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::WriteLost)));
        insert(&store, 2, false).await.unwrap();
        assert_eq!(rows(&store), vec![2]);
    }
}

//! Checkpoints beside the writer, not in its path. SQLite's automatic checkpoint runs inside
//! the COMMIT that crosses its threshold (1000 pages, about fifty sign-ins), so that batch and
//! every write queued behind it waited while pages were copied into the database file and
//! synced: the one slow sign-in in fifty at one client, a convoy under load.
//!
//! Here the writer's connection rings a bell when the log passes `CHECKPOINT_PAGES`, and a
//! thread with its own connection copies the log into the database while writes go on (a
//! passive checkpoint). The log starts over at the first write after a checkpoint that copied
//! everything. Should writes never pause long enough for that, the writer checkpoints itself
//! at `CATCH_UP_PAGES`, so the log stays bounded. Larger and fewer checkpoints cost less in
//! all (each one syncs the database file twice, whatever its size) and leave fewer writes
//! competing with one for the disk.

use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

/// The log's size, in pages of 4 KiB, that sets off a checkpoint beside the writer.
const CHECKPOINT_PAGES: i32 = 10_000;
/// The log's size at which the writer checkpoints itself (the thread cannot finish), and at
/// which any other connection does (their writes are rare: the command line, admin pages).
pub(super) const CATCH_UP_PAGES: i32 = 2 * CHECKPOINT_PAGES;

/// The log grows by this many pages between two rings of the bell, so that under a steady
/// stream of writes the thread copies in steps rather than after every commit.
const RING_EVERY_PAGES: i32 = CHECKPOINT_PAGES / 4;

/// What the writers may add during the checkpoint's last pass, which they wait for.
const LAST_PASS_PAGES: i32 = 256;
/// Passes made while writes go on before the checkpoint gives up starting the log over (a
/// later one or the writer's catch-up will).
const MAX_PASSES: usize = 4;

/// Takes the checkpoints of `writer` off its path, onto a thread of their own on `conn`. The
/// thread ends when `writer` is closed.
pub(super) fn beside(
    writer: &mut Connection,
    conn: Connection,
    turn: Arc<Mutex<()>>,
) -> std::io::Result<()> {
    let (bell, rung) = sync_channel::<()>(1);
    // Held by whoever is checkpointing: SQLite refuses a second checkpoint at once rather
    // than wait for the first.
    let copying = Arc::new(Mutex::new(()));
    let thread_copying = copying.clone();
    std::thread::Builder::new()
        .name("latchkey-checkpoint".into())
        .spawn(move || serve(&conn, &rung, &thread_copying, &turn))?;
    let mut next_ring = CHECKPOINT_PAGES;
    writer
        .wal_hook(Some(move |wal: &mut Wal, pages| {
            if pages >= CATCH_UP_PAGES {
                let _copying = copying.lock().unwrap_or_else(|e| e.into_inner());
                // RESTART also waits for readers, so that the next write starts the log over.
                // What the hook returns would read as the commit's own result, and the commit
                // stands either way: a failure is only logged, and tried again next commit.
                if let Err(error) = wal.checkpoint_v2(CheckpointMode::RESTART) {
                    tracing::warn!(%error, "the database's log could not be checkpointed");
                }
            } else if pages >= next_ring {
                // A full bell means a checkpoint is due already.
                let _ = bell.try_send(());
                next_ring = pages + RING_EVERY_PAGES;
            } else if pages < CHECKPOINT_PAGES {
                // The log started over.
                next_ring = CHECKPOINT_PAGES;
            }
            Ok(())
        }))
        .map_err(std::io::Error::other)
}

fn serve(conn: &Connection, rung: &Receiver<()>, copying: &Mutex<()>, turn: &Mutex<()>) {
    while rung.recv().is_ok() {
        // The log grows until a checkpoint succeeds; nothing written is lost meanwhile.
        if let Err(error) = copy_all(conn, copying, turn) {
            tracing::warn!(%error, "the database's log could not be checkpointed");
        }
    }
}

/// Copies until what was written meanwhile is small, then copies the rest with the writers'
/// turn held: the log starts over at the next write, where it would otherwise start over
/// only when writes pause. Locks are taken in the writer's order: the turn, then `copying`.
fn copy_all(conn: &Connection, copying: &Mutex<()>, turn: &Mutex<()>) -> rusqlite::Result<()> {
    let pass = || {
        let _copying = copying.lock().unwrap_or_else(|e| e.into_inner());
        conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)
            .map(|(log, _)| log)
    };
    let mut log = pass()?;
    for _ in 0..MAX_PASSES {
        let now = pass()?;
        let meanwhile = now - log;
        log = now;
        if meanwhile <= LAST_PASS_PAGES {
            let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
            pass()?;
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::{CATCH_UP_PAGES, CHECKPOINT_PAGES};
    use crate::store::writer::tests::store_with_table;
    use crate::store::{DATABASE_FILE, Store, StoreError};

    /// A page of the database, or a frame of the log with its header.
    const PAGE: u64 = 4096;
    const FRAME: u64 = PAGE + 24;

    /// Writes about `pages` pages through the writer, a blob of 16 pages at a time.
    async fn fill(store: &Store, pages: i32) {
        for _ in 0..pages / 16 {
            store
                .write_async(|conn| {
                    conn.execute(
                        "INSERT INTO t (x) VALUES (zeroblob(16 * 4096 - 64))",
                        crate::args![],
                    )?;
                    Ok::<_, StoreError>(())
                })
                .await
                .unwrap();
        }
    }

    fn size(dir: &Path, suffix: &str) -> u64 {
        std::fs::metadata(dir.join(format!("{DATABASE_FILE}{suffix}"))).map_or(0, |m| m.len())
    }

    #[tokio::test]
    async fn the_log_is_checkpointed_beside_the_writer_and_starts_over() {
        let (dir, store) = store_with_table().await;
        let pages = CHECKPOINT_PAGES + CHECKPOINT_PAGES / 5;
        fill(&store, pages).await;
        // The thread copies the log into the database on its own, without another write.
        // At least what had passed the threshold is in the database file.
        let copied = CHECKPOINT_PAGES as u64 * PAGE * 9 / 10;
        let deadline = Instant::now() + Duration::from_secs(60);
        while size(dir.path(), "") < copied && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(size(dir.path(), "") >= copied, "checkpointed");
        // Writes without a pause: the log still starts over, at the latest when the writer
        // catches up itself.
        fill(&store, 2 * CATCH_UP_PAGES).await;
        let log = size(dir.path(), "-wal");
        assert!(
            log <= (CATCH_UP_PAGES as u64 + 64) * FRAME,
            "log of {log} bytes"
        );
    }
}

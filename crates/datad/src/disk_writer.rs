//! The data node's checkpoint and backup writer: one thread that owns the files of the local
//! checkpoint and the backup in progress.
//!
//! The node group loop copies rows (a sans-IO capture) between log entries; the file writes,
//! the fsyncs and the manifest-last commit happen here, so that a slow disk never stalls the
//! thread that serves reads and writes. The loop tracks the bytes it handed over
//! ([`DiskWriter::in_flight`]) and stops copying while too many wait, so memory stays bounded.
//! Outcomes come back to the loop as [`WriterDone`] events.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use cairn_common::ids::NodeId;
use cairn_storage::backup::{BackupControl, BackupFile, write_control};
use cairn_storage::checkpoint::{
    Block, CapturedCheckpoint, CheckpointConfig, CheckpointWriter, Completed, Disk, FsDisk, Identity,
};

/// Work for the writer thread.
pub enum WriterJob {
    LcpBegin { root: PathBuf, identity: Identity, config: CheckpointConfig },
    LcpBlock(Block),
    LcpComplete(Box<CapturedCheckpoint>),
    LcpAbandon,
    BackupBegin { root: PathBuf, backup_id: u32, node: NodeId },
    BackupBlock(Vec<u8>),
    /// The control file, without its file list (the writer fills it in).
    BackupComplete(Box<BackupControl>),
    BackupAbandon { root: PathBuf, backup_id: u32, node: NodeId },
}

/// What the writer thread reports back.
#[derive(Debug)]
pub enum WriterDone {
    LcpCompleted(Result<Box<Completed>, String>),
    LcpAbandoned,
    /// A block or the start failed; the checkpoint is gone.
    LcpFailed(String),
    BackupCompleted(Result<Box<BackupControl>, String>),
}

/// The loop's handle on the writer thread.
pub struct DiskWriter {
    jobs: mpsc::Sender<WriterJob>,
    in_flight: Arc<AtomicU64>,
}

impl DiskWriter {
    /// Starts the thread; outcomes go to `done`.
    pub fn start(name: String, done: impl Fn(WriterDone) + Send + 'static) -> std::io::Result<DiskWriter> {
        let (jobs, receiver) = mpsc::channel();
        let in_flight = Arc::new(AtomicU64::new(0));
        let counter = in_flight.clone();
        std::thread::Builder::new().name(name).spawn(move || run(receiver, counter, done))?;
        Ok(DiskWriter { jobs, in_flight })
    }

    /// Bytes handed over and not yet written.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn send(&self, job: WriterJob) {
        let bytes = match &job {
            WriterJob::LcpBlock(block) => block.bytes.len() as u64,
            WriterJob::BackupBlock(block) => block.len() as u64,
            _ => 0,
        };
        self.in_flight.fetch_add(bytes, Ordering::Relaxed);
        if self.jobs.send(job).is_err() {
            tracing::error!("the checkpoint writer thread is gone");
        }
    }
}

struct Backup {
    file: BackupFile,
    failed: Option<String>,
}

fn run(jobs: mpsc::Receiver<WriterJob>, in_flight: Arc<AtomicU64>, done: impl Fn(WriterDone)) {
    let disk: Arc<dyn Disk> = Arc::new(FsDisk);
    let mut lcp: Option<CheckpointWriter> = None;
    // Set when the checkpoint failed: its remaining jobs are ignored until the next begin.
    let mut lcp_failed = false;
    let mut backup: Option<Backup> = None;
    for job in jobs {
        match job {
            WriterJob::LcpBegin { root, identity, config } => {
                if let Some(old) = lcp.take() {
                    let _ = old.abandon();
                }
                match CheckpointWriter::begin(disk.clone(), &root, identity, &config) {
                    Ok(writer) => {
                        lcp = Some(writer);
                        lcp_failed = false;
                    }
                    Err(e) => {
                        lcp_failed = true;
                        done(WriterDone::LcpFailed(format!("cannot start a local checkpoint: {e}")));
                    }
                }
            }
            WriterJob::LcpBlock(block) => {
                in_flight.fetch_sub(block.bytes.len() as u64, Ordering::Relaxed);
                if lcp_failed {
                    continue;
                }
                if let Some(writer) = lcp.as_mut()
                    && let Err(e) = writer.write(&block)
                {
                    if let Some(writer) = lcp.take() {
                        let _ = writer.abandon();
                    }
                    lcp_failed = true;
                    done(WriterDone::LcpFailed(e.to_string()));
                }
            }
            WriterJob::LcpComplete(captured) => {
                if lcp_failed {
                    continue;
                }
                match lcp.take() {
                    Some(writer) => {
                        done(WriterDone::LcpCompleted(writer.complete(*captured).map(Box::new).map_err(|e| e.to_string())))
                    }
                    None => done(WriterDone::LcpFailed("no checkpoint was being written".into())),
                }
            }
            WriterJob::LcpAbandon => {
                if let Some(writer) = lcp.take()
                    && let Err(e) = writer.abandon()
                {
                    tracing::warn!(error = %e, "could not remove an abandoned checkpoint");
                }
                lcp_failed = false;
                done(WriterDone::LcpAbandoned);
            }
            WriterJob::BackupBegin { root, backup_id, node } => {
                backup = Some(match BackupFile::create(disk.as_ref(), &root, backup_id, node) {
                    Ok(file) => Backup { file, failed: None },
                    Err(e) => {
                        done(WriterDone::BackupCompleted(Err(e.to_string())));
                        continue;
                    }
                });
            }
            WriterJob::BackupBlock(block) => {
                in_flight.fetch_sub(block.len() as u64, Ordering::Relaxed);
                if let Some(b) = backup.as_mut()
                    && b.failed.is_none()
                    && let Err(e) = b.file.write(&block)
                {
                    b.failed = Some(e.to_string());
                }
            }
            WriterJob::BackupComplete(mut control) => {
                let Some(b) = backup.take() else { continue };
                let result = match b.failed {
                    Some(reason) => Err(reason),
                    None => {
                        let dir = b.file.dir().to_path_buf();
                        b.file
                            .finish()
                            .and_then(|entry| {
                                control.files = vec![entry];
                                write_control(disk.as_ref(), &dir, &control)
                            })
                            .map(|()| control)
                            .map_err(|e| e.to_string())
                    }
                };
                done(WriterDone::BackupCompleted(result));
            }
            WriterJob::BackupAbandon { root, backup_id, node } => {
                // Only this node's unfinished files go; a complete part (its control file) of
                // an earlier backup with the same id is never touched.
                let unfinished = backup.take().is_some();
                let dir = cairn_storage::backup::backup_dir(&root, backup_id);
                let control = dir.join(cairn_storage::backup::control_file_name(backup_id, node));
                if unfinished || !control.exists() {
                    for name in [
                        cairn_storage::backup::data_file_name(backup_id, node),
                        format!("{}.tmp", cairn_storage::backup::control_file_name(backup_id, node)),
                    ] {
                        let _ = std::fs::remove_file(dir.join(name));
                    }
                    let _ = std::fs::remove_file(&control);
                    // Removed only if no other node's part is in it.
                    let _ = std::fs::remove_dir(&dir);
                }
            }
        }
    }
}

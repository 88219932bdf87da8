//! The file operations a checkpoint needs, behind a small trait.
//!
//! The capture, the formats and the throttle do no I/O; the writer, the reader and the snapshot
//! transfer reach the disk only through [`Disk`]. [`FsDisk`] is the real file system. Tests (and
//! a simulator) supply their own implementation, for instance one that forgets everything not
//! yet fsynced when it "crashes".
//!
//! Durability contract, as POSIX file systems give it and the writer relies on:
//! - bytes appended to a file survive a crash once [`DiskFile::sync`] returned;
//! - a new name in a directory (a created file or directory, a rename's target) and a removal
//!   survive a crash once [`Disk::sync_dir`] of that directory returned;
//! - a rename within a directory is atomic: after a crash the target holds the old or the new
//!   file, never a mixture.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A file being written, front to back.
pub trait DiskFile: Send {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes the appended bytes durable (fsync).
    fn sync(&mut self) -> io::Result<()>;
}

/// The directory and file operations of checkpoints.
pub trait Disk: Send + Sync {
    /// Creates a directory and any missing parents; an existing directory is fine.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names in a directory (files and directories), in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Creates (or truncates) a file for writing.
    fn create_file(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// Reads `len` bytes at `offset`; fewer only at the end of the file.
    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Reads a whole file.
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Renames a file (atomically replacing the target).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries durable (fsync of the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsDisk;

struct FsFile(fs::File);

impl DiskFile for FsFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

impl Disk for FsDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            // A name that is not UTF-8 is no checkpoint of ours; it is skipped, not an error.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create_file(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        Ok(Box::new(FsFile(fs::File::create(path)?)))
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut file = fs::File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut out = Vec::with_capacity(len);
        file.take(len as u64).read_to_end(&mut out)?;
        Ok(out)
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        fs::File::open(path)?.sync_all()
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }
}

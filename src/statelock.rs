//! One writer for the audit log and the staff store (issue 10 finding 11).
//!
//! # Mechanism
//!
//! The audit log is a hash chain continued from its last record, and the store is rewritten
//! whole: two processes appending or rewriting at the same time fork the chain or lose an
//! import. So every process that writes them takes an exclusive, non-blocking `flock` on
//! [`LOCK_FILE`] in each directory holding the audit log, the store or its key, and holds it
//! until it exits: the daemon (`facegate run`) for its whole life, and the CLI writers
//! (`staff remove`, `enroll import`, `lock test`) for the duration of the command. The lock file
//! holds the holder's pid and command, so the refusal names them:
//!
//! ```text
//! /var/lib/facegate/facegate.lock is held by the facegate daemon (pid 812): the audit log and
//! the store have one writer at a time; stop it with `systemctl stop facegate` first, then retry
//! ```
//!
//! The kernel drops a `flock` when its holder dies, however it dies (SIGKILL, OOM kill), so a
//! stale lock file never blocks anyone; its contents matter only while it is locked.
//!
//! `facegate lock safe` (the unit's `ExecStopPost=`) drives the relay whatever the lock says
//! and writes its audit record only when it gets the lock ([`StateLock::try_acquire`]).
//!
//! # Troubleshooting
//!
//! * "is held by the facegate daemon (pid N)": `systemctl stop facegate`, run the command,
//!   `systemctl start facegate`.
//! * "cannot lock ...: permission denied": run the command as the service user
//!   (`sudo -u facegate facegate ...`) or as root.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};

/// Name of the lock file in each state directory.
pub const LOCK_FILE: &str = "facegate.lock";

/// Exclusive locks on the state directories, released on drop (or when the process dies).
#[derive(Debug)]
pub struct StateLock {
    files: Vec<(PathBuf, File)>,
}

/// Why a lock could not be taken.
#[derive(Debug)]
pub enum LockFailure {
    /// Another process holds it; the message names it and the fix.
    Held(String),
    /// The lock file could not be opened or locked (permissions, missing directory).
    Other(String),
}

impl From<LockFailure> for Error {
    fn from(f: LockFailure) -> Self {
        match f {
            LockFailure::Held(m) | LockFailure::Other(m) => Error::Invalid(m),
        }
    }
}

impl StateLock {
    /// The directories whose [`LOCK_FILE`] guards this configuration's audit log and store
    /// (sorted, without duplicates).
    pub fn dirs(cfg: &Config) -> Vec<PathBuf> {
        let parent = |p: &Path| -> PathBuf {
            match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            }
        };
        let mut dirs = vec![parent(&cfg.audit.path)];
        if let Some(store) = &cfg.gallery.store {
            dirs.push(parent(store));
        }
        if let Some(key) = cfg.gallery.key_path() {
            dirs.push(parent(&key));
        }
        let mut dirs: Vec<PathBuf> = dirs
            .into_iter()
            .map(|d| std::fs::canonicalize(&d).unwrap_or(d))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Takes every lock for `cfg`, as `role` (the command, e.g. "run" or "staff remove"), or
    /// fails with a message naming the holder and the fix.
    pub fn acquire(cfg: &Config, role: &str) -> Result<StateLock> {
        Self::try_acquire(cfg, role).map_err(Error::from)
    }

    /// Like [`acquire`](Self::acquire), telling "held by another process" apart from other
    /// failures.
    pub fn try_acquire(cfg: &Config, role: &str) -> std::result::Result<StateLock, LockFailure> {
        let mut files = Vec::new();
        for dir in Self::dirs(cfg) {
            if !dir.is_dir() {
                // Nothing stored there yet (the store's directory appears with its key). Every
                // writer also locks the audit log's directory, which must exist, so two
                // writers with one configuration still exclude each other.
                continue;
            }
            let path = dir.join(LOCK_FILE);
            let file = lock_one(&path, role)?;
            files.push((path, file));
        }
        Ok(StateLock { files })
    }

    /// The lock files held.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(|(p, _)| p.as_path()).collect()
    }
}

fn lock_one(path: &Path, role: &str) -> std::result::Result<File, LockFailure> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            LockFailure::Other(format!(
                "cannot open the lock file {}: {e}; run as the service user (sudo -u facegate) \
                 or as root, and make sure it is a regular file",
                path.display()
            ))
        })?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockFailure::Held(held_message(path, text.trim())));
        }
        return Err(LockFailure::Other(format!(
            "cannot lock {}: {err}",
            path.display()
        )));
    }
    let me = format!("{} {role}\n", std::process::id());
    let written = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(me.as_bytes()));
    if let Err(e) = written {
        // The lock is held; only the holder's name for others' messages is missing.
        log::warn!(
            "lock file {}: cannot record the holder: {e}",
            path.display()
        );
    }
    Ok(file)
}

/// "DIR/facegate.lock is held by the facegate daemon (pid 812): ...".
fn held_message(path: &Path, holder: &str) -> String {
    let (pid, role) = holder.split_once(' ').unwrap_or((holder, ""));
    let who = match (pid.parse::<u32>().ok(), role) {
        (Some(pid), "run") => format!("the facegate daemon (pid {pid})"),
        (Some(pid), role) if !role.is_empty() => format!("`facegate {role}` (pid {pid})"),
        _ => "another facegate process".to_string(),
    };
    let fix = if role == "run" || role.is_empty() {
        "stop it with `systemctl stop facegate` first, then retry (and start it again after)"
    } else {
        "wait for that command to finish, then retry"
    };
    format!(
        "{} is held by {who}: the audit log and the store have one writer at a time; {fix}",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_the_holder_and_the_fix() {
        let p = Path::new("/var/lib/facegate/facegate.lock");
        let m = held_message(p, "812 run");
        assert!(m.contains("the facegate daemon (pid 812)"), "{m}");
        assert!(m.contains("systemctl stop facegate"), "{m}");
        let m = held_message(p, "99 staff remove");
        assert!(m.contains("`facegate staff remove` (pid 99)"), "{m}");
        let m = held_message(p, "");
        assert!(m.contains("another facegate process"), "{m}");
    }

    #[test]
    fn a_second_open_of_the_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(LOCK_FILE);
        let first = lock_one(&p, "run").unwrap();
        match lock_one(&p, "staff remove") {
            Err(LockFailure::Held(m)) => {
                assert!(m.contains(&format!("pid {}", std::process::id())), "{m}")
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        lock_one(&p, "staff remove").unwrap();
    }
}

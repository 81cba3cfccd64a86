//! Reading from (and writing the one report onto) a USB stick that may be hostile.
//!
//! Everything the door takes from a stick goes through [`BundleDir`]:
//!
//! * The bundle folder is opened once with `O_DIRECTORY | O_NOFOLLOW`: the folder itself must
//!   not be a symbolic link. Every later access is relative to that open descriptor, so the
//!   folder cannot be swapped for a link between two reads.
//! * A path inside the bundle (`alice/front.jpg`) is walked one component at a time with
//!   `openat(.., O_DIRECTORY | O_NOFOLLOW)`: a symlinked folder anywhere on the way is refused,
//!   not followed. (Chosen over `canonicalize` + prefix check, which resolves links by name and
//!   leaves a window between the check and the open, and over `openat2(RESOLVE_BENEATH)`, which
//!   needs Linux 5.6 and a raw syscall.)
//! * The file itself is first looked at through an `O_PATH | O_NOFOLLOW` descriptor (which
//!   opens nothing for reading, like `lstat`): a link, FIFO,
//!   socket, device or folder is refused without being opened, and a file larger than the
//!   limit is refused without reading a byte. It is then opened with
//!   `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY` (a FIFO swapped in meanwhile cannot block
//!   the open), and the open descriptor is `fstat`ed again before any read: it must still be a
//!   regular file, the same inode, within the limit.
//! * At most `limit + 1` bytes are read, in 64 KiB chunks, with a deadline ([`READ_DEADLINE`])
//!   checked after every chunk: a file that grows while being read, or a stick that trickles
//!   data, is refused. The SHA-256 is computed while reading.
//!
//! What this cannot bound: a single `read(2)` that the kernel itself keeps waiting on (a USB
//! device that stops answering is reset by the SCSI layer after its own timeouts). That only
//! holds the watcher thread, never the frame loop, and [`super::watch::WatchHandle`]'s drop
//! stops waiting for it after a bounded time.
//!
//! The stick is mounted `nosymfollow` by `deploy/99-facegate-usb.rules` as a second layer.

use super::ProblemKind;
use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest time one file may take to read (a 16 MiB photo at 0.5 MB/s, with margin).
pub const READ_DEADLINE: Duration = Duration::from_secs(60);
const CHUNK: usize = 64 * 1024;

/// Why a read from the stick was refused: a kind (as in [`super::Problem::kind`]) and a
/// message that names the file and the fix.
#[derive(Debug, Clone, PartialEq)]
pub struct StickError {
    /// [`Missing`](ProblemKind::Missing), [`Path`](ProblemKind::Path) (link, not a regular
    /// file, not a folder), [`TooLarge`](ProblemKind::TooLarge) or [`Io`](ProblemKind::Io).
    pub kind: ProblemKind,
    pub reason: String,
}

impl StickError {
    fn new(kind: ProblemKind, reason: String) -> Self {
        StickError { kind, reason }
    }
}

impl std::fmt::Display for StickError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The bytes of one file and their SHA-256, computed while reading.
pub struct StickFile {
    pub bytes: Vec<u8>,
    pub sha256: [u8; 32],
}

/// A bundle folder opened without following links; all reads are relative to it.
pub struct BundleDir {
    fd: OwnedFd,
    path: PathBuf,
}

const LINK_FIX: &str = "links are refused because they can point outside the bundle; \
                        copy the real file into the bundle folder instead of linking it";

fn kind_of(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "an unknown kind of file"
    }
}

fn cstr(name: &std::ffi::OsStr, shown: &Path) -> Result<CString, StickError> {
    CString::new(name.as_bytes()).map_err(|_| {
        StickError::new(
            ProblemKind::Path,
            format!("{} contains a NUL byte; rename it", shown.display()),
        )
    })
}

fn openat(dir: &OwnedFd, name: &CString, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, both alive for the
    // call; on success the returned descriptor is new and owned by nobody else.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, 0o644 as libc::c_uint) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The metadata of `name` in `dir` without following a link and without opening the file
/// itself for reading (an `O_PATH` descriptor: a FIFO or device is not opened).
fn lstatat(dir: &OwnedFd, name: &CString) -> std::io::Result<std::fs::Metadata> {
    let fd = openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)?;
    File::from(fd).metadata()
}

impl BundleDir {
    /// Opens the bundle folder `dir`; refuses it if it is a symbolic link or not a folder.
    pub fn open(dir: &Path) -> Result<BundleDir, StickError> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(dir)
            .map_err(|e| match e.raw_os_error() {
                // Linux reports ENOTDIR for a link opened O_DIRECTORY | O_NOFOLLOW.
                Some(libc::ELOOP | libc::ENOTDIR)
                    if e.raw_os_error() == Some(libc::ELOOP)
                        || std::fs::symlink_metadata(dir)
                            .is_ok_and(|m| m.file_type().is_symlink()) =>
                {
                    StickError::new(
                        ProblemKind::Path,
                        format!(
                            "the bundle folder {} is a symbolic link; {LINK_FIX}",
                            dir.display()
                        ),
                    )
                }
                Some(libc::ENOTDIR) => StickError::new(
                    ProblemKind::Path,
                    format!(
                        "{} is not a folder; put the bundle in a folder on the stick",
                        dir.display()
                    ),
                ),
                Some(libc::ENOENT) => StickError::new(
                    ProblemKind::Missing,
                    format!("the bundle folder {} does not exist", dir.display()),
                ),
                _ => StickError::new(
                    ProblemKind::Io,
                    format!("cannot open the bundle folder {}: {e}", dir.display()),
                ),
            })?;
        Ok(BundleDir {
            fd: OwnedFd::from(f),
            path: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Walks the folders of `rel` (relative, normal components only) without following links;
    /// returns the folder holding the last component and that component's name.
    fn walk(&self, rel: &Path) -> Result<(Option<OwnedFd>, CString), StickError> {
        let mut names = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => names.push(n),
                Component::CurDir => {}
                _ => {
                    return Err(StickError::new(
                        ProblemKind::Path,
                        format!(
                            "{} is not a path inside the bundle; use a relative path without ..",
                            rel.display()
                        ),
                    ))
                }
            }
        }
        let Some((last, folders)) = names.split_last() else {
            return Err(StickError::new(ProblemKind::Path, "empty path".into()));
        };
        let mut current: Option<OwnedFd> = None;
        let mut shown = PathBuf::new();
        for name in folders {
            shown.push(name);
            let c = cstr(name, &shown)?;
            let parent = current.as_ref().unwrap_or(&self.fd);
            let next = openat(
                parent,
                &c,
                libc::O_RDONLY
                    | libc::O_DIRECTORY
                    | libc::O_NOFOLLOW
                    | libc::O_CLOEXEC
                    | libc::O_NONBLOCK,
            )
            .map_err(|e| match e.raw_os_error() {
                // Linux reports ENOTDIR for a link opened O_DIRECTORY | O_NOFOLLOW: tell them apart.
                Some(libc::ELOOP | libc::ENOTDIR)
                    if e.raw_os_error() == Some(libc::ELOOP)
                        || lstatat(parent, &c).is_ok_and(|m| m.file_type().is_symlink()) =>
                {
                    StickError::new(
                        ProblemKind::Path,
                        format!(
                            "folder {} (in {}) is a symbolic link; {LINK_FIX}",
                            shown.display(),
                            rel.display()
                        ),
                    )
                }
                Some(libc::ENOTDIR) => StickError::new(
                    ProblemKind::Path,
                    format!(
                        "{} (in {}) is not a folder; fix the path in the manifest",
                        shown.display(),
                        rel.display()
                    ),
                ),
                Some(libc::ENOENT) => StickError::new(
                    ProblemKind::Missing,
                    format!(
                        "{} is missing from the bundle (folder {} does not exist); copy it onto the stick",
                        rel.display(),
                        shown.display()
                    ),
                ),
                _ => StickError::new(
                    ProblemKind::Io,
                    format!("cannot open folder {}: {e}", shown.display()),
                ),
            })?;
            current = Some(next);
        }
        let shown = rel.to_path_buf();
        Ok((current, cstr(last, &shown)?))
    }

    /// Reads the regular file `rel` inside the bundle, at most `max` bytes, hashing while reading.
    /// Links (file or folder), FIFOs, devices, sockets and folders are refused before any read.
    pub fn read(&self, rel: &Path, max: u64) -> Result<StickFile, StickError> {
        self.read_with_deadline(rel, max, READ_DEADLINE)
    }

    /// [`read`](Self::read) with another deadline (tests use a short one). The deadline counts
    /// from the call, so walking the folders counts too.
    pub fn read_with_deadline(
        &self,
        rel: &Path,
        max: u64,
        deadline: Duration,
    ) -> Result<StickFile, StickError> {
        let t0 = Instant::now();
        let (folder, name) = self.walk(rel)?;
        let folder = folder.as_ref().unwrap_or(&self.fd);
        // 1. Look before opening: links, FIFOs and devices are never opened.
        let looked = look_before_opening(folder, &name, rel, max)?;
        // 2. Open without following links and without blocking, then check the open file.
        let (file, len) = open_looked_at(folder, &name, &looked, rel, max)?;
        // 3. Read at most max + 1 bytes, hashing, with a deadline.
        read_bounded(file, len, rel, max, t0, deadline)
    }

    /// Creates `name` in the bundle folder itself (never elsewhere): `O_CREAT | O_EXCL |
    /// O_NOFOLLOW`, so an existing file or link of that name is never written through.
    pub fn create_new(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        use std::io::Write;
        if name.contains('/') || name.is_empty() || name == "." || name == ".." {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name:?} is not a plain file name"),
            ));
        }
        let c = CString::new(name)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let fd = openat(
            &self.fd,
            &c,
            libc::O_WRONLY
                | libc::O_CREAT
                | libc::O_EXCL
                | libc::O_NOFOLLOW
                | libc::O_NONBLOCK
                | libc::O_CLOEXEC
                | libc::O_NOCTTY,
        )?;
        let mut f = File::from(fd);
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(self.path.join(name))
    }
}

fn too_large(rel: &Path, size: u64, max: u64) -> StickError {
    StickError::new(
        ProblemKind::TooLarge,
        format!(
            "{} is {size} bytes, over the {max}-byte limit; scale it down (or remove it from the bundle)",
            rel.display()
        ),
    )
}

fn not_regular(rel: &Path, t: std::fs::FileType) -> StickError {
    StickError::new(
        ProblemKind::Path,
        format!(
            "{} is {}, not a regular file; bundles must hold regular files: copy the real file onto the stick",
            rel.display(),
            kind_of(t)
        ),
    )
}

/// Step 1 of [`BundleDir::read_with_deadline`]: the metadata of `name` through an `O_PATH`
/// descriptor; a link, anything but a regular file, or a file over `max` is refused here,
/// before it is opened.
fn look_before_opening(
    folder: &OwnedFd,
    name: &CString,
    rel: &Path,
    max: u64,
) -> Result<std::fs::Metadata, StickError> {
    let shown = rel.display();
    let st = lstatat(folder, name).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => StickError::new(
            ProblemKind::Missing,
            format!("{shown} is missing from the bundle; copy it onto the stick"),
        ),
        _ => StickError::new(ProblemKind::Io, format!("cannot look at {shown}: {e}")),
    })?;
    if st.file_type().is_symlink() {
        return Err(StickError::new(
            ProblemKind::Path,
            format!("{shown} is a symbolic link; {LINK_FIX}"),
        ));
    }
    if !st.file_type().is_file() {
        return Err(not_regular(rel, st.file_type()));
    }
    if st.len() > max {
        return Err(too_large(rel, st.len(), max));
    }
    Ok(st)
}

/// Step 2 of [`BundleDir::read_with_deadline`]: opens `name` `O_NOFOLLOW | O_NONBLOCK` (a FIFO
/// swapped in since step 1 cannot block the open) and `fstat`s the open file: still a regular
/// file, the same inode as `looked`, within `max`. Returns the file and its length.
fn open_looked_at(
    folder: &OwnedFd,
    name: &CString,
    looked: &std::fs::Metadata,
    rel: &Path,
    max: u64,
) -> Result<(File, u64), StickError> {
    let shown = rel.display();
    let fd = openat(
        folder,
        name,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => StickError::new(
            ProblemKind::Path,
            format!("{shown} is a symbolic link; {LINK_FIX}"),
        ),
        Some(libc::ENOENT) => StickError::new(
            ProblemKind::Missing,
            format!("{shown} is missing from the bundle; copy it onto the stick"),
        ),
        _ => StickError::new(ProblemKind::Io, format!("cannot open {shown}: {e}")),
    })?;
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| StickError::new(ProblemKind::Io, format!("cannot look at {shown}: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(rel, meta.file_type()));
    }
    if meta.ino() != looked.ino() || meta.dev() != looked.dev() {
        return Err(StickError::new(
            ProblemKind::Io,
            format!("{shown} changed while it was being opened; leave the stick alone and plug it in again"),
        ));
    }
    if meta.len() > max {
        return Err(too_large(rel, meta.len(), max));
    }
    Ok((file, meta.len()))
}

/// Step 3 of [`BundleDir::read_with_deadline`]: reads at most `max + 1` bytes in
/// [`CHUNK`]-byte chunks, hashing while reading; refused if the file grows over `max` or the
/// read is still going `deadline` after `t0`. `len` (at most `max`) is the size it had when
/// opened.
fn read_bounded(
    mut file: File,
    len: u64,
    rel: &Path,
    max: u64,
    t0: Instant,
    deadline: Duration,
) -> Result<StickFile, StickError> {
    let shown = rel.display();
    let mut bytes = Vec::with_capacity(len as usize + 1);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let room = (max + 1).saturating_sub(bytes.len() as u64);
        if room == 0 {
            return Err(StickError::new(
                ProblemKind::TooLarge,
                format!("{shown} grew over the {max}-byte limit while it was read; copy a finished file onto the stick"),
            ));
        }
        let want = (room as usize).min(CHUNK);
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(StickError::new(
                    ProblemKind::Io,
                    format!("cannot read {shown}: {e}; the stick may be failing: copy the bundle onto another stick"),
                ))
            }
        };
        hasher.update(&buf[..n]);
        bytes.extend_from_slice(&buf[..n]);
        if t0.elapsed() > deadline {
            return Err(StickError::new(
                ProblemKind::Io,
                format!(
                    "reading {shown} took longer than {} s ({} bytes read); the stick is too slow or failing: copy the bundle onto another stick",
                    deadline.as_secs(),
                    bytes.len()
                ),
            ));
        }
    }
    if bytes.len() as u64 > max {
        return Err(too_large(rel, bytes.len() as u64, max));
    }
    Ok(StickFile {
        bytes,
        sha256: hasher.finalize().into(),
    })
}

//! Private files: folders made 0700 and files 0600 (never over an existing one), a file or
//! folder removed unless the run finished it ([`Unfinished`]), and sha256 — of a file read back,
//! of a copy on the way, of a stream written through [`Hashed`].

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::ops::error::{ErrorKind, OpError};

/// Creates `dir` and any missing parents 0700 (existing ones are left as they are).
pub(super) fn private_dir_all(dir: &Path) -> Result<(), OpError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| file_err("cannot create", dir, e))
}

/// Creates a new file 0600 (never over an existing one).
pub(super) fn private_file(path: &Path) -> Result<std::fs::File, OpError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_err("cannot create", path, e))
}

pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), OpError> {
    private_file(path)?
        .write_all(bytes)
        .map_err(|e| file_err("cannot write", path, e))
}

/// A file or folder this run is making, removed when dropped before [`Unfinished::keep`]: a
/// backup cut short (a failure, Ctrl-C, the run's timeout all drop it) leaves nothing
/// half-written that prune would count or a restore might pick.
pub(super) struct Unfinished {
    path: PathBuf,
    kept: bool,
}

impl Unfinished {
    pub(super) fn new(path: &Path) -> Unfinished {
        Unfinished {
            path: path.to_path_buf(),
            kept: false,
        }
    }

    pub(super) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.kept {
            let _ = if self.path.is_dir() {
                std::fs::remove_dir_all(&self.path)
            } else {
                std::fs::remove_file(&self.path)
            };
        }
    }
}

pub(super) fn file_err(what: &str, path: &Path, e: std::io::Error) -> OpError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::Refused,
        _ => ErrorKind::Failed,
    };
    OpError::new(kind, None, format!("{what} {}: {e}", path.display()))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Size and sha256 of a file, read off the async runtime.
pub(super) async fn sha256_file(path: &Path) -> Result<(u64, String), OpError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|e| file_err("cannot read", &path, e))?;
        hash_reading(file, &path, |_| Ok(()))
    })
    .await
    .map_err(|e| OpError::new(ErrorKind::Failed, None, e))?
}

/// Copies a file into a new private file, hashing on the way.
pub(super) async fn copy_private(from: &Path, to: &Path) -> Result<(u64, String), OpError> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let src = std::fs::File::open(&from).map_err(|e| file_err("cannot read", &from, e))?;
        let mut dst = private_file(&to)?;
        hash_reading(src, &from, |chunk| {
            dst.write_all(chunk)
                .map_err(|e| file_err("cannot write", &to, e))
        })
    })
    .await
    .map_err(|e| OpError::new(ErrorKind::Failed, None, e))?
}

/// Reads an opened file (`path` names it in errors) to its end in 1 MiB chunks, hashing each
/// and handing it to `each`: the one sha256 loop behind [`sha256_file`] and [`copy_private`].
/// Returns the size and sha256.
fn hash_reading(
    mut file: std::fs::File,
    path: &Path,
    mut each: impl FnMut(&[u8]) -> Result<(), OpError>,
) -> Result<(u64, String), OpError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| file_err("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
        each(&buf[..n])?;
    }
    Ok((size, hex(&hasher.finalize())))
}

/// A writer that hashes (sha256) and counts what passes through it.
pub(super) struct Hashed<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W> Hashed<W> {
    pub(super) fn new(inner: W) -> Hashed<W> {
        Hashed {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub(super) fn finish(self) -> (u64, String) {
        (self.bytes, hex(&self.hasher.finalize()))
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Hashed<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = polled {
            self.hasher.update(&buf[..n]);
            self.bytes += n as u64;
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A new private file (0600) to stream into, hashing on the way.
pub(super) fn private_writer(
    path: &Path,
) -> Result<Hashed<tokio::io::BufWriter<tokio::fs::File>>, OpError> {
    Ok(hashed_writer(private_file(path)?))
}

pub(super) fn hashed_writer(file: std::fs::File) -> Hashed<tokio::io::BufWriter<tokio::fs::File>> {
    let file = tokio::fs::File::from_std(file);
    Hashed::new(tokio::io::BufWriter::with_capacity(1 << 20, file))
}

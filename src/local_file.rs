//! Opening the local files review-sync is told to read: the config, secret
//! files and the file source's inputs. Each is a path an admin (or a glob)
//! chose, so it may be anything: a FIFO, a device such as `/dev/zero`, a
//! directory, a file of gigabytes.
//!
//! **Invariant:** every such file is opened through [`open_regular`]: it must
//! be a regular file (checked before opening, so a FIFO is never opened, and
//! again on the open descriptor, so a swap in between is caught), it is
//! opened with `O_NONBLOCK` (an open never waits for a FIFO's writer), and
//! callers read at most the cap they name.

use std::fs::{File, FileType};
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// Why a local file was not read. Callers add the path.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocalFileError {
    /// A FIFO, a device, a directory or a socket.
    #[error("{0}, not a regular file")]
    NotRegular(&'static str),
    /// Larger than the caller's cap.
    #[error("{size} bytes, larger than the {max}-byte cap{what}")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The cap.
        max: u64,
        /// What the cap is for (" of one file"), or empty.
        what: &'static str,
    },
    /// The operating system refused (missing, permission denied, ...).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// "a FIFO (named pipe)", "a directory", ...: what a non-regular file is.
pub(crate) fn kind_of(file_type: &FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "not a file"
    }
}

/// Opens `path` for reading if it is a regular file (symbolic links
/// followed), without blocking whatever it is. Returns the file and its size.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64), LocalFileError> {
    let before = std::fs::metadata(path)?;
    if !before.is_file() {
        return Err(LocalFileError::NotRegular(kind_of(&before.file_type())));
    }
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)?;
    let file = File::from(fd);
    // The path may have been replaced between the two looks: trust the
    // descriptor we hold.
    let opened = file.metadata()?;
    if !opened.is_file() {
        return Err(LocalFileError::NotRegular(kind_of(&opened.file_type())));
    }
    Ok((file, opened.len()))
}

/// The whole content of the regular file `path`, refused when it is larger
/// than `max` bytes (checked before reading, and while reading in case it
/// grows).
pub(crate) fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, LocalFileError> {
    let (file, size) = open_regular(path)?;
    let too_large = |size| LocalFileError::TooLarge {
        size,
        max,
        what: "",
    };
    if size > max {
        return Err(too_large(size));
    }
    let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut content)?;
    let read = u64::try_from(content.len()).unwrap_or(u64::MAX);
    if read > max {
        return Err(too_large(read));
    }
    Ok(content)
}

/// Whether the filesystem holding `path` (or its nearest existing ancestor)
/// is mounted read-only, with the mount's directory for messages: `Some`
/// only when it is.
pub(crate) fn read_only_mount(path: &Path) -> Option<std::path::PathBuf> {
    let mut probe = Some(path);
    while let Some(p) = probe {
        if let Ok(stat) = rustix::fs::statvfs(p) {
            if !stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
                return None;
            }
            return Some(mount_point(p));
        }
        probe = p.parent();
    }
    None
}

/// The top directory of the read-only filesystem holding `path`: the last
/// ancestor on the same device.
fn mount_point(path: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let Ok(absolute) = std::path::absolute(path) else {
        return path.to_path_buf();
    };
    let device = |p: &Path| std::fs::metadata(p).ok().map(|m| m.dev());
    let Some(dev) = device(&absolute) else {
        return absolute;
    };
    let mut top = absolute.as_path();
    while let Some(parent) = top.parent() {
        if device(parent) != Some(dev) {
            break;
        }
        top = parent;
    }
    top.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_fifos_are_refused_without_opening() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, kind) in [
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
        ] {
            match open_regular(path) {
                Err(LocalFileError::NotRegular(k)) => assert_eq!(k, kind),
                other => panic!("{path:?}: {other:?}"),
            }
        }
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .expect("mkfifo");
        // Opening it for reading would block until a writer came: this
        // returns at once.
        assert!(matches!(
            read_capped(&fifo, 10),
            Err(LocalFileError::NotRegular("a FIFO (named pipe)"))
        ));
    }

    #[test]
    fn the_cap_is_checked_before_and_while_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "0123456789").expect("write");
        assert_eq!(read_capped(&path, 10).expect("fits"), b"0123456789");
        let error = read_capped(&path, 9).expect_err("too large");
        assert_eq!(error.to_string(), "10 bytes, larger than the 9-byte cap");
        assert!(matches!(
            read_capped(&dir.path().join("missing"), 9),
            Err(LocalFileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
        ));
    }
}

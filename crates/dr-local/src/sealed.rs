//! Encrypted snapshot archives.
//!
//! A snapshot is the output of `pg_basebackup -F tar` (base.tar, pg_wal.tar,
//! backup_manifest) wrapped in one tar stream and encrypted with age to an
//! X25519 key. Nothing of the database is readable on disk without the key,
//! and age's authenticated STREAM encryption turns any flipped byte into a
//! decryption error instead of a silently different database.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use dr_core::{DrError, DrResult};

/// Points at an age identity file to use instead of the home's own key.
pub const SNAPSHOT_KEY_ENV: &str = "DRCTL_SNAPSHOT_KEY_FILE";

/// The files `pg_basebackup -F tar -X stream` writes, in archive order.
pub const BACKUP_FILES: [&str; 3] = ["backup_manifest", "base.tar", "pg_wal.tar"];

/// The X25519 identity that seals and opens snapshots.
pub struct SnapshotKey {
    identity: age::x25519::Identity,
    path: PathBuf,
}

impl std::fmt::Debug for SnapshotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotKey")
            .field("path", &self.path)
            .field("recipient", &self.identity.to_public().to_string())
            .finish()
    }
}

impl SnapshotKey {
    /// Loads the identity at `path`.
    pub fn load(path: &Path) -> DrResult<Self> {
        let text = fs::read_to_string(path).map_err(|e| {
            DrError::InvalidInput(format!("reading snapshot key {}: {e}", path.display()))
        })?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .ok_or_else(|| {
                DrError::InvalidInput(format!(
                    "{} holds no age identity (a line starting AGE-SECRET-KEY-)",
                    path.display()
                ))
            })?;
        let identity = age::x25519::Identity::from_str(line).map_err(|e| {
            DrError::InvalidInput(format!("snapshot key {} is not valid: {e}", path.display()))
        })?;
        Ok(SnapshotKey {
            identity,
            path: path.to_owned(),
        })
    }

    /// Loads the identity at `path`, creating a new one (mode 0600) when the
    /// file does not exist.
    pub fn load_or_create(path: &Path) -> DrResult<Self> {
        if !path.exists() {
            let identity = age::x25519::Identity::generate();
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|e| io_error("creating key directory", e))?;
                fs::set_permissions(parent, fs::Permissions::from_mode(0o700))
                    .map_err(|e| io_error("securing key directory", e))?;
            }
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| io_error("creating snapshot key", e))?;
            writeln!(
                file,
                "# MueJam DR snapshot key; public key: {}\n{}",
                identity.to_public(),
                identity.to_string().expose_secret()
            )
            .map_err(|e| io_error("writing snapshot key", e))?;
        }
        Self::load(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Encrypts the backup files in `backup_dir` into `output`, returning the
    /// size of the sealed file. Writes to a temporary name and renames, so a
    /// crash never leaves a truncated snapshot under the final name.
    pub fn seal(&self, backup_dir: &Path, output: &Path) -> DrResult<u64> {
        self.write_sealed(output, |writer| {
            let mut archive = tar::Builder::new(writer);
            for name in BACKUP_FILES {
                let path = backup_dir.join(name);
                if path.exists() {
                    archive.append_path_with_name(&path, name)?;
                } else if name != "pg_wal.tar" {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("backup is missing {name}"),
                    ));
                }
            }
            archive.finish()
        })
        .map_err(|e| io_error("sealing snapshot", e))
    }

    /// Re-encrypts a snapshot sealed with this key for `target` (a copy into
    /// another region, whose key is not this one), streaming: the plain
    /// archive never touches the disk. A source this key cannot open, or one
    /// with a flipped byte, is `Corrupt` and leaves no output.
    pub fn reseal(&self, sealed: &Path, target: &SnapshotKey, output: &Path) -> DrResult<u64> {
        let mut reader = self.decrypting(sealed)?;
        target
            .write_sealed(output, |writer| io::copy(&mut reader, writer).map(drop))
            // The authenticated stream fails on the byte that was changed.
            .map_err(|e| {
                if e.kind() == io::ErrorKind::InvalidData {
                    corrupt(sealed, &e)
                } else {
                    io_error("re-encrypting snapshot", e)
                }
            })
    }

    /// Writes what `fill` produces into `output`, encrypted to this key:
    /// through a temporary name (removed on failure) renamed at the end.
    /// Returns the sealed file's size.
    fn write_sealed(
        &self,
        output: &Path,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64> {
        let partial = output.with_extension("partial");
        let result = (|| -> io::Result<()> {
            let file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)?;
            let recipient = self.identity.to_public();
            let encryptor =
                age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                    .map_err(io::Error::other)?;
            let mut writer = encryptor.wrap_output(BufWriter::with_capacity(1 << 20, file))?;
            fill(&mut writer)?;
            let mut inner = writer.finish()?;
            inner.flush()?;
            inner.get_ref().sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
        fs::rename(&partial, output)?;
        fs::metadata(output).map(|m| m.len())
    }

    /// The plain stream of a snapshot sealed to this key; `Corrupt` when
    /// this key cannot open it.
    fn decrypting(&self, sealed: &Path) -> DrResult<impl Read> {
        let file = File::open(sealed).map_err(|e| io_error("opening snapshot", e))?;
        let decryptor = age::Decryptor::new_buffered(BufReader::with_capacity(1 << 20, file))
            .map_err(|e| corrupt(sealed, &e))?;
        decryptor
            .decrypt(std::iter::once(&self.identity as &dyn age::Identity))
            .map_err(|e| corrupt(sealed, &e))
    }

    /// Decrypts `sealed` and lays it out as a PostgreSQL data directory in
    /// `data_dir` (base.tar unpacked, pg_wal.tar into pg_wal/, the manifest
    /// beside them, ready for pg_verifybackup or for starting a server).
    pub fn open_into_data_dir(&self, sealed: &Path, data_dir: &Path) -> DrResult<()> {
        let reader = self.decrypting(sealed)?;
        fs::create_dir_all(data_dir).map_err(|e| io_error("creating data directory", e))?;
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error("securing data directory", e))?;
        let mut outer = tar::Archive::new(reader);
        let mut seen = Vec::new();
        let entries = outer.entries().map_err(|e| corrupt(sealed, &e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| corrupt(sealed, &e))?;
            let name = entry
                .path()
                .map_err(|e| corrupt(sealed, &e))?
                .to_string_lossy()
                .into_owned();
            match name.as_str() {
                "base.tar" => unpack_inner(&mut entry, data_dir),
                "pg_wal.tar" => unpack_inner(&mut entry, &data_dir.join("pg_wal")),
                "backup_manifest" => File::create(data_dir.join("backup_manifest"))
                    .and_then(|mut out| io::copy(&mut entry, &mut out).map(drop)),
                other => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected member {other}"),
                )),
            }
            .map_err(|e| corrupt(sealed, &e))?;
            seen.push(name);
        }
        for required in ["base.tar", "backup_manifest"] {
            if !seen.iter().any(|s| s == required) {
                return Err(DrError::Corrupt(format!(
                    "snapshot {} has no {required}",
                    sealed.display()
                )));
            }
        }
        Ok(())
    }
}

fn unpack_inner(entry: &mut impl Read, dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut archive = tar::Archive::new(entry);
    archive.set_preserve_permissions(true);
    archive.unpack(dir)
}

/// `Corrupt`, naming the error and every cause beneath it (tar's "failed to
/// unpack `path`" alone hides why); `Internal` when the cause is this
/// machine's disk (full, over quota, read-only, not ours): a full disk is not
/// a corrupt backup, and must not page as one.
fn corrupt(sealed: &Path, error: &(dyn std::error::Error + 'static)) -> DrError {
    let mut text = error.to_string();
    let mut local = is_local_disk(error);
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        local |= is_local_disk(cause);
        source = cause.source();
    }
    if local {
        return DrError::Internal(format!(
            "snapshot {} cannot be unpacked on this machine: {text}",
            sealed.display()
        ));
    }
    DrError::Corrupt(format!(
        "snapshot {} cannot be decrypted and unpacked with the configured key: {text}",
        sealed.display()
    ))
}

fn is_local_disk(error: &(dyn std::error::Error + 'static)) -> bool {
    error.downcast_ref::<io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            io::ErrorKind::StorageFull
                | io::ErrorKind::QuotaExceeded
                | io::ErrorKind::ReadOnlyFilesystem
                | io::ErrorKind::PermissionDenied
        )
    })
}

fn io_error(what: &str, error: io::Error) -> DrError {
    DrError::Internal(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_backup(dir: &Path) {
        fs::create_dir_all(dir).expect("dir");
        let mut base = tar::Builder::new(File::create(dir.join("base.tar")).expect("base"));
        let content = b"PG_VERSION 15 and some table data";
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        base.append_data(&mut header, "PG_VERSION", &content[..])
            .expect("append");
        base.finish().expect("finish");
        fs::write(
            dir.join("backup_manifest"),
            b"{\"PostgreSQL-Backup-Manifest-Version\": 1}",
        )
        .expect("manifest");
    }

    #[test]
    fn sealed_snapshot_round_trips_and_is_not_a_tar_without_the_key() {
        let tmp = tempfile::tempdir().expect("tmp");
        let key = SnapshotKey::load_or_create(&tmp.path().join("keys/k.txt")).expect("key");
        sample_backup(&tmp.path().join("b"));
        let sealed = tmp.path().join("s.tar.age");
        let size = key.seal(&tmp.path().join("b"), &sealed).expect("seal");
        assert_eq!(size, fs::metadata(&sealed).expect("meta").len());

        let raw = fs::read(&sealed).expect("read");
        assert!(!raw.windows(10).any(|w| w == b"PG_VERSION"));
        assert!(raw.starts_with(b"age-encryption.org/v1"));
        let readable_as_tar = tar::Archive::new(&raw[..])
            .entries()
            .ok()
            .and_then(|mut entries| entries.next())
            .is_some_and(|first| first.is_ok());
        assert!(!readable_as_tar);

        key.open_into_data_dir(&sealed, &tmp.path().join("data"))
            .expect("open");
        assert_eq!(
            fs::read(tmp.path().join("data/PG_VERSION")).expect("restored"),
            b"PG_VERSION 15 and some table data"
        );
    }

    #[test]
    fn a_full_disk_is_not_a_corrupt_snapshot_and_every_cause_is_named() {
        let full = io::Error::other(TarLike(io::Error::from(io::ErrorKind::StorageFull)));
        match corrupt(Path::new("s.tar.age"), &full) {
            DrError::Internal(text) => {
                assert!(text.contains("failed to unpack `base/4/2691`"), "{text}");
                assert!(text.contains("no storage space"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        let damaged = io::Error::other(TarLike(io::Error::from(io::ErrorKind::UnexpectedEof)));
        match corrupt(Path::new("s.tar.age"), &damaged) {
            DrError::Corrupt(text) => assert!(text.contains("unexpected end of file"), "{text}"),
            other => panic!("{other:?}"),
        }
    }

    /// What tar's unpack returns: an error whose own text names the file
    /// and whose source is the I/O error beneath.
    #[derive(Debug)]
    struct TarLike(io::Error);

    impl std::fmt::Display for TarLike {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("failed to unpack `base/4/2691`")
        }
    }

    impl std::error::Error for TarLike {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn another_key_or_a_flipped_byte_is_reported_as_corrupt() {
        let tmp = tempfile::tempdir().expect("tmp");
        let key = SnapshotKey::load_or_create(&tmp.path().join("k1")).expect("key");
        let other = SnapshotKey::load_or_create(&tmp.path().join("k2")).expect("key");
        sample_backup(&tmp.path().join("b"));
        let sealed = tmp.path().join("s.tar.age");
        key.seal(&tmp.path().join("b"), &sealed).expect("seal");

        let err = other
            .open_into_data_dir(&sealed, &tmp.path().join("d1"))
            .expect_err("wrong key");
        assert_eq!(err.name(), "Corrupt");

        let mut raw = fs::read(&sealed).expect("read");
        let middle = raw.len() - 100;
        raw[middle] ^= 0x40;
        fs::write(&sealed, raw).expect("write");
        let err = key
            .open_into_data_dir(&sealed, &tmp.path().join("d2"))
            .expect_err("flipped");
        assert_eq!(err.name(), "Corrupt");
    }

    #[test]
    fn a_resealed_copy_opens_with_the_target_key_only() {
        let tmp = tempfile::tempdir().expect("tmp");
        let east = SnapshotKey::load_or_create(&tmp.path().join("east")).expect("key");
        let west = SnapshotKey::load_or_create(&tmp.path().join("west")).expect("key");
        sample_backup(&tmp.path().join("b"));
        let sealed = tmp.path().join("s.tar.age");
        east.seal(&tmp.path().join("b"), &sealed).expect("seal");
        let copy = tmp.path().join("c.tar.age");
        let size = east.reseal(&sealed, &west, &copy).expect("reseal");
        assert_eq!(size, fs::metadata(&copy).expect("meta").len());

        let err = east
            .open_into_data_dir(&copy, &tmp.path().join("d1"))
            .expect_err("the source key cannot open the copy");
        assert_eq!(err.name(), "Corrupt");
        west.open_into_data_dir(&copy, &tmp.path().join("d2"))
            .expect("the target key opens it");
        assert_eq!(
            fs::read(tmp.path().join("d2/PG_VERSION")).expect("restored"),
            b"PG_VERSION 15 and some table data"
        );

        // A key that cannot open the source makes no copy at all.
        let other = tmp.path().join("o.tar.age");
        let err = west.reseal(&sealed, &east, &other).expect_err("wrong key");
        assert_eq!(err.name(), "Corrupt");
        assert!(!other.exists() && !other.with_extension("partial").exists());

        // A flipped byte in the source is found, and nothing is left behind.
        let mut raw = fs::read(&sealed).expect("read");
        let middle = raw.len() - 100;
        raw[middle] ^= 0x40;
        fs::write(&sealed, raw).expect("write");
        let err = east.reseal(&sealed, &west, &other).expect_err("flipped");
        assert_eq!(err.name(), "Corrupt");
        assert!(!other.exists() && !other.with_extension("partial").exists());
    }

    #[test]
    fn a_key_file_without_an_identity_is_invalid_input() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("k");
        fs::write(&path, "not a key").expect("write");
        assert_eq!(
            SnapshotKey::load(&path).expect_err("bad").name(),
            "InvalidInput"
        );
    }
}

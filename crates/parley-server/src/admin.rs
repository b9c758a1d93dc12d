//! What `parley admin` does on the server host, against the configured
//! store and data dir directly rather than over HTTP: making an account
//! (so the first administrator exists before anyone can log in) and
//! backups. Both work whether the server runs or not: SQLite in WAL mode
//! takes a second writer process (it waits for the server's commit) and
//! readers that never block it; PostgreSQL takes any number.

use std::path::{Path, PathBuf};

use parley_store::UserRecord;

use crate::accounts::{NewAccount, create_account};
use crate::auth::Passwords;
use crate::{Config, ServerError, store_config};

/// Makes `account` in the store `config` names, hashing its password with
/// the configured argon2 cost.
pub async fn create_user(config: Config, account: NewAccount) -> Result<UserRecord, ServerError> {
    let config = config.check()?;
    std::fs::create_dir_all(&config.data_dir)?;
    let passwords = Passwords::new(config.argon2_memory_kib, config.argon2_iterations)?;
    let (store, _commits) = parley_store::open(&store_config(&config)).await?;
    let created = create_account(&*store, &passwords, account).await;
    store.shutdown().await;
    Ok(created?)
}

/// What [`backup`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// The database copy (`parley.db` in the backup), when the store is
    /// SQLite; `None` for PostgreSQL, which `pg_dump` backs up.
    pub database: Option<PathBuf>,
    /// Its size in bytes.
    pub database_bytes: u64,
    /// The data dir's other files (keys), by name.
    pub files: Vec<String>,
    /// Files copied from the `media` directory.
    pub media_files: u64,
}

/// The SQLite files the store keeps next to the database; never copied as
/// files (the database is copied through SQLite). The search index
/// (`parley.db.search`) is derived from the messages and built anew by the
/// server that opens the backup.
fn is_database_file(name: &str) -> bool {
    name.strip_prefix("parley.db").is_some_and(|rest| {
        rest.is_empty()
            || rest.starts_with('-')
            || rest.starts_with(parley_store::sqlite::SEARCH_INDEX_SUFFIX)
    })
}

/// Backs up the data dir `config` names into `dest` (made, mode 0700; it
/// must not exist or be empty) while the server may be running: a
/// consistent copy of the SQLite database (`VACUUM INTO`), then every
/// other file at the top of the data dir (the signing key and any other
/// keys), then the `media` directory. Restoring is copying `dest` back as
/// the data dir (docs/operations.md).
pub fn backup(config: &Config, dest: &Path) -> Result<BackupReport, ServerError> {
    let data_dir = &config.data_dir;
    if !data_dir.is_dir() {
        return Err(std::io::Error::other(format!(
            "the data dir {} does not exist",
            data_dir.display()
        ))
        .into());
    }
    if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
        return Err(std::io::Error::other(format!(
            "{} exists and is not empty; back up into a new directory",
            dest.display()
        ))
        .into());
    }
    make_private_dir(dest)?;
    let mut report = BackupReport::default();
    if config.database.is_none() {
        let copy = dest.join("parley.db");
        parley_store::sqlite::backup(&data_dir.join("parley.db"), &copy)?;
        report.database_bytes = std::fs::metadata(&copy)?.len();
        report.database = Some(copy);
    }
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && !is_database_file(&name) {
            // std::fs::copy keeps the permissions (keys stay 0600).
            std::fs::copy(entry.path(), dest.join(&name))?;
            report.files.push(name);
        }
    }
    report.files.sort();
    let media = data_dir.join("media");
    if media.is_dir() {
        report.media_files = copy_tree(&media, &dest.join("media"))?;
    }
    sync_dir(dest)?;
    Ok(report)
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Copies the files under `from` into `to`; returns how many. Symlinks are
/// not followed.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    make_private_dir(to)?;
    let mut count = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            count += copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
            count += 1;
        }
    }
    Ok(count)
}

/// Makes the directory's entries durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

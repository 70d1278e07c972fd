//! Finding the machine's PostgreSQL server binaries, and the options a
//! cluster is started with.

use std::path::{Path, PathBuf};

use super::EmbeddedError;

/// Where Debian and Ubuntu put the server binaries, one directory a version.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";

/// The one line a user sees when the server binaries are missing.
pub const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH \
or under /usr/lib/postgresql/*/bin; install them with `sudo apt-get install -y postgresql` \
(Debian/Ubuntu), or set database.url to use an existing server";

/// Options for the cluster's server process.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `fsync` on is what the daemon uses; tests may turn it off for speed.
    pub fsync: bool,
    /// `max_connections` of the server.
    pub max_connections: u32,
    /// Further settings, after orderd's own (so they may override them).
    pub settings: Vec<ServerSetting>,
}

/// One `name=value` server setting, checked so that it cannot break out of
/// the `-c name='value'` it is passed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSetting {
    name: String,
    value: String,
}

impl ServerSetting {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not name=value"))?;
        let name = name.trim();
        let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if !name_ok {
            return Err(format!("{name:?} is not a PostgreSQL setting name"));
        }
        let value = value.trim();
        if value
            .chars()
            .any(|c| c == '\'' || c == '\\' || c.is_control())
        {
            return Err(format!(
                "the value of {name} may not contain quotes, backslashes or control characters"
            ));
        }
        Ok(Self {
            name: name.to_string(),
            value: value.to_string(),
        })
    }

    pub(super) fn as_option(&self) -> String {
        format!(" -c {}='{}'", self.name, self.value)
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            fsync: true,
            max_connections: 200,
            settings: Vec::new(),
        }
    }
}

/// The located server binaries.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
}

impl PgBinaries {
    /// PATH first, then the newest `/usr/lib/postgresql/N/bin`.
    pub fn locate() -> Result<Self, EmbeddedError> {
        Self::locate_in(std::env::var_os("PATH"), Path::new(DEBIAN_PG_ROOT))
    }

    /// [`PgBinaries::locate`] over a given PATH value and versions root.
    pub fn locate_in(
        path_var: Option<std::ffi::OsString>,
        versions_root: &Path,
    ) -> Result<Self, EmbeddedError> {
        let from_dir = |dir: &Path| {
            let initdb = dir.join("initdb");
            let pg_ctl = dir.join("pg_ctl");
            (initdb.is_file() && pg_ctl.is_file() && dir.join("postgres").is_file())
                .then_some(PgBinaries { initdb, pg_ctl })
        };
        if let Some(path) = path_var {
            for dir in std::env::split_paths(&path) {
                if let Some(found) = from_dir(&dir) {
                    return Ok(found);
                }
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(versions_root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        versions.sort();
        versions
            .into_iter()
            .rev()
            .find_map(|(_, dir)| from_dir(&dir))
            .ok_or(EmbeddedError::BinariesNotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_say_how_to_install_them() {
        let empty = std::env::temp_dir().join(format!("orderd-nobin-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&empty).unwrap();
        let error =
            PgBinaries::locate_in(Some(empty.clone().into_os_string()), &empty).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("apt-get install -y postgresql"),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
        let _ = std::fs::remove_dir_all(&empty);
    }

    #[test]
    fn server_settings_cannot_break_out_of_their_option() {
        let ok = ServerSetting::parse(" shared_buffers = 1GB ").unwrap();
        assert_eq!(ok.as_option(), " -c shared_buffers='1GB'");
        let dotted = ServerSetting::parse("pg_stat_statements.track=all").unwrap();
        assert_eq!(dotted.as_option(), " -c pg_stat_statements.track='all'");
        for bad in [
            "no_equals_sign",
            "=1",
            "Shared_buffers=1",
            "a b=1",
            "x=1' -c fsync='off",
            "x=a\\b",
            "x=a\nb",
        ] {
            assert!(ServerSetting::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_newest_versioned_directory_wins() {
        let root = std::env::temp_dir().join(format!("orderd-pgroot-{}", uuid::Uuid::new_v4()));
        for version in ["9", "15", "13"] {
            let bin = root.join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for name in ["initdb", "pg_ctl", "postgres"] {
                std::fs::write(bin.join(name), "").unwrap();
            }
        }
        let found = PgBinaries::locate_in(None, &root).unwrap();
        assert_eq!(found.initdb, root.join("15/bin/initdb"));
        let _ = std::fs::remove_dir_all(&root);
    }
}

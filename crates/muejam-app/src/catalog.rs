//! What the application is made of: its migrations (up and down SQL, like
//! Django's), its revisions (an image, an environment, and how many of the
//! migrations its files carry), and the configuration every process reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dr_core::{DrError, DrResult};
use serde::{Deserialize, Serialize};

/// The Django app label of the MueJam API's own migrations.
pub const APP_LABEL: &str = "muejam";
/// The schema the app's own tables live in (apart from the platform's).
pub const SCHEMA: &str = "muejam_api";
/// The migrations table, shaped like `django_migrations`.
pub const MIGRATIONS_TABLE: &str = "muejam_api.django_migrations";
/// `manage.py migrate <app> zero`: unapply them all.
pub const ZERO: &str = "zero";

pub struct Migration {
    pub name: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

/// Every migration the code base has ever had, in order. A revision's files
/// hold the first `migrations` of them.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_story_views",
        up: "CREATE TABLE muejam_api.story_views (story_id bigint NOT NULL, viewed_at timestamptz NOT NULL DEFAULT now())",
        down: "DROP TABLE muejam_api.story_views",
    },
    Migration {
        name: "0002_story_views_source",
        up: "ALTER TABLE muejam_api.story_views ADD COLUMN source text",
        down: "ALTER TABLE muejam_api.story_views DROP COLUMN source",
    },
    Migration {
        name: "0003_featured_stories",
        up: "CREATE TABLE muejam_api.featured_stories (story_id bigint PRIMARY KEY, since timestamptz NOT NULL DEFAULT now())",
        down: "DROP TABLE muejam_api.featured_stories",
    },
    Migration {
        name: "0004_featured_rank",
        up: "ALTER TABLE muejam_api.featured_stories ADD COLUMN rank integer NOT NULL DEFAULT 0",
        down: "ALTER TABLE muejam_api.featured_stories DROP COLUMN rank",
    },
];

/// The names a revision carrying `count` migrations knows.
pub fn known_migrations(count: usize) -> Vec<String> {
    MIGRATIONS
        .iter()
        .take(count)
        .map(|m| m.name.to_owned())
        .collect()
}

/// One revision's pod template: what a process of it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub image: String,
    /// How many of [`MIGRATIONS`] its files carry.
    pub migrations: usize,
    /// A release whose health check answers 500: `drctl local deploy --bad`.
    #[serde(default)]
    pub broken: bool,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl Template {
    /// The template's identity (Kubernetes' pod-template-hash): FNV-1a of
    /// its canonical JSON.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in canonical {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{:010x}", h & 0xff_ffff_ffff)
    }
}

/// Where the app finds the database and its credentials: the same names
/// the platform's production configuration has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub hosted_zone: String,
    /// The database record the app connects through.
    pub database_record: String,
    pub database: String,
    /// The application role's secret.
    pub app_secret_id: String,
    /// The owner's secret (migrations change the schema).
    pub migration_secret_id: String,
    /// The CA the database certificates chain to (verify-full).
    pub ca_file: PathBuf,
}

pub const CONFIG_FILE: &str = "app/config.json";

impl AppConfig {
    pub fn read(home: &Path) -> DrResult<AppConfig> {
        let path = home.join(CONFIG_FILE);
        let bytes = std::fs::read(&path)
            .map_err(|e| DrError::NotFound(format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| DrError::Internal(format!("{} is unreadable: {e}", path.display())))
    }

    pub fn write(&self, home: &Path) -> DrResult<()> {
        let path = home.join(CONFIG_FILE);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| DrError::Internal(format!("creating {}: {e}", dir.display())))?;
        }
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| DrError::Internal(e.to_string()))?;
        std::fs::write(&path, bytes)
            .map_err(|e| DrError::Internal(format!("writing {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_known_by_what_it_runs() {
        let t = Template {
            image: "muejam-api:1".into(),
            migrations: 2,
            broken: false,
            env: BTreeMap::new(),
        };
        let mut read_only = t.clone();
        read_only.env.insert("READ_ONLY_MODE".into(), "true".into());
        assert_eq!(t.hash(), t.clone().hash());
        assert_ne!(t.hash(), read_only.hash());
        assert_eq!(t.hash().len(), 10);
        assert_eq!(
            known_migrations(2),
            ["0001_story_views", "0002_story_views_source"]
        );
        assert_eq!(known_migrations(99).len(), MIGRATIONS.len());
    }
}

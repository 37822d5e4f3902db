//! [`ReportStore`] in a directory: where local runs keep their reports.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use dr_core::{DrError, DrResult, ReportStore};

#[derive(Debug, Clone)]
pub struct FileReportStore {
    dir: PathBuf,
}

impl FileReportStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileReportStore { dir: dir.into() }
    }

    fn path(&self, key: &str) -> DrResult<PathBuf> {
        let relative = Path::new(key);
        if key.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(DrError::InvalidInput(format!(
                "report key {key:?} must be a relative path without .."
            )));
        }
        Ok(self.dir.join(relative))
    }
}

#[async_trait]
impl ReportStore for FileReportStore {
    async fn put(&self, key: &str, _content_type: &str, body: &[u8]) -> DrResult<String> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| DrError::Internal(format!("creating {}: {e}", parent.display())))?;
        }
        tokio::fs::write(&path, body)
            .await
            .map_err(|e| DrError::Internal(format!("writing {}: {e}", path.display())))?;
        Ok(path.display().to_string())
    }

    async fn get(&self, key: &str) -> DrResult<Option<Vec<u8>>> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DrError::Internal(format!(
                "reading {}: {e}",
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_reads_back_and_refuses_escaping_keys() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = FileReportStore::new(dir.path());
        let at = store
            .put("failover/a.json", "application/json", b"{}")
            .await
            .expect("put");
        assert!(at.ends_with("failover/a.json"));
        assert_eq!(
            store.get("failover/a.json").await.expect("get"),
            Some(b"{}".to_vec())
        );
        assert_eq!(store.get("failover/none.json").await.expect("get"), None);
        assert_eq!(
            store
                .put("../x", "t", b"")
                .await
                .expect_err("escape")
                .name(),
            "InvalidInput"
        );
    }
}

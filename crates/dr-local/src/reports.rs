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

    async fn list(&self, prefix: &str) -> DrResult<Vec<String>> {
        let dir = self.dir.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            let mut pending = vec![dir.clone()];
            while let Some(at) = pending.pop() {
                let entries = match std::fs::read_dir(&at) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(DrError::Internal(format!("listing {}: {e}", at.display())))
                    }
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        pending.push(path);
                    } else if let Ok(relative) = path.strip_prefix(&dir) {
                        let key = relative
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy())
                            .collect::<Vec<_>>()
                            .join("/");
                        if key.starts_with(&prefix) {
                            keys.push(key);
                        }
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
        .map_err(|e| DrError::Internal(format!("listing reports: {e}")))?
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
        store
            .put("drill/b.md", "text/markdown", b"# b")
            .await
            .expect("put");
        assert_eq!(
            store.list("").await.expect("list"),
            ["drill/b.md", "failover/a.json"]
        );
        assert_eq!(
            store.list("failover/").await.expect("list"),
            ["failover/a.json"]
        );
        assert!(FileReportStore::new(dir.path().join("none"))
            .list("")
            .await
            .expect("an empty store")
            .is_empty());
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

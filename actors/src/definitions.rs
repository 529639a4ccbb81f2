//! What segments and campaigns share: versioned definitions in the meta
//! group, read by id and version, and paged newest version first.

use herald_storage::{def_kind, DefHead, DefVersion, KvEngine};

use crate::segments::page_size;
use crate::service::{Herald, Result, ServiceError};

fn kind_name(kind: u8) -> &'static str {
    if kind == def_kind::CAMPAIGN {
        "campaign"
    } else {
        "segment"
    }
}

/// A `version` path or query parameter.
pub(crate) fn version_param(v: Option<&str>) -> Result<Option<u32>> {
    v.map(|s| {
        s.parse::<u32>().map_err(|_| {
            ServiceError::BadRequest(format!("version must be a positive number, not {s:?}"))
        })
    })
    .transpose()
}

impl<E: KvEngine> Herald<E> {
    /// A definition's head and one version (the latest when `None`), from
    /// this node's meta state.
    pub(crate) fn def_record(
        &self,
        app_id: &str,
        kind: u8,
        id: &str,
        version: Option<u32>,
    ) -> Result<(DefHead, DefVersion)> {
        let what = kind_name(kind);
        let reader = self.host.reader();
        let head = reader.def_head(app_id, kind, id)?.ok_or_else(|| {
            ServiceError::NotFound(format!("{what} {id} of application {app_id} not found"))
        })?;
        let v = version.unwrap_or(head.latest);
        let rec = reader
            .def_version(app_id, kind, id, v)?
            .ok_or_else(|| ServiceError::NotFound(format!("{what} {id} has no version {v}")))?;
        Ok((head, rec))
    }

    /// One page of a definition's versions, newest first; the token is the
    /// last version of the previous page.
    pub(crate) async fn def_version_page(
        &self,
        app_id: &str,
        kind: u8,
        id: &str,
        size: Option<&str>,
        token: Option<&str>,
    ) -> Result<(DefHead, Vec<DefVersion>, Option<String>)> {
        let size = page_size(size)?;
        let before = match token.filter(|t| !t.is_empty()) {
            None => u32::MAX,
            Some(t) => t.parse::<u32>().map_err(|_| {
                ServiceError::BadRequest(format!("{t:?} is not a valid pagination token"))
            })?,
        };
        self.app(app_id).await?;
        let (head, _) = self.def_record(app_id, kind, id, None)?;
        let mut versions = self.host.reader().def_versions(app_id, kind, id)?;
        versions.retain(|v| v.version < before);
        versions.reverse();
        let next_token = (versions.len() > size).then(|| versions[size - 1].version.to_string());
        versions.truncate(size);
        Ok((head, versions, next_token))
    }
}

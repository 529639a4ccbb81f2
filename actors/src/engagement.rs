//! The compact per-shard engagement table (DESIGN.md, Actors and memory).
//!
//! One small row per endpoint with what throttles, quiet hours and sessions
//! need, kept in memory by the shard actor, updated from applied changes and
//! rebuilt from storage on start or after a snapshot install.

use std::collections::BTreeMap;

use herald_model::session::OpenSession;
use herald_model::wire::EndpointResponse;
use herald_storage::{Change, GroupId, KvEngine, Reader};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Engagement {
    /// OptOut is ALL.
    pub opted_out: bool,
    /// EndpointStatus is INACTIVE.
    pub inactive: bool,
    /// Start of the open session, if one is open.
    pub session_start_ms: Option<i64>,
    /// Last activity seen in the open session.
    pub last_activity_ms: i64,
}

impl Engagement {
    fn from_endpoint(ep: &EndpointResponse, keep: Option<Engagement>) -> Self {
        let mut e = keep.unwrap_or_default();
        e.opted_out = ep.opt_out.as_deref() == Some("ALL");
        e.inactive = ep.endpoint_status.as_deref() == Some("INACTIVE");
        e
    }

    fn with_session(mut self, open: Option<&OpenSession>) -> Self {
        self.session_start_ms = open.map(|s| s.start_ms);
        self.last_activity_ms = open.map_or(self.last_activity_ms, |s| s.last_activity_ms);
        self
    }
}

/// Rows keyed by (app id, endpoint id).
#[derive(Debug, Default)]
pub struct EngagementTable {
    rows: BTreeMap<(String, String), Engagement>,
}

impl EngagementTable {
    pub fn rebuild<E: KvEngine>(
        reader: &Reader<E>,
        group: GroupId,
    ) -> herald_storage::Result<Self> {
        let mut rows = BTreeMap::new();
        reader.for_each_endpoint(group, &mut |app, ep| {
            let id = ep.id.clone().unwrap_or_default();
            rows.insert((app.to_owned(), id), Engagement::from_endpoint(&ep, None));
        })?;
        for (app, id, open) in reader.open_sessions(group)? {
            let row = rows.entry((app, id)).or_default();
            *row = row.with_session(Some(&open));
        }
        Ok(Self { rows })
    }

    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Endpoint {
                app_id,
                endpoint_id,
                endpoint: Some(ep),
            } => {
                let key = (app_id.clone(), endpoint_id.clone());
                let keep = self.rows.get(&key).copied();
                self.rows.insert(key, Engagement::from_endpoint(ep, keep));
            }
            Change::Endpoint {
                app_id,
                endpoint_id,
                endpoint: None,
            } => {
                self.rows.remove(&(app_id.clone(), endpoint_id.clone()));
            }
            Change::Session {
                app_id,
                endpoint_id,
                open,
            } => {
                let key = (app_id.clone(), endpoint_id.clone());
                if let Some(row) = self.rows.get_mut(&key) {
                    *row = row.with_session(open.as_ref());
                }
            }
            Change::AppPurged { app_id } => {
                self.rows.retain(|(a, _), _| a != app_id);
            }
        }
    }

    pub fn get(&self, app_id: &str, endpoint_id: &str) -> Option<Engagement> {
        self.rows
            .get(&(app_id.to_owned(), endpoint_id.to_owned()))
            .copied()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn open_sessions(&self) -> usize {
        self.rows
            .values()
            .filter(|r| r.session_start_ms.is_some())
            .count()
    }
}

impl EngagementTable {
    /// Whether some open session has had no activity since `cutoff_ms`.
    pub fn open_sessions_idle_since(&self, cutoff_ms: i64) -> bool {
        self.rows
            .values()
            .any(|r| r.session_start_ms.is_some() && r.last_activity_ms < cutoff_ms)
    }
}

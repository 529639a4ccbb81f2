//! The compact per-shard engagement table (DESIGN.md, Actors and memory).
//!
//! What throttles, quiet hours and sessions need, kept in memory by the
//! shard actor, updated from applied changes and rebuilt from storage on
//! start (in the same pass that builds the segment index) or after a
//! snapshot install. Sparse: only endpoints that are opted out, inactive or
//! in an open session have a row; every other endpoint costs nothing here.
//! Which endpoints exist is the segment index's knowledge, not this table's.

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
    /// Last activity seen in the open session (0 without one).
    pub last_activity_ms: i64,
}

impl Engagement {
    fn with_endpoint(mut self, ep: &EndpointResponse) -> Self {
        self.opted_out = ep.opt_out.as_deref() == Some("ALL");
        self.inactive = ep.endpoint_status.as_deref() == Some("INACTIVE");
        self
    }

    fn with_session(mut self, open: Option<&OpenSession>) -> Self {
        self.session_start_ms = open.map(|s| s.start_ms);
        self.last_activity_ms = open.map_or(0, |s| s.last_activity_ms);
        self
    }
}

/// Rows that differ from the default, keyed by (app id, endpoint id).
#[derive(Debug, Default)]
pub struct EngagementTable {
    rows: BTreeMap<(String, String), Engagement>,
}

impl EngagementTable {
    /// Reads the group's endpoints and open sessions.
    pub fn rebuild<E: KvEngine>(
        reader: &Reader<E>,
        group: GroupId,
    ) -> herald_storage::Result<Self> {
        let mut t = Self::default();
        reader.for_each_endpoint(group, &mut |app, ep| t.endpoint(app, &ep))?;
        t.load_sessions(reader, group)?;
        Ok(t)
    }

    /// Takes in one stored endpoint (building the table from a scan).
    pub fn endpoint(&mut self, app_id: &str, ep: &EndpointResponse) {
        if let Some(id) = ep.id.as_deref() {
            self.update(app_id, id, |e| e.with_endpoint(ep));
        }
    }

    /// Takes in the group's open sessions (after its endpoints).
    pub fn load_sessions<E: KvEngine>(
        &mut self,
        reader: &Reader<E>,
        group: GroupId,
    ) -> herald_storage::Result<()> {
        for (app, id, open) in reader.open_sessions(group)? {
            self.update(&app, &id, |e| e.with_session(Some(&open)));
        }
        Ok(())
    }

    fn update(
        &mut self,
        app_id: &str,
        endpoint_id: &str,
        f: impl FnOnce(Engagement) -> Engagement,
    ) {
        let key = (app_id.to_owned(), endpoint_id.to_owned());
        let e = f(self.rows.get(&key).copied().unwrap_or_default());
        if e == Engagement::default() {
            self.rows.remove(&key);
        } else {
            self.rows.insert(key, e);
        }
    }

    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Endpoint {
                app_id,
                endpoint_id,
                endpoint: Some(ep),
            } => self.update(app_id, endpoint_id, |e| e.with_endpoint(ep)),
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
            } => self.update(app_id, endpoint_id, |e| e.with_session(open.as_ref())),
            Change::AppPurged { app_id } => {
                self.rows.retain(|(a, _), _| a != app_id);
            }
        }
    }

    /// The endpoint's row (the default for an endpoint without one).
    pub fn get(&self, app_id: &str, endpoint_id: &str) -> Engagement {
        self.rows
            .get(&(app_id.to_owned(), endpoint_id.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// Rows held (endpoints that differ from the default).
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    pub fn open_sessions(&self) -> usize {
        self.rows
            .values()
            .filter(|r| r.session_start_ms.is_some())
            .count()
    }

    /// Whether some open session has had no activity since `cutoff_ms`.
    pub fn open_sessions_idle_since(&self, cutoff_ms: i64) -> bool {
        self.rows
            .values()
            .any(|r| r.session_start_ms.is_some() && r.last_activity_ms < cutoff_ms)
    }

    /// Approximate heap bytes held: per row its key strings, the row and
    /// a B-tree slot's share.
    pub fn heap_bytes(&self) -> usize {
        self.rows
            .keys()
            .map(|(a, e)| {
                a.capacity() + e.capacity() + 2 * 24 + std::mem::size_of::<Engagement>() + 16
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(id: &str, opt_out: Option<&str>) -> EndpointResponse {
        EndpointResponse {
            id: Some(id.into()),
            opt_out: opt_out.map(Into::into),
            ..Default::default()
        }
    }

    fn change(app: &str, id: &str, e: Option<EndpointResponse>) -> Change {
        Change::Endpoint {
            app_id: app.into(),
            endpoint_id: id.into(),
            endpoint: e.map(Box::new),
        }
    }

    #[test]
    fn rows_exist_only_where_they_differ_from_the_default() {
        let mut t = EngagementTable::default();
        for i in 0..1000 {
            t.apply(&change(
                "a",
                &format!("e{i}"),
                Some(ep(&format!("e{i}"), None)),
            ));
        }
        t.apply(&change("a", "e7", Some(ep("e7", Some("ALL")))));
        t.apply(&Change::Session {
            app_id: "a".into(),
            endpoint_id: "e8".into(),
            open: Some(OpenSession {
                id: "s".into(),
                start_ms: 10,
                last_activity_ms: 20,
                paused_at_ms: None,
            }),
        });
        assert_eq!(t.rows(), 2);
        assert_eq!(t.get("a", "e1"), Engagement::default());
        assert!(t.get("a", "e7").opted_out);
        assert_eq!(t.get("a", "e8").session_start_ms, Some(10));
        assert_eq!(t.open_sessions(), 1);
        assert!(t.open_sessions_idle_since(21));
        assert!(!t.open_sessions_idle_since(20));

        // Opting back in and closing the session drop the rows.
        t.apply(&change("a", "e7", Some(ep("e7", None))));
        t.apply(&Change::Session {
            app_id: "a".into(),
            endpoint_id: "e8".into(),
            open: None,
        });
        assert_eq!(t.rows(), 0);
        assert_eq!(t.open_sessions(), 0);
        assert_eq!(t.heap_bytes(), 0);

        t.apply(&change("a", "e7", Some(ep("e7", Some("ALL")))));
        t.apply(&change("a", "e7", None));
        assert_eq!(t.rows(), 0, "a deleted endpoint's row goes");
        t.apply(&change("a", "e7", Some(ep("e7", Some("ALL")))));
        t.apply(&Change::AppPurged { app_id: "a".into() });
        assert_eq!(t.rows(), 0);
    }
}

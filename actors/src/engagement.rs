//! The compact per-shard engagement table (DESIGN.md, Actors and memory).
//!
//! What throttles, quiet hours and sessions need, kept in memory by the
//! shard actor, updated from applied changes and rebuilt from storage on
//! start or after a snapshot install. Sparse: an endpoint costs one 64-bit
//! id hash in its app's set; only endpoints that are opted out, inactive or
//! in an open session have a row. Two ids of one app with the same 64-bit
//! hash (odds ~n²/2⁶⁵) would share existence; nothing decides a send from
//! this table (the stored endpoint does), so that costs a count at most.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasherDefault;

use herald_model::segment_index::{endpoint_id_hash, PassHasher};
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

type IdSet = HashSet<u64, BuildHasherDefault<PassHasher>>;

/// Per application: which endpoints exist, and the rows that differ from
/// the default.
#[derive(Debug, Default)]
struct AppRows {
    ids: IdSet,
    rows: HashMap<u64, Engagement, BuildHasherDefault<PassHasher>>,
}

impl AppRows {
    fn set(&mut self, h: u64, e: Engagement) {
        if e == Engagement::default() {
            self.rows.remove(&h);
        } else {
            self.rows.insert(h, e);
        }
    }

    fn heap_bytes(&self) -> usize {
        // hashbrown: a control byte and a slot per bucket.
        self.ids.capacity() * (8 + 1)
            + self.rows.capacity() * (8 + std::mem::size_of::<Engagement>() + 1)
    }
}

#[derive(Debug, Default)]
pub struct EngagementTable {
    apps: BTreeMap<String, AppRows>,
}

impl EngagementTable {
    pub fn rebuild<E: KvEngine>(
        reader: &Reader<E>,
        group: GroupId,
    ) -> herald_storage::Result<Self> {
        let mut t = Self::default();
        reader.for_each_endpoint(group, &mut |app, ep| {
            if let Some(id) = ep.id.as_deref() {
                t.upsert(app, id, &ep);
            }
        })?;
        for (app, id, open) in reader.open_sessions(group)? {
            t.session(&app, &id, Some(&open));
        }
        Ok(t)
    }

    fn upsert(&mut self, app_id: &str, endpoint_id: &str, ep: &EndpointResponse) {
        if !self.apps.contains_key(app_id) {
            self.apps.insert(app_id.to_owned(), AppRows::default());
        }
        let Some(a) = self.apps.get_mut(app_id) else {
            return;
        };
        let h = endpoint_id_hash(endpoint_id);
        a.ids.insert(h);
        let e = a
            .rows
            .get(&h)
            .copied()
            .unwrap_or_default()
            .with_endpoint(ep);
        a.set(h, e);
    }

    fn session(&mut self, app_id: &str, endpoint_id: &str, open: Option<&OpenSession>) {
        let Some(a) = self.apps.get_mut(app_id) else {
            return;
        };
        let h = endpoint_id_hash(endpoint_id);
        if a.ids.contains(&h) {
            let e = a
                .rows
                .get(&h)
                .copied()
                .unwrap_or_default()
                .with_session(open);
            a.set(h, e);
        }
    }

    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Endpoint {
                app_id,
                endpoint_id,
                endpoint: Some(ep),
            } => self.upsert(app_id, endpoint_id, ep),
            Change::Endpoint {
                app_id,
                endpoint_id,
                endpoint: None,
            } => {
                if let Some(a) = self.apps.get_mut(app_id) {
                    let h = endpoint_id_hash(endpoint_id);
                    a.ids.remove(&h);
                    a.rows.remove(&h);
                    if a.ids.is_empty() {
                        self.apps.remove(app_id);
                    }
                }
            }
            Change::Session {
                app_id,
                endpoint_id,
                open,
            } => self.session(app_id, endpoint_id, open.as_ref()),
            Change::AppPurged { app_id } => {
                self.apps.remove(app_id);
            }
        }
    }

    /// The endpoint's row; `None` if the endpoint does not exist.
    pub fn get(&self, app_id: &str, endpoint_id: &str) -> Option<Engagement> {
        let a = self.apps.get(app_id)?;
        let h = endpoint_id_hash(endpoint_id);
        a.ids
            .contains(&h)
            .then(|| a.rows.get(&h).copied().unwrap_or_default())
    }

    pub fn len(&self) -> usize {
        self.apps.values().map(|a| a.ids.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    pub fn open_sessions(&self) -> usize {
        self.rows().filter(|r| r.session_start_ms.is_some()).count()
    }

    /// Whether some open session has had no activity since `cutoff_ms`.
    pub fn open_sessions_idle_since(&self, cutoff_ms: i64) -> bool {
        self.rows()
            .any(|r| r.session_start_ms.is_some() && r.last_activity_ms < cutoff_ms)
    }

    /// Approximate heap bytes held (the hash tables' buckets).
    pub fn heap_bytes(&self) -> usize {
        self.apps
            .iter()
            .map(|(k, a)| k.capacity() + a.heap_bytes())
            .sum()
    }

    fn rows(&self) -> impl Iterator<Item = &Engagement> {
        self.apps.values().flat_map(|a| a.rows.values())
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
        assert_eq!(t.len(), 1000);
        assert_eq!(t.rows().count(), 2);
        assert_eq!(t.get("a", "e1"), Some(Engagement::default()));
        assert!(t.get("a", "e7").is_some_and(|e| e.opted_out));
        assert_eq!(t.get("a", "e8").and_then(|e| e.session_start_ms), Some(10));
        assert_eq!(t.open_sessions(), 1);
        assert!(t.open_sessions_idle_since(21));
        assert!(!t.open_sessions_idle_since(20));
        // A session for an unknown endpoint is not recorded.
        t.apply(&Change::Session {
            app_id: "a".into(),
            endpoint_id: "ghost".into(),
            open: None,
        });
        assert_eq!(t.get("a", "ghost"), None);

        // Opting back in and closing the session drop the rows.
        t.apply(&change("a", "e7", Some(ep("e7", None))));
        t.apply(&Change::Session {
            app_id: "a".into(),
            endpoint_id: "e8".into(),
            open: None,
        });
        assert_eq!(t.rows().count(), 0);
        assert_eq!(t.open_sessions(), 0);

        t.apply(&change("a", "e1", None));
        assert_eq!(t.get("a", "e1"), None);
        assert_eq!(t.len(), 999);
        assert!(t.heap_bytes() < 999 * 40, "{} bytes", t.heap_bytes());
        t.apply(&Change::AppPurged { app_id: "a".into() });
        assert!(t.is_empty());
    }
}

//! Typed reads of the state machine tables.
//!
//! Readers do not order themselves with writes: callers that need
//! linearizable reads pass the owning group's read barrier first.

use std::ops::ControlFlow;
use std::sync::Arc;

use herald_model::session::{ClosedSession, OpenSession};
use herald_model::wire::EndpointResponse;

use crate::apply::EventRow;
use crate::engine::{Cf, KvEngine};
use crate::error::{Result, StorageError};
use crate::keys::{self, tag, GroupId, META_GROUP};
use crate::types::{AddressClaim, AppRecord};

pub struct Reader<E: KvEngine> {
    engine: Arc<E>,
}

impl<E: KvEngine> Clone for Reader<E> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(table: &'static str, v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|e| StorageError::corrupt(table, e))
}

impl<E: KvEngine> Reader<E> {
    pub fn new(engine: Arc<E>) -> Self {
        Self { engine }
    }

    /// Reads of the analytics rollups.
    pub fn analytics(&self) -> crate::analytics::AnalyticsReader<'_, E> {
        crate::analytics::AnalyticsReader {
            engine: &*self.engine,
        }
    }

    /// Whether `node` was removed from `group` for good
    /// (`Command::RetireNode`).
    pub fn is_retired(&self, group: GroupId, node: u64) -> Result<bool> {
        Ok(self
            .engine
            .get(Cf::State, &keys::retired_node(group, node))?
            .is_some())
    }

    /// An app, including one being deleted.
    pub fn app_any(&self, app_id: &str) -> Result<Option<AppRecord>> {
        self.engine
            .get(Cf::State, &keys::app(app_id))?
            .map(|v| decode("app", &v))
            .transpose()
    }

    /// A live app (not being deleted).
    pub fn app(&self, app_id: &str) -> Result<Option<AppRecord>> {
        Ok(self.app_any(app_id)?.filter(|a| !a.deleting))
    }

    /// Apps in id order after `after`, at most `limit`; with `include_deleting`
    /// apps whose purge is unfinished are listed too.
    pub fn apps(
        &self,
        after: Option<&str>,
        limit: usize,
        include_deleting: bool,
    ) -> Result<Vec<AppRecord>> {
        let table = keys::table(META_GROUP, tag::APP);
        let start = match after {
            Some(a) => {
                let mut k = keys::app(a);
                k.push(0);
                k
            }
            None => table.clone(),
        };
        let mut out = Vec::new();
        let mut err = None;
        self.engine
            .scan(Cf::State, &start, &keys::prefix_end(&table), &mut |_, v| {
                match decode::<AppRecord>("app", v) {
                    Ok(a) if a.deleting && !include_deleting => {}
                    Ok(a) => out.push(a),
                    Err(e) => {
                        err = Some(e);
                        return ControlFlow::Break(());
                    }
                }
                if out.len() >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    pub fn endpoint(
        &self,
        group: GroupId,
        app_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<EndpointResponse>> {
        self.engine
            .get(Cf::State, &keys::endpoint(group, app_id, endpoint_id))?
            .map(|v| decode("endpoint", &v))
            .transpose()
    }

    pub fn template(&self, kind: &str, name: &str) -> Result<Option<crate::types::TemplateHead>> {
        self.engine
            .get(Cf::State, &keys::template(kind, name))?
            .map(|v| decode("template", &v))
            .transpose()
    }

    pub fn template_version(
        &self,
        kind: &str,
        name: &str,
        version: u32,
    ) -> Result<Option<crate::types::TemplateVersionRecord>> {
        self.engine
            .get(Cf::State, &keys::template_version(kind, name, version))?
            .map(|v| decode("template_version", &v))
            .transpose()
    }

    /// Every template head, in (kind, name) order.
    pub fn templates(&self) -> Result<Vec<crate::types::TemplateHead>> {
        self.decode_range("template", &keys::table(META_GROUP, tag::TEMPLATE))
    }

    /// Every version of one template, oldest first.
    pub fn template_versions(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Vec<crate::types::TemplateVersionRecord>> {
        self.decode_range("template_version", &keys::template_versions(kind, name))
    }

    /// A segment's or campaign's head (`kind`: `types::def_kind`).
    pub fn def_head(
        &self,
        app_id: &str,
        kind: u8,
        id: &str,
    ) -> Result<Option<crate::types::DefHead>> {
        self.engine
            .get(Cf::State, &keys::def_head(app_id, kind, id))?
            .map(|v| decode("def_head", &v))
            .transpose()
    }

    pub fn def_version(
        &self,
        app_id: &str,
        kind: u8,
        id: &str,
        version: u32,
    ) -> Result<Option<crate::types::DefVersion>> {
        self.engine
            .get(Cf::State, &keys::def_version(app_id, kind, id, version))?
            .map(|v| decode("def_version", &v))
            .transpose()
    }

    /// Every head of one kind of one app, in id order.
    pub fn def_heads(&self, app_id: &str, kind: u8) -> Result<Vec<crate::types::DefHead>> {
        self.decode_range("def_head", &keys::def_heads(app_id, kind))
    }

    /// Every version of one definition, oldest first.
    pub fn def_versions(
        &self,
        app_id: &str,
        kind: u8,
        id: &str,
    ) -> Result<Vec<crate::types::DefVersion>> {
        self.decode_range("def_version", &keys::def_versions(app_id, kind, id))
    }

    /// Every activity of one campaign, in (run, treatment) order.
    pub fn activities(
        &self,
        app_id: &str,
        campaign_id: &str,
    ) -> Result<Vec<crate::types::ActivityRecord>> {
        self.decode_range("activity", &keys::activities(app_id, campaign_id))
    }

    /// Every endpoint of one app in one group.
    pub fn for_each_app_endpoint(
        &self,
        group: GroupId,
        app_id: &str,
        visit: &mut dyn FnMut(EndpointResponse) -> ControlFlow<()>,
    ) -> Result<()> {
        let prefix = keys::app_prefix(group, tag::ENDPOINT, app_id);
        let mut err = None;
        self.engine.scan(
            Cf::State,
            &prefix,
            &keys::prefix_end(&prefix),
            &mut |_, v| match decode::<EndpointResponse>("endpoint", v) {
                Ok(ep) => visit(ep),
                Err(e) => {
                    err = Some(e);
                    ControlFlow::Break(())
                }
            },
        )?;
        err.map_or(Ok(()), Err)
    }

    fn decode_range<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        prefix: &[u8],
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut err = None;
        self.engine.scan(
            Cf::State,
            prefix,
            &keys::prefix_end(prefix),
            &mut |_, v| match decode::<T>(what, v) {
                Ok(t) => {
                    out.push(t);
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    err = Some(e);
                    ControlFlow::Break(())
                }
            },
        )?;
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Ledger intents without an outcome: (app, message id, intent time),
    /// at most `limit`.
    pub fn open_sends(&self, group: GroupId, limit: usize) -> Result<Vec<(String, String, i64)>> {
        let mut out = Vec::new();
        self.scan_table(
            group,
            tag::OPEN_SEND,
            "open_send",
            &mut |app, id, at: i64| {
                out.push((app, id, at));
                if out.len() >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )?;
        Ok(out)
    }

    /// Ledger rows whose intent is older than `before_ms`, oldest first, at
    /// most `limit`: (intent time, app, message id).
    pub fn expired_sends(
        &self,
        group: GroupId,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String, String)>> {
        let start = keys::table(group, tag::SEND_EXPIRY);
        let mut end = start.clone();
        end.extend_from_slice(&((before_ms as u64) ^ (1 << 63)).to_be_bytes());
        let mut out = Vec::new();
        self.engine.scan(Cf::State, &start, &end, &mut |k, _| {
            if let Some(row) = keys::split_send_expiry(k) {
                out.push(row);
            }
            if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }

    /// The send-ledger row of one message.
    pub fn ledger_row(
        &self,
        group: GroupId,
        app_id: &str,
        message_id: &str,
    ) -> Result<Option<crate::types::LedgerRow>> {
        self.engine
            .get(Cf::State, &keys::send_ledger(group, app_id, message_id))?
            .map(|v| decode("send_ledger", &v))
            .transpose()
    }

    /// Ids of the endpoints of `user_id` stored in this group.
    pub fn user_endpoint_ids(
        &self,
        group: GroupId,
        app_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>> {
        let prefix = keys::user_prefix(group, app_id, user_id);
        let mut out = Vec::new();
        self.engine.scan(
            Cf::State,
            &prefix,
            &keys::prefix_end(&prefix),
            &mut |k, _| {
                out.push(keys::tail_str(k, prefix.len()));
                ControlFlow::Continue(())
            },
        )?;
        Ok(out)
    }

    /// Decodes every row of one of the group's per-app tables in key order,
    /// handing `(app_id, key tail, row)` to `visit` until it breaks.
    fn scan_table<T: serde::de::DeserializeOwned>(
        &self,
        group: GroupId,
        table_tag: u8,
        table: &'static str,
        visit: &mut dyn FnMut(String, String, T) -> ControlFlow<()>,
    ) -> Result<()> {
        let start = keys::table(group, table_tag);
        let mut err = None;
        self.engine.scan(
            Cf::State,
            &start,
            &keys::prefix_end(&start),
            &mut |k, v| match decode::<T>(table, v) {
                Ok(row) => {
                    let (app, tail) = keys::split_app_key(k, start.len());
                    visit(app, tail, row)
                }
                Err(e) => {
                    err = Some(e);
                    ControlFlow::Break(())
                }
            },
        )?;
        err.map_or(Ok(()), Err)
    }

    /// Every endpoint of the group, across apps: `(app_id, endpoint)`.
    pub fn for_each_endpoint(
        &self,
        group: GroupId,
        visit: &mut dyn FnMut(&str, EndpointResponse),
    ) -> Result<()> {
        self.scan_table(
            group,
            tag::ENDPOINT,
            "endpoint",
            &mut |app, _, ep: EndpointResponse| {
                let app = ep.application_id.clone().unwrap_or(app);
                visit(&app, ep);
                ControlFlow::Continue(())
            },
        )
    }

    /// The endpoint holding `address` on `channel` in `app_id` (the row
    /// lives in the group `keys::address_shard_key` places it in).
    pub fn address_holder(
        &self,
        group: GroupId,
        app_id: &str,
        channel: &str,
        address: &str,
    ) -> Result<Option<AddressClaim>> {
        self.engine
            .get(Cf::State, &keys::address(group, app_id, channel, address))?
            .map(|v| decode("address", &v))
            .transpose()
    }

    /// Whether `number` is on the app's SMS opt-out list (in the group of
    /// its address row).
    pub fn sms_opted_out(&self, group: GroupId, app_id: &str, number: &str) -> Result<bool> {
        Ok(self
            .engine
            .get(Cf::State, &keys::sms_opt_out(group, app_id, number))?
            .is_some())
    }

    /// Up to `limit` address claims of the group not yet known to be handed
    /// over, as `(app_id, claim)`.
    pub fn pending_claims(
        &self,
        group: GroupId,
        limit: usize,
    ) -> Result<Vec<(String, AddressClaim)>> {
        let mut out = Vec::new();
        self.scan_table(
            group,
            tag::PENDING_CLAIM,
            "pending_claim",
            &mut |app, _, c| {
                out.push((app, c));
                if out.len() >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )?;
        Ok(out)
    }

    /// Every open session of the group: `(app_id, endpoint_id, session)`.
    pub fn open_sessions(&self, group: GroupId) -> Result<Vec<(String, String, OpenSession)>> {
        let mut out = Vec::new();
        self.scan_table(
            group,
            tag::OPEN_SESSION,
            "open_session",
            &mut |app, id, s| {
                out.push((app, id, s));
                ControlFlow::Continue(())
            },
        )?;
        Ok(out)
    }

    /// Event types this group has seen for an app, with counts.
    pub fn event_types(&self, group: GroupId, app_id: &str) -> Result<Vec<(String, u64)>> {
        let prefix = keys::app_prefix(group, tag::EVENT_TYPE, app_id);
        let mut out = Vec::new();
        self.engine.scan(
            Cf::State,
            &prefix,
            &keys::prefix_end(&prefix),
            &mut |k, v| {
                let n = serde_json::from_slice::<u64>(v).unwrap_or(0);
                out.push((keys::tail_str(k, prefix.len()), n));
                ControlFlow::Continue(())
            },
        )?;
        Ok(out)
    }

    /// Whether the app has events stored before `before_ms` in this group.
    pub fn has_events_before(&self, group: GroupId, app_id: &str, before_ms: i64) -> Result<bool> {
        let prefix = keys::app_prefix(group, tag::EVENT, app_id);
        let end = keys::event(group, app_id, before_ms, 0, 0);
        Ok(!self
            .engine
            .scan_collect(Cf::State, &prefix, &end, 1)?
            .is_empty())
    }

    /// Events of one endpoint, oldest first, at most `limit` (through the
    /// per-endpoint index; `scan_max` bounds the index rows looked at).
    pub fn endpoint_events(
        &self,
        group: GroupId,
        app_id: &str,
        endpoint_id: &str,
        limit: usize,
        scan_max: usize,
    ) -> Result<Vec<EventRow>> {
        let index = keys::event_by_endpoint_prefix(group, app_id, endpoint_id);
        let table = keys::app_prefix(group, tag::EVENT, app_id);
        let mut event_keys = Vec::new();
        self.engine
            .scan(Cf::State, &index, &keys::prefix_end(&index), &mut |k, _| {
                let mut key = table.clone();
                key.extend_from_slice(keys::event_suffix(k));
                event_keys.push(key);
                if event_keys.len() >= limit.min(scan_max) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
        let mut out = Vec::with_capacity(event_keys.len());
        for k in event_keys {
            if let Some(v) = self.engine.get(Cf::State, &k)? {
                out.push(decode("event", &v)?);
            }
        }
        Ok(out)
    }

    /// Up to `limit` stored events of an app in this group, oldest first.
    pub fn events(&self, group: GroupId, app_id: &str, limit: usize) -> Result<Vec<EventRow>> {
        let prefix = keys::app_prefix(group, tag::EVENT, app_id);
        self.engine
            .scan_collect(Cf::State, &prefix, &keys::prefix_end(&prefix), limit)?
            .iter()
            .map(|(_, v)| decode("event", v))
            .collect()
    }

    /// Closed sessions of an app in this group, by end time.
    pub fn closed_sessions(&self, group: GroupId, app_id: &str) -> Result<Vec<ClosedSession>> {
        let prefix = keys::app_prefix(group, tag::CLOSED_SESSION, app_id);
        self.engine
            .scan_collect(Cf::State, &prefix, &keys::prefix_end(&prefix), usize::MAX)?
            .iter()
            .map(|(_, v)| decode("closed_session", v))
            .collect()
    }

    /// One import or export job.
    pub fn job(&self, app_id: &str, job_id: &str) -> Result<Option<crate::types::JobRecord>> {
        self.engine
            .get(Cf::State, &keys::job(app_id, job_id))?
            .map(|v| decode("job", &v))
            .transpose()
    }

    /// Every job of one app, newest first (ties by id).
    pub fn jobs(&self, app_id: &str) -> Result<Vec<crate::types::JobRecord>> {
        let mut jobs: Vec<crate::types::JobRecord> =
            self.decode_range("job", &keys::app_prefix(META_GROUP, tag::JOB, app_id))?;
        jobs.sort_by(|a, b| b.creation_ms.cmp(&a.creation_ms).then(b.id.cmp(&a.id)));
        Ok(jobs)
    }

    /// Whether an endpoint was imported into a segment (rows of `group`).
    pub fn is_segment_member(
        &self,
        group: GroupId,
        app_id: &str,
        segment_id: &str,
        endpoint_id: &str,
    ) -> Result<bool> {
        Ok(self
            .engine
            .get(
                Cf::State,
                &keys::segment_member(group, app_id, segment_id, endpoint_id),
            )?
            .is_some())
    }

    /// The endpoint ids imported into a segment in one group, in id order.
    pub fn for_each_segment_member(
        &self,
        group: GroupId,
        app_id: &str,
        segment_id: &str,
        visit: &mut dyn FnMut(String) -> ControlFlow<()>,
    ) -> Result<()> {
        let prefix = keys::segment_members(group, app_id, segment_id);
        self.engine.scan(
            Cf::State,
            &prefix,
            &keys::prefix_end(&prefix),
            &mut |k, _| visit(keys::tail_str(k, prefix.len())),
        )
    }

    /// Number of keys the group holds in the state tables (tests, metrics).
    pub fn state_key_count(&self, group: GroupId) -> Result<usize> {
        let (s, e) = keys::group_range(group);
        let mut n = 0usize;
        self.engine.scan(Cf::State, &s, &e, &mut |_, _| {
            n += 1;
            ControlFlow::Continue(())
        })?;
        Ok(n)
    }
}

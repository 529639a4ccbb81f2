//! How each command changes the state machine tables.
//!
//! Deterministic: the result depends only on the stored state, the command and
//! the log index (no clock, no randomness, ordered maps only). A command that
//! is refused returns [`CmdResult::Rejected`] and writes nothing.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use herald_model::analytics::Kind;
use herald_model::message::Outcome;
use herald_model::session::{self, ClosedSession, OpenSession, SessionConfig};
use herald_model::wire::EndpointResponse;
use serde::{Deserialize, Serialize};

use crate::engine::{Cf, KvEngine, WriteBatch};
use crate::error::{Result, StorageError};
use crate::keys::{self, tag, GroupId};
use crate::types::{
    AddressClaim, AppRecord, ApplyLimits, CampaignRef, ChargeLimits, ChargeRow, CmdResult, Command,
    DefHead, DefVersion, DefWrite, EndpointMark, EndpointUpsert, IntentVerdict, LedgerRow,
    SendIntent, TemplateHead, TemplateVersionRecord, TemplateWrite,
};

/// A change the shard's in-memory tables (engagement table, actors) follow.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Endpoint {
        app_id: String,
        endpoint_id: String,
        endpoint: Option<Box<EndpointResponse>>,
    },
    Session {
        app_id: String,
        endpoint_id: String,
        open: Option<OpenSession>,
    },
    AppPurged {
        app_id: String,
    },
}

/// Receives the changes of every applied entry, after they are written.
pub trait ApplyObserver: Send + Sync + 'static {
    fn applied(&self, group: GroupId, changes: &[Change]);
    /// The group's state was replaced by a snapshot: rebuild from storage.
    fn reset(&self, group: GroupId);
}

/// A stored event row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    pub endpoint_id: String,
    pub event_id: String,
    pub event: herald_model::wire::Event,
}

/// Reads that see the writes made earlier in the same command.
pub(crate) struct Txn<'a, E: KvEngine + ?Sized> {
    engine: &'a E,
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub batch: WriteBatch,
    pub changes: Vec<Change>,
}

impl<'a, E: KvEngine + ?Sized> Txn<'a, E> {
    pub fn new(engine: &'a E) -> Self {
        Self {
            engine,
            overlay: BTreeMap::new(),
            batch: WriteBatch::new(),
            changes: Vec::new(),
        }
    }

    pub(crate) fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.engine.get(Cf::State, key),
        }
    }

    pub(crate) fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        key: &[u8],
    ) -> Result<Option<T>> {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StorageError::corrupt(table, e)),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.overlay.insert(key.clone(), Some(value.clone()));
        self.batch.put(Cf::State, key, value);
    }

    pub(crate) fn put_json<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        let v = serde_json::to_vec(value).expect("state values serialize");
        self.put(key, v);
    }

    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.overlay.insert(key.clone(), None);
        self.batch.delete(Cf::State, key);
    }

    /// The last stored row of `[start, end)` (not this command's writes).
    pub(crate) fn engine_last(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.engine.last(Cf::State, start, end)
    }

    /// Visits the stored rows of `[start, end)` (not this command's writes).
    pub(crate) fn engine_scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut crate::engine::Visit<'_>,
    ) -> Result<()> {
        self.engine.scan(Cf::State, start, end, visit)
    }

    /// Keys of `[start, end)` in storage (the overlay's puts and deletes included).
    fn keys_in(&self, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut out = std::collections::BTreeSet::new();
        self.engine.scan(Cf::State, start, end, &mut |k, _| {
            out.insert(k.to_vec());
            ControlFlow::Continue(())
        })?;
        for (k, v) in self.overlay.range(start.to_vec()..end.to_vec()) {
            if v.is_some() {
                out.insert(k.clone());
            } else {
                out.remove(k);
            }
        }
        Ok(out.into_iter().collect())
    }
}

fn session_config(limits: &ApplyLimits) -> SessionConfig {
    SessionConfig {
        idle_timeout_ms: limits.session_idle_timeout_ms,
        ..SessionConfig::default()
    }
}

/// Number of attribute keys an endpoint holds (custom attributes, metrics and
/// user attributes), the figure Pinpoint's 250-attribute quota counts.
pub fn attribute_count(ep: &EndpointResponse) -> usize {
    ep.attributes.as_ref().map_or(0, |a| a.len())
        + ep.metrics.as_ref().map_or(0, |m| m.len())
        + ep.user
            .as_ref()
            .and_then(|u| u.user_attributes.as_ref())
            .map_or(0, |a| a.len())
}

pub(crate) fn apply_command<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    group: GroupId,
    log_index: u64,
    cmd: &Command,
) -> Result<CmdResult> {
    let is_meta_group = group == keys::META_GROUP;
    if !cmd.any_group() && cmd.is_meta() != is_meta_group {
        return Ok(CmdResult::Rejected(format!(
            "command not accepted by raft group {group}"
        )));
    }
    match cmd {
        Command::CreateApp(rec) => {
            let key = keys::app(&rec.id);
            if txn.get_raw(&key)?.is_some() {
                return Ok(CmdResult::Rejected(format!(
                    "app {} already exists",
                    rec.id
                )));
            }
            txn.put_json(key, rec);
            Ok(CmdResult::App(Some(rec.clone())))
        }
        Command::UpdateAppSettings { app_id, settings } => update_app(txn, app_id, |a| {
            a.settings = settings.clone();
        }),
        Command::MarkAppDeleting { app_id } => update_app(txn, app_id, |a| a.deleting = true),
        Command::RemoveApp { app_id } => {
            let key = keys::app(app_id);
            let old: Option<AppRecord> = txn.get_json("app", &key)?;
            txn.delete(key);
            for t in keys::META_APP_TABLES {
                let p = keys::app_prefix(keys::META_GROUP, t, app_id);
                let end = keys::prefix_end(&p);
                txn.batch.delete_range(Cf::State, p, end);
            }
            Ok(CmdResult::App(old.map(Box::new)))
        }
        Command::TagApp { app_id, tags } => update_app(txn, app_id, |a| {
            a.tags
                .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        }),
        Command::UntagApp {
            app_id,
            keys: names,
        } => update_app(txn, app_id, |a| {
            for k in names {
                a.tags.remove(k);
            }
        }),
        Command::UpdateEmailChannel {
            app_id,
            request,
            now_iso,
        } => {
            let mut written = None;
            update_app(txn, app_id, |a| {
                let ch = herald_model::channel::email_update(
                    a.email_channel.as_ref(),
                    app_id,
                    request,
                    now_iso,
                );
                written = Some(Box::new(ch.clone()));
                a.email_channel = Some(ch);
            })?;
            Ok(CmdResult::EmailChannel(written))
        }
        Command::DeleteEmailChannel { app_id } => {
            let mut removed = None;
            update_app(txn, app_id, |a| {
                removed = a.email_channel.take().map(Box::new)
            })?;
            Ok(CmdResult::EmailChannel(removed))
        }
        Command::UpdateApnsChannel {
            app_id,
            platform,
            write,
            now_iso,
        } => {
            let mut written = None;
            update_app(txn, app_id, |a| {
                let response = herald_model::channel::apns_update(
                    a.apns_channels.get(platform).map(|c| &c.response),
                    app_id,
                    platform,
                    write.enabled,
                    &write.method,
                    write.has_token,
                    now_iso,
                );
                written = Some(Box::new(response.clone()));
                a.apns_channels.insert(
                    platform.clone(),
                    crate::types::ApnsChannelRecord {
                        response,
                        write: write.clone(),
                    },
                );
            })?;
            Ok(CmdResult::ApnsChannel(written))
        }
        Command::DeleteApnsChannel { app_id, platform } => {
            let mut removed = None;
            update_app(txn, app_id, |a| {
                removed = a
                    .apns_channels
                    .remove(platform)
                    .map(|c| Box::new(c.response))
            })?;
            Ok(CmdResult::ApnsChannel(removed))
        }
        Command::UpdateGcmChannel {
            app_id,
            enabled,
            sealed_service_json,
            now_iso,
        } => {
            let mut written = None;
            update_app(txn, app_id, |a| {
                let response = herald_model::channel::gcm_update(
                    a.gcm_channel.as_ref().map(|c| &c.response),
                    app_id,
                    *enabled,
                    now_iso,
                );
                written = Some(Box::new(response.clone()));
                a.gcm_channel = Some(crate::types::GcmChannelRecord {
                    response,
                    sealed_service_json: sealed_service_json.clone(),
                });
            })?;
            Ok(CmdResult::GcmChannel(written))
        }
        Command::DeleteGcmChannel { app_id } => {
            let mut removed = None;
            update_app(txn, app_id, |a| {
                removed = a.gcm_channel.take().map(|c| Box::new(c.response))
            })?;
            Ok(CmdResult::GcmChannel(removed))
        }
        Command::ForgetPerson { app_id, person } => {
            crate::analytics::forget(txn, group, app_id, Kind::Person, person)?;
            Ok(CmdResult::Done)
        }
        Command::SetEventRetention { app_id, days } => {
            let mut out = None;
            update_app(txn, app_id, |a| {
                a.event_retention_days = *days;
                out = Some(Box::new(a.clone()));
            })?;
            Ok(CmdResult::App(out))
        }
        Command::ExpireEvents {
            app_id,
            before_ms,
            max_rows,
        } => {
            let n = crate::analytics::expire_events(txn, group, app_id, *before_ms, *max_rows)?;
            Ok(CmdResult::Count(n))
        }
        Command::SetEventStream { app_id, stream } => {
            let mut out = None;
            update_app(txn, app_id, |a| {
                out = match stream {
                    Some(s) => {
                        a.event_stream = Some(s.clone());
                        Some(Box::new(s.clone()))
                    }
                    None => a.event_stream.take().map(Box::new),
                }
            })?;
            Ok(CmdResult::EventStream(out))
        }
        Command::UpdateSmsChannel {
            app_id,
            request,
            messages_per_second,
            now_iso,
        } => {
            let mut written = None;
            update_app(txn, app_id, |a| {
                let response = herald_model::channel::sms_update(
                    a.sms_channel.as_ref(),
                    app_id,
                    request,
                    *messages_per_second,
                    now_iso,
                );
                written = Some(Box::new(response.clone()));
                a.sms_channel = Some(response);
            })?;
            Ok(CmdResult::SmsChannel(written))
        }
        Command::DeleteSmsChannel { app_id } => {
            let mut removed = None;
            update_app(txn, app_id, |a| {
                removed = a.sms_channel.take().map(Box::new)
            })?;
            Ok(CmdResult::SmsChannel(removed))
        }
        Command::UpsertEndpoints {
            app_id,
            now_iso,
            limits,
            items,
        } => {
            let mut written = Vec::with_capacity(items.len());
            let mut claims = Vec::new();
            for item in items {
                match upsert_endpoint(txn, group, app_id, now_iso, limits, item)? {
                    Ok((ep, claim)) => {
                        written.push(ep);
                        claims.extend(claim);
                    }
                    Err(reason) => return Ok(CmdResult::Rejected(reason)),
                }
            }
            Ok(CmdResult::Written {
                endpoints: written,
                events: 0,
                claims,
            })
        }
        Command::DeleteEndpoint {
            app_id,
            endpoint_id,
        } => {
            let deleted = delete_endpoint(txn, group, app_id, endpoint_id)?;
            if let Some(ep) = &deleted {
                // An endpoint without a user is its own person.
                if herald_model::endpoint::user_id(ep).is_none() {
                    let person = herald_model::analytics::person_key(None, endpoint_id);
                    crate::analytics::forget(txn, group, app_id, Kind::Person, &person)?;
                }
            }
            Ok(CmdResult::Endpoints(deleted.into_iter().collect()))
        }
        Command::DeleteUserEndpoints { app_id, user_id } => {
            let prefix = keys::user_prefix(group, app_id, user_id);
            let ids: Vec<String> = txn
                .keys_in(&prefix, &keys::prefix_end(&prefix))?
                .iter()
                .map(|k| keys::tail_str(k, prefix.len()))
                .collect();
            let mut deleted = Vec::new();
            for id in ids {
                deleted.extend(delete_endpoint(txn, group, app_id, &id)?);
            }
            let person = herald_model::analytics::person_key(Some(user_id), "");
            crate::analytics::forget(txn, group, app_id, Kind::Person, &person)?;
            Ok(CmdResult::Endpoints(deleted))
        }
        Command::PutEvents {
            app_id,
            now_iso,
            limits,
            items,
        } => {
            let cfg = session_config(limits);
            let mut n = 0u32;
            let mut claims = Vec::new();
            let mut rollups = limits.rollups.then(crate::analytics::Rollups::default);
            // Event-type counters are read and written once per command.
            let mut type_counts: BTreeMap<&str, u64> = BTreeMap::new();
            for item in items {
                let endpoint_id = &item.endpoint_id;
                if let Some(request) = &item.endpoint {
                    let upsert = EndpointUpsert {
                        endpoint_id: endpoint_id.clone(),
                        request: request.clone(),
                        seq: 0,
                    };
                    match upsert_endpoint(txn, group, app_id, now_iso, limits, &upsert)? {
                        Ok((_, claim)) => claims.extend(claim),
                        Err(reason) => return Ok(CmdResult::Rejected(reason)),
                    }
                }
                let mut events: Vec<(i64, &String, &herald_model::wire::Event)> = Vec::new();
                for (event_id, ev) in &item.events {
                    let ts = ev.timestamp.as_deref().unwrap_or_default();
                    match herald_model::time::parse_iso8601_ms(ts) {
                        Ok(ms) => events.push((ms, event_id, ev)),
                        Err(e) => return Ok(CmdResult::Rejected(format!("event {event_id}: {e}"))),
                    }
                }
                // Sessions follow event time, whatever order the client sent.
                events.sort_by_key(|(ms, _, _)| *ms);
                let skey = keys::open_session(group, app_id, endpoint_id);
                // Delivery events alone (a campaign's `_email.*`) leave the
                // session as it is: no need to read it.
                let touches_session = events.iter().any(|(_, _, ev)| {
                    let et = ev.event_type.as_deref().unwrap_or_default();
                    session::classify(et, None) != session::SessionEvent::Ignored
                });
                let before: Option<OpenSession> = if touches_session {
                    txn.get_json("open_session", &skey)?
                } else {
                    None
                };
                let mut open = before.clone();
                // Rollups count the event under its endpoint's person.
                let person = match &rollups {
                    Some(_) if touches_activity(&events) => {
                        let ep: Option<EndpointResponse> =
                            txn.get_json("endpoint", &keys::endpoint(group, app_id, endpoint_id))?;
                        let user = ep
                            .as_ref()
                            .and_then(|e| e.user.as_ref()?.user_id.as_deref());
                        herald_model::analytics::person_key(user, endpoint_id)
                    }
                    _ => String::new(),
                };
                for (ms, event_id, ev) in events {
                    if let Some(r) = rollups.as_mut() {
                        r.event(txn, group, app_id, endpoint_id, &person, ms, ev)?;
                    }
                    let row = EventRow {
                        endpoint_id: endpoint_id.clone(),
                        event_id: event_id.clone(),
                        event: ev.clone(),
                    };
                    txn.put_json(keys::event(group, app_id, ms, log_index, n), &row);
                    txn.put(
                        keys::event_by_endpoint(group, app_id, endpoint_id, ms, log_index, n),
                        Vec::new(),
                    );
                    n += 1;
                    let et = ev.event_type.as_deref().unwrap_or_default();
                    *type_counts.entry(et).or_default() += 1;
                    let sid = ev.session.as_ref().and_then(|s| s.id.as_deref());
                    let (next, closed) =
                        session::on_event(open, session::classify(et, sid), ms, &cfg);
                    open = next;
                    for c in closed {
                        record_closed(txn, group, app_id, endpoint_id, &c)?;
                    }
                }
                if open != before {
                    match &open {
                        Some(s) => txn.put_json(skey, s),
                        None => txn.delete(skey),
                    }
                    txn.changes.push(Change::Session {
                        app_id: app_id.clone(),
                        endpoint_id: endpoint_id.clone(),
                        open,
                    });
                }
            }
            add_event_type_counts(txn, group, app_id, type_counts)?;
            if let Some(r) = rollups {
                r.flush(txn, group, app_id)?;
            }
            Ok(CmdResult::Written {
                endpoints: Vec::new(),
                events: u64::from(n),
                claims,
            })
        }
        Command::ClaimAddresses { app_id, claims } => {
            let mut displaced = Vec::new();
            for c in claims {
                let key = keys::address(group, app_id, &c.channel, &c.address);
                let holder: Option<AddressClaim> = txn.get_json("address", &key)?;
                match holder {
                    Some(h) if (h.at_ms, h.seq) > (c.at_ms, c.seq) => {
                        // A newer endpoint holds the address already.
                        if h.endpoint_id != c.endpoint_id {
                            displaced.push(c.clone());
                        }
                    }
                    Some(h) if h.endpoint_id == c.endpoint_id => {
                        txn.put_json(key, c);
                    }
                    Some(h) => {
                        displaced.push(h);
                        txn.put_json(key, c);
                    }
                    None => txn.put_json(key, c),
                }
            }
            Ok(CmdResult::Displaced(displaced))
        }
        Command::ClearPendingClaims { claims } => {
            let mut cleared = 0u64;
            for (app_id, c) in claims {
                let key = keys::pending_claim(group, app_id, &c.endpoint_id);
                let pending: Option<AddressClaim> = txn.get_json("pending_claim", &key)?;
                if pending.as_ref() == Some(c) {
                    txn.delete(key);
                    cleared += 1;
                }
            }
            Ok(CmdResult::Count(cleared))
        }
        Command::DeactivateDisplaced { app_id, displaced } => {
            let mut changed = 0u64;
            for d in displaced {
                let key = keys::endpoint(group, app_id, &d.endpoint_id);
                let Some(mut ep) = txn.get_json::<EndpointResponse>("endpoint", &key)? else {
                    continue;
                };
                let still_holds = ep.channel_type.as_deref() == Some(d.channel.as_str())
                    && ep.address.as_deref() == Some(d.address.as_str());
                if !still_holds || ep.endpoint_status.as_deref() == Some("INACTIVE") {
                    continue;
                }
                ep.endpoint_status = Some("INACTIVE".into());
                txn.put_json(key, &ep);
                txn.changes.push(Change::Endpoint {
                    app_id: app_id.clone(),
                    endpoint_id: d.endpoint_id.clone(),
                    endpoint: Some(Box::new(ep)),
                });
                changed += 1;
            }
            Ok(CmdResult::Count(changed))
        }
        Command::UpdateCustomChannel {
            app_id,
            request,
            now_iso,
        } => update_app(txn, app_id, |a| {
            a.custom_channel = Some(herald_model::channel::custom_update(
                a.custom_channel.as_ref(),
                app_id,
                request,
                now_iso,
            ));
        }),
        Command::DeleteCustomChannel { app_id } => {
            let app: Option<AppRecord> = txn.get_json("app", &keys::app(app_id))?;
            match app {
                Some(a) if a.custom_channel.is_some() && !a.deleting => {
                    update_app(txn, app_id, |a| a.custom_channel = None)?;
                    Ok(CmdResult::App(Some(Box::new(a))))
                }
                _ => Ok(CmdResult::App(None)),
            }
        }
        Command::PutTemplate {
            kind,
            name,
            write,
            body,
            arn,
            tags,
            now_iso,
        } => {
            let hkey = keys::template(kind, name);
            let head: Option<TemplateHead> = txn.get_json("template", &hkey)?;
            let (mut head, version, creation_date) = match (head, write) {
                (Some(_), TemplateWrite::Create) => {
                    return Ok(CmdResult::Rejected(format!(
                        "template {name} of type {kind} already exists"
                    )))
                }
                (None, TemplateWrite::Create) => {
                    let h = TemplateHead {
                        name: name.clone(),
                        kind: kind.clone(),
                        arn: arn.clone(),
                        creation_date: now_iso.clone(),
                        tags: tags.clone(),
                        active: 1,
                        latest: 1,
                    };
                    (h, 1, now_iso.clone())
                }
                (None, _) => return Ok(CmdResult::Template(None)),
                (Some(mut h), TemplateWrite::NewVersion) => {
                    h.latest += 1;
                    let v = h.latest;
                    (h, v, now_iso.clone())
                }
                (Some(h), TemplateWrite::Overwrite(v)) => {
                    let v = v.unwrap_or(h.latest);
                    let vkey = keys::template_version(kind, name, v);
                    let Some(old) =
                        txn.get_json::<TemplateVersionRecord>("template_version", &vkey)?
                    else {
                        return Ok(CmdResult::Rejected(format!(
                            "template {name} of type {kind} has no version {v}"
                        )));
                    };
                    (h, v, old.creation_date)
                }
            };
            let rec = TemplateVersionRecord {
                version,
                body: body.clone(),
                creation_date,
                last_modified_date: now_iso.clone(),
            };
            txn.put_json(keys::template_version(kind, name, version), &rec);
            if matches!(write, TemplateWrite::Create) {
                head.tags = tags.clone();
            }
            txn.put_json(hkey, &head);
            Ok(CmdResult::Template(Some((head, version))))
        }
        Command::SetTemplateActiveVersion {
            kind,
            name,
            version,
        } => {
            let hkey = keys::template(kind, name);
            let Some(mut head) = txn.get_json::<TemplateHead>("template", &hkey)? else {
                return Ok(CmdResult::Template(None));
            };
            let vkey = keys::template_version(kind, name, *version);
            if txn
                .get_json::<TemplateVersionRecord>("template_version", &vkey)?
                .is_none()
            {
                return Ok(CmdResult::Rejected(format!(
                    "template {name} of type {kind} has no version {version}"
                )));
            }
            head.active = *version;
            txn.put_json(hkey, &head);
            Ok(CmdResult::Template(Some((head, *version))))
        }
        Command::DeleteTemplate {
            kind,
            name,
            version,
        } => {
            let hkey = keys::template(kind, name);
            let Some(head) = txn.get_json::<TemplateHead>("template", &hkey)? else {
                return Ok(CmdResult::Template(None));
            };
            let prefix = keys::template_versions(kind, name);
            let versions = txn.keys_in(&prefix, &keys::prefix_end(&prefix))?;
            match version {
                Some(v) => {
                    let vkey = keys::template_version(kind, name, *v);
                    if !versions.contains(&vkey) {
                        return Ok(CmdResult::Rejected(format!(
                            "template {name} of type {kind} has no version {v}"
                        )));
                    }
                    if versions.len() == 1 {
                        txn.delete(vkey);
                        txn.delete(hkey);
                    } else if *v == head.active {
                        return Ok(CmdResult::Rejected(format!(
                            "version {v} is the active version of template {name}; make another version active first"
                        )));
                    } else {
                        txn.delete(vkey);
                    }
                    Ok(CmdResult::Template(Some((head, *v))))
                }
                None => {
                    for k in versions {
                        txn.delete(k);
                    }
                    txn.delete(hkey);
                    let active = head.active;
                    Ok(CmdResult::Template(Some((head, active))))
                }
            }
        }
        Command::RecordSendIntents {
            app_id,
            at_ms,
            dedup_window_ms,
            intents,
        } => {
            let mut before = Vec::with_capacity(intents.len());
            for i in intents {
                let key = keys::send_ledger(group, app_id, &i.message_id);
                let row: Option<LedgerRow> = txn
                    .get_json::<LedgerRow>("send_ledger", &key)?
                    .filter(|r| r.intent_ms >= at_ms.saturating_sub(*dedup_window_ms));
                if row.is_none() {
                    let fresh = LedgerRow {
                        recipient: i.recipient.clone(),
                        channel: i.channel.clone(),
                        address: i.address.clone(),
                        intent_ms: *at_ms,
                        outcome: None,
                        outcome_ms: None,
                        campaign: None,
                    };
                    txn.put_json(key, &fresh);
                    txn.put_json(keys::open_send(group, app_id, &i.message_id), at_ms);
                    txn.put_json(keys::send_expiry(group, *at_ms, app_id, &i.message_id), &());
                }
                before.push(row);
            }
            Ok(CmdResult::Ledger(before))
        }
        Command::RecordSendOutcomes {
            app_id,
            at_ms,
            outcomes,
        } => {
            let mut changed = 0u64;
            for (message_id, outcome) in outcomes {
                if record_outcome(txn, group, app_id, message_id, outcome, *at_ms, None)? {
                    changed += 1;
                }
            }
            Ok(CmdResult::Count(changed))
        }
        Command::RecordCampaignOutcomes {
            app_id,
            campaign_id,
            activities,
            at_ms,
            outcomes,
        } => {
            if let Some(o) = outcomes
                .iter()
                .find(|o| o.treatment as usize >= activities.len())
            {
                return Ok(CmdResult::Rejected(format!(
                    "outcome of treatment {} in a run of {} treatments",
                    o.treatment,
                    activities.len()
                )));
            }
            let ts = herald_model::time::format_iso8601_ms(*at_ms);
            let mut rollups = crate::analytics::Rollups::default();
            let mut changed = 0u64;
            let mut n = 0u32;
            let mut type_counts: BTreeMap<String, u64> = BTreeMap::new();
            for o in outcomes {
                let activity = &activities[o.treatment as usize];
                let campaign = CampaignRef {
                    campaign_id: campaign_id.clone(),
                    activity_id: activity.clone(),
                };
                if !record_outcome(
                    txn,
                    group,
                    app_id,
                    &o.message_id,
                    &o.outcome,
                    *at_ms,
                    Some(campaign),
                )? {
                    // Recorded before (a replayed batch), events included.
                    continue;
                }
                changed += 1;
                let events = herald_model::message::campaign_delivery_events(
                    &o.message_id,
                    campaign_id,
                    activity,
                    o.treatment,
                    &o.channel,
                    &o.outcome,
                    o.hard_bounce,
                    &ts,
                );
                for (event_id, event) in events {
                    rollups.delivery_event(txn, group, app_id, &o.endpoint_id, *at_ms, &event)?;
                    let et = event.event_type.clone().unwrap_or_default();
                    let row = EventRow {
                        endpoint_id: o.endpoint_id.clone(),
                        event_id,
                        event,
                    };
                    txn.put_json(keys::event(group, app_id, *at_ms, log_index, n), &row);
                    txn.put(
                        keys::event_by_endpoint(
                            group,
                            app_id,
                            &o.endpoint_id,
                            *at_ms,
                            log_index,
                            n,
                        ),
                        Vec::new(),
                    );
                    n += 1;
                    *type_counts.entry(et).or_default() += 1;
                }
                if o.hard_bounce {
                    let mark = EndpointMark {
                        endpoint_id: o.endpoint_id.clone(),
                        inactive: true,
                        opt_out_all: false,
                    };
                    mark_endpoint(txn, group, app_id, &mark)?;
                }
            }
            add_event_type_counts(
                txn,
                group,
                app_id,
                type_counts.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
            )?;
            rollups.flush(txn, group, app_id)?;
            Ok(CmdResult::Count(changed))
        }
        Command::RecordHoldout {
            app_id,
            campaign_id,
            activity_id,
            at_ms,
            endpoint_ids,
        } => {
            let mut rollups = crate::analytics::Rollups::default();
            let mut counted = 0u64;
            for id in endpoint_ids {
                if txn.get_raw(&keys::endpoint(group, app_id, id))?.is_none() {
                    continue;
                }
                rollups.held_out(txn, group, app_id, id, campaign_id, activity_id, *at_ms)?;
                counted += 1;
            }
            rollups.flush(txn, group, app_id)?;
            Ok(CmdResult::Count(counted))
        }
        Command::ForgetSends { rows } => {
            let mut forgotten = 0u64;
            for (intent_ms, app_id, message_id) in rows {
                txn.delete(keys::send_expiry(group, *intent_ms, app_id, message_id));
                let key = keys::send_ledger(group, app_id, message_id);
                let Some(row) = txn.get_json::<LedgerRow>("send_ledger", &key)? else {
                    continue;
                };
                if row.intent_ms == *intent_ms {
                    txn.delete(key);
                    txn.delete(keys::open_send(group, app_id, message_id));
                    forgotten += 1;
                }
            }
            Ok(CmdResult::Count(forgotten))
        }
        Command::PutDefinition {
            app_id,
            kind,
            id,
            write,
            body,
            now_iso,
        } => {
            let app: Option<AppRecord> = txn.get_json("app", &keys::app(app_id))?;
            if app.is_none_or(|a| a.deleting) {
                return Ok(CmdResult::Def(None));
            }
            let hkey = keys::def_head(app_id, *kind, id);
            let head: Option<DefHead> = txn.get_json("def_head", &hkey)?;
            let head = match (head, write) {
                (Some(_), DefWrite::Create { .. }) => {
                    return Ok(CmdResult::Rejected(format!("{id} already exists")))
                }
                (None, DefWrite::NewVersion) => return Ok(CmdResult::Def(None)),
                (None, DefWrite::Create { arn, tags }) => DefHead {
                    id: id.clone(),
                    kind: *kind,
                    arn: arn.clone(),
                    creation_date: now_iso.clone(),
                    last_modified_date: now_iso.clone(),
                    tags: tags.clone(),
                    latest: 1,
                    progress: None,
                },
                (Some(mut h), DefWrite::NewVersion) => {
                    h.latest += 1;
                    h.last_modified_date = now_iso.clone();
                    h
                }
            };
            let version = DefVersion {
                version: head.latest,
                body: body.clone(),
                last_modified_date: now_iso.clone(),
            };
            txn.put_json(keys::def_version(app_id, *kind, id, head.latest), &version);
            txn.put_json(hkey, &head);
            Ok(CmdResult::Def(Some((head, version))))
        }
        Command::DeleteDefinition { app_id, kind, id } => {
            let hkey = keys::def_head(app_id, *kind, id);
            let Some(head) = txn.get_json::<DefHead>("def_head", &hkey)? else {
                return Ok(CmdResult::Def(None));
            };
            let vkey = keys::def_version(app_id, *kind, id, head.latest);
            let Some(version) = txn.get_json::<DefVersion>("def_version", &vkey)? else {
                return Err(StorageError::corrupt(
                    "def_version",
                    format!("{id} has no version {}", head.latest),
                ));
            };
            txn.delete(hkey);
            let vs = keys::def_versions(app_id, *kind, id);
            let vend = keys::prefix_end(&vs);
            txn.batch.delete_range(Cf::State, vs, vend);
            if *kind == crate::types::def_kind::CAMPAIGN {
                let a = keys::activities(app_id, id);
                let aend = keys::prefix_end(&a);
                txn.batch.delete_range(Cf::State, a, aend);
            }
            Ok(CmdResult::Def(Some((head, version))))
        }
        Command::SetCampaignProgress {
            app_id,
            campaign_id,
            expect,
            progress,
        } => {
            let hkey = keys::def_head(app_id, crate::types::def_kind::CAMPAIGN, campaign_id);
            let Some(mut head) = txn.get_json::<DefHead>("def_head", &hkey)? else {
                return Ok(CmdResult::Def(None));
            };
            if head.progress != *expect {
                return Ok(CmdResult::Rejected(format!(
                    "campaign {campaign_id} progressed meanwhile"
                )));
            }
            head.progress = Some(progress.clone());
            txn.put_json(hkey, &head);
            let vkey = keys::def_version(app_id, head.kind, campaign_id, head.latest);
            let version = txn
                .get_json::<DefVersion>("def_version", &vkey)?
                .ok_or_else(|| StorageError::corrupt("def_version", campaign_id.clone()))?;
            Ok(CmdResult::Def(Some((head, version))))
        }
        Command::PutActivities {
            app_id,
            campaign_id,
            activities,
        } => {
            let hkey = keys::def_head(app_id, crate::types::def_kind::CAMPAIGN, campaign_id);
            if txn.get_raw(&hkey)?.is_none() {
                return Ok(CmdResult::Count(0));
            }
            for a in activities {
                txn.put_json(keys::activity(app_id, campaign_id, a.run, a.treatment), a);
            }
            Ok(CmdResult::Count(activities.len() as u64))
        }
        Command::RecordCampaignIntents {
            app_id,
            campaign_id,
            at_ms,
            limits,
            intents,
        } => {
            let mut verdicts = Vec::with_capacity(intents.len());
            for i in intents {
                verdicts.push(record_campaign_intent(
                    txn,
                    group,
                    app_id,
                    campaign_id,
                    *at_ms,
                    limits,
                    i,
                )?);
            }
            Ok(CmdResult::CampaignLedger(verdicts))
        }
        Command::PutJob { app_id, job } => {
            let app: Option<AppRecord> = txn.get_json("app", &keys::app(app_id))?;
            if app.is_none_or(|a| a.deleting) {
                return Ok(CmdResult::Count(0));
            }
            txn.put_json(keys::job(app_id, &job.id), job);
            Ok(CmdResult::Count(1))
        }
        Command::AddSegmentMembers {
            app_id,
            segment_id,
            endpoint_ids,
        } => {
            let mut added = 0u64;
            for id in endpoint_ids {
                let key = keys::segment_member(group, app_id, segment_id, id);
                if txn.get_raw(&key)?.is_none() {
                    txn.put(key, Vec::new());
                    added += 1;
                }
            }
            Ok(CmdResult::Count(added))
        }
        Command::RemoveSegmentMembers { app_id, segment_id } => {
            let p = keys::segment_members(group, app_id, segment_id);
            let end = keys::prefix_end(&p);
            txn.batch.delete_range(Cf::State, p, end);
            Ok(CmdResult::Done)
        }
        Command::SetSmsOptOut {
            app_id,
            number,
            opted_out,
            at_ms,
        } => {
            let key = keys::sms_opt_out(group, app_id, number);
            if *opted_out {
                txn.put_json(key, at_ms);
            } else {
                txn.delete(key);
            }
            Ok(CmdResult::Done)
        }
        Command::PutOtp {
            app_id,
            destination,
            reference_id,
            record,
        } => {
            txn.put_json(keys::otp(group, app_id, destination, reference_id), record);
            Ok(CmdResult::Done)
        }
        Command::VerifyOtp {
            app_id,
            destination,
            reference_id,
            guess_hash,
            now_ms,
        } => {
            let key = keys::otp(group, app_id, destination, reference_id);
            let Some(record) = txn.get_json::<herald_model::otp::OtpRecord>("otp", &key)? else {
                return Ok(CmdResult::OtpVerdict(false));
            };
            let (valid, after) = herald_model::otp::verify(&record, guess_hash, *now_ms);
            match after {
                Some(r) => txn.put_json(key, &r),
                None => txn.delete(key),
            }
            Ok(CmdResult::OtpVerdict(valid))
        }
        Command::MarkEndpoints { app_id, marks } => {
            let mut changed = 0u64;
            for m in marks {
                if mark_endpoint(txn, group, app_id, m)? {
                    changed += 1;
                }
            }
            Ok(CmdResult::Count(changed))
        }
        Command::RemoveAttributes {
            app_id,
            attribute_type,
            names,
        } => {
            let prefix = keys::app_prefix(group, tag::ENDPOINT, app_id);
            let mut changed = 0u64;
            for key in txn.keys_in(&prefix, &keys::prefix_end(&prefix))? {
                let Some(mut ep) = txn.get_json::<EndpointResponse>("endpoint", &key)? else {
                    continue;
                };
                if herald_model::endpoint::remove_attributes(&mut ep, attribute_type, names) {
                    changed += 1;
                    txn.put_json(key.clone(), &ep);
                    txn.changes.push(Change::Endpoint {
                        app_id: app_id.clone(),
                        endpoint_id: keys::tail_str(&key, prefix.len()),
                        endpoint: Some(Box::new(ep)),
                    });
                }
            }
            Ok(CmdResult::Count(changed))
        }
        Command::PurgeApp { app_id } => {
            for t in keys::APP_TABLES {
                let p = keys::app_prefix(group, t, app_id);
                let end = keys::prefix_end(&p);
                txn.batch.delete_range(Cf::State, p, end);
            }
            txn.changes.push(Change::AppPurged {
                app_id: app_id.clone(),
            });
            Ok(CmdResult::Done)
        }
        Command::RetireNode { node } => {
            txn.put_json(keys::retired_node(group, *node), &true);
            Ok(CmdResult::Done)
        }
        Command::CloseIdleSessions {
            now_ms,
            idle_timeout_ms,
        } => {
            let cfg = SessionConfig {
                idle_timeout_ms: *idle_timeout_ms,
                ..SessionConfig::default()
            };
            let start = keys::table(group, tag::OPEN_SESSION);
            let end = keys::prefix_end(&start);
            let mut open_rows = Vec::new();
            txn.engine.scan(Cf::State, &start, &end, &mut |k, v| {
                open_rows.push((k.to_vec(), v.to_vec()));
                ControlFlow::Continue(())
            })?;
            let mut closed_n = 0u64;
            for (key, value) in open_rows {
                let open: OpenSession = serde_json::from_slice(&value)
                    .map_err(|e| StorageError::corrupt("open_session", e))?;
                let (still_open, closed) = session::on_tick(Some(open), *now_ms, &cfg);
                let Some(closed) = closed else { continue };
                let (app_id, endpoint_id) = keys::split_app_key(&key, start.len());
                record_closed(txn, group, &app_id, &endpoint_id, &closed)?;
                closed_n += 1;
                match &still_open {
                    Some(s) => txn.put_json(key, s),
                    None => txn.delete(key),
                }
                txn.changes.push(Change::Session {
                    app_id,
                    endpoint_id,
                    open: still_open,
                });
            }
            Ok(CmdResult::Count(closed_n))
        }
    }
}

/// Whether any event would make its endpoint active (not only deliveries).
fn touches_activity(events: &[(i64, &String, &herald_model::wire::Event)]) -> bool {
    events.iter().any(|(_, _, ev)| {
        !herald_model::analytics::is_delivery_event(ev.event_type.as_deref().unwrap_or_default())
    })
}

fn record_closed<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    group: GroupId,
    app_id: &str,
    endpoint_id: &str,
    c: &ClosedSession,
) -> Result<()> {
    txn.put_json(
        keys::closed_session(group, app_id, c.end_ms, endpoint_id),
        c,
    );
    crate::analytics::session_closed(txn, group, app_id, c.start_ms, c.duration_ms())
}

/// Sets a ledger row's outcome unless it has one; false when it had one
/// or the row is gone.
fn record_outcome<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    group: GroupId,
    app_id: &str,
    message_id: &str,
    outcome: &Outcome,
    at_ms: i64,
    campaign: Option<CampaignRef>,
) -> Result<bool> {
    let key = keys::send_ledger(group, app_id, message_id);
    let Some(mut row) = txn.get_json::<LedgerRow>("send_ledger", &key)? else {
        return Ok(false);
    };
    if row.outcome.is_some() {
        return Ok(false);
    }
    row.outcome = Some(outcome.clone());
    row.outcome_ms = Some(at_ms);
    if campaign.is_some() {
        row.campaign = campaign;
    }
    txn.put_json(key, &row);
    txn.delete(keys::open_send(group, app_id, message_id));
    Ok(true)
}

/// Applies a delivery mark to an endpoint of this group; false when it
/// changed nothing (or the endpoint is gone).
fn mark_endpoint<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    group: GroupId,
    app_id: &str,
    m: &EndpointMark,
) -> Result<bool> {
    let key = keys::endpoint(group, app_id, &m.endpoint_id);
    let Some(mut ep) = txn.get_json::<EndpointResponse>("endpoint", &key)? else {
        return Ok(false);
    };
    let before = ep.clone();
    if m.inactive {
        ep.endpoint_status = Some("INACTIVE".into());
    }
    if m.opt_out_all {
        ep.opt_out = Some("ALL".into());
    }
    if ep == before {
        return Ok(false);
    }
    txn.put_json(key, &ep);
    txn.changes.push(Change::Endpoint {
        app_id: app_id.to_owned(),
        endpoint_id: m.endpoint_id.clone(),
        endpoint: Some(Box::new(ep)),
    });
    Ok(true)
}

/// Adds to the per-event-type counters (read and written once per command).
fn add_event_type_counts<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    group: GroupId,
    app_id: &str,
    type_counts: BTreeMap<&str, u64>,
) -> Result<()> {
    for (et, added) in type_counts {
        let tkey = keys::event_type(group, app_id, et);
        let count: u64 = txn.get_json("event_type", &tkey)?.unwrap_or(0);
        txn.put_json(tkey, &(count + added));
    }
    Ok(())
}

/// One intent of `RecordCampaignIntents`: an existing ledger row wins;
/// else the endpoint's caps for the campaign decide; a new intent is
/// recorded and charged in the same write.
fn record_campaign_intent<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    group: GroupId,
    app_id: &str,
    campaign_id: &str,
    at_ms: i64,
    limits: &ChargeLimits,
    i: &SendIntent,
) -> Result<IntentVerdict> {
    let key = keys::send_ledger(group, app_id, &i.message_id);
    if let Some(row) = txn.get_json::<LedgerRow>("send_ledger", &key)? {
        return Ok(IntentVerdict::Exists(row));
    }
    let ckey = keys::campaign_charge(group, app_id, &i.recipient, campaign_id);
    let mut charge: ChargeRow = txn.get_json("campaign_charge", &ckey)?.unwrap_or_default();
    let day_start = at_ms.saturating_sub(herald_model::time::DAY_MS);
    charge.recent_ms.retain(|t| *t > day_start);
    // Sends per session are counted only while a Session limit is set.
    let session_start = if limits.session > 0 {
        let open: Option<OpenSession> = txn.get_json(
            "open_session",
            &keys::open_session(group, app_id, &i.recipient),
        )?;
        open.map(|s| s.start_ms)
    } else {
        None
    };
    if limits.session > 0 && charge.session_start_ms != session_start {
        charge.session_start_ms = session_start;
        charge.session_count = 0;
    }
    if limits.total > 0 && charge.total >= limits.total {
        return Ok(IntentVerdict::Limited("total_limit".into()));
    }
    if limits.daily > 0 && charge.recent_ms.len() >= limits.daily as usize {
        return Ok(IntentVerdict::Limited("daily_limit".into()));
    }
    if limits.session > 0 && session_start.is_some() && charge.session_count >= limits.session {
        return Ok(IntentVerdict::Limited("session_limit".into()));
    }
    charge.total += 1;
    charge.recent_ms.push(at_ms);
    // Only the last `daily` times can decide a later daily check.
    let keep = (limits.daily.max(1)) as usize;
    if charge.recent_ms.len() > keep {
        let drop_n = charge.recent_ms.len() - keep;
        charge.recent_ms.drain(..drop_n);
    }
    if session_start.is_some() {
        charge.session_count += 1;
    }
    txn.put_json(ckey, &charge);
    let row = LedgerRow {
        recipient: i.recipient.clone(),
        channel: i.channel.clone(),
        address: i.address.clone(),
        intent_ms: at_ms,
        outcome: None,
        outcome_ms: None,
        campaign: None,
    };
    txn.put_json(key, &row);
    txn.put_json(keys::open_send(group, app_id, &i.message_id), &at_ms);
    txn.put_json(keys::send_expiry(group, at_ms, app_id, &i.message_id), &());
    Ok(IntentVerdict::New)
}

fn update_app<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    app_id: &str,
    f: impl FnOnce(&mut AppRecord),
) -> Result<CmdResult> {
    let key = keys::app(app_id);
    let Some(mut rec) = txn.get_json::<AppRecord>("app", &key)? else {
        return Ok(CmdResult::App(None));
    };
    if rec.deleting {
        return Ok(CmdResult::App(None));
    }
    f(&mut rec);
    txn.put_json(key, &rec);
    Ok(CmdResult::App(Some(Box::new(rec))))
}

/// The address an ACTIVE endpoint holds, as (channel, address).
fn held_address(ep: &EndpointResponse) -> Option<(&str, &str)> {
    if ep.endpoint_status.as_deref() != Some("ACTIVE") {
        return None;
    }
    match (ep.channel_type.as_deref(), ep.address.as_deref()) {
        (Some(c), Some(a)) if !a.is_empty() => Some((c, a)),
        _ => None,
    }
}

type Upserted = (EndpointResponse, Option<AddressClaim>);

/// Merges one endpoint write; `Ok(Err(reason))` refuses the whole command.
/// Also answers the address the endpoint newly claims: one it holds ACTIVE
/// now and did not hold ACTIVE before.
fn upsert_endpoint<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    group: GroupId,
    app_id: &str,
    now_iso: &str,
    limits: &ApplyLimits,
    item: &EndpointUpsert,
) -> Result<std::result::Result<Upserted, String>> {
    let key = keys::endpoint(group, app_id, &item.endpoint_id);
    let existing: Option<EndpointResponse> = txn.get_json("endpoint", &key)?;
    let mut merged = herald_model::endpoint::merge_update(
        existing.as_ref(),
        app_id,
        &item.endpoint_id,
        &item.request,
        now_iso,
    );
    // RequestId names the request that last wrote the endpoint.
    merged.request_id = item.request.request_id.clone();
    let bytes = serde_json::to_vec(&merged).expect("endpoint serializes");
    if bytes.len() > limits.endpoint_bytes_max {
        return Ok(Err(format!(
            "endpoint {} would be {} bytes, more than the {} bytes an endpoint may hold",
            item.endpoint_id,
            bytes.len(),
            limits.endpoint_bytes_max
        )));
    }
    let attrs = attribute_count(&merged);
    if attrs > limits.endpoint_attributes_max {
        return Ok(Err(format!(
            "endpoint {} would have {attrs} attributes, more than the {} allowed",
            item.endpoint_id, limits.endpoint_attributes_max
        )));
    }
    let old_user = existing
        .as_ref()
        .and_then(herald_model::endpoint::user_id)
        .map(str::to_owned);
    let new_user = herald_model::endpoint::user_id(&merged).map(str::to_owned);
    if old_user != new_user {
        if let Some(u) = &old_user {
            txn.delete(keys::user_endpoint(group, app_id, u, &item.endpoint_id));
        }
    }
    if let Some(u) = &new_user {
        txn.put(
            keys::user_endpoint(group, app_id, u, &item.endpoint_id),
            Vec::new(),
        );
    }
    let claim = held_address(&merged)
        .filter(|now| existing.as_ref().and_then(held_address) != Some(*now))
        .map(|(channel, address)| AddressClaim {
            endpoint_id: item.endpoint_id.clone(),
            channel: channel.to_owned(),
            address: address.to_owned(),
            at_ms: herald_model::time::parse_iso8601_ms(now_iso).unwrap_or(0),
            seq: item.seq,
        });
    if let Some(c) = &claim {
        // Kept until the shard's sweep has seen the claim handed over, so a
        // node that stops before the hand-over finishes it after restart.
        txn.put_json(keys::pending_claim(group, app_id, &item.endpoint_id), c);
    }
    txn.put(key, bytes);
    txn.changes.push(Change::Endpoint {
        app_id: app_id.to_owned(),
        endpoint_id: item.endpoint_id.clone(),
        endpoint: Some(Box::new(merged.clone())),
    });
    Ok(Ok((merged, claim)))
}

fn delete_endpoint<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    group: GroupId,
    app_id: &str,
    endpoint_id: &str,
) -> Result<Option<EndpointResponse>> {
    let key = keys::endpoint(group, app_id, endpoint_id);
    let Some(ep) = txn.get_json::<EndpointResponse>("endpoint", &key)? else {
        return Ok(None);
    };
    if let Some(u) = herald_model::endpoint::user_id(&ep) {
        txn.delete(keys::user_endpoint(group, app_id, u, endpoint_id));
    }
    txn.delete(key);
    txn.delete(keys::open_session(group, app_id, endpoint_id));
    txn.delete(keys::pending_claim(group, app_id, endpoint_id));
    // The person's raw events go, and its ordinals leave future rollups.
    let index = keys::event_by_endpoint_prefix(group, app_id, endpoint_id);
    let event_table = keys::app_prefix(group, tag::EVENT, app_id);
    for k in txn.keys_in(&index, &keys::prefix_end(&index))? {
        let mut event_key = event_table.clone();
        event_key.extend_from_slice(keys::event_suffix(&k));
        txn.delete(event_key);
        txn.delete(k);
    }
    // The user, if any, is forgotten by DeleteUserEndpoints: a user's
    // other endpoints may live on.
    crate::analytics::forget(txn, group, app_id, Kind::Endpoint, endpoint_id)?;
    txn.delete(keys::an_touch(group, app_id, endpoint_id));
    txn.changes.push(Change::Endpoint {
        app_id: app_id.to_owned(),
        endpoint_id: endpoint_id.to_owned(),
        endpoint: None,
    });
    Ok(Some(ep))
}

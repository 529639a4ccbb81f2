//! Analytics rollups of one data shard, written by the state machine.
//!
//! Tables (all per app, keys in `keys.rs`): shard-local ordinals of
//! endpoints and persons (`AN_ORD` id -> ordinal and first-seen hour,
//! `AN_ORD_REV` ordinal -> id, `AN_ORD_NEXT`), roaring bitmaps of the
//! ordinals active (`AN_ACTIVE`) and first seen (`AN_NEW`) per UTC hour,
//! [`TypeRollup`]s per hour and event type (`AN_TYPE`), closed sessions per
//! start hour (`AN_SESSION`), and `(person ordinal, time)` occurrences per
//! event type and UTC day for funnels (`AN_FUNNEL`), delivery events per
//! (campaign, activity, type, hour) with their endpoints (`AN_DELIVERY`),
//! and each endpoint's last campaign touch (`AN_TOUCH`), through which
//! sessions and purchases are attributed to campaigns (they join
//! `AN_DELIVERY` under their own event type). One [`Rollups`] gathers a
//! command's additions and writes each touched row once, so the cost of a
//! batch is one read-modify-write per row, not per event. Ordinals are
//! never reused; rollups never shrink except when an app is deleted.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use herald_model::analytics::{hour_of, Kind, SessionRollup, Touch, TypeRollup, HOUR_MS};
use herald_model::wire::Event;
use roaring::RoaringBitmap;

use crate::apply::Txn;
use crate::engine::{Cf, KvEngine};
use crate::error::{Result, StorageError};
use crate::keys::{self, tag, GroupId};

/// A funnel chunk is rewritten while it holds at most this many bytes.
pub const FUNNEL_CHUNK_BYTES: usize = 8 * 1024;
/// One stored occurrence: person ordinal (u32) and time in ms (i64), big-endian.
const OCCURRENCE_BYTES: usize = 12;

/// The `(person ordinal, time in ms)` occurrences of one stored chunk that
/// fall in the hours asked for.
pub struct Occurrences<'a> {
    bytes: &'a [u8],
    lo: i64,
    hi: i64,
}

impl Iterator for Occurrences<'_> {
    type Item = (u32, i64);

    #[inline]
    fn next(&mut self) -> Option<(u32, i64)> {
        loop {
            let (c, rest) = self.bytes.split_first_chunk::<OCCURRENCE_BYTES>()?;
            self.bytes = rest;
            let (p, ms) = c.split_at(4);
            let ms = i64::from_be_bytes(ms.try_into().expect("8 bytes"));
            if ms >= self.lo && ms < self.hi {
                return Some((u32::from_be_bytes(p.try_into().expect("4 bytes")), ms));
            }
        }
    }
}

/// `first_hour` of an endpoint known only from deliveries (never active).
const NEVER: i32 = i32::MAX;

/// An id's ordinal and the first hour it was seen in this shard.
#[derive(Debug, Clone, Copy)]
struct OrdRow {
    ord: u32,
    first_hour: i32,
}

impl OrdRow {
    fn encode(self) -> Vec<u8> {
        let mut v = self.ord.to_be_bytes().to_vec();
        v.extend_from_slice(&self.first_hour.to_be_bytes());
        v
    }

    fn decode(v: &[u8]) -> Result<Self> {
        if v.len() != 8 {
            return Err(StorageError::corrupt("an_ord", "value is not 8 bytes"));
        }
        Ok(Self {
            ord: u32::from_be_bytes(v[..4].try_into().expect("4 bytes")),
            first_hour: i32::from_be_bytes(v[4..].try_into().expect("4 bytes")),
        })
    }
}

/// The additions of one command, flushed once at its end.
#[derive(Default)]
pub(crate) struct Rollups {
    ords: BTreeMap<(u8, String), OrdRow>,
    next: BTreeMap<u8, u32>,
    active: BTreeMap<(u8, i32), RoaringBitmap>,
    new_add: BTreeMap<(u8, i32), RoaringBitmap>,
    new_remove: BTreeMap<(u8, i32), RoaringBitmap>,
    types: BTreeMap<(i32, String), TypeRollup>,
    funnel: BTreeMap<(String, i32), Vec<(u32, i64)>>,
    /// (campaign, activity, event type, hour) -> what to add.
    deliveries: BTreeMap<(String, String, String, i32), DeliveryRollup>,
    /// endpoint -> its last campaign touch, as read or changed.
    touches: BTreeMap<String, Option<Touch>>,
    /// endpoints whose touch changed.
    touched: std::collections::BTreeSet<String>,
}

/// Delivery events of one (campaign, activity, event type) in one hour:
/// how many, and to which endpoints (shard-local ordinals).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryRollup {
    pub count: u64,
    pub endpoints: RoaringBitmap,
    pub extra: DeliveryExtra,
}

/// SMS details of delivery events: message parts, and counts by
/// destination country and by failure status.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryExtra {
    #[serde(default)]
    pub parts: u64,
    /// country -> (events, parts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub countries: BTreeMap<String, (u64, u64)>,
    /// currency -> revenue of attributed purchases.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revenue: BTreeMap<String, f64>,
    /// failure status -> events.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
}

impl DeliveryRollup {
    fn merge(&mut self, o: DeliveryRollup) {
        self.count += o.count;
        self.endpoints |= o.endpoints;
        self.extra.parts += o.extra.parts;
        for (c, (n, p)) in o.extra.countries {
            let e = self.extra.countries.entry(c).or_default();
            e.0 += n;
            e.1 += p;
        }
        for (c, n) in o.extra.errors {
            *self.extra.errors.entry(c).or_default() += n;
        }
        for (c, x) in o.extra.revenue {
            *self.extra.revenue.entry(c).or_default() += x;
        }
    }

    /// `[count u64][bitmap length u32][bitmap][extra as JSON]`.
    fn encode(&self) -> Vec<u8> {
        let mut v = self.count.to_be_bytes().to_vec();
        let len = u32::try_from(self.endpoints.serialized_size()).expect("bitmap under 4 GiB");
        v.extend_from_slice(&len.to_be_bytes());
        self.endpoints
            .serialize_into(&mut v)
            .expect("writing to a Vec");
        if self.extra != DeliveryExtra::default() {
            serde_json::to_writer(&mut v, &self.extra).expect("writing to a Vec");
        }
        v
    }

    fn decode(v: &[u8]) -> Result<Self> {
        let bad = || StorageError::corrupt("an_delivery", "value too short");
        let count = u64::from_be_bytes(v.get(..8).ok_or_else(bad)?.try_into().expect("8 bytes"));
        let len = u32::from_be_bytes(v.get(8..12).ok_or_else(bad)?.try_into().expect("4 bytes"));
        let end = 12 + len as usize;
        let endpoints = read_bitmap(Some(v.get(12..end).ok_or_else(bad)?))?;
        let extra = match &v[end..] {
            [] => DeliveryExtra::default(),
            rest => {
                serde_json::from_slice(rest).map_err(|e| StorageError::corrupt("an_delivery", e))?
            }
        };
        Ok(Self {
            count,
            endpoints,
            extra,
        })
    }
}

impl Rollups {
    /// The ordinal of `id`, allocated on first sight; when `seen`, marks it
    /// first seen at `hour` if that is earlier than what the shard knew.
    #[allow(clippy::too_many_arguments)]
    fn ordinal<E: KvEngine + ?Sized>(
        &mut self,
        txn: &mut Txn<'_, E>,
        group: GroupId,
        app_id: &str,
        kind: Kind,
        id: &str,
        hour: i32,
        seen: bool,
    ) -> Result<u32> {
        let hour = if seen { hour } else { NEVER };
        let k = kind.byte();
        let cached = match self.ords.get(&(k, id.to_owned())) {
            Some(r) => Some(*r),
            None => txn
                .get_raw(&keys::an_ord(group, app_id, k, id))?
                .map(|v| OrdRow::decode(&v))
                .transpose()?,
        };
        let row = match cached {
            Some(mut r) => {
                if hour < r.first_hour {
                    if r.first_hour != NEVER {
                        self.new_remove
                            .entry((k, r.first_hour))
                            .or_default()
                            .insert(r.ord);
                    }
                    self.new_add.entry((k, hour)).or_default().insert(r.ord);
                    r.first_hour = hour;
                    txn.put(keys::an_ord(group, app_id, k, id), r.encode());
                }
                r
            }
            None => {
                let next = match self.next.get(&k) {
                    Some(n) => *n,
                    None => txn
                        .get_raw(&keys::an_ord_next(group, app_id, k))?
                        .map(|v| decode_u32("an_ord_next", &v))
                        .transpose()?
                        .unwrap_or(0),
                };
                let ord = next;
                self.next
                    .insert(k, next.checked_add(1).expect("ordinals exhausted"));
                let r = OrdRow {
                    ord,
                    first_hour: hour,
                };
                txn.put(keys::an_ord(group, app_id, k, id), r.encode());
                txn.put(
                    keys::an_ord_rev(group, app_id, k, ord),
                    id.as_bytes().to_vec(),
                );
                if hour != NEVER {
                    self.new_add.entry((k, hour)).or_default().insert(ord);
                }
                r
            }
        };
        self.ords.insert((k, id.to_owned()), row);
        Ok(row.ord)
    }

    /// One stored event of `endpoint_id` (counted as `person`) at `ms`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn event<E: KvEngine + ?Sized>(
        &mut self,
        txn: &mut Txn<'_, E>,
        group: GroupId,
        app_id: &str,
        endpoint_id: &str,
        person: &str,
        ms: i64,
        ev: &Event,
    ) -> Result<()> {
        let hour = hour_of(ms);
        let et = ev.event_type.as_deref().unwrap_or_default();
        if herald_model::analytics::is_delivery_event(et) {
            return self.delivery_event(txn, group, app_id, endpoint_id, ms, ev);
        }
        self.types.entry((hour, et.to_owned())).or_default().add(ev);
        let e = self.ordinal(txn, group, app_id, Kind::Endpoint, endpoint_id, hour, true)?;
        let p = self.ordinal(txn, group, app_id, Kind::Person, person, hour, true)?;
        self.active
            .entry((Kind::Endpoint.byte(), hour))
            .or_default()
            .insert(e);
        self.active
            .entry((Kind::Person.byte(), hour))
            .or_default()
            .insert(p);
        self.funnel
            .entry((et.to_owned(), hour.div_euclid(24)))
            .or_default()
            .push((p, ms));
        if herald_model::analytics::ATTRIBUTED_EVENTS.contains(&et) {
            let touch = self.touch(txn, group, app_id, endpoint_id)?;
            if let Some((campaign, activity)) =
                herald_model::analytics::attribution(ev, ms, touch.as_ref())
            {
                let slot = self
                    .deliveries
                    .entry((campaign, activity, et.to_owned(), hour))
                    .or_default();
                slot.count += 1;
                slot.endpoints.insert(e);
                if let Some((currency, amount)) = herald_model::analytics::purchase_revenue(ev) {
                    *slot.extra.revenue.entry(currency).or_default() += amount;
                }
            }
        }
        Ok(())
    }

    /// The endpoint's last campaign touch (this command's, else stored).
    fn touch<E: KvEngine + ?Sized>(
        &mut self,
        txn: &mut Txn<'_, E>,
        group: GroupId,
        app_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<Touch>> {
        if let Some(t) = self.touches.get(endpoint_id) {
            return Ok(t.clone());
        }
        let t: Option<Touch> =
            txn.get_json("an_touch", &keys::an_touch(group, app_id, endpoint_id))?;
        self.touches.insert(endpoint_id.to_owned(), t.clone());
        Ok(t)
    }

    /// Makes `(campaign, activity)` at `ms` the endpoint's last touch,
    /// unless a later one is kept.
    #[allow(clippy::too_many_arguments)]
    fn touch_if_later<E: KvEngine + ?Sized>(
        &mut self,
        txn: &mut Txn<'_, E>,
        group: GroupId,
        app_id: &str,
        endpoint_id: &str,
        campaign: &str,
        activity: &str,
        ms: i64,
    ) -> Result<()> {
        let last = self.touch(txn, group, app_id, endpoint_id)?;
        if last.as_ref().is_none_or(|t| t.ms <= ms) {
            let t = Touch {
                campaign_id: campaign.to_owned(),
                activity_id: activity.to_owned(),
                ms,
            };
            self.touches.insert(endpoint_id.to_owned(), Some(t));
            self.touched.insert(endpoint_id.to_owned());
        }
        Ok(())
    }

    /// A campaign run left the endpoint out (its holdout group): counted
    /// under [`HOLDOUT_EVENT`](herald_model::analytics::HOLDOUT_EVENT) for
    /// the campaign and the run's holdout activity, and made its last touch,
    /// so its sessions and purchases are attributed to the holdout group.
    /// Not an event of the app: no type rollup, no raw event.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn held_out<E: KvEngine + ?Sized>(
        &mut self,
        txn: &mut Txn<'_, E>,
        group: GroupId,
        app_id: &str,
        endpoint_id: &str,
        campaign: &str,
        activity: &str,
        ms: i64,
    ) -> Result<()> {
        let hour = hour_of(ms);
        let e = self.ordinal(txn, group, app_id, Kind::Endpoint, endpoint_id, hour, false)?;
        self.touch_if_later(txn, group, app_id, endpoint_id, campaign, activity, ms)?;
        let et = herald_model::analytics::HOLDOUT_EVENT.to_owned();
        let slot = self
            .deliveries
            .entry((campaign.to_owned(), activity.to_owned(), et, hour))
            .or_default();
        slot.count += 1;
        slot.endpoints.insert(e);
        Ok(())
    }

    /// A delivery event: counted by type, and by campaign and activity
    /// (from its attributes, or from the send ledger row of its
    /// `message_id`; neither: a direct send) with its endpoint.
    pub(crate) fn delivery_event<E: KvEngine + ?Sized>(
        &mut self,
        txn: &mut Txn<'_, E>,
        group: GroupId,
        app_id: &str,
        endpoint_id: &str,
        ms: i64,
        ev: &Event,
    ) -> Result<()> {
        let hour = hour_of(ms);
        let et = ev.event_type.as_deref().unwrap_or_default();
        self.types.entry((hour, et.to_owned())).or_default().add(ev);
        let attrs = ev.attributes.as_ref();
        let attr = |k: &str| attrs.and_then(|a| a.get(k)).cloned();
        let (campaign, activity) = match (attr("campaign_id"), attr("message_id")) {
            (Some(c), _) => (c, attr("campaign_activity_id").unwrap_or_default()),
            (None, Some(m)) => {
                let row: Option<crate::types::LedgerRow> =
                    txn.get_json("send_ledger", &keys::send_ledger(group, app_id, &m))?;
                match row.and_then(|r| r.campaign) {
                    Some(c) => (c.campaign_id, c.activity_id),
                    None => (String::new(), String::new()),
                }
            }
            (None, None) => (String::new(), String::new()),
        };
        let e = self.ordinal(txn, group, app_id, Kind::Endpoint, endpoint_id, hour, false)?;
        if !campaign.is_empty() && herald_model::analytics::TOUCH_EVENTS.contains(&et) {
            self.touch_if_later(txn, group, app_id, endpoint_id, &campaign, &activity, ms)?;
        }
        let slot = self
            .deliveries
            .entry((campaign, activity, et.to_owned(), hour))
            .or_default();
        slot.count += 1;
        slot.endpoints.insert(e);
        if et.starts_with("_SMS.") {
            let parts = attr("number_of_message_parts")
                .and_then(|p| p.parse::<u64>().ok())
                .unwrap_or(1);
            slot.extra.parts += parts;
            if let Some(c) =
                attr("destination_phone_number").and_then(|n| herald_model::sms::country_of(&n))
            {
                let e = slot.extra.countries.entry(c).or_default();
                e.0 += 1;
                e.1 += parts;
            }
            if et == "_SMS.FAILURE" {
                let status = attr("record_status")
                    .or_else(|| attr("delivery_status"))
                    .unwrap_or_else(|| "UNKNOWN".to_owned());
                *slot.extra.errors.entry(status).or_default() += 1;
            }
        }
        Ok(())
    }

    /// Writes every touched row once.
    pub(crate) fn flush<E: KvEngine + ?Sized>(
        self,
        txn: &mut Txn<'_, E>,
        group: GroupId,
        app_id: &str,
    ) -> Result<()> {
        for (k, next) in &self.next {
            txn.put(
                keys::an_ord_next(group, app_id, *k),
                next.to_be_bytes().to_vec(),
            );
        }
        for endpoint_id in &self.touched {
            if let Some(Some(t)) = self.touches.get(endpoint_id) {
                txn.put_json(keys::an_touch(group, app_id, endpoint_id), t);
            }
        }
        for ((k, hour), add) in self.active {
            let key = keys::an_hour_set(group, tag::AN_ACTIVE, app_id, k, hour);
            let mut set = read_bitmap(txn.get_raw(&key)?.as_deref())?;
            let before = set.len();
            set |= add;
            if set.len() != before {
                txn.put(key, write_bitmap(&set));
            }
        }
        let mut new_keys: BTreeMap<(u8, i32), ()> = BTreeMap::new();
        for k in self.new_add.keys().chain(self.new_remove.keys()) {
            new_keys.insert(*k, ());
        }
        for ((k, hour), ()) in new_keys {
            let key = keys::an_hour_set(group, tag::AN_NEW, app_id, k, hour);
            let mut set = read_bitmap(txn.get_raw(&key)?.as_deref())?;
            if let Some(r) = self.new_remove.get(&(k, hour)) {
                set -= r;
            }
            if let Some(a) = self.new_add.get(&(k, hour)) {
                set |= a;
            }
            if set.is_empty() {
                txn.delete(key);
            } else {
                txn.put(key, write_bitmap(&set));
            }
        }
        for ((hour, et), add) in self.types {
            let key = keys::an_type(group, app_id, hour, &et);
            let mut r: TypeRollup = txn.get_json("an_type", &key)?.unwrap_or_default();
            r.merge(&add);
            txn.put_json(key, &r);
        }
        for ((campaign, activity, et, hour), add) in self.deliveries {
            let key = keys::an_delivery(group, app_id, &campaign, &activity, &et, hour);
            let mut r = match txn.get_raw(&key)? {
                Some(v) => DeliveryRollup::decode(&v)?,
                None => DeliveryRollup::default(),
            };
            r.merge(add);
            txn.put(key, r.encode());
        }
        for ((et, day), pairs) in self.funnel {
            // Each (type, hour) is written once per entry, so the stored last
            // chunk is the current one.
            let start = keys::an_funnel_day(group, app_id, &et, day);
            let add = pairs.len() * OCCURRENCE_BYTES;
            let (chunk, mut v) = match txn.engine_last(&start, &keys::prefix_end(&start))? {
                Some((k, v)) => {
                    let at = k.len() - 4;
                    let chunk = u32::from_be_bytes(k[at..].try_into().expect("4 bytes"));
                    if v.len() + add <= FUNNEL_CHUNK_BYTES {
                        (chunk, v)
                    } else {
                        (chunk + 1, Vec::with_capacity(add))
                    }
                }
                None => (0, Vec::with_capacity(add)),
            };
            for (p, ms) in pairs {
                v.extend_from_slice(&p.to_be_bytes());
                v.extend_from_slice(&ms.to_be_bytes());
            }
            txn.put(keys::an_funnel(group, app_id, &et, day, chunk), v);
        }
        Ok(())
    }
}

/// Counts a closed session under the hour it started.
pub(crate) fn session_closed<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    group: GroupId,
    app_id: &str,
    start_ms: i64,
    duration_ms: i64,
) -> Result<()> {
    let key = keys::an_session(group, app_id, hour_of(start_ms));
    let mut r: SessionRollup = txn.get_json("an_session", &key)?.unwrap_or_default();
    r.count += 1;
    r.duration_ms += u64::try_from(duration_ms).unwrap_or(0);
    txn.put_json(key, &r);
    Ok(())
}

/// Takes a deleted endpoint or person out of future rollups: its ordinal
/// joins the group's forgotten set (queries leave it out of every bitmap
/// and funnel) and its id is replaced by a tombstone, so no rollup table
/// names it any more. Counts already added (events by type, sessions,
/// deliveries) keep its contribution.
pub(crate) fn forget<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    group: GroupId,
    app_id: &str,
    kind: Kind,
    id: &str,
) -> Result<()> {
    let k = kind.byte();
    let key = keys::an_ord(group, app_id, k, id);
    let Some(v) = txn.get_raw(&key)? else {
        return Ok(());
    };
    let row = OrdRow::decode(&v)?;
    txn.delete(key);
    txn.put(
        keys::an_ord_rev(group, app_id, k, row.ord),
        tombstone(row.ord).into_bytes(),
    );
    let fkey = keys::an_forgotten(group, app_id, k);
    let mut set = read_bitmap(txn.get_raw(&fkey)?.as_deref())?;
    set.insert(row.ord);
    txn.put(fkey, write_bitmap(&set));
    Ok(())
}

/// The id a forgotten ordinal is known by (unique, never a real id).
pub fn tombstone(ord: u32) -> String {
    format!("\u{0}forgotten:{ord}")
}

/// Whether an id read back from the ordinal table is a tombstone.
pub fn is_tombstone(id: &str) -> bool {
    id.starts_with('\u{0}')
}

/// Removes up to `max_rows` events stored before `before_ms` (oldest
/// first) with their index rows, plus funnel occurrences of UTC days that
/// ended before it and closed sessions that ended before it. Answers the
/// events removed (`max_rows`: there may be more).
pub(crate) fn expire_events<E: KvEngine + ?Sized>(
    txn: &mut Txn<'_, E>,
    group: GroupId,
    app_id: &str,
    before_ms: i64,
    max_rows: u32,
) -> Result<u64> {
    let table = keys::app_prefix(group, tag::EVENT, app_id);
    let end = keys::event(group, app_id, before_ms, 0, 0);
    let mut rows: Vec<(Vec<u8>, String)> = Vec::new();
    let mut err = None;
    txn.engine_scan(&table, &end, &mut |k, v| {
        match serde_json::from_slice::<crate::apply::EventRow>(v) {
            Ok(r) => rows.push((k.to_vec(), r.endpoint_id)),
            Err(e) => {
                err = Some(StorageError::corrupt("event", e));
                return ControlFlow::Break(());
            }
        }
        if rows.len() >= max_rows as usize {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    for (k, endpoint_id) in &rows {
        let mut index = keys::event_by_endpoint_prefix(group, app_id, endpoint_id);
        index.extend_from_slice(keys::event_suffix(k));
        txn.delete(index);
        txn.delete(k.clone());
    }
    // Funnel rows of hours wholly before the cut, and closed sessions that
    // ended before it: one range deletion per event type, and one more.
    // Funnel rows are per UTC day: those of days wholly before the cut go.
    let cut_day = hour_of(before_ms).div_euclid(24);
    let types = keys::app_prefix(group, tag::EVENT_TYPE, app_id);
    let mut names = Vec::new();
    txn.engine_scan(&types, &keys::prefix_end(&types), &mut |k, _| {
        names.push(keys::tail_str(k, types.len()));
        ControlFlow::Continue(())
    })?;
    for et in names {
        let start = keys::an_funnel_prefix(group, app_id, &et);
        let end = keys::an_funnel_day(group, app_id, &et, cut_day);
        txn.batch.delete_range(Cf::State, start, end);
    }
    let sessions = keys::app_prefix(group, tag::CLOSED_SESSION, app_id);
    txn.batch.delete_range(
        Cf::State,
        sessions,
        keys::closed_session(group, app_id, before_ms, ""),
    );
    Ok(rows.len() as u64)
}

fn decode_u32(table: &'static str, v: &[u8]) -> Result<u32> {
    let b: [u8; 4] = v
        .try_into()
        .map_err(|_| StorageError::corrupt(table, "value is not 4 bytes"))?;
    Ok(u32::from_be_bytes(b))
}

fn read_bitmap(v: Option<&[u8]>) -> Result<RoaringBitmap> {
    match v {
        None => Ok(RoaringBitmap::new()),
        Some(b) => {
            RoaringBitmap::deserialize_from(b).map_err(|e| StorageError::corrupt("an_bitmap", e))
        }
    }
}

fn write_bitmap(set: &RoaringBitmap) -> Vec<u8> {
    let mut v = Vec::with_capacity(set.serialized_size());
    set.serialize_into(&mut v).expect("writing to a Vec");
    v
}

/// One delivery rollup row.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub campaign: String,
    pub activity: String,
    pub event_type: String,
    pub hour: i32,
    pub rollup: DeliveryRollup,
}

/// Reads of the rollup tables of one group.
pub struct AnalyticsReader<'a, E: KvEngine + ?Sized> {
    pub(crate) engine: &'a E,
}

impl<E: KvEngine + ?Sized> AnalyticsReader<'_, E> {
    /// Per hour in `[from, to)`, the active (`tag::AN_ACTIVE`) or first-seen
    /// (`tag::AN_NEW`) ordinals of a kind.
    pub fn hour_sets(
        &self,
        group: GroupId,
        table: u8,
        app_id: &str,
        kind: Kind,
        from: i32,
        to: i32,
    ) -> Result<Vec<(i32, RoaringBitmap)>> {
        let prefix = keys::an_hour_set_prefix(group, table, app_id, kind.byte());
        let start = keys::an_hour_set(group, table, app_id, kind.byte(), from);
        let end = keys::an_hour_set(group, table, app_id, kind.byte(), to);
        let mut out = Vec::new();
        let mut err = None;
        self.engine.scan(Cf::State, &start, &end, &mut |k, v| {
            match read_bitmap(Some(v)) {
                Ok(b) => out.push((keys::hour_at(k, prefix.len()), b)),
                Err(e) => {
                    err = Some(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        err.map_or(Ok(out), Err)
    }

    /// Ids of ordinals `from..`, in ordinal order (ordinals are dense).
    pub fn ids_from(
        &self,
        group: GroupId,
        app_id: &str,
        kind: Kind,
        from: u32,
    ) -> Result<Vec<String>> {
        let prefix = keys::an_ord_rev_prefix(group, app_id, kind.byte());
        let start = keys::an_ord_rev(group, app_id, kind.byte(), from);
        let mut out = Vec::new();
        self.engine.scan(
            Cf::State,
            &start,
            &keys::prefix_end(&prefix),
            &mut |_, v| {
                out.push(String::from_utf8_lossy(v).into_owned());
                ControlFlow::Continue(())
            },
        )?;
        Ok(out)
    }

    /// Event type rollups of the hours `[from, to)`, as (hour, type, rollup).
    pub fn types(
        &self,
        group: GroupId,
        app_id: &str,
        from: i32,
        to: i32,
    ) -> Result<Vec<(i32, String, TypeRollup)>> {
        let prefix = keys::app_prefix(group, tag::AN_TYPE, app_id);
        let start = keys::an_type(group, app_id, from, "");
        let end = keys::an_type(group, app_id, to, "");
        let mut out = Vec::new();
        let mut err = None;
        self.engine.scan(Cf::State, &start, &end, &mut |k, v| {
            match serde_json::from_slice::<TypeRollup>(v) {
                Ok(r) => out.push((
                    keys::hour_at(k, prefix.len()),
                    keys::tail_str(k, prefix.len() + 4),
                    r,
                )),
                Err(e) => {
                    err = Some(StorageError::corrupt("an_type", e));
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        err.map_or(Ok(out), Err)
    }

    /// Session rollups of the hours `[from, to)`.
    pub fn sessions(
        &self,
        group: GroupId,
        app_id: &str,
        from: i32,
        to: i32,
    ) -> Result<Vec<(i32, SessionRollup)>> {
        let prefix = keys::app_prefix(group, tag::AN_SESSION, app_id);
        let mut out = Vec::new();
        let mut err = None;
        self.engine.scan(
            Cf::State,
            &keys::an_session(group, app_id, from),
            &keys::an_session(group, app_id, to),
            &mut |k, v| {
                match serde_json::from_slice::<SessionRollup>(v) {
                    Ok(r) => out.push((keys::hour_at(k, prefix.len()), r)),
                    Err(e) => {
                        err = Some(StorageError::corrupt("an_session", e));
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            },
        )?;
        err.map_or(Ok(out), Err)
    }

    /// Funnel occurrences of one event type in the hours `[from, to)`, one
    /// stored chunk at a time, until `f` breaks.
    pub fn visit_occurrences(
        &self,
        group: GroupId,
        app_id: &str,
        event_type: &str,
        from: i32,
        to: i32,
        f: &mut dyn FnMut(Occurrences<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        if to <= from {
            return Ok(());
        }
        let (lo, hi) = (i64::from(from) * HOUR_MS, i64::from(to) * HOUR_MS);
        let mut err = None;
        self.engine.scan(
            Cf::State,
            &keys::an_funnel_day(group, app_id, event_type, from.div_euclid(24)),
            &keys::an_funnel_day(group, app_id, event_type, (to - 1).div_euclid(24) + 1),
            &mut |_, v| {
                if !v.len().is_multiple_of(OCCURRENCE_BYTES) {
                    err = Some(StorageError::corrupt(
                        "an_funnel",
                        "length is not a multiple of 12",
                    ));
                    return ControlFlow::Break(());
                }
                f(Occurrences { bytes: v, lo, hi })
            },
        )?;
        err.map_or(Ok(()), Err)
    }

    /// Funnel occurrences `(person ordinal, time)` of one event type in the
    /// hours `[from, to)`.
    pub fn occurrences(
        &self,
        group: GroupId,
        app_id: &str,
        event_type: &str,
        from: i32,
        to: i32,
    ) -> Result<Vec<(u32, i64)>> {
        let mut out = Vec::new();
        self.visit_occurrences(group, app_id, event_type, from, to, &mut |chunk| {
            out.extend(chunk);
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Delivery rollups of the hours `[from, to)`, of one campaign or all
    /// (`None`), as (campaign, activity, event type, hour, rollup).
    pub fn deliveries(
        &self,
        group: GroupId,
        app_id: &str,
        campaign: Option<&str>,
        from: i32,
        to: i32,
    ) -> Result<Vec<DeliveryRow>> {
        let prefix = keys::app_prefix(group, tag::AN_DELIVERY, app_id);
        let mut start = prefix.clone();
        if let Some(c) = campaign {
            let len = u16::try_from(c.len()).unwrap_or(u16::MAX);
            start.extend_from_slice(&len.to_be_bytes());
            start.extend_from_slice(c.as_bytes());
        }
        let end = keys::prefix_end(&start);
        let mut out = Vec::new();
        let mut err = None;
        self.engine.scan(Cf::State, &start, &end, &mut |k, v| {
            let Some((c, a, et, h)) = keys::split_delivery(k, prefix.len()) else {
                err = Some(StorageError::corrupt("an_delivery", "malformed key"));
                return ControlFlow::Break(());
            };
            if h < from || h >= to {
                return ControlFlow::Continue(());
            }
            match DeliveryRollup::decode(v) {
                Ok(r) => out.push(DeliveryRow {
                    campaign: c,
                    activity: a,
                    event_type: et,
                    hour: h,
                    rollup: r,
                }),
                Err(e) => {
                    err = Some(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        err.map_or(Ok(out), Err)
    }

    /// Ordinals of deleted endpoints or persons (see [`forget`]).
    pub fn forgotten(&self, group: GroupId, app_id: &str, kind: Kind) -> Result<RoaringBitmap> {
        read_bitmap(
            self.engine
                .get(Cf::State, &keys::an_forgotten(group, app_id, kind.byte()))?
                .as_deref(),
        )
    }

    /// The id holding an ordinal.
    pub fn id_at(
        &self,
        group: GroupId,
        app_id: &str,
        kind: Kind,
        ord: u32,
    ) -> Result<Option<String>> {
        Ok(self
            .engine
            .get(
                Cf::State,
                &keys::an_ord_rev(group, app_id, kind.byte(), ord),
            )?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The shard-local ordinal of an id, if it has been seen.
    pub fn ordinal(
        &self,
        group: GroupId,
        app_id: &str,
        kind: Kind,
        id: &str,
    ) -> Result<Option<u32>> {
        self.engine
            .get(Cf::State, &keys::an_ord(group, app_id, kind.byte(), id))?
            .map(|v| OrdRow::decode(&v).map(|r| r.ord))
            .transpose()
    }
}

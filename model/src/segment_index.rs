//! Shard-local segment indexes: bitmaps of endpoint ordinals and columns of
//! numbers, kept next to the stored endpoints so a dimensional segment is
//! evaluated without reading (or deserializing) a single endpoint.
//!
//! A [`SegmentIndex`] holds the endpoints of one shard, possibly of several
//! applications. Each endpoint gets a `u32` ordinal (freed ordinals are
//! reused). Per application it keeps:
//!
//! * a bitmap of the application's live ordinals;
//! * for every exact-match field value a roaring bitmap (a *posting*) of the
//!   ordinals having it: custom and user attribute `(name, value)` pairs
//!   (case-sensitive, as [`attribute_matches`] compares them) and the set
//!   fields `ChannelType`, `Demographic.AppVersion` / `Make` / `Model` /
//!   `Platform`, `Location.Country` and the `DeviceType` attribute (ASCII
//!   lowercase, as [`set_matches`] compares case-insensitively);
//! * per metric name a bitmap of holders and a dense `f64` column;
//! * a bitmap of endpoints with both GPS coordinates and their column.
//!
//! `EffectiveDate` (the endpoint's last activity, see
//! [`SegmentIndex::evaluate`]) is a dense `i64` column over all ordinals.
//!
//! Evaluation ([`SegmentIndex::evaluate`]) first combines postings: every
//! attribute, demographic or country test becomes one bitmap (the union of
//! the postings of the values that pass it) that candidates must be in, or
//! (EXCLUSIVE) must not be in; the smallest bitmaps are intersected first.
//! Then metric, recency and GPS tests filter the candidates through their
//! columns. Attribute tests other than INCLUSIVE / EXCLUSIVE run
//! [`attribute_matches`] once per distinct value of the attribute, never per
//! endpoint. The result equals [`SegmentDimensions::matches`] for every
//! endpoint and every definition (the property test below checks this).
//!
//! Pure like the rest of the crate: no IO, no clock, no randomness; hash maps
//! use a fixed hash (xxh3), so behaviour is deterministic.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::slice;

use roaring::RoaringBitmap;
use xxhash_rust::xxh3::xxh3_64;

use crate::segment::{
    attribute_matches, metric_matches, AttributeDimension, SegmentDimensions, SetDimension,
    DEVICE_TYPE_ATTRIBUTE,
};
use crate::time::parse_iso8601_ms;
use crate::wire::{AttributeMap, EndpointLocation, EndpointResponse};

/// `EffectiveDate` column value of an endpoint without a parseable date
/// (`parse_iso8601_ms` only returns years 0000..=9999, never this).
const NO_DATE: i64 = i64::MIN;

/// The set fields, in the order of `AppIndex::sets`.
const APP_VERSION: usize = 0;
const CHANNEL: usize = 1;
const DEVICE_TYPE: usize = 2;
const MAKE: usize = 3;
const MODEL: usize = 4;
const PLATFORM: usize = 5;
const COUNTRY: usize = 6;
const SET_FIELDS: usize = 7;

/// Endpoint-id hashes are masked under test so that the collision path of
/// the id map is exercised constantly.
#[cfg(test)]
const ID_HASH_MASK: u64 = 0b11;
#[cfg(not(test))]
const ID_HASH_MASK: u64 = u64::MAX;

fn id_hash(id: &str) -> u64 {
    xxh3_64(id.as_bytes()) & ID_HASH_MASK
}

/// A hasher for keys that already are hashes: `u64` keys pass through.
#[derive(Default)]
struct PassHasher(u64);

impl Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64(bytes) ^ self.0.rotate_left(5);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashToOrdinal = HashMap<u64, u32, BuildHasherDefault<PassHasher>>;

/// Value → posting id, for one field.
type Values = BTreeMap<String, u32>;

/// Where a posting lives in its application's dictionaries.
#[derive(Debug, Clone)]
enum PostingKey {
    Attr(String, String),
    User(String, String),
    Set(usize, String),
}

#[derive(Debug, Clone)]
struct Posting {
    bits: RoaringBitmap,
    /// `None` once freed (its id is then on `AppIndex::free_postings`).
    key: Option<PostingKey>,
}

/// One metric of one application: who has it, and the values by ordinal
/// (meaningful only for holders).
#[derive(Debug, Clone, Default)]
struct MetricColumn {
    has: RoaringBitmap,
    values: Vec<f64>,
}

#[derive(Debug, Clone, Default)]
struct AppIndex {
    live: RoaringBitmap,
    /// Endpoint id hash → ordinal; ids whose hash is taken by another id of
    /// the app go to `collided`.
    by_hash: HashToOrdinal,
    collided: BTreeMap<String, u32>,
    attrs: BTreeMap<String, Values>,
    user_attrs: BTreeMap<String, Values>,
    sets: [Values; SET_FIELDS],
    postings: Vec<Posting>,
    free_postings: Vec<u32>,
    metrics: BTreeMap<String, MetricColumn>,
    gps_has: RoaringBitmap,
    /// (latitude, longitude) by ordinal, meaningful only for `gps_has`.
    gps: Vec<(f64, f64)>,
}

/// Segment indexes of one shard; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct SegmentIndex {
    apps: BTreeMap<String, AppIndex>,
    /// Endpoint id by ordinal (`None`: the ordinal is free).
    ids: Vec<Option<Box<str>>>,
    /// Posting ids (of the endpoint's application) by ordinal, sorted.
    memberships: Vec<Box<[u32]>>,
    /// `EffectiveDate` in Unix ms by ordinal, [`NO_DATE`] if none.
    dates: Vec<i64>,
    free: Vec<u32>,
    live: usize,
}

impl SegmentIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces an endpoint (app, endpoint id) with its current
    /// stored state. An endpoint without `Id` is not indexed.
    pub fn upsert(&mut self, app_id: &str, ep: &EndpointResponse) {
        let Some(id) = ep.id.as_deref() else { return };
        if !self.apps.contains_key(app_id) {
            self.apps.insert(app_id.to_string(), AppIndex::default());
        }
        let Some(app) = self.apps.get_mut(app_id) else {
            return;
        };
        let hash = id_hash(id);
        let ord = match app.lookup(hash, id, &self.ids) {
            Some(ord) => {
                app.clear(ord, &self.memberships[ord as usize]);
                ord
            }
            None => {
                let ord = match self.free.pop() {
                    Some(ord) => ord,
                    None => {
                        let ord = u32::try_from(self.ids.len())
                            .expect("a shard holds fewer than 2^32 endpoints");
                        self.ids.push(None);
                        self.memberships.push(Box::default());
                        self.dates.push(NO_DATE);
                        ord
                    }
                };
                self.ids[ord as usize] = Some(id.into());
                app.insert_id(hash, ord, id);
                app.live.insert(ord);
                self.live += 1;
                ord
            }
        };
        let o = ord as usize;

        let mut member = Vec::new();
        if let Some(attrs) = &ep.attributes {
            for (name, values) in attrs {
                for v in values {
                    member.push(app.post(PostingKey::Attr(name.clone(), v.clone()), ord));
                }
            }
        }
        if let Some(attrs) = ep.user.as_ref().and_then(|u| u.user_attributes.as_ref()) {
            for (name, values) in attrs {
                for v in values {
                    member.push(app.post(PostingKey::User(name.clone(), v.clone()), ord));
                }
            }
        }
        let demo = ep.demographic.as_ref();
        let location = ep.location.as_ref();
        for (field, value) in [
            (APP_VERSION, demo.and_then(|d| d.app_version.as_deref())),
            (CHANNEL, ep.channel_type.as_deref()),
            (DEVICE_TYPE, device_type(ep.attributes.as_ref())),
            (MAKE, demo.and_then(|d| d.make.as_deref())),
            (MODEL, demo.and_then(|d| d.model.as_deref())),
            (PLATFORM, demo.and_then(|d| d.platform.as_deref())),
            (COUNTRY, location.and_then(|l| l.country.as_deref())),
        ] {
            if let Some(v) = value {
                member.push(app.post(PostingKey::Set(field, v.to_ascii_lowercase()), ord));
            }
        }
        member.sort_unstable();
        member.dedup();
        self.memberships[o] = member.into_boxed_slice();

        self.dates[o] = ep
            .effective_date
            .as_deref()
            .and_then(|d| parse_iso8601_ms(d).ok())
            .unwrap_or(NO_DATE);

        if let Some(metrics) = &ep.metrics {
            for (name, &v) in metrics {
                if !app.metrics.contains_key(name) {
                    app.metrics.insert(name.clone(), MetricColumn::default());
                }
                if let Some(col) = app.metrics.get_mut(name) {
                    col.has.insert(ord);
                    set_at(&mut col.values, o, v, f64::NAN);
                }
            }
        }
        if let Some((lat, lon)) = location.and_then(|l| Some((l.latitude?, l.longitude?))) {
            app.gps_has.insert(ord);
            set_at(&mut app.gps, o, (lat, lon), (f64::NAN, f64::NAN));
        }
    }

    /// Removes an endpoint; unknown ones are ignored.
    pub fn remove(&mut self, app_id: &str, endpoint_id: &str) {
        let Some(app) = self.apps.get_mut(app_id) else {
            return;
        };
        let hash = id_hash(endpoint_id);
        let Some(ord) = app.lookup(hash, endpoint_id, &self.ids) else {
            return;
        };
        let o = ord as usize;
        app.clear(ord, &self.memberships[o]);
        app.live.remove(ord);
        app.remove_id(hash, ord, endpoint_id);
        let empty = app.live.is_empty();
        self.release(ord);
        self.live -= 1;
        if empty {
            self.apps.remove(app_id);
        }
    }

    /// Removes every endpoint of an application.
    pub fn remove_app(&mut self, app_id: &str) {
        let Some(app) = self.apps.remove(app_id) else {
            return;
        };
        for ord in &app.live {
            self.release(ord);
        }
        self.live -= app.live.len() as usize;
    }

    fn release(&mut self, ord: u32) {
        let o = ord as usize;
        self.ids[o] = None;
        self.memberships[o] = Box::default();
        self.dates[o] = NO_DATE;
        self.free.push(ord);
    }

    /// Ordinals of the app's endpoints matching `dims` at `now_ms`, exactly
    /// as [`SegmentDimensions::matches`] with `last_active_ms` = the
    /// endpoint's `EffectiveDate` (parsed with
    /// [`crate::time::parse_iso8601_ms`]; absent or unparseable: never
    /// active). An unknown app has no endpoints.
    pub fn evaluate(&self, app_id: &str, dims: &SegmentDimensions, now_ms: i64) -> RoaringBitmap {
        let Some(app) = self.apps.get(app_id) else {
            return RoaringBitmap::new();
        };
        // Bitmap tests: candidates must be in every `must` and in no `must_not`.
        let mut must: Vec<RoaringBitmap> = Vec::new();
        let mut must_not: Vec<RoaringBitmap> = Vec::new();
        for (dicts, tests) in [
            (&app.attrs, dims.attributes.as_ref()),
            (&app.user_attrs, dims.user_attributes.as_ref()),
        ] {
            for (name, dim) in tests.into_iter().flatten() {
                let (bits, exclusive) = app.attribute_bits(dicts.get(name), dim);
                if exclusive {
                    must_not.push(bits);
                } else {
                    must.push(bits);
                }
            }
        }
        let demo = dims.demographic.as_ref();
        for (field, dim) in [
            (APP_VERSION, demo.and_then(|d| d.app_version.as_ref())),
            (CHANNEL, demo.and_then(|d| d.channel.as_ref())),
            (DEVICE_TYPE, demo.and_then(|d| d.device_type.as_ref())),
            (MAKE, demo.and_then(|d| d.make.as_ref())),
            (MODEL, demo.and_then(|d| d.model.as_ref())),
            (PLATFORM, demo.and_then(|d| d.platform.as_ref())),
            (
                COUNTRY,
                dims.location.as_ref().and_then(|l| l.country.as_ref()),
            ),
        ] {
            if let Some(dim) = dim {
                let bits = app.set_bits(field, dim);
                if dim.dimension_type.as_deref() == Some("EXCLUSIVE") {
                    must_not.push(bits);
                } else {
                    must.push(bits);
                }
            }
        }
        must.sort_by_key(RoaringBitmap::len);
        let mut tests = must.into_iter();
        let mut cand = match tests.next() {
            Some(first) => first,
            None => app.live.clone(),
        };
        for bits in tests {
            if cand.is_empty() {
                break;
            }
            cand &= bits;
        }
        for bits in &must_not {
            cand -= bits;
        }

        // Column tests over the candidates, cheapest first.
        for (name, dim) in dims.metrics.iter().flatten() {
            let Some(col) = app.metrics.get(name) else {
                return RoaringBitmap::new();
            };
            cand &= &col.has;
            cand.retain(|o| metric_matches(dim, col.values.get(o as usize).copied()));
        }
        if let Some(recency) = dims.behavior.as_ref().and_then(|b| b.recency.as_ref()) {
            cand.retain(|o| {
                let t = self.dates[o as usize];
                recency.matches((t != NO_DATE).then_some(t), now_ms)
            });
        }
        if let Some(gps) = dims.location.as_ref().and_then(|l| l.gps_point.as_ref()) {
            cand &= &app.gps_has;
            cand.retain(|o| {
                app.gps.get(o as usize).is_some_and(|&(lat, lon)| {
                    gps.matches(Some(&EndpointLocation {
                        latitude: Some(lat),
                        longitude: Some(lon),
                        ..EndpointLocation::default()
                    }))
                })
            });
        }
        cand
    }

    /// The number of endpoints [`SegmentIndex::evaluate`] returns.
    pub fn count(&self, app_id: &str, dims: &SegmentDimensions, now_ms: i64) -> u64 {
        self.evaluate(app_id, dims, now_ms).len()
    }

    /// The endpoint id at `ordinal`, if it is in use.
    pub fn endpoint_id(&self, ordinal: u32) -> Option<&str> {
        self.ids.get(ordinal as usize)?.as_deref()
    }

    /// The ordinal of an endpoint, if indexed.
    pub fn ordinal(&self, app_id: &str, endpoint_id: &str) -> Option<u32> {
        self.apps
            .get(app_id)?
            .lookup(id_hash(endpoint_id), endpoint_id, &self.ids)
    }

    /// Endpoints indexed, over all applications.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Approximate heap bytes held: bitmaps at their serialized size,
    /// columns and tables at their capacity, strings at their length.
    /// Allocator overhead is not counted.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let mut n = self.ids.capacity() * size_of::<Option<Box<str>>>()
            + self.memberships.capacity() * size_of::<Box<[u32]>>()
            + self.dates.capacity() * size_of::<i64>()
            + self.free.capacity() * size_of::<u32>();
        n += self.ids.iter().flatten().map(|s| s.len()).sum::<usize>();
        n += self
            .memberships
            .iter()
            .map(|m| m.len() * size_of::<u32>())
            .sum::<usize>();
        // A B-tree entry: key and value plus about a pointer of node overhead.
        let values_bytes = |v: &Values| {
            v.keys()
                .map(|k| k.len() + size_of::<String>() + size_of::<u32>() + 8)
                .sum::<usize>()
        };
        for (name, app) in &self.apps {
            n += name.len() + size_of::<String>() + size_of::<AppIndex>();
            n += app.live.serialized_size();
            // hashbrown: one control byte per bucket.
            n += app.by_hash.capacity() * (size_of::<(u64, u32)>() + 1);
            n += app
                .collided
                .keys()
                .map(|k| k.len() + size_of::<String>() + size_of::<u32>() + 8)
                .sum::<usize>();
            for dicts in [&app.attrs, &app.user_attrs] {
                for (name, values) in dicts {
                    n += name.len() + size_of::<String>() + size_of::<Values>() + 8;
                    n += values_bytes(values);
                }
            }
            n += app.sets.iter().map(values_bytes).sum::<usize>();
            n += app.postings.capacity() * size_of::<Posting>();
            for p in &app.postings {
                n += p.bits.serialized_size();
                n += match &p.key {
                    Some(PostingKey::Attr(a, b) | PostingKey::User(a, b)) => a.len() + b.len(),
                    Some(PostingKey::Set(_, v)) => v.len(),
                    None => 0,
                };
            }
            n += app.free_postings.capacity() * size_of::<u32>();
            for (name, col) in &app.metrics {
                n += name.len() + size_of::<String>() + size_of::<MetricColumn>() + 8;
                n += col.has.serialized_size() + col.values.capacity() * size_of::<f64>();
            }
            n += app.gps_has.serialized_size() + app.gps.capacity() * size_of::<(f64, f64)>();
        }
        n
    }
}

/// The value `Demographic.DeviceType` tests: the first value of the
/// [`DEVICE_TYPE_ATTRIBUTE`] attribute.
fn device_type(attrs: Option<&AttributeMap>) -> Option<&str> {
    attrs
        .and_then(|a| a.get(DEVICE_TYPE_ATTRIBUTE))
        .and_then(|v| v.first())
        .map(String::as_str)
}

/// `column[i] = value`, growing the column with `fill`.
fn set_at<T: Copy>(column: &mut Vec<T>, i: usize, value: T, fill: T) {
    if column.len() <= i {
        column.resize(i + 1, fill);
    }
    column[i] = value;
}

impl AppIndex {
    fn lookup(&self, hash: u64, id: &str, ids: &[Option<Box<str>>]) -> Option<u32> {
        let &ord = self.by_hash.get(&hash)?;
        if ids[ord as usize].as_deref() == Some(id) {
            Some(ord)
        } else {
            self.collided.get(id).copied()
        }
    }

    /// Registers a new id (not yet known to the app).
    fn insert_id(&mut self, hash: u64, ord: u32, id: &str) {
        match self.by_hash.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(ord);
            }
            Entry::Occupied(_) => {
                self.collided.insert(id.to_string(), ord);
            }
        }
    }

    fn remove_id(&mut self, hash: u64, ord: u32, id: &str) {
        if self.by_hash.get(&hash) == Some(&ord) {
            self.by_hash.remove(&hash);
            // Promote an id that collided with this one, if any.
            let heir = self
                .collided
                .iter()
                .find(|(k, _)| id_hash(k) == hash)
                .map(|(k, &o)| (k.clone(), o));
            if let Some((k, o)) = heir {
                self.collided.remove(&k);
                self.by_hash.insert(hash, o);
            }
        } else {
            self.collided.remove(id);
        }
    }

    /// Adds `ord` to the posting of `key` (created if new); returns its id.
    fn post(&mut self, key: PostingKey, ord: u32) -> u32 {
        let (dict, value) = match &key {
            PostingKey::Attr(name, value) => (self.attrs.get(name), value),
            PostingKey::User(name, value) => (self.user_attrs.get(name), value),
            PostingKey::Set(field, value) => (Some(&self.sets[*field]), value),
        };
        let pid = match dict.and_then(|d| d.get(value)) {
            Some(&pid) => pid,
            None => {
                let pid = match self.free_postings.pop() {
                    Some(pid) => pid,
                    None => {
                        self.postings.push(Posting {
                            bits: RoaringBitmap::new(),
                            key: None,
                        });
                        u32::try_from(self.postings.len() - 1).expect("fewer than 2^32 postings")
                    }
                };
                let dict = match &key {
                    PostingKey::Attr(name, _) => self.attrs.entry(name.clone()).or_default(),
                    PostingKey::User(name, _) => self.user_attrs.entry(name.clone()).or_default(),
                    PostingKey::Set(field, _) => &mut self.sets[*field],
                };
                dict.insert(value.clone(), pid);
                self.postings[pid as usize].key = Some(key);
                pid
            }
        };
        self.postings[pid as usize].bits.insert(ord);
        pid
    }

    /// Takes `ord` out of its postings, metrics and GPS (not out of `live`).
    fn clear(&mut self, ord: u32, member: &[u32]) {
        for &pid in member {
            let posting = &mut self.postings[pid as usize];
            posting.bits.remove(ord);
            if !posting.bits.is_empty() {
                continue;
            }
            match posting.key.take() {
                Some(PostingKey::Attr(name, value)) => drop_value(&mut self.attrs, &name, &value),
                Some(PostingKey::User(name, value)) => {
                    drop_value(&mut self.user_attrs, &name, &value)
                }
                Some(PostingKey::Set(field, value)) => {
                    self.sets[field].remove(&value);
                }
                None => {}
            }
            posting.bits = RoaringBitmap::new();
            self.free_postings.push(pid);
        }
        self.metrics.retain(|_, col| {
            col.has.remove(ord);
            !col.has.is_empty()
        });
        self.gps_has.remove(ord);
    }

    /// The endpoints passing an attribute test, or (`true`) failing the
    /// INCLUSIVE test an EXCLUSIVE one negates. `values`: the attribute's
    /// dictionary.
    fn attribute_bits(
        &self,
        values: Option<&Values>,
        dim: &AttributeDimension,
    ) -> (RoaringBitmap, bool) {
        let kind = dim.attribute_type.as_deref().unwrap_or("INCLUSIVE");
        let exclusive = kind == "EXCLUSIVE";
        let Some(values) = values else {
            return (RoaringBitmap::new(), exclusive);
        };
        let mut bits = RoaringBitmap::new();
        match kind {
            "INCLUSIVE" | "EXCLUSIVE" => {
                for v in &dim.values {
                    if let Some(&pid) = values.get(v) {
                        bits |= &self.postings[pid as usize].bits;
                    }
                }
            }
            // Every other test passes an endpoint when one of its values
            // passes it alone.
            _ => {
                for (v, &pid) in values {
                    if attribute_matches(dim, Some(slice::from_ref(v))) {
                        bits |= &self.postings[pid as usize].bits;
                    }
                }
            }
        }
        (bits, exclusive)
    }

    /// The endpoints whose `field` is one of the dimension's values (the
    /// caller negates for EXCLUSIVE).
    fn set_bits(&self, field: usize, dim: &SetDimension) -> RoaringBitmap {
        let mut bits = RoaringBitmap::new();
        for v in &dim.values {
            if let Some(&pid) = self.sets[field].get(&v.to_ascii_lowercase()) {
                bits |= &self.postings[pid as usize].bits;
            }
        }
        bits
    }
}

#[cfg(test)]
impl SegmentIndex {
    /// Panics unless the internal tables agree with each other.
    fn assert_consistent(&self) {
        use std::collections::BTreeSet;
        let free: BTreeSet<u32> = self.free.iter().copied().collect();
        assert_eq!(free.len(), self.free.len(), "an ordinal is free twice");
        for &o in &free {
            assert!(self.ids[o as usize].is_none(), "free ordinal {o} has an id");
            assert!(self.memberships[o as usize].is_empty());
        }
        assert_eq!(self.ids.iter().flatten().count(), self.live);
        assert_eq!(free.len() + self.live, self.ids.len());
        let mut total = 0;
        for app in self.apps.values() {
            assert!(!app.live.is_empty(), "an empty app is kept");
            total += app.live.len() as usize;
            assert_eq!(
                app.by_hash.len() + app.collided.len(),
                app.live.len() as usize
            );
            for o in &app.live {
                let id = self.ids[o as usize]
                    .as_deref()
                    .expect("live ordinal has an id");
                assert_eq!(app.lookup(id_hash(id), id, &self.ids), Some(o));
                let member = &self.memberships[o as usize];
                assert!(
                    member.windows(2).all(|w| w[0] < w[1]),
                    "membership unsorted"
                );
                for &pid in member.iter() {
                    assert!(app.postings[pid as usize].bits.contains(o));
                }
            }
            let free_p: BTreeSet<u32> = app.free_postings.iter().copied().collect();
            assert_eq!(
                free_p.len(),
                app.free_postings.len(),
                "a posting is free twice"
            );
            let mut used = 0;
            let mut check = |pid: u32, key: PostingKey| {
                used += 1;
                let p = &app.postings[pid as usize];
                assert!(
                    !free_p.contains(&pid),
                    "posting {pid} is both used and free"
                );
                assert!(!p.bits.is_empty() && p.bits.is_subset(&app.live));
                assert_eq!(format!("{:?}", p.key), format!("{:?}", Some(key)));
                for o in &p.bits {
                    assert!(self.memberships[o as usize].contains(&pid));
                }
            };
            for values in app.attrs.values().chain(app.user_attrs.values()) {
                assert!(!values.is_empty(), "an attribute without values is kept");
            }
            for (name, values) in &app.attrs {
                for (v, &pid) in values {
                    check(pid, PostingKey::Attr(name.clone(), v.clone()));
                }
            }
            for (name, values) in &app.user_attrs {
                for (v, &pid) in values {
                    check(pid, PostingKey::User(name.clone(), v.clone()));
                }
            }
            for (field, values) in app.sets.iter().enumerate() {
                for (v, &pid) in values {
                    check(pid, PostingKey::Set(field, v.clone()));
                }
            }
            assert_eq!(used + free_p.len(), app.postings.len());
            for &pid in &free_p {
                let p = &app.postings[pid as usize];
                assert!(p.key.is_none() && p.bits.is_empty());
            }
            for col in app.metrics.values() {
                assert!(!col.has.is_empty() && col.has.is_subset(&app.live));
            }
            assert!(app.gps_has.is_subset(&app.live));
        }
        assert_eq!(total, self.live);
    }
}

fn drop_value(dicts: &mut BTreeMap<String, Values>, name: &str, value: &str) {
    if let Some(values) = dicts.get_mut(name) {
        values.remove(value);
        if values.is_empty() {
            dicts.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{
        EndpointFacts, GPSCoordinates, GPSPointDimension, MetricDimension, RecencyDimension,
        SegmentBehaviors, SegmentDemographics, SegmentLocation,
    };
    use crate::time::{format_iso8601_ms, DAY_MS, HOUR_MS};
    use crate::wire::{EndpointDemographic, EndpointUser};
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn ep(v: serde_json::Value) -> EndpointResponse {
        serde_json::from_value(v).expect("endpoint")
    }

    fn dims(v: serde_json::Value) -> SegmentDimensions {
        serde_json::from_value(v).expect("dimensions")
    }

    fn ids(idx: &SegmentIndex, app: &str, d: &SegmentDimensions) -> Vec<String> {
        let mut out: Vec<String> = idx
            .evaluate(app, d, NOW)
            .iter()
            .map(|o| idx.endpoint_id(o).expect("live ordinal").to_string())
            .collect();
        out.sort();
        assert_eq!(idx.count(app, d, NOW), out.len() as u64);
        out
    }

    /// Ids the brute-force matcher selects among `eps`.
    fn brute(eps: &[EndpointResponse], d: &SegmentDimensions) -> Vec<String> {
        let mut out: Vec<String> = eps
            .iter()
            .filter(|e| d.matches(&facts(e), NOW))
            .map(|e| e.id.clone().unwrap_or_default())
            .collect();
        out.sort();
        out
    }

    fn facts(e: &EndpointResponse) -> EndpointFacts<'_> {
        EndpointFacts {
            endpoint: e,
            last_active_ms: e
                .effective_date
                .as_deref()
                .and_then(|d| parse_iso8601_ms(d).ok()),
        }
    }

    fn fixture() -> (SegmentIndex, Vec<EndpointResponse>) {
        let at = |ms: i64| format_iso8601_ms(ms);
        let eps = vec![
            ep(json!({"Id": "a", "ChannelType": "EMAIL",
                "Attributes": {"Plan": ["pro"], "Tags": ["red", "blue"], "DeviceType": ["Phone"],
                               "Signup": ["2025-12-01T10:00:00Z"]},
                "User": {"UserAttributes": {"Tier": ["gold"]}},
                "Demographic": {"Platform": "iOS", "Make": "Apple", "Model": "iPhone", "AppVersion": "1.2"},
                "Location": {"Country": "US", "Latitude": 47.6, "Longitude": -122.3},
                "Metrics": {"score": 80.0},
                "EffectiveDate": at(NOW - HOUR_MS)})),
            ep(json!({"Id": "b", "ChannelType": "sms",
                "Attributes": {"Plan": ["free"], "Tags": ["green"],
                               "Signup": ["2025-11-01", "not a date"]},
                "Demographic": {"Platform": "android"},
                "Location": {"Country": "gb", "Latitude": 51.5, "Longitude": -0.1},
                "Metrics": {"score": 20.0, "visits": 3.0},
                "EffectiveDate": at(NOW - 10 * DAY_MS)})),
            ep(json!({"Id": "c", "ChannelType": "EMAIL",
                "Attributes": {"Plan": ["team", "pro"], "DeviceType": ["tablet", "phone"]},
                "User": {"UserAttributes": {"Tier": ["silver", "gold"]}},
                "Location": {"Country": "De"},
                "Metrics": {"score": 50.0},
                "EffectiveDate": at(NOW - 7 * DAY_MS)})),
            ep(json!({"Id": "d"})),
            ep(
                json!({"Id": "e", "ChannelType": "CUSTOM", "Attributes": {"Plan": []},
                "EffectiveDate": "garbage"}),
            ),
        ];
        let mut idx = SegmentIndex::new();
        for e in &eps {
            idx.upsert("app", e);
        }
        // Another app's endpoints never show up.
        idx.upsert("other", &eps[0]);
        (idx, eps)
    }

    fn check(d: serde_json::Value, want: &[&str]) {
        let (idx, eps) = fixture();
        let d = dims(d);
        assert_eq!(ids(&idx, "app", &d), want, "index");
        assert_eq!(brute(&eps, &d), want, "brute force");
    }

    #[test]
    fn empty_dimensions_select_the_whole_app() {
        check(json!({}), &["a", "b", "c", "d", "e"]);
        let (idx, _) = fixture();
        assert!(ids(&idx, "nope", &dims(json!({}))).is_empty());
        assert_eq!(idx.len(), 6);
    }

    #[test]
    fn attribute_inclusive_and_exclusive() {
        check(
            json!({"Attributes": {"Plan": {"Values": ["pro", "team"]}}}),
            &["a", "c"],
        );
        check(json!({"Attributes": {"Plan": {"Values": ["PRO"]}}}), &[]);
        check(
            json!({"Attributes": {"Plan": {"AttributeType": "EXCLUSIVE", "Values": ["pro"]}}}),
            &["b", "d", "e"],
        );
        check(
            json!({"Attributes": {"Nope": {"AttributeType": "EXCLUSIVE", "Values": ["x"]}}}),
            &["a", "b", "c", "d", "e"],
        );
        check(json!({"Attributes": {"Nope": {"Values": ["x"]}}}), &[]);
        check(
            json!({"Attributes": {"Tags": {"AttributeType": "EXCLUSIVE", "Values": ["blue", "green"]}}}),
            &["c", "d", "e"],
        );
        check(
            json!({"Attributes": {"Plan": {"AttributeType": "WHATEVER", "Values": ["pro"]}}}),
            &[],
        );
        check(
            json!({"Attributes": {"Plan": {"Values": ["pro"]}, "Tags": {"Values": ["red"]}}}),
            &["a"],
        );
    }

    #[test]
    fn attribute_contains_and_dates() {
        check(
            json!({"Attributes": {"Tags": {"AttributeType": "CONTAINS", "Values": ["re"]}}}),
            &["a", "b"],
        );
        check(
            json!({"Attributes": {"Signup": {"AttributeType": "BEFORE", "Values": ["2025-11-15"]}}}),
            &["b"],
        );
        check(
            json!({"Attributes": {"Signup": {"AttributeType": "AFTER", "Values": ["2025-11-15"]}}}),
            &["a"],
        );
        check(
            json!({"Attributes": {"Signup": {"AttributeType": "ON", "Values": ["2025-12-01T23:00:00Z"]}}}),
            &["a"],
        );
        check(
            json!({"Attributes": {"Signup": {"AttributeType": "BETWEEN", "Values": ["2025-11-01", "2025-12-01T10:00:00Z"]}}}),
            &["a", "b"],
        );
        check(
            json!({"Attributes": {"Signup": {"AttributeType": "BETWEEN", "Values": ["2025-11-01"]}}}),
            &[],
        );
    }

    #[test]
    fn user_attributes() {
        check(
            json!({"UserAttributes": {"Tier": {"Values": ["gold"]}}}),
            &["a", "c"],
        );
        check(
            json!({"UserAttributes": {"Tier": {"AttributeType": "EXCLUSIVE", "Values": ["silver"]}}}),
            &["a", "b", "d", "e"],
        );
        // Custom and user attributes of the same name are different things.
        check(json!({"Attributes": {"Tier": {"Values": ["gold"]}}}), &[]);
    }

    #[test]
    fn demographics_are_case_insensitive_sets() {
        check(
            json!({"Demographic": {"Channel": {"Values": ["email"]}}}),
            &["a", "c"],
        );
        check(
            json!({"Demographic": {"Channel": {"Values": ["SMS", "custom"]}}}),
            &["b", "e"],
        );
        check(
            json!({"Demographic": {"Channel": {"DimensionType": "EXCLUSIVE", "Values": ["EMAIL"]}}}),
            &["b", "d", "e"],
        );
        check(
            json!({"Demographic": {"Platform": {"Values": ["IOS"]}}}),
            &["a"],
        );
        check(
            json!({"Demographic": {"Platform": {"DimensionType": "EXCLUSIVE", "Values": ["ios"]}}}),
            &["b", "c", "d", "e"],
        );
        check(
            json!({"Demographic": {"Make": {"Values": ["apple"]}, "Model": {"Values": ["IPHONE"]}}}),
            &["a"],
        );
        check(
            json!({"Demographic": {"AppVersion": {"Values": ["1.2"]}}}),
            &["a"],
        );
        // DeviceType reads the first value of the DeviceType attribute only.
        check(
            json!({"Demographic": {"DeviceType": {"Values": ["PHONE"]}}}),
            &["a"],
        );
        check(
            json!({"Demographic": {"DeviceType": {"Values": ["tablet"]}}}),
            &["c"],
        );
        check(
            json!({"Demographic": {"DeviceType": {"DimensionType": "EXCLUSIVE", "Values": ["phone"]}}}),
            &["b", "c", "d", "e"],
        );
    }

    #[test]
    fn location_country_and_gps() {
        check(
            json!({"Location": {"Country": {"Values": ["us", "GB", "de"]}}}),
            &["a", "b", "c"],
        );
        check(
            json!({"Location": {"Country": {"DimensionType": "EXCLUSIVE", "Values": ["US"]}}}),
            &["b", "c", "d", "e"],
        );
        // Seattle to London is ~7,700 km.
        check(
            json!({"Location": {"GPSPoint": {"Coordinates": {"Latitude": 47.0, "Longitude": -122.0}}}}),
            &["a"],
        );
        check(
            json!({"Location": {"GPSPoint": {"Coordinates": {"Latitude": 47.0, "Longitude": -122.0}, "RangeInKilometers": 8000.0}}}),
            &["a", "b"],
        );
        check(
            json!({"Location": {"Country": {"Values": ["GB"]}, "GPSPoint": {"Coordinates": {"Latitude": 47.0, "Longitude": -122.0}, "RangeInKilometers": 8000.0}}}),
            &["b"],
        );
        check(
            json!({"Location": {"GPSPoint": {"Coordinates": {"Latitude": 47.0}}}}),
            &[],
        );
    }

    #[test]
    fn metrics() {
        check(
            json!({"Metrics": {"score": {"ComparisonOperator": "GREATER_THAN", "Value": 50.0}}}),
            &["a"],
        );
        check(
            json!({"Metrics": {"score": {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 50.0}}}),
            &["a", "c"],
        );
        check(
            json!({"Metrics": {"score": {"ComparisonOperator": "LESS_THAN", "Value": 50.0}}}),
            &["b"],
        );
        check(
            json!({"Metrics": {"score": {"ComparisonOperator": "LESS_THAN_OR_EQUAL", "Value": 50.0}}}),
            &["b", "c"],
        );
        check(
            json!({"Metrics": {"score": {"ComparisonOperator": "EQUAL", "Value": 20.0}}}),
            &["b"],
        );
        check(
            json!({"Metrics": {"score": {"ComparisonOperator": "NOT_EQUAL", "Value": 20.0}}}),
            &[],
        );
        check(
            json!({"Metrics": {"visits": {"ComparisonOperator": "GREATER_THAN", "Value": 0.0}, "score": {"ComparisonOperator": "GREATER_THAN", "Value": 0.0}}}),
            &["b"],
        );
        check(
            json!({"Metrics": {"absent": {"ComparisonOperator": "LESS_THAN", "Value": 1e9}}}),
            &[],
        );
    }

    #[test]
    fn recency() {
        let r =
            |d: &str, t: &str| json!({"Behavior": {"Recency": {"Duration": d, "RecencyType": t}}});
        check(r("HR_24", "ACTIVE"), &["a"]);
        // The window's edge is inside.
        check(r("DAY_7", "ACTIVE"), &["a", "c"]);
        check(r("DAY_7", "INACTIVE"), &["b", "d", "e"]);
        check(r("DAY_30", "ACTIVE"), &["a", "b", "c"]);
        check(r("DAY_1", "ACTIVE"), &[]);
        check(r("DAY_7", "SOMETIMES"), &[]);
    }

    #[test]
    fn five_dimensions_together() {
        check(
            json!({
                "Attributes": {"Plan": {"Values": ["pro", "team"]}},
                "Demographic": {"Channel": {"Values": ["EMAIL"]}},
                "Location": {"Country": {"Values": ["US", "GB", "DE"]}},
                "Metrics": {"score": {"ComparisonOperator": "GREATER_THAN", "Value": 40.0}},
                "Behavior": {"Recency": {"Duration": "DAY_7", "RecencyType": "ACTIVE"}}
            }),
            &["a", "c"],
        );
    }

    #[test]
    fn upsert_replaces_and_remove_forgets() {
        let (mut idx, _) = fixture();
        let plan_pro = dims(json!({"Attributes": {"Plan": {"Values": ["pro"]}}}));
        let a = idx.ordinal("app", "a").expect("a");
        idx.upsert(
            "app",
            &ep(json!({"Id": "a", "Attributes": {"Plan": ["free"]}})),
        );
        assert_eq!(
            idx.ordinal("app", "a"),
            Some(a),
            "a replacement keeps its ordinal"
        );
        assert_eq!(ids(&idx, "app", &plan_pro), ["c"]);
        assert!(ids(
            &idx,
            "app",
            &dims(
                json!({"Metrics": {"score": {"ComparisonOperator": "GREATER_THAN", "Value": 60.0}}})
            )
        )
        .is_empty());
        assert_eq!(idx.len(), 6);

        idx.remove("app", "c");
        idx.remove("app", "c");
        idx.remove("app", "zzz");
        assert_eq!(idx.ordinal("app", "c"), None);
        assert!(ids(&idx, "app", &plan_pro).is_empty());
        assert_eq!(idx.len(), 5);
        // The other app's copy of "a" is untouched.
        assert_eq!(ids(&idx, "other", &plan_pro), ["a"]);

        // A freed ordinal is reused.
        idx.upsert(
            "app",
            &ep(json!({"Id": "f", "Attributes": {"Plan": ["pro"]}})),
        );
        assert_eq!(ids(&idx, "app", &plan_pro), ["f"]);
        assert_eq!(idx.len(), 6);
        assert_eq!(idx.ids.len(), 6, "no ordinal was added");

        idx.assert_consistent();
        idx.remove_app("app");
        idx.assert_consistent();
        assert_eq!(idx.len(), 1);
        assert!(ids(&idx, "app", &dims(json!({}))).is_empty());
        assert_eq!(ids(&idx, "other", &dims(json!({}))), ["a"]);
        idx.remove_app("other");
        assert!(idx.is_empty());
        assert!(idx.apps.is_empty());
        // Endpoints without an id are not indexed.
        idx.upsert("app", &EndpointResponse::default());
        assert!(idx.is_empty());
    }

    #[test]
    fn heap_bytes_grows_with_endpoints() {
        let empty = SegmentIndex::new().heap_bytes();
        let (idx, _) = fixture();
        assert!(idx.heap_bytes() > empty);
    }

    // --- the property: the index agrees with SegmentDimensions::matches ----

    const APPS: [&str; 3] = ["app1", "app2", "app3"];
    const ATTR_NAMES: [&str; 3] = ["a", "b", DEVICE_TYPE_ATTRIBUTE];
    const USER_NAMES: [&str; 2] = ["a", "u"];
    const VALUES: [&str; 8] = [
        "x",
        "X",
        "xy",
        "",
        "2025-12-31",
        "2025-12-31T12:00:00Z",
        "2025-12-30T23:59:59.999Z",
        "bad",
    ];
    /// Bounds of date tests: mostly dates near those in VALUES.
    const DATES: [&str; 6] = [
        "2025-12-31",
        "2025-12-31T12:00:00Z",
        "2025-12-30T23:59:59.999Z",
        "2025-12-30",
        "2026-01-01T00:00:00Z",
        "bad",
    ];
    // Overlaps VALUES so the DeviceType attribute meets Demographic.DeviceType.
    const SET_VALUES: [&str; 6] = ["email", "EMAIL", "sms", "x", "X", "us"];
    const COORDS: [f64; 5] = [0.0, 0.5, 1.0, -1.0, 10.0];
    const METRIC_VALUES: [f64; 8] = [
        0.0,
        1.0,
        2.5,
        -1.0,
        f64::NAN,
        1e300,
        0.1,
        1.0 + f64::EPSILON,
    ];

    fn pick<T: Clone + std::fmt::Debug + 'static>(xs: &'static [T]) -> impl Strategy<Value = T> {
        prop::sample::select(xs)
    }

    fn opt_str(xs: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
        prop::option::of(pick(xs).prop_map(str::to_string))
    }

    fn attr_map(names: &'static [&'static str]) -> impl Strategy<Value = Option<AttributeMap>> {
        prop::option::weighted(
            0.9,
            prop::collection::btree_map(
                pick(names).prop_map(str::to_string),
                prop::collection::vec(pick(&VALUES).prop_map(str::to_string), 0..4),
                1..4,
            ),
        )
    }

    fn date_string() -> impl Strategy<Value = String> {
        prop_oneof![
            (-40i64 * 24..=2).prop_map(|h| format_iso8601_ms(NOW + h * HOUR_MS)),
            // The edges of every window, and a millisecond beyond.
            (
                pick(&[HOUR_MS * 24, DAY_MS * 7, DAY_MS * 14, DAY_MS * 30]),
                0i64..2
            )
                .prop_map(|(w, d)| format_iso8601_ms(NOW - w - d)),
            Just("not a date".to_string()),
        ]
    }

    prop_compose! {
        fn endpoint(id_pool: usize)(
            id in 0..id_pool,
            attributes in attr_map(&ATTR_NAMES),
            user in prop::option::weighted(0.8, attr_map(&USER_NAMES)),
            channel_type in opt_str(&SET_VALUES),
            demo in prop::option::weighted(0.9, (opt_str(&SET_VALUES), opt_str(&SET_VALUES), opt_str(&SET_VALUES), opt_str(&SET_VALUES))),
            location in prop::option::weighted(0.7, (opt_str(&SET_VALUES), prop::option::weighted(0.8, pick(&COORDS)), prop::option::weighted(0.8, pick(&COORDS)))),
            metrics in prop::option::weighted(0.85, prop::collection::btree_map(pick(&["m", "n"]).prop_map(str::to_string), pick(&METRIC_VALUES), 1..3)),
            effective_date in prop::option::weighted(0.85, date_string()),
        ) -> EndpointResponse {
            EndpointResponse {
                id: Some(format!("ep{id}")),
                attributes,
                user: user.map(|user_attributes| EndpointUser { user_attributes, user_id: None }),
                channel_type,
                demographic: demo.map(|(app_version, make, model, platform)| EndpointDemographic {
                    app_version, make, model, platform, ..Default::default()
                }),
                location: location.map(|(country, latitude, longitude)| EndpointLocation {
                    country, latitude, longitude, ..Default::default()
                }),
                metrics,
                effective_date,
                ..Default::default()
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(usize, Box<EndpointResponse>),
        Remove(usize, usize),
        RemoveApp(usize),
    }

    const ID_POOL: usize = 24;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            60 => (0..APPS.len(), endpoint(ID_POOL)).prop_map(|(a, e)| Op::Upsert(a, Box::new(e))),
            15 => (0..APPS.len(), 0..ID_POOL).prop_map(|(a, i)| Op::Remove(a, i)),
            1 => (0..APPS.len()).prop_map(Op::RemoveApp),
        ]
    }

    fn attr_dim() -> impl Strategy<Value = AttributeDimension> {
        let strings = |xs: &'static [&'static str], n: std::ops::Range<usize>| {
            prop::collection::vec(pick(xs).prop_map(str::to_string), n)
        };
        prop_oneof![
            (
                opt_str(&["INCLUSIVE", "EXCLUSIVE", "CONTAINS", "ODD"]),
                strings(&VALUES, 0..4),
            ),
            (
                prop::option::weighted(
                    0.9,
                    pick(&["BEFORE", "AFTER", "ON", "BETWEEN"]).prop_map(str::to_string),
                ),
                prop_oneof![4 => strings(&DATES, 1..3), 1 => strings(&VALUES, 0..4)],
            ),
        ]
        .prop_map(|(attribute_type, values)| AttributeDimension {
            attribute_type,
            values,
        })
    }

    fn set_dim() -> impl Strategy<Value = SetDimension> {
        (
            opt_str(&["INCLUSIVE", "EXCLUSIVE", "ODD"]),
            prop::collection::vec(pick(&SET_VALUES).prop_map(str::to_string), 0..3),
        )
            .prop_map(|(dimension_type, values)| SetDimension {
                dimension_type,
                values,
            })
    }

    fn attr_dims(
        names: &'static [&'static str],
    ) -> impl Strategy<Value = BTreeMap<String, AttributeDimension>> {
        prop_oneof![
            3 => prop::collection::btree_map(pick(names).prop_map(str::to_string), attr_dim(), 1..2),
            1 => prop::collection::btree_map(pick(names).prop_map(str::to_string), attr_dim(), 2..3),
        ]
    }

    /// Dimension kinds a query may test; `segment_dims` keeps one or two of
    /// them (sometimes all), so most queries select some endpoints but not
    /// all, where disagreements show.
    const KINDS: usize = 7;

    prop_compose! {
        fn segment_dims()(
            keep in prop_oneof![
                3 => prop::collection::btree_set(0..KINDS, 1..2),
                1 => prop::collection::btree_set(0..KINDS, 2..3),
            ],
            keep_all in prop::bool::weighted(0.05),
            attributes in attr_dims(&["a", "b", "z", DEVICE_TYPE_ATTRIBUTE]),
            user_attributes in attr_dims(&["a", "u"]),
            demo_main in 0usize..6,
            demo_main_dim in set_dim(),
            demo in prop::collection::vec(prop::option::weighted(0.2, set_dim()), 6),
            country in set_dim(),
            gps in (
                prop::option::weighted(0.95, (prop::option::weighted(0.95, pick(&COORDS)), prop::option::weighted(0.95, pick(&COORDS)))),
                prop::option::of(pick(&[1.0, 55.0, 56.0, 100.0, 200.0, 1200.0, 20_000.0])),
            ),
            metrics in prop::collection::btree_map(
                pick(&["m", "m", "n", "n", "z"]).prop_map(str::to_string),
                (pick(&["GREATER_THAN", "LESS_THAN", "GREATER_THAN_OR_EQUAL", "LESS_THAN_OR_EQUAL", "EQUAL", "ODD"]),
                 pick(&METRIC_VALUES)),
                1..2,
            ),
            recency in prop::option::weighted(0.95, (
                prop::option::weighted(0.95, pick(&["HR_24", "DAY_7", "DAY_14", "DAY_30", "DAY_1"]).prop_map(str::to_string)),
                prop::option::weighted(0.95, pick(&["ACTIVE", "INACTIVE", "ODD"]).prop_map(str::to_string)),
            )),
        ) -> SegmentDimensions {
            let on = |k: usize| keep_all || keep.contains(&k);
            let mut demo = demo;
            demo[demo_main] = Some(demo_main_dim);
            let [app_version, channel, device_type, make, model, platform]: [Option<SetDimension>; 6] =
                demo.try_into().unwrap_or_default();
            let (c, range_in_kilometers) = gps;
            SegmentDimensions {
                attributes: on(0).then_some(attributes),
                user_attributes: on(1).then_some(user_attributes),
                demographic: on(2).then_some(SegmentDemographics {
                    app_version, channel, device_type, make, model, platform,
                }),
                location: (on(3) || on(4)).then(|| SegmentLocation {
                    country: on(3).then_some(country),
                    gps_point: on(4).then(|| GPSPointDimension {
                        coordinates: c.map(|(latitude, longitude)| GPSCoordinates { latitude, longitude }),
                        range_in_kilometers,
                    }),
                }),
                metrics: on(5).then(|| metrics.into_iter().map(|(k, (op, value))| (k, MetricDimension {
                    comparison_operator: op.to_string(), value,
                })).collect()),
                behavior: on(6).then(|| SegmentBehaviors {
                    recency: recency.map(|(duration, recency_type)| RecencyDimension { duration, recency_type }),
                }),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn evaluate_equals_brute_force(
            ops in prop::collection::vec(op(), 20..100),
            queries in prop::collection::vec(segment_dims(), 1..10),
        ) {
            let mut idx = SegmentIndex::new();
            let mut model: BTreeMap<(usize, String), EndpointResponse> = BTreeMap::new();
            for op in &ops {
                match op {
                    Op::Upsert(a, e) => {
                        idx.upsert(APPS[*a], e);
                        model.insert((*a, e.id.clone().unwrap_or_default()), (**e).clone());
                    }
                    Op::Remove(a, i) => {
                        let id = format!("ep{i}");
                        idx.remove(APPS[*a], &id);
                        model.remove(&(*a, id));
                    }
                    Op::RemoveApp(a) => {
                        idx.remove_app(APPS[*a]);
                        model.retain(|(app, _), _| app != a);
                    }
                }
            }
            idx.assert_consistent();
            prop_assert_eq!(idx.len(), model.len());
            prop_assert_eq!(idx.is_empty(), model.is_empty());
            // Ordinals are distinct and map back to their ids.
            let mut seen = BTreeSet::new();
            for (a, id) in model.keys() {
                let ord = idx.ordinal(APPS[*a], id);
                prop_assert!(ord.is_some(), "{} of {} has no ordinal", id, APPS[*a]);
                let ord = ord.unwrap_or_default();
                prop_assert!(seen.insert(ord), "ordinal {} given twice", ord);
                prop_assert_eq!(idx.endpoint_id(ord), Some(id.as_str()));
            }
            for i in 0..ID_POOL {
                for (a, app) in APPS.iter().enumerate() {
                    let id = format!("ep{i}");
                    if !model.contains_key(&(a, id.clone())) {
                        prop_assert_eq!(idx.ordinal(app, &id), None);
                    }
                }
            }
            let everything = SegmentDimensions::default();
            for d in queries.iter().chain([&everything]) {
                for (a, app) in APPS.iter().enumerate() {
                    let want: BTreeSet<u32> = model
                        .iter()
                        .filter(|((app, _), e)| *app == a && d.matches(&facts(e), NOW))
                        .filter_map(|((_, id), _)| idx.ordinal(APPS[a], id))
                        .collect();
                    let got: BTreeSet<u32> = idx.evaluate(app, d, NOW).iter().collect();
                    prop_assert_eq!(&got, &want, "app {} dims {:?}", app, d);
                    prop_assert_eq!(idx.count(app, d, NOW), want.len() as u64);
                }
            }
        }
    }
}

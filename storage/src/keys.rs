//! Key layout: the one place that decides how tables map to bytes.
//!
//! Every key in the `raft` and `state` column families starts with the Raft
//! group id (u32, big-endian) and a one-byte table tag, so a group's data is
//! one contiguous range (snapshots, app purges and shard moves are range
//! operations). Variable-length components are written with a u16 length
//! prefix, except the last component of a key. Integers are big-endian so
//! byte order is numeric order.

/// A Raft group: the meta group is 0, data shard `s` is group `s + 1`.
pub type GroupId = u32;

pub const META_GROUP: GroupId = 0;

pub fn shard_group(shard: u32) -> GroupId {
    shard + 1
}

/// Table tags. Never reuse or renumber a tag: they are on disk.
pub mod tag {
    // raft column family
    pub const LOG: u8 = 0x01;
    pub const VOTE: u8 = 0x02;
    pub const COMMITTED: u8 = 0x03;
    pub const LAST_PURGED: u8 = 0x04;
    pub const SNAPSHOT: u8 = 0x05;
    // state column family
    pub const SM_APPLIED: u8 = 0x10;
    pub const APP: u8 = 0x11;
    pub const ENDPOINT: u8 = 0x13;
    pub const USER_ENDPOINT: u8 = 0x14;
    pub const EVENT: u8 = 0x15;
    pub const EVENT_TYPE: u8 = 0x16;
    pub const OPEN_SESSION: u8 = 0x17;
    pub const CLOSED_SESSION: u8 = 0x18;
    pub const ADDRESS: u8 = 0x19;
    pub const PENDING_CLAIM: u8 = 0x1a;
    pub const SEND_LEDGER: u8 = 0x1b;
    pub const TEMPLATE: u8 = 0x1c;
    pub const TEMPLATE_VERSION: u8 = 0x1d;
    pub const OPEN_SEND: u8 = 0x1e;
    pub const SEND_EXPIRY: u8 = 0x1f;
    pub const DEF_HEAD: u8 = 0x21;
    pub const DEF_VERSION: u8 = 0x22;
    pub const ACTIVITY: u8 = 0x23;
    pub const CAMPAIGN_CHARGE: u8 = 0x24;
    pub const JOB: u8 = 0x25;
    pub const SEGMENT_MEMBER: u8 = 0x26;
    /// Node ids removed from a group, never to be added again (any group).
    pub const RETIRED_NODE: u8 = 0x27;
    pub const OTP: u8 = 0x28;
    pub const SMS_OPT_OUT: u8 = 0x29;
    // analytics rollups (see `crate::analytics`)
    pub const AN_ORD: u8 = 0x2a;
    pub const AN_ORD_REV: u8 = 0x2b;
    pub const AN_ORD_NEXT: u8 = 0x2c;
    pub const AN_ACTIVE: u8 = 0x2d;
    pub const AN_NEW: u8 = 0x2e;
    pub const AN_TYPE: u8 = 0x2f;
    pub const AN_SESSION: u8 = 0x30;
    pub const AN_FUNNEL: u8 = 0x31;
    pub const AN_DELIVERY: u8 = 0x32;
    pub const AN_FORGOTTEN: u8 = 0x33;
    /// `(endpoint, event key)` index of the event table.
    pub const EVENT_BY_ENDPOINT: u8 = 0x34;
    /// endpoint -> its last campaign touch (attribution).
    pub const AN_TOUCH: u8 = 0x35;
    // node column family (no group prefix)
    pub const NODE_CLUSTER: u8 = 0x20;
}

/// Per-app tables of a data shard; purged together when an app is deleted.
pub const APP_TABLES: [u8; 26] = [
    tag::ENDPOINT,
    tag::USER_ENDPOINT,
    tag::EVENT,
    tag::EVENT_TYPE,
    tag::OPEN_SESSION,
    tag::CLOSED_SESSION,
    tag::ADDRESS,
    tag::PENDING_CLAIM,
    tag::SEND_LEDGER,
    tag::OPEN_SEND,
    tag::CAMPAIGN_CHARGE,
    tag::SEGMENT_MEMBER,
    tag::OTP,
    tag::SMS_OPT_OUT,
    tag::AN_ORD,
    tag::AN_ORD_REV,
    tag::AN_ORD_NEXT,
    tag::AN_ACTIVE,
    tag::AN_NEW,
    tag::AN_TYPE,
    tag::AN_SESSION,
    tag::AN_FUNNEL,
    tag::AN_DELIVERY,
    tag::AN_FORGOTTEN,
    tag::EVENT_BY_ENDPOINT,
    tag::AN_TOUCH,
];

/// Per-app tables of the meta group (segments, campaigns and their
/// activities, import and export jobs); removed with the app.
pub const META_APP_TABLES: [u8; 4] = [tag::DEF_HEAD, tag::DEF_VERSION, tag::ACTIVITY, tag::JOB];

fn push_var(k: &mut Vec<u8>, s: &[u8]) {
    let len = u16::try_from(s.len()).expect("key component longer than 64 KiB");
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(s);
}

/// `[group][tag]`: the start of a table of one group.
pub fn table(group: GroupId, tag: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(32);
    k.extend_from_slice(&group.to_be_bytes());
    k.push(tag);
    k
}

/// Marks `node` as removed from `group` for good.
pub fn retired_node(group: GroupId, node: u64) -> Vec<u8> {
    let mut k = table(group, tag::RETIRED_NODE);
    k.extend_from_slice(&node.to_be_bytes());
    k
}

/// The exclusive end of every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// The whole key range `[start, end)` of one group.
pub fn group_range(group: GroupId) -> (Vec<u8>, Vec<u8>) {
    let start = group.to_be_bytes().to_vec();
    let end = prefix_end(&start);
    (start, end)
}

pub fn log(group: GroupId, index: u64) -> Vec<u8> {
    let mut k = table(group, tag::LOG);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub fn log_index(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[key.len() - 8..]);
    u64::from_be_bytes(b)
}

pub fn single(group: GroupId, tag: u8) -> Vec<u8> {
    table(group, tag)
}

/// `[group][tag][app]`: every row of one app in one table.
pub fn app_prefix(group: GroupId, tag: u8, app_id: &str) -> Vec<u8> {
    let mut k = table(group, tag);
    push_var(&mut k, app_id.as_bytes());
    k
}

pub fn app(app_id: &str) -> Vec<u8> {
    let mut k = table(META_GROUP, tag::APP);
    k.extend_from_slice(app_id.as_bytes());
    k
}

pub fn endpoint(group: GroupId, app_id: &str, endpoint_id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::ENDPOINT, app_id);
    k.extend_from_slice(endpoint_id.as_bytes());
    k
}

pub fn open_session(group: GroupId, app_id: &str, endpoint_id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::OPEN_SESSION, app_id);
    k.extend_from_slice(endpoint_id.as_bytes());
    k
}

pub fn user_prefix(group: GroupId, app_id: &str, user_id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::USER_ENDPOINT, app_id);
    push_var(&mut k, user_id.as_bytes());
    k
}

pub fn user_endpoint(group: GroupId, app_id: &str, user_id: &str, endpoint_id: &str) -> Vec<u8> {
    let mut k = user_prefix(group, app_id, user_id);
    k.extend_from_slice(endpoint_id.as_bytes());
    k
}

/// Events of an app ordered by time: `[..][ts_ms][log index][n]`.
pub fn event(group: GroupId, app_id: &str, ts_ms: i64, log_index: u64, n: u32) -> Vec<u8> {
    let mut k = app_prefix(group, tag::EVENT, app_id);
    // Shift so that negative timestamps still sort before positive ones.
    k.extend_from_slice(&((ts_ms as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&log_index.to_be_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// `[..][u16 len][endpoint][ts_ms][log index][n]`: one event of an
/// endpoint; the suffix after the endpoint is the event key's.
pub fn event_by_endpoint(
    group: GroupId,
    app_id: &str,
    endpoint_id: &str,
    ts_ms: i64,
    log_index: u64,
    n: u32,
) -> Vec<u8> {
    let mut k = event_by_endpoint_prefix(group, app_id, endpoint_id);
    k.extend_from_slice(&((ts_ms as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&log_index.to_be_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
}

pub fn event_by_endpoint_prefix(group: GroupId, app_id: &str, endpoint_id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::EVENT_BY_ENDPOINT, app_id);
    push_var(&mut k, endpoint_id.as_bytes());
    k
}

/// The event time of an event key (or an index key) ending in
/// `[ts_ms][log index][n]`.
pub fn event_time(key: &[u8]) -> i64 {
    let at = key.len() - 20;
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[at..at + 8]);
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

/// `[ts_ms][log index][n]` of an event key (the last 20 bytes).
pub fn event_suffix(key: &[u8]) -> &[u8] {
    &key[key.len() - 20..]
}

pub fn event_type(group: GroupId, app_id: &str, event_type: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::EVENT_TYPE, app_id);
    k.extend_from_slice(event_type.as_bytes());
    k
}

pub fn closed_session(group: GroupId, app_id: &str, end_ms: i64, endpoint_id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::CLOSED_SESSION, app_id);
    k.extend_from_slice(&((end_ms as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(endpoint_id.as_bytes());
    k
}

/// The holder of an address: `[..][u16 len][channel][address]`, kept in the
/// group that owns the address (see `address_shard_key`).
pub fn address(group: GroupId, app_id: &str, channel: &str, address: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::ADDRESS, app_id);
    push_var(&mut k, channel.as_bytes());
    k.extend_from_slice(address.as_bytes());
    k
}

/// An endpoint's address claim that is not yet known to be handed over.
pub fn pending_claim(group: GroupId, app_id: &str, endpoint_id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::PENDING_CLAIM, app_id);
    k.extend_from_slice(endpoint_id.as_bytes());
    k
}

/// The string hashed (with the app id) to place an address's holder row;
/// placement only needs it to be fixed forever.
pub fn address_shard_key(channel: &str, address: &str) -> String {
    format!("\u{1}address\u{0}{channel}\u{0}{address}")
}

/// A send-ledger row, kept in the group of its cause (see
/// `send_shard_key`).
pub fn send_ledger(group: GroupId, app_id: &str, message_id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::SEND_LEDGER, app_id);
    k.extend_from_slice(message_id.as_bytes());
    k
}

/// A ledger intent without an outcome yet (value: its intent time), so a
/// sweep finds unresolved sends without reading the whole ledger.
pub fn open_send(group: GroupId, app_id: &str, message_id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::OPEN_SEND, app_id);
    k.extend_from_slice(message_id.as_bytes());
    k
}

/// A ledger row in intent-time order, so the retention sweep finds the
/// oldest rows of a group without reading the ledger:
/// `[group][tag][intent_ms][app][message id]`. Not under an app prefix
/// (rows of deleted apps are dropped by the sweep like any other).
pub fn send_expiry(group: GroupId, intent_ms: i64, app_id: &str, message_id: &str) -> Vec<u8> {
    let mut k = table(group, tag::SEND_EXPIRY);
    k.extend_from_slice(&((intent_ms as u64) ^ (1 << 63)).to_be_bytes());
    push_var(&mut k, app_id.as_bytes());
    k.extend_from_slice(message_id.as_bytes());
    k
}

/// Parses a [`send_expiry`] key: (intent_ms, app, message id).
pub fn split_send_expiry(key: &[u8]) -> Option<(i64, String, String)> {
    let p = std::mem::size_of::<GroupId>() + 1;
    let at = key.get(p..p + 8)?;
    let intent_ms = (u64::from_be_bytes(at.try_into().ok()?) ^ (1 << 63)) as i64;
    key.get(p + 8..p + 10)?;
    let (app, id) = split_app_key(key, p + 8);
    Some((intent_ms, app, id))
}

/// The string hashed (with the app id) to place the ledger rows of one
/// direct-send request; fixed forever.
pub fn send_shard_key(request_key: &str) -> String {
    format!("\u{2}send\u{0}{request_key}")
}

/// A template's head in the meta group: `[0][tag][u16 kind][name]`.
pub fn template(kind: &str, name: &str) -> Vec<u8> {
    let mut k = table(META_GROUP, tag::TEMPLATE);
    push_var(&mut k, kind.as_bytes());
    k.extend_from_slice(name.as_bytes());
    k
}

/// `[0][tag][u16 kind][u16 name]`: every version of one template.
pub fn template_versions(kind: &str, name: &str) -> Vec<u8> {
    let mut k = table(META_GROUP, tag::TEMPLATE_VERSION);
    push_var(&mut k, kind.as_bytes());
    push_var(&mut k, name.as_bytes());
    k
}

pub fn template_version(kind: &str, name: &str, version: u32) -> Vec<u8> {
    let mut k = template_versions(kind, name);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// A segment's or campaign's head in the meta group:
/// `[0][tag][u16 app][kind][id]`.
pub fn def_head(app_id: &str, kind: u8, id: &str) -> Vec<u8> {
    let mut k = def_heads(app_id, kind);
    k.extend_from_slice(id.as_bytes());
    k
}

/// `[0][tag][u16 app][kind]`: every head of one kind of one app.
pub fn def_heads(app_id: &str, kind: u8) -> Vec<u8> {
    let mut k = app_prefix(META_GROUP, tag::DEF_HEAD, app_id);
    k.push(kind);
    k
}

/// `[0][tag][u16 app][kind][u16 id]`: every version of one definition.
pub fn def_versions(app_id: &str, kind: u8, id: &str) -> Vec<u8> {
    let mut k = app_prefix(META_GROUP, tag::DEF_VERSION, app_id);
    k.push(kind);
    push_var(&mut k, id.as_bytes());
    k
}

pub fn def_version(app_id: &str, kind: u8, id: &str, version: u32) -> Vec<u8> {
    let mut k = def_versions(app_id, kind, id);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// `[0][tag][u16 app][u16 campaign]`: every activity of one campaign.
pub fn activities(app_id: &str, campaign_id: &str) -> Vec<u8> {
    let mut k = app_prefix(META_GROUP, tag::ACTIVITY, app_id);
    push_var(&mut k, campaign_id.as_bytes());
    k
}

/// One activity (run × treatment) of a campaign, in run order.
pub fn activity(app_id: &str, campaign_id: &str, run: u32, treatment: u32) -> Vec<u8> {
    let mut k = activities(app_id, campaign_id);
    k.extend_from_slice(&run.to_be_bytes());
    k.extend_from_slice(&treatment.to_be_bytes());
    k
}

/// What a campaign has sent one endpoint (limits):
/// `[group][tag][u16 app][u16 endpoint][campaign]`.
pub fn campaign_charge(
    group: GroupId,
    app_id: &str,
    endpoint_id: &str,
    campaign_id: &str,
) -> Vec<u8> {
    let mut k = app_prefix(group, tag::CAMPAIGN_CHARGE, app_id);
    push_var(&mut k, endpoint_id.as_bytes());
    k.extend_from_slice(campaign_id.as_bytes());
    k
}

/// A one-time password awaiting verification:
/// `[group][tag][u16 app][u16 destination][reference id]`.
pub fn otp(group: GroupId, app_id: &str, destination: &str, reference_id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::OTP, app_id);
    push_var(&mut k, destination.as_bytes());
    k.extend_from_slice(reference_id.as_bytes());
    k
}

/// A number that answered STOP: `[group][tag][u16 app][number]`, kept in
/// the group of the number's address row (`address_shard_key("SMS", n)`).
pub fn sms_opt_out(group: GroupId, app_id: &str, number: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::SMS_OPT_OUT, app_id);
    k.extend_from_slice(number.as_bytes());
    k
}

/// A UTC hour (hours since the epoch) as 4 bytes in numeric order.
fn push_hour(k: &mut Vec<u8>, hour: i32) {
    k.extend_from_slice(&((hour as u32) ^ (1 << 31)).to_be_bytes());
}

/// The hour [`push_hour`] wrote at `at`.
pub fn hour_at(key: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&key[at..at + 4]);
    (u32::from_be_bytes(b) ^ (1 << 31)) as i32
}

/// `[..][kind]` -> bitmap of ordinals whose person or endpoint was deleted.
pub fn an_forgotten(group: GroupId, app_id: &str, kind: u8) -> Vec<u8> {
    let mut k = app_prefix(group, tag::AN_FORGOTTEN, app_id);
    k.push(kind);
    k
}

/// `[..][endpoint]` -> the last campaign message that reached it.
pub fn an_touch(group: GroupId, app_id: &str, endpoint_id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::AN_TOUCH, app_id);
    k.extend_from_slice(endpoint_id.as_bytes());
    k
}

/// `[..][kind][id]` -> the shard-local analytics ordinal of an endpoint
/// (kind 0) or a person (kind 1).
pub fn an_ord(group: GroupId, app_id: &str, kind: u8, id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::AN_ORD, app_id);
    k.push(kind);
    k.extend_from_slice(id.as_bytes());
    k
}

/// `[..][kind][ordinal]` -> the id holding an analytics ordinal.
pub fn an_ord_rev(group: GroupId, app_id: &str, kind: u8, ord: u32) -> Vec<u8> {
    let mut k = an_ord_rev_prefix(group, app_id, kind);
    k.extend_from_slice(&ord.to_be_bytes());
    k
}

pub fn an_ord_rev_prefix(group: GroupId, app_id: &str, kind: u8) -> Vec<u8> {
    let mut k = app_prefix(group, tag::AN_ORD_REV, app_id);
    k.push(kind);
    k
}

/// The next free analytics ordinal of a kind.
pub fn an_ord_next(group: GroupId, app_id: &str, kind: u8) -> Vec<u8> {
    let mut k = app_prefix(group, tag::AN_ORD_NEXT, app_id);
    k.push(kind);
    k
}

/// `[..][kind][hour]` of the active (`tag::AN_ACTIVE`) or first-seen
/// (`tag::AN_NEW`) bitmaps.
pub fn an_hour_set(group: GroupId, tag: u8, app_id: &str, kind: u8, hour: i32) -> Vec<u8> {
    let mut k = an_hour_set_prefix(group, tag, app_id, kind);
    push_hour(&mut k, hour);
    k
}

pub fn an_hour_set_prefix(group: GroupId, tag: u8, app_id: &str, kind: u8) -> Vec<u8> {
    let mut k = app_prefix(group, tag, app_id);
    k.push(kind);
    k
}

/// `[..][hour][event type]` -> the type's rollup in that hour.
pub fn an_type(group: GroupId, app_id: &str, hour: i32, event_type: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::AN_TYPE, app_id);
    push_hour(&mut k, hour);
    k.extend_from_slice(event_type.as_bytes());
    k
}

/// `[..][hour]` -> closed sessions that started in that hour.
pub fn an_session(group: GroupId, app_id: &str, hour: i32) -> Vec<u8> {
    let mut k = app_prefix(group, tag::AN_SESSION, app_id);
    push_hour(&mut k, hour);
    k
}

/// `[..][u16 len][event type][UTC day][chunk]` -> `(person ordinal,
/// time)` pairs; a day's pairs are appended to its last chunk until that
/// holds `analytics::FUNNEL_CHUNK_BYTES`, then a new chunk starts.
pub fn an_funnel(group: GroupId, app_id: &str, event_type: &str, day: i32, chunk: u32) -> Vec<u8> {
    let mut k = an_funnel_day(group, app_id, event_type, day);
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

/// The start of a UTC day's funnel rows of one event type (days since the
/// epoch, written like hours).
pub fn an_funnel_day(group: GroupId, app_id: &str, event_type: &str, day: i32) -> Vec<u8> {
    let mut k = an_funnel_prefix(group, app_id, event_type);
    push_hour(&mut k, day);
    k
}

pub fn an_funnel_prefix(group: GroupId, app_id: &str, event_type: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::AN_FUNNEL, app_id);
    push_var(&mut k, event_type.as_bytes());
    k
}

/// `[..][u16 len][campaign][u16 len][activity][u16 len][event type][hour]`
/// -> delivery events of that kind: count and endpoint ordinals (campaign
/// and activity empty for direct sends).
pub fn an_delivery(
    group: GroupId,
    app_id: &str,
    campaign: &str,
    activity: &str,
    event_type: &str,
    hour: i32,
) -> Vec<u8> {
    let mut k = app_prefix(group, tag::AN_DELIVERY, app_id);
    push_var(&mut k, campaign.as_bytes());
    push_var(&mut k, activity.as_bytes());
    push_var(&mut k, event_type.as_bytes());
    push_hour(&mut k, hour);
    k
}

/// Splits an `an_delivery` key after `prefix_len` bytes into (campaign,
/// activity, event type, hour).
pub fn split_delivery(key: &[u8], prefix_len: usize) -> Option<(String, String, String, i32)> {
    let mut at = prefix_len;
    let mut parts = Vec::with_capacity(3);
    for _ in 0..3 {
        let len = usize::from(u16::from_be_bytes(key.get(at..at + 2)?.try_into().ok()?));
        at += 2;
        parts.push(String::from_utf8_lossy(key.get(at..at + len)?).into_owned());
        at += len;
    }
    if key.len() != at + 4 {
        return None;
    }
    let hour = hour_at(key, at);
    let et = parts.pop()?;
    let activity = parts.pop()?;
    let campaign = parts.pop()?;
    Some((campaign, activity, et, hour))
}

/// The string hashed (with the app id) to place an OTP record.
pub fn otp_shard_key(destination: &str, reference_id: &str) -> String {
    format!("\u{1}otp\u{0}{destination}\u{0}{reference_id}")
}

/// An import or export job in the meta group: `[0][tag][u16 app][job id]`.
pub fn job(app_id: &str, job_id: &str) -> Vec<u8> {
    let mut k = app_prefix(META_GROUP, tag::JOB, app_id);
    k.extend_from_slice(job_id.as_bytes());
    k
}

/// `[group][tag][u16 app][u16 segment]`: the imported members of one
/// segment held by one data group.
pub fn segment_members(group: GroupId, app_id: &str, segment_id: &str) -> Vec<u8> {
    let mut k = app_prefix(group, tag::SEGMENT_MEMBER, app_id);
    push_var(&mut k, segment_id.as_bytes());
    k
}

/// An endpoint imported into a segment, kept in the endpoint's own group:
/// `[group][tag][u16 app][u16 segment][endpoint]`.
pub fn segment_member(
    group: GroupId,
    app_id: &str,
    segment_id: &str,
    endpoint_id: &str,
) -> Vec<u8> {
    let mut k = segment_members(group, app_id, segment_id);
    k.extend_from_slice(endpoint_id.as_bytes());
    k
}

pub fn node_cluster() -> Vec<u8> {
    vec![tag::NODE_CLUSTER]
}

/// Splits `[group][tag][u16 len][app][tail]` into (app, tail), where
/// `table_prefix_len` is the length of `[group][tag]`.
pub fn split_app_key(key: &[u8], table_prefix_len: usize) -> (String, String) {
    let len = u16::from_be_bytes([key[table_prefix_len], key[table_prefix_len + 1]]) as usize;
    let app_start = table_prefix_len + 2;
    let app = String::from_utf8_lossy(&key[app_start..app_start + len]).into_owned();
    let tail = String::from_utf8_lossy(&key[app_start + len..]).into_owned();
    (app, tail)
}

/// The last component of a key that ends with a string.
pub fn tail_str(key: &[u8], prefix_len: usize) -> String {
    String::from_utf8_lossy(&key[prefix_len..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_disjoint_contiguous_ranges() {
        let (s, e) = group_range(7);
        assert!(log(7, 0) >= s && log(7, u64::MAX) < e);
        assert!(endpoint(7, "app", "zzz") < e);
        assert!(log(8, 0) >= e);
        assert!(endpoint(6, "app", "zzz") < s);
    }

    #[test]
    fn log_keys_sort_numerically() {
        assert!(log(1, 255) < log(1, 256));
        assert_eq!(log_index(&log(3, 123_456)), 123_456);
    }

    #[test]
    fn send_expiry_keys_sort_by_time_and_parse_back() {
        let a = send_expiry(3, 1_000, "app-z", "m1");
        let b = send_expiry(3, 2_000, "app-a", "m0");
        assert!(a < b);
        assert_eq!(
            split_send_expiry(&b),
            Some((2_000, "app-a".to_owned(), "m0".to_owned()))
        );
        assert!(a.starts_with(&table(3, tag::SEND_EXPIRY)));
    }

    #[test]
    fn app_prefix_does_not_match_longer_app_ids() {
        let p = app_prefix(1, tag::ENDPOINT, "ab");
        assert!(!endpoint(1, "abc", "x").starts_with(&p));
        assert!(endpoint(1, "ab", "cx").starts_with(&p));
    }

    #[test]
    fn event_keys_sort_by_time_including_negative() {
        assert!(event(1, "a", -5, 9, 0) < event(1, "a", 3, 1, 0));
        assert!(event(1, "a", 3, 1, 0) < event(1, "a", 3, 1, 1));
    }

    #[test]
    fn app_keys_split_back_into_their_parts() {
        let k = open_session(4, "my-app", "ep/1");
        assert_eq!(
            split_app_key(&k, table(4, tag::OPEN_SESSION).len()),
            ("my-app".into(), "ep/1".into())
        );
    }

    #[test]
    fn segment_member_keys_do_not_match_longer_segment_ids() {
        let p = segment_members(2, "app", "seg");
        assert!(segment_member(2, "app", "seg", "ep").starts_with(&p));
        assert!(!segment_member(2, "app", "segx", "ep").starts_with(&p));
        assert!(p.starts_with(&app_prefix(2, tag::SEGMENT_MEMBER, "app")));
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(&[1, 2]), vec![1, 3]);
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
    }
}

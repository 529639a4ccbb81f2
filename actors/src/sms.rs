//! The SMS channel: its API (`/v1/apps/{app}/channels/sms`), the node's
//! origination numbers and their keyword answers, the book that matches
//! delivery receipts to the messages they report on, and what herald does
//! with what the SMSC delivers (`serve_inbound`):
//!
//! - a receipt settles its message: `_SMS.SUCCESS` once every part is
//!   delivered, `_SMS.FAILURE` at the first part that is not, recorded on
//!   the endpoint the message went to;
//! - a mobile-originated message is recorded as `_SMS.RECEIVED` on the
//!   endpoint holding the sender's number in each app with an SMS channel;
//!   STOP (and its synonyms) opts those endpoints out of everything
//!   (`_SMS.OPTOUT`) and puts the number on each such app's SMS opt-out
//!   list (direct sends to it answer OPT_OUT), START undoes both, and STOP,
//!   START, HELP and the number's own keywords are answered from that
//!   number.
//!
//! The receipt book lives in the memory of the node that submitted the
//! message (bounded in entries and age): a receipt delivered to another
//! node's session, or after a restart, is counted as unmatched and dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use herald_channels::smpp::{Inbound, OutgoingSms};
use herald_channels::transport::SmsTransport;
use herald_model::channel::{sms_channel_check, SmsChannelRequest, SmsChannelResponse};
use herald_model::sms::{self, Keyword};
use herald_model::time;
use herald_model::wire::{EndpointRequest, Event};
use herald_storage::{keys, CmdResult, Command, EventsItem, KvEngine, META_GROUP};
use tokio::sync::mpsc;

use crate::service::{Herald, Result, ServiceError};

/// One origination number of this node and its keyword answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsNumber {
    /// E.164.
    pub number: String,
    /// Answers to STOP, START and HELP (else `[sms]`'s).
    #[serde(default)]
    pub stop_reply: Option<String>,
    #[serde(default)]
    pub start_reply: Option<String>,
    #[serde(default)]
    pub help_reply: Option<String>,
    /// The number's own keywords and their auto-replies.
    #[serde(default)]
    pub keywords: BTreeMap<String, String>,
}

/// SMS settings the service needs (the SMSC itself is the node's).
#[derive(Debug, Clone)]
pub struct SmsConfig {
    /// Origination numbers; a send with no sender of its own leaves from
    /// the first.
    pub numbers: Vec<SmsNumber>,
    /// What the channel reports as its messages per second.
    pub messages_per_second: u32,
    pub stop_reply: String,
    pub start_reply: String,
    pub help_reply: String,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            numbers: Vec::new(),
            messages_per_second: 20,
            stop_reply: "You are unsubscribed and will receive no more messages. Reply START to subscribe again.".into(),
            start_reply: "You are subscribed again. Reply STOP to unsubscribe.".into(),
            help_reply: "Reply STOP to unsubscribe.".into(),
        }
    }
}

impl SmsConfig {
    pub fn number(&self, e164: &str) -> Option<&SmsNumber> {
        self.numbers.iter().find(|n| n.number == e164)
    }

    /// The answer to `keyword` sent to `number`.
    pub fn reply(&self, number: &str, keyword: &Keyword) -> Option<String> {
        let n = self.number(number);
        match keyword {
            Keyword::Stop => Some(
                n.and_then(|n| n.stop_reply.clone())
                    .unwrap_or_else(|| self.stop_reply.clone()),
            ),
            Keyword::Start => Some(
                n.and_then(|n| n.start_reply.clone())
                    .unwrap_or_else(|| self.start_reply.clone()),
            ),
            Keyword::Help => Some(
                n.and_then(|n| n.help_reply.clone())
                    .unwrap_or_else(|| self.help_reply.clone()),
            ),
            Keyword::Custom(k) => n.and_then(|n| {
                n.keywords
                    .iter()
                    .find(|(kw, _)| kw.to_uppercase() == *k)
                    .map(|(_, r)| r.clone())
            }),
            Keyword::None => None,
        }
    }

    /// Checks numbers (E.164, once each) and keywords (one word, not a
    /// standard one).
    pub fn check(&mut self) -> std::result::Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for n in &mut self.numbers {
            n.number = sms::e164(&n.number).map_err(|e| format!("sms numbers: {}", e.0))?;
            if !seen.insert(n.number.clone()) {
                return Err(format!("sms numbers: {} is listed twice", n.number));
            }
            for k in n.keywords.keys() {
                let up = k.to_uppercase();
                if k.is_empty() || k.split_whitespace().count() != 1 {
                    return Err(format!("sms keyword {k:?} of {}: one word", n.number));
                }
                if sms::keyword_of(&up, &[]) != Keyword::None {
                    return Err(format!(
                        "sms keyword {k:?} of {}: STOP, START and HELP words are herald's own",
                        n.number
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A message awaiting its receipts.
#[derive(Debug, Clone)]
struct Tracked {
    app_id: String,
    message_id: String,
    endpoint_id: Option<String>,
    destination: String,
    parts: usize,
    parts_left: usize,
    at_ms: i64,
    ids: Vec<String>,
}

/// How a receipt settled its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub app_id: String,
    pub message_id: String,
    pub endpoint_id: Option<String>,
    pub destination: String,
    pub parts: usize,
    pub delivered: bool,
}

#[derive(Default)]
struct Book {
    by_smsc_id: BTreeMap<String, u64>,
    messages: BTreeMap<u64, Tracked>,
    next: u64,
}

/// Messages submitted by this node, by the SMSC's ids of their parts, so
/// their receipts find them: at most `entries_max` messages, none older
/// than `ttl_ms` (the oldest go first).
pub struct ReceiptBook {
    book: Mutex<Book>,
    entries_max: usize,
    ttl_ms: i64,
}

impl ReceiptBook {
    pub fn new(entries_max: usize, ttl_ms: i64) -> Self {
        Self {
            book: Mutex::new(Book::default()),
            entries_max: entries_max.max(1),
            ttl_ms,
        }
    }

    pub fn len(&self) -> usize {
        self.book.lock().expect("receipt book").messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers a message the SMSC accepted as `ids`.
    pub fn record(&self, ids: &[String], sms: &OutgoingSms, endpoint_id: Option<&str>, at_ms: i64) {
        if ids.is_empty() {
            return;
        }
        let mut b = self.book.lock().expect("receipt book");
        while b.messages.len() >= self.entries_max
            || b.messages
                .first_key_value()
                .is_some_and(|(_, t)| at_ms - t.at_ms > self.ttl_ms)
        {
            let Some((_, old)) = b.messages.pop_first() else {
                break;
            };
            for id in &old.ids {
                b.by_smsc_id.remove(id);
            }
            metrics::counter!("herald_sms_receipts_expired_total").increment(1);
        }
        b.next += 1;
        let key = b.next;
        for id in ids {
            b.by_smsc_id.insert(id.clone(), key);
        }
        b.messages.insert(
            key,
            Tracked {
                app_id: sms.app_id.clone(),
                message_id: sms.message_id.clone(),
                endpoint_id: endpoint_id.map(str::to_owned),
                destination: sms.destination.clone(),
                parts: ids.len(),
                parts_left: ids.len(),
                at_ms,
                ids: ids.to_vec(),
            },
        );
    }

    /// Applies one part's receipt: the message once it is settled (every
    /// part delivered, or the first part that was not), `None` while parts
    /// are outstanding or when the id is unknown.
    pub fn receipt(&self, smsc_id: &str, delivered: bool) -> Option<Settled> {
        let mut b = self.book.lock().expect("receipt book");
        let key = b.by_smsc_id.remove(smsc_id)?;
        let t = b.messages.get_mut(&key)?;
        t.parts_left = t.parts_left.saturating_sub(1);
        if delivered && t.parts_left > 0 {
            return None;
        }
        let t = b.messages.remove(&key)?;
        for id in &t.ids {
            b.by_smsc_id.remove(id);
        }
        Some(Settled {
            app_id: t.app_id,
            message_id: t.message_id,
            endpoint_id: t.endpoint_id,
            destination: t.destination,
            parts: t.parts,
            delivered,
        })
    }

    /// Whether `smsc_id` is awaited.
    pub fn knows(&self, smsc_id: &str) -> bool {
        self.book
            .lock()
            .expect("receipt book")
            .by_smsc_id
            .contains_key(smsc_id)
    }
}

/// Replies sent at once at most; more are dropped (and counted).
const REPLIES_IN_FLIGHT_MAX: usize = 64;

fn no_sms_channel(app_id: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "the SMS channel of application {app_id} is not configured"
    ))
}

impl<E: KvEngine> Herald<E> {
    pub async fn sms_channel(&self, app_id: &str) -> Result<SmsChannelResponse> {
        self.app(app_id)
            .await?
            .sms_channel
            .ok_or_else(|| no_sms_channel(app_id))
    }

    pub async fn update_sms_channel(
        &self,
        app_id: &str,
        req: SmsChannelRequest,
    ) -> Result<SmsChannelResponse> {
        self.app(app_id).await?;
        sms_channel_check(&req)?;
        let cmd = Command::UpdateSmsChannel {
            app_id: app_id.to_owned(),
            request: req,
            messages_per_second: self.cfg.sms.messages_per_second,
            now_iso: self.now_iso(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::SmsChannel(Some(ch)) => {
                tracing::info!(app_id, version = ch.version, "SMS channel updated");
                Ok(*ch)
            }
            _ => Err(ServiceError::NotFound(format!(
                "application {app_id} not found"
            ))),
        }
    }

    pub async fn delete_sms_channel(&self, app_id: &str) -> Result<SmsChannelResponse> {
        self.app(app_id).await?;
        let cmd = Command::DeleteSmsChannel {
            app_id: app_id.to_owned(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::SmsChannel(Some(ch)) => Ok(*ch),
            _ => Err(no_sms_channel(app_id)),
        }
    }

    /// Records one event on an endpoint (idempotent by `event_id`).
    async fn record_sms_event(
        &self,
        app_id: &str,
        endpoint_id: &str,
        event_id: String,
        event_type: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<()> {
        let at = self.now_iso();
        let g = self.host.group_of(app_id, endpoint_id);
        let event = Event {
            event_type: Some(event_type.to_owned()),
            timestamp: Some(at.clone()),
            attributes: Some(attributes),
            ..Default::default()
        };
        let cmd = Command::PutEvents {
            app_id: app_id.to_owned(),
            now_iso: at,
            limits: self.apply_limits(),
            items: vec![EventsItem {
                endpoint_id: endpoint_id.to_owned(),
                endpoint: None,
                events: vec![(event_id, event.clone())],
            }],
        };
        match self.host.propose(g, cmd).await? {
            CmdResult::Rejected(why) => Err(ServiceError::Internal(format!(
                "{event_type} event refused: {why}"
            ))),
            _ => {
                if let Ok(Some(app)) = self.host.reader().app(app_id) {
                    self.stream_events(app_id, app.event_stream.as_ref(), [(endpoint_id, &event)]);
                }
                Ok(())
            }
        }
    }

    /// Records what a receipt settled.
    pub async fn sms_receipt(&self, s: &Settled, stat: &str, err: &str) -> Result<()> {
        let status = if s.delivered { "SUCCESS" } else { "FAILURE" };
        metrics::counter!("herald_sms_receipts_total", "status" => status).increment(1);
        let Some(endpoint_id) = &s.endpoint_id else {
            return Ok(());
        };
        let event_type = format!("_SMS.{status}");
        let mut a = BTreeMap::new();
        a.insert("message_id".to_owned(), s.message_id.clone());
        a.insert("destination_phone_number".to_owned(), s.destination.clone());
        a.insert("number_of_message_parts".to_owned(), s.parts.to_string());
        a.insert(
            "record_status".to_owned(),
            if s.delivered {
                "DELIVERED"
            } else {
                "UNREACHABLE"
            }
            .to_owned(),
        );
        a.insert("smsc_status".to_owned(), stat.to_owned());
        a.insert("smsc_error".to_owned(), err.to_owned());
        self.record_sms_event(
            &s.app_id,
            endpoint_id,
            format!("{}{event_type}", s.message_id),
            &event_type,
            a,
        )
        .await
    }

    /// Apps with an SMS channel, in id order.
    async fn sms_apps(&self) -> Result<Vec<String>> {
        self.host.read_barrier(META_GROUP).await?;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let apps = self.host.reader().apps(after.as_deref(), 500, false)?;
            let Some(last) = apps.last().map(|a| a.id.clone()) else {
                break;
            };
            out.extend(
                apps.into_iter()
                    .filter(|a| a.sms_channel.is_some())
                    .map(|a| a.id),
            );
            after = Some(last);
        }
        Ok(out)
    }

    /// Puts `phone` on (or takes it off) the opt-out list of every app with
    /// an SMS channel.
    async fn set_sms_opt_out(&self, phone: &str, opted_out: bool, at_ms: i64) -> Result<()> {
        for app_id in self.sms_apps().await? {
            let g = self
                .host
                .group_of(&app_id, &keys::address_shard_key("SMS", phone));
            let cmd = Command::SetSmsOptOut {
                app_id: app_id.clone(),
                number: phone.to_owned(),
                opted_out,
                at_ms,
            };
            if let CmdResult::Rejected(why) = self.host.propose(g, cmd).await? {
                return Err(ServiceError::Internal(format!(
                    "SMS opt-out refused: {why}"
                )));
            }
        }
        Ok(())
    }

    /// The numbers among `numbers` (E.164) on the app's SMS opt-out list.
    pub(crate) async fn sms_opted_out(
        &self,
        app_id: &str,
        numbers: impl IntoIterator<Item = String>,
    ) -> Result<std::collections::BTreeSet<String>> {
        let mut by_group: BTreeMap<herald_storage::GroupId, Vec<String>> = BTreeMap::new();
        for n in numbers {
            let g = self
                .host
                .group_of(app_id, &keys::address_shard_key("SMS", &n));
            by_group.entry(g).or_default().push(n);
        }
        let mut out = std::collections::BTreeSet::new();
        for (g, numbers) in by_group {
            self.host.read_barrier(g).await?;
            for n in numbers {
                if self.host.reader().sms_opted_out(g, app_id, &n)? {
                    out.insert(n);
                }
            }
        }
        Ok(out)
    }

    /// The endpoints of every app with an SMS channel that hold `phone`:
    /// `(app_id, endpoint_id)`.
    async fn sms_holders(&self, phone: &str) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for app_id in self.sms_apps().await? {
            let g = self
                .host
                .group_of(&app_id, &keys::address_shard_key("SMS", phone));
            self.host.read_barrier(g).await?;
            if let Some(c) = self
                .host
                .reader()
                .address_holder(g, &app_id, "SMS", phone)?
            {
                out.push((app_id, c.endpoint_id));
            }
        }
        Ok(out)
    }

    /// Handles a mobile-originated message; answers the reply to send, if
    /// any.
    pub async fn sms_mo(&self, from: &str, to: &str, text: &str) -> Result<Option<String>> {
        let custom: Vec<String> = self
            .cfg
            .sms
            .number(to)
            .map(|n| n.keywords.keys().cloned().collect())
            .unwrap_or_default();
        let keyword = sms::keyword_of(text, &custom);
        let holders = match sms::e164(from) {
            Ok(phone) => self.sms_holders(&phone).await?,
            Err(_) => Vec::new(),
        };
        let at_ms = self.clock.now_ms();
        let id = format!(
            "mo-{:016x}",
            herald_model::hash::xxh3(format!("{from}\0{to}\0{text}\0{at_ms}").as_bytes())
        );
        let keyword_name = match &keyword {
            Keyword::Stop => "STOP".to_owned(),
            Keyword::Start => "START".to_owned(),
            Keyword::Help => "HELP".to_owned(),
            Keyword::Custom(k) => k.clone(),
            Keyword::None => String::new(),
        };
        if let (Some(opted_out), Ok(phone)) = (
            match keyword {
                Keyword::Stop => Some(true),
                Keyword::Start => Some(false),
                _ => None,
            },
            sms::e164(from),
        ) {
            self.set_sms_opt_out(&phone, opted_out, at_ms).await?;
        }
        for (app_id, endpoint_id) in &holders {
            let mut a = BTreeMap::new();
            a.insert("origination_number".to_owned(), to.to_owned());
            a.insert("phone_number".to_owned(), from.to_owned());
            a.insert("message_body".to_owned(), text.to_owned());
            a.insert("keyword".to_owned(), keyword_name.clone());
            self.record_sms_event(
                app_id,
                endpoint_id,
                format!("{id}_SMS.RECEIVED"),
                "_SMS.RECEIVED",
                a.clone(),
            )
            .await?;
            let opt_out = match keyword {
                Keyword::Stop => Some("ALL"),
                Keyword::Start => Some("NONE"),
                _ => None,
            };
            if let Some(o) = opt_out {
                self.update_endpoint(
                    app_id,
                    endpoint_id,
                    EndpointRequest {
                        opt_out: Some(o.into()),
                        ..Default::default()
                    },
                    &id,
                )
                .await?;
                tracing::info!(
                    app_id,
                    endpoint_id,
                    opt_out = o,
                    number = to,
                    "SMS keyword changed an endpoint's OptOut"
                );
            }
            if keyword == Keyword::Stop {
                self.record_sms_event(
                    app_id,
                    endpoint_id,
                    format!("{id}_SMS.OPTOUT"),
                    "_SMS.OPTOUT",
                    a,
                )
                .await?;
            }
        }
        metrics::counter!("herald_sms_inbound_total", "keyword" => if keyword_name.is_empty() { "none".to_owned() } else if matches!(keyword, Keyword::Custom(_)) { "custom".to_owned() } else { keyword_name.to_lowercase() }).increment(1);
        Ok(self.cfg.sms.reply(to, &keyword))
    }
}

/// Receipts waiting for their message to be recorded, at most, and how
/// long each waits.
const EARLY_RECEIPTS_MAX: usize = 10_000;
const EARLY_RECEIPT_WAIT_MS: i64 = 10_000;

/// Applies one part's receipt to its message, recording the event when it
/// settles the message (retried a few times).
async fn settle_receipt<E: KvEngine>(
    herald: &Herald<E>,
    book: &ReceiptBook,
    smsc_id: &str,
    delivered: bool,
    stat: &str,
    err: &str,
) {
    let Some(settled) = book.receipt(smsc_id, delivered) else {
        return;
    };
    for attempt in 0..4u32 {
        match herald.sms_receipt(&settled, stat, err).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(message_id = %settled.message_id, error = %e, attempt, "recording an SMS receipt failed");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
        }
    }
}

/// Serves what the SMSC delivers until `rx` closes: receipts settle their
/// messages, MO messages go through `sms_mo`, and replies leave through
/// `gateway` from the number the message was sent to.
pub async fn serve_inbound<E: KvEngine>(
    herald: Arc<Herald<E>>,
    mut rx: mpsc::Receiver<Inbound>,
    book: Arc<ReceiptBook>,
    gateway: Arc<dyn SmsTransport>,
) {
    let replies = Arc::new(tokio::sync::Semaphore::new(REPLIES_IN_FLIGHT_MAX));
    let mut seq: u64 = 0;
    // Retries of a failed inbound step, at most this many times each.
    let retry = |attempt: u32| std::time::Duration::from_millis(200 << attempt.min(5));
    // Receipts that came before their submit's answer was recorded (the
    // SMSC may deliver one right behind the submit_sm_resp): looked up
    // again until their deadline.
    let mut early: std::collections::VecDeque<(i64, String, bool, String, String)> =
        std::collections::VecDeque::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        let item = tokio::select! {
            i = rx.recv() => match i {
                Some(i) => i,
                None => break,
            },
            _ = tick.tick(), if !early.is_empty() => {
                let now = herald.clock.now_ms();
                for (deadline, smsc_id, delivered, stat, err) in std::mem::take(&mut early) {
                    if book.knows(&smsc_id) {
                        settle_receipt(&herald, &book, &smsc_id, delivered, &stat, &err).await;
                    } else if now < deadline {
                        early.push_back((deadline, smsc_id, delivered, stat, err));
                    } else {
                        metrics::counter!("herald_sms_receipts_unmatched_total").increment(1);
                        tracing::debug!(smsc_id, "a receipt for no message this node awaits");
                    }
                }
                continue;
            }
        };
        match item {
            Inbound::Receipt {
                smsc_id,
                delivered,
                stat,
                err,
            } => {
                if book.knows(&smsc_id) {
                    settle_receipt(&herald, &book, &smsc_id, delivered, &stat, &err).await;
                } else {
                    if early.len() >= EARLY_RECEIPTS_MAX {
                        early.pop_front();
                        metrics::counter!("herald_sms_receipts_unmatched_total").increment(1);
                    }
                    let deadline = herald.clock.now_ms() + EARLY_RECEIPT_WAIT_MS;
                    early.push_back((deadline, smsc_id, delivered, stat, err));
                }
            }
            Inbound::Mo { from, to, text } => {
                let mut reply = None;
                for attempt in 0..4 {
                    match herald.sms_mo(&from, &to, &text).await {
                        Ok(r) => {
                            reply = r;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(from, to, error = %e, attempt, "handling an inbound SMS failed");
                            tokio::time::sleep(retry(attempt)).await;
                        }
                    }
                }
                let Some(reply) = reply else { continue };
                let Ok(parts) = sms::encode(&reply) else {
                    tracing::warn!(number = to, "a keyword reply does not fit in an SMS");
                    continue;
                };
                let Ok(permit) = replies.clone().try_acquire_owned() else {
                    metrics::counter!("herald_sms_replies_dropped_total").increment(1);
                    continue;
                };
                seq += 1;
                let out = OutgoingSms {
                    message_id: format!(
                        "reply-{}-{seq}",
                        time::format_iso8601_ms(herald.clock.now_ms())
                    ),
                    app_id: String::new(),
                    source: to.clone(),
                    destination: from.clone(),
                    parts,
                    reference: (seq & 0xFF) as u8,
                    receipt: false,
                };
                let gateway = gateway.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = gateway.send_sms(&out).await {
                        tracing::warn!(to = %out.destination, error = %e, "a keyword reply was not sent");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(id: &str) -> OutgoingSms {
        OutgoingSms {
            message_id: id.into(),
            app_id: "a".into(),
            source: "+12065550100".into(),
            destination: "+12065550111".into(),
            parts: sms::encode("hi").unwrap(),
            reference: 1,
            receipt: true,
        }
    }

    #[test]
    fn receipts_settle_a_message_once_every_part_is_in() {
        let book = ReceiptBook::new(10, 1_000);
        book.record(&["p1".into(), "p2".into()], &out("m"), Some("e"), 0);
        assert_eq!(book.receipt("p1", true), None);
        let s = book.receipt("p2", true).unwrap();
        assert!(s.delivered);
        assert_eq!((s.parts, s.endpoint_id.as_deref()), (2, Some("e")));
        assert!(book.is_empty());
        assert_eq!(book.receipt("p2", true), None);
    }

    #[test]
    fn the_first_failed_part_settles_a_message() {
        let book = ReceiptBook::new(10, 1_000);
        book.record(&["p1".into(), "p2".into()], &out("m"), None, 0);
        let s = book.receipt("p1", false).unwrap();
        assert!(!s.delivered);
        assert_eq!(book.receipt("p2", true), None, "settled already");
        assert!(!book.knows("p2"));
    }

    #[test]
    fn the_book_is_bounded_in_entries_and_age() {
        let book = ReceiptBook::new(2, 1_000);
        book.record(&["a".into()], &out("1"), None, 0);
        book.record(&["b".into()], &out("2"), None, 10);
        book.record(&["c".into()], &out("3"), None, 20);
        assert_eq!(book.len(), 2);
        assert!(!book.knows("a"));
        book.record(&["d".into()], &out("4"), None, 5_000);
        assert_eq!(book.len(), 1, "older than the ttl");
        assert!(book.knows("d"));
    }

    #[test]
    fn replies_come_from_the_number_or_the_defaults() {
        let mut cfg = SmsConfig {
            numbers: vec![SmsNumber {
                number: "+1 206 555 0100".into(),
                help_reply: Some("Call us".into()),
                keywords: [("deals".to_owned(), "10% off".to_owned())].into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        cfg.check().unwrap();
        let n = "+12065550100";
        assert_eq!(cfg.reply(n, &Keyword::Help).as_deref(), Some("Call us"));
        assert_eq!(cfg.reply(n, &Keyword::Stop), Some(cfg.stop_reply.clone()));
        assert_eq!(
            cfg.reply(n, &Keyword::Custom("DEALS".into())).as_deref(),
            Some("10% off")
        );
        assert_eq!(
            cfg.reply("+12065550199", &Keyword::Custom("DEALS".into())),
            None
        );
        assert_eq!(cfg.reply(n, &Keyword::None), None);
        let mut bad = SmsConfig {
            numbers: vec![SmsNumber {
                number: "+12065550100".into(),
                keywords: [("stop".to_owned(), "x".to_owned())].into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(bad.check().is_err());
    }
}

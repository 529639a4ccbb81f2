//! SMS over SMPP 3.4: herald as an ESME bound to one SMSC as a transceiver.
//!
//! One session task per client owns the TCP connection (rusmpp's codec
//! frames the PDUs; the session logic is ours): it binds, writes each
//! message's parts as `submit_sm` (a concatenated message carries a
//! 6-octet UDH per part, see `herald_model::sms`), keeps at most `window`
//! submits unanswered, answers `enquire_link`, `deliver_sm` and `unbind`,
//! sends its own `enquire_link` when the link is quiet, and reconnects with
//! capped exponential backoff. Receipts and mobile-originated messages go
//! to the `inbound` queue (bounded; when it is full the `deliver_sm` is
//! answered with a temporary error so the SMSC delivers it again).
//! A submit waits at most `submit_timeout` for a bound session; one that
//! was never written fails as temporary, one written but unanswered when
//! the link broke as unknown (it may have been delivered).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures::{SinkExt, StreamExt};
use herald_model::sms::{self, SmsEncoding, SmsParts};
use rusmpp::pdus::{BindTransceiver, DeliverSmResp, SubmitSm};
use rusmpp::tlvs::TlvValue;
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, InterfaceVersion, Npi, RegisteredDelivery, Ton};
use rusmpp::{Command, CommandStatus, Pdu};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;

use crate::smtp::SendError;

/// How the client reaches its SMSC.
#[derive(Debug, Clone)]
pub struct SmppSettings {
    /// `host:port` of the SMSC.
    pub addr: String,
    /// `system_id` and `password` of the bind (15 and 8 characters at most).
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    /// Submits written and not yet answered, at most.
    pub window: usize,
    /// A quiet link is probed with `enquire_link` this often.
    pub enquire_link_interval: Duration,
    /// Longest wait for any answer (bind, submit, enquire_link); a session
    /// that does not answer in time is closed and opened again.
    pub response_timeout: Duration,
    /// Longest wait of one submit for a bound session and its answer.
    pub submit_timeout: Duration,
    /// Backoff between reconnects: doubles from `reconnect_min` up to
    /// `reconnect_max`, back to the minimum after a successful bind.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Messages waiting for the session at most; more are refused at once.
    pub queue_max: usize,
}

impl Default for SmppSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:2775".into(),
            system_id: "herald".into(),
            password: String::new(),
            system_type: String::new(),
            window: 10,
            enquire_link_interval: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            submit_timeout: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
            queue_max: 10_000,
        }
    }
}

impl SmppSettings {
    /// Checks what the bind PDU can carry.
    pub fn check(&self) -> Result<(), String> {
        if self.system_id.is_empty() || self.system_id.len() > 15 {
            return Err("sms system_id: 1 to 15 characters".into());
        }
        if self.password.len() > 8 {
            return Err("sms password: at most 8 characters (SMPP 3.4)".into());
        }
        if self.system_type.len() > 12 {
            return Err("sms system_type: at most 12 characters".into());
        }
        if self.window == 0 || self.queue_max == 0 {
            return Err("sms window and queue_max must be at least 1".into());
        }
        Ok(())
    }
}

/// One SMS for the SMSC: its parts already encoded (`sms::encode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingSms {
    pub message_id: String,
    pub app_id: String,
    /// An E.164 number, a short code or an alphanumeric sender id.
    pub source: String,
    /// E.164.
    pub destination: String,
    pub parts: SmsParts,
    /// Shared by the parts of a concatenated message.
    pub reference: u8,
    /// Asks the SMSC for a delivery receipt.
    pub receipt: bool,
}

/// What the SMSC delivered to herald.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A delivery receipt of the part the SMSC accepted as `smsc_id`.
    Receipt {
        smsc_id: String,
        delivered: bool,
        stat: String,
        err: String,
    },
    /// A mobile-originated message (`from` in E.164 when it is a number).
    Mo {
        from: String,
        to: String,
        text: String,
    },
}

const QUEUED: u8 = 0;
const WRITTEN: u8 = 1;
const ABANDONED: u8 = 2;

type Reply = Result<Vec<String>, SendError>;

struct Request {
    pdus: Vec<SubmitSm>,
    state: Arc<AtomicU8>,
    reply: oneshot::Sender<Reply>,
}

/// Counters of the session, for tests, logs and metrics.
#[derive(Debug, Default)]
pub struct SmppStatus {
    bound: AtomicBool,
    binds: AtomicU64,
    max_unanswered: AtomicU64,
}

impl SmppStatus {
    pub fn bound(&self) -> bool {
        self.bound.load(Ordering::Relaxed)
    }
    /// Successful binds since start (1 + reconnects).
    pub fn binds(&self) -> u64 {
        self.binds.load(Ordering::Relaxed)
    }
    /// Most submits that were unanswered at once.
    pub fn max_unanswered(&self) -> u64 {
        self.max_unanswered.load(Ordering::Relaxed)
    }
}

/// A client of one SMSC. Dropping it (or `stop`) unbinds.
pub struct SmppClient {
    tx: mpsc::Sender<Request>,
    status: Arc<SmppStatus>,
    submit_timeout: Duration,
    stop: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SmppClient {
    /// Starts the session task (it binds in the background).
    pub fn start(settings: SmppSettings, inbound: mpsc::Sender<Inbound>) -> Result<Self, String> {
        settings.check()?;
        let (tx, rx) = mpsc::channel(settings.queue_max);
        let (stop, stop_rx) = watch::channel(false);
        let status = Arc::new(SmppStatus::default());
        let submit_timeout = settings.submit_timeout;
        let task = tokio::spawn(run(settings, rx, inbound, status.clone(), stop_rx));
        Ok(Self {
            tx,
            status,
            submit_timeout,
            stop,
            task: tokio::sync::Mutex::new(Some(task)),
        })
    }

    pub fn status(&self) -> &SmppStatus {
        &self.status
    }

    /// Submits every part of `sms`; answers the SMSC's message id of each.
    pub async fn submit(&self, sms: &OutgoingSms) -> Result<Vec<String>, SendError> {
        let pdus = submit_pdus(sms)?;
        let state = Arc::new(AtomicU8::new(QUEUED));
        let (reply, answer) = oneshot::channel();
        let req = Request {
            pdus,
            state: state.clone(),
            reply,
        };
        self.tx.try_send(req).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Temporary {
                code: Some(503),
                message: "the SMS queue of this node is full".into(),
            },
            mpsc::error::TrySendError::Closed(_) => SendError::Temporary {
                code: Some(503),
                message: "the SMPP client is stopped".into(),
            },
        })?;
        match tokio::time::timeout(self.submit_timeout, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(SendError::Unknown(
                "the SMPP session ended before it answered".into(),
            )),
            Err(_) => {
                if state
                    .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    Err(SendError::Temporary {
                        code: Some(503),
                        message: format!(
                            "no SMPP session to the SMSC within {} ms",
                            self.submit_timeout.as_millis()
                        ),
                    })
                } else {
                    Err(SendError::Unknown(format!(
                        "the SMSC did not answer within {} ms",
                        self.submit_timeout.as_millis()
                    )))
                }
            }
        }
    }

    /// Unbinds and ends the session task.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for SmppClient {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn invalid(what: &str, e: impl std::fmt::Display) -> SendError {
    SendError::Invalid(format!("{what}: {e}"))
}

/// The address and its TON/NPI: `+` numbers are international/ISDN,
/// digits alone a short code, anything else an alphanumeric sender.
fn address(a: &str) -> (Ton, Npi, &str) {
    if let Some(d) = a.strip_prefix('+') {
        (Ton::International, Npi::Isdn, d)
    } else if a.chars().all(|c| c.is_ascii_digit()) {
        (Ton::NetworkSpecific, Npi::Unknown, a)
    } else {
        (Ton::Alphanumeric, Npi::Unknown, a)
    }
}

/// The `submit_sm` of each part.
fn submit_pdus(sms: &OutgoingSms) -> Result<Vec<SubmitSm>, SendError> {
    let total = sms.parts.parts.len();
    if total == 0 || total > sms::PARTS_MAX {
        return Err(SendError::Invalid(format!(
            "an SMS of {total} parts (1 to {} allowed)",
            sms::PARTS_MAX
        )));
    }
    let (ston, snpi, saddr) = address(&sms.source);
    let (dton, dnpi, daddr) = address(&sms.destination);
    let source =
        COctetString::from_string(saddr.to_owned()).map_err(|e| invalid("source address", e))?;
    let dest = COctetString::from_string(daddr.to_owned())
        .map_err(|e| invalid("destination address", e))?;
    let mut out = Vec::with_capacity(total);
    for (i, payload) in sms.parts.parts.iter().enumerate() {
        let mut bytes = Vec::with_capacity(payload.len() + 6);
        let mut esm = EsmClass::default();
        if total > 1 {
            bytes.extend_from_slice(&sms::concat_udh(sms.reference, total as u8, (i + 1) as u8));
            esm = esm.with_udhi_indicator();
        }
        bytes.extend_from_slice(payload);
        let short = OctetString::from_vec(bytes).map_err(|e| invalid("short_message", e))?;
        out.push(
            SubmitSm::builder()
                .source_addr_ton(ston)
                .source_addr_npi(snpi)
                .source_addr(source.clone())
                .dest_addr_ton(dton)
                .dest_addr_npi(dnpi)
                .destination_addr(dest.clone())
                .esm_class(esm)
                .registered_delivery(RegisteredDelivery::from(u8::from(sms.receipt)))
                .data_coding(DataCoding::from(sms.parts.encoding.data_coding()))
                .short_message(short)
                .build(),
        );
    }
    Ok(out)
}

/// SMPP command statuses worth retrying: throttled, queue full, system
/// error, submit failed, temporary application error.
fn classify(status: u32, what: &str) -> SendError {
    let message = format!("the SMSC refused the {what} with status 0x{status:08X}");
    match status {
        0x58 => SendError::Throttled {
            code: 429,
            message,
            after_ms: 1_000,
        },
        0x08 | 0x14 | 0x45 | 0x64 => SendError::Temporary {
            code: Some(503),
            message,
        },
        _ => SendError::Permanent { code: 400, message },
    }
}

/// One message being submitted: each part's outcome as it comes.
struct Open {
    parts: Vec<Option<Result<String, SendError>>>,
    left: usize,
    reply: Option<oneshot::Sender<Reply>>,
}

impl Open {
    fn settle(&mut self, part: usize, r: Result<String, SendError>) -> bool {
        if self.parts[part].is_none() {
            self.parts[part] = Some(r);
            self.left -= 1;
        }
        if self.left > 0 {
            return false;
        }
        let parts: Vec<Result<String, SendError>> = self
            .parts
            .iter_mut()
            .map(|p| p.take().expect("settled"))
            .collect();
        let n = parts.len();
        let ok = parts.iter().filter(|p| p.is_ok()).count();
        let reply = if ok == n {
            Ok(parts.into_iter().map(|p| p.expect("ok")).collect())
        } else {
            let errors: Vec<SendError> = parts.into_iter().filter_map(|p| p.err()).collect();
            if ok > 0 {
                Err(SendError::Unknown(format!(
                    "{ok} of {n} parts accepted, then: {}",
                    errors[0]
                )))
            } else if let Some(u) = errors.iter().find(|e| matches!(e, SendError::Unknown(_))) {
                Err(u.clone())
            } else if let Some(p) = errors.iter().find(|e| !e.is_retryable()) {
                Err(p.clone())
            } else {
                Err(errors[0].clone())
            }
        };
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(reply);
        }
        true
    }
}

/// Why a session ended.
enum End {
    Stop,
    Broken(String),
}

struct Session {
    seq: u32,
    next_req: u64,
    open: BTreeMap<u64, Open>,
    /// seq → (request, part, written at).
    pending: BTreeMap<u32, (u64, usize, Instant)>,
    backlog: VecDeque<(u64, usize, SubmitSm)>,
}

impl Session {
    fn next_seq(&mut self) -> u32 {
        self.seq = if self.seq >= 0x7FFF_FFFF {
            1
        } else {
            self.seq + 1
        };
        self.seq
    }

    fn settle(&mut self, req: u64, part: usize, r: Result<String, SendError>) {
        if let Some(o) = self.open.get_mut(&req) {
            if o.settle(part, r) {
                self.open.remove(&req);
            }
        }
    }

    /// Fails whatever the broken session held: written parts as unknown,
    /// unwritten ones as temporary.
    fn fail_all(&mut self, why: &str) {
        let pending: Vec<_> = std::mem::take(&mut self.pending).into_iter().collect();
        for (_, (req, part, _)) in pending {
            self.settle(
                req,
                part,
                Err(SendError::Unknown(format!(
                    "the SMPP session ended before the SMSC answered: {why}"
                ))),
            );
        }
        let backlog: Vec<_> = self.backlog.drain(..).collect();
        for (req, part, _) in backlog {
            self.settle(
                req,
                part,
                Err(SendError::Temporary {
                    code: Some(503),
                    message: format!("the SMPP session ended: {why}"),
                }),
            );
        }
    }
}

type Link = Framed<TcpStream, CommandCodec>;

async fn run(
    settings: SmppSettings,
    mut rx: mpsc::Receiver<Request>,
    inbound: mpsc::Sender<Inbound>,
    status: Arc<SmppStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut s = Session {
        seq: 0,
        next_req: 0,
        open: BTreeMap::new(),
        pending: BTreeMap::new(),
        backlog: VecDeque::new(),
    };
    let mut backoff = settings.reconnect_min;
    loop {
        if *stop.borrow() {
            return;
        }
        let bound = tokio::select! {
            b = bind(&settings, &mut s) => b,
            _ = stop.changed() => return,
        };
        match bound {
            Ok(link) => {
                backoff = settings.reconnect_min;
                status.bound.store(true, Ordering::Relaxed);
                status.binds.fetch_add(1, Ordering::Relaxed);
                tracing::info!(smsc = %settings.addr, system_id = %settings.system_id, "SMPP session bound");
                let end = session(
                    &settings, link, &mut s, &mut rx, &inbound, &status, &mut stop,
                )
                .await;
                status.bound.store(false, Ordering::Relaxed);
                match end {
                    End::Stop => {
                        s.fail_all("the client stopped");
                        return;
                    }
                    End::Broken(why) => {
                        tracing::warn!(smsc = %settings.addr, error = %why, "SMPP session lost; reconnecting");
                        metrics::counter!("herald_smpp_session_lost_total").increment(1);
                        s.fail_all(&why);
                    }
                }
            }
            Err(why) => {
                tracing::warn!(smsc = %settings.addr, error = %why, retry_ms = backoff.as_millis() as u64, "SMPP bind failed");
                metrics::counter!("herald_smpp_bind_failures_total").increment(1);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(settings.reconnect_max);
    }
}

fn cstr<const MIN: usize, const MAX: usize>(
    v: &str,
    what: &str,
) -> Result<COctetString<MIN, MAX>, String> {
    COctetString::from_string(v.to_owned()).map_err(|e| format!("{what}: {e}"))
}

async fn bind(settings: &SmppSettings, s: &mut Session) -> Result<Link, String> {
    let t = settings.response_timeout;
    let tcp = tokio::time::timeout(t, TcpStream::connect(&settings.addr))
        .await
        .map_err(|_| format!("connecting to {} timed out", settings.addr))?
        .map_err(|e| format!("connecting to {}: {e}", settings.addr))?;
    let _ = tcp.set_nodelay(true);
    let mut link = Framed::new(tcp, CommandCodec::new());
    let seq = s.next_seq();
    let pdu = BindTransceiver::builder()
        .system_id(cstr(&settings.system_id, "system_id")?)
        .password(cstr(&settings.password, "password")?)
        .system_type(cstr(&settings.system_type, "system_type")?)
        .interface_version(InterfaceVersion::Smpp3_4)
        .addr_ton(Ton::Unknown)
        .addr_npi(Npi::Unknown)
        .address_range(COctetString::empty())
        .build();
    link.send(Command::new(CommandStatus::EsmeRok, seq, pdu))
        .await
        .map_err(|e| format!("writing bind_transceiver: {e}"))?;
    let answer = tokio::time::timeout(t, async {
        while let Some(frame) = link.next().await {
            let cmd = frame.map_err(|e| format!("reading bind_transceiver_resp: {e}"))?;
            if cmd.sequence_number() == seq {
                return Ok(cmd);
            }
        }
        Err("the SMSC closed the connection during the bind".to_owned())
    })
    .await
    .map_err(|_| "the SMSC did not answer bind_transceiver in time".to_owned())??;
    let st = u32::from(answer.status());
    if st != 0 {
        return Err(format!("the SMSC refused the bind with status 0x{st:08X}"));
    }
    Ok(link)
}

#[allow(clippy::too_many_arguments)]
async fn session(
    settings: &SmppSettings,
    mut link: Link,
    s: &mut Session,
    rx: &mut mpsc::Receiver<Request>,
    inbound: &mpsc::Sender<Inbound>,
    status: &SmppStatus,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let mut tick = tokio::time::interval(Duration::from_millis(200).min(settings.response_timeout));
    let mut last_heard = Instant::now();
    let mut enquiry: Option<(u32, Instant)> = None;
    loop {
        // Fill the window from the backlog.
        let mut wrote = false;
        while s.pending.len() < settings.window {
            let Some((req, part, pdu)) = s.backlog.pop_front() else {
                break;
            };
            let seq = s.next_seq();
            if let Err(e) = link
                .feed(Command::new(CommandStatus::EsmeRok, seq, pdu))
                .await
            {
                s.pending.insert(seq, (req, part, Instant::now()));
                return End::Broken(format!("writing submit_sm: {e}"));
            }
            s.pending.insert(seq, (req, part, Instant::now()));
            wrote = true;
        }
        if wrote {
            status
                .max_unanswered
                .fetch_max(s.pending.len() as u64, Ordering::Relaxed);
            if let Err(e) = SinkExt::<Command>::flush(&mut link).await {
                return End::Broken(format!("writing submit_sm: {e}"));
            }
        }
        let room = s.backlog.is_empty() && s.pending.len() < settings.window;
        tokio::select! {
            _ = stop.changed() => {
                let seq = s.next_seq();
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    link.send(Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind)),
                )
                .await;
                return End::Stop;
            }
            req = rx.recv(), if room => {
                let Some(req) = req else { return End::Stop };
                if req
                    .state
                    .compare_exchange(QUEUED, WRITTEN, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    continue; // its caller gave up before it was written
                }
                s.next_req += 1;
                let id = s.next_req;
                let n = req.pdus.len();
                s.open.insert(id, Open { parts: (0..n).map(|_| None).collect(), left: n, reply: Some(req.reply) });
                for (i, p) in req.pdus.into_iter().enumerate() {
                    s.backlog.push_back((id, i, p));
                }
            }
            frame = link.next() => {
                let cmd = match frame {
                    None => return End::Broken("the SMSC closed the connection".into()),
                    Some(Err(e)) => return End::Broken(format!("reading a PDU: {e}")),
                    Some(Ok(c)) => c,
                };
                last_heard = Instant::now();
                if let Some(end) = on_pdu(cmd, &mut link, s, inbound, &mut enquiry).await {
                    return end;
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if let Some(oldest) = s.pending.values().map(|p| p.2).min() {
                    if now.duration_since(oldest) > settings.response_timeout {
                        return End::Broken("a submit_sm was not answered in time".into());
                    }
                }
                match enquiry {
                    Some((_, at)) if now.duration_since(at) > settings.response_timeout => {
                        return End::Broken("enquire_link was not answered in time".into());
                    }
                    None if now.duration_since(last_heard) >= settings.enquire_link_interval => {
                        let seq = s.next_seq();
                        if let Err(e) = link.send(Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink)).await {
                            return End::Broken(format!("writing enquire_link: {e}"));
                        }
                        enquiry = Some((seq, now));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Handles one PDU from the SMSC; `Some` ends the session.
async fn on_pdu(
    cmd: Command,
    link: &mut Link,
    s: &mut Session,
    inbound: &mpsc::Sender<Inbound>,
    enquiry: &mut Option<(u32, Instant)>,
) -> Option<End> {
    let seq = cmd.sequence_number();
    let st = u32::from(cmd.status());
    let answer = |status: CommandStatus, pdu: Pdu| Command::new(status, seq, pdu);
    let write = |r: Result<(), rusmpp::tokio_codec::EncodeError>, what: &str| {
        r.err().map(|e| End::Broken(format!("writing {what}: {e}")))
    };
    match cmd.pdu() {
        Some(Pdu::SubmitSmResp(resp)) => {
            if let Some((req, part, _)) = s.pending.remove(&seq) {
                let r = if st == 0 {
                    Ok(resp.message_id().as_str().to_owned())
                } else {
                    Err(classify(st, "submit_sm"))
                };
                s.settle(req, part, r);
            }
            None
        }
        Some(Pdu::GenericNack) => {
            if let Some((req, part, _)) = s.pending.remove(&seq) {
                s.settle(req, part, Err(classify(st, "submit_sm (generic_nack)")));
            }
            None
        }
        Some(Pdu::EnquireLinkResp) => {
            if enquiry.is_some_and(|(q, _)| q == seq) {
                *enquiry = None;
            }
            None
        }
        Some(Pdu::EnquireLink) => write(
            link.send(answer(CommandStatus::EsmeRok, Pdu::EnquireLinkResp))
                .await,
            "enquire_link_resp",
        ),
        Some(Pdu::Unbind) => {
            let _ = link
                .send(answer(CommandStatus::EsmeRok, Pdu::UnbindResp))
                .await;
            Some(End::Broken("the SMSC unbound".into()))
        }
        Some(Pdu::DeliverSm(d)) => {
            let item = inbound_of(d);
            let status = match item {
                Some(item) => match inbound.try_send(item) {
                    Ok(()) => CommandStatus::EsmeRok,
                    Err(_) => {
                        metrics::counter!("herald_sms_inbound_deferred_total").increment(1);
                        // ESME_RX_T_APPN: the SMSC delivers it again later.
                        CommandStatus::from(0x64u32)
                    }
                },
                None => CommandStatus::EsmeRok,
            };
            write(
                link.send(answer(status, DeliverSmResp::builder().build().into()))
                    .await,
                "deliver_sm_resp",
            )
        }
        Some(Pdu::UnbindResp) | Some(Pdu::DeliverSmResp(_)) => None,
        _ => {
            // A request herald does not serve (data_sm, alert_notification,
            // ...): ESME_RINVCMDID. Responses are ignored.
            if u32::from(cmd.id()) & 0x8000_0000 == 0 {
                let nack = Command::new(CommandStatus::from(0x03u32), seq, Pdu::GenericNack);
                return write(link.send(nack).await, "generic_nack");
            }
            None
        }
    }
}

/// A receipt or an MO message from a `deliver_sm`.
fn inbound_of(d: &rusmpp::pdus::DeliverSm) -> Option<Inbound> {
    let esm = u8::from(d.esm_class);
    let mut payload: Vec<u8> = d.short_message().as_ref().to_vec();
    for tlv in d.tlvs() {
        if let Some(TlvValue::MessagePayload(p)) = tlv.value() {
            if payload.is_empty() {
                payload = p.value.as_ref().to_vec();
            }
        }
    }
    if esm & 0x3C == 0x04 {
        // A delivery receipt.
        let text = String::from_utf8_lossy(&payload).into_owned();
        let parsed = sms::parse_receipt(&text);
        let mut smsc_id = parsed.as_ref().map(|r| r.id.clone());
        let mut state = None;
        for tlv in d.tlvs() {
            match tlv.value() {
                Some(TlvValue::ReceiptedMessageId(id)) => smsc_id = Some(id.as_str().to_owned()),
                Some(TlvValue::MessageState(m)) => state = Some(u8::from(*m)),
                _ => {}
            }
        }
        let stat = parsed.as_ref().map(|r| r.stat.clone()).unwrap_or_default();
        let delivered = match state {
            Some(s) => s == 2,
            None => sms::receipt_delivered(&stat),
        };
        return smsc_id.map(|smsc_id| Inbound::Receipt {
            smsc_id,
            delivered,
            stat,
            err: parsed.map(|r| r.err).unwrap_or_default(),
        });
    }
    let body = if esm & 0x40 != 0 {
        sms::strip_udh(&payload)
    } else {
        &payload[..]
    };
    let text = match u8::from(d.data_coding) {
        0x00 => sms::decode(SmsEncoding::Gsm7, body),
        0x08 => sms::decode(SmsEncoding::Ucs2, body),
        0x01 | 0x03 => body.iter().map(|&b| b as char).collect(),
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let from = d.source_addr.as_str();
    let to = d.destination_addr.as_str();
    Some(Inbound::Mo {
        from: sms::e164_of_smsc(from).unwrap_or_else(|| from.to_owned()),
        to: sms::e164_of_smsc(to).unwrap_or_else(|| to.to_owned()),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sms(text: &str) -> OutgoingSms {
        OutgoingSms {
            message_id: "m".into(),
            app_id: "a".into(),
            source: "+12065550100".into(),
            destination: "+12065550111".into(),
            parts: sms::encode(text).unwrap(),
            reference: 9,
            receipt: true,
        }
    }

    #[test]
    fn parts_carry_the_concatenation_header() {
        let one = submit_pdus(&sms("hello")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].short_message().as_ref(),
            sms::encode("hello").unwrap().parts[0].as_slice()
        );
        assert_eq!(u8::from(one[0].esm_class) & 0x40, 0);
        let long = submit_pdus(&sms(&"x".repeat(200))).unwrap();
        assert_eq!(long.len(), 2);
        for (i, p) in long.iter().enumerate() {
            assert_eq!(
                &p.short_message().as_ref()[..6],
                &[5, 0, 3, 9, 2, i as u8 + 1]
            );
            assert_eq!(u8::from(p.esm_class) & 0x40, 0x40);
            assert_eq!(p.destination_addr.as_str(), "12065550111");
            assert_eq!(u8::from(p.dest_addr_ton), 1);
        }
    }

    #[test]
    fn statuses_are_classified() {
        assert!(matches!(classify(0x58, "x"), SendError::Throttled { .. }));
        assert!(classify(0x14, "x").is_retryable());
        assert!(!classify(0x0B, "x").is_retryable());
    }

    #[test]
    fn a_partly_accepted_message_is_unknown() {
        let (tx, mut rx) = oneshot::channel();
        let mut o = Open {
            parts: vec![None, None],
            left: 2,
            reply: Some(tx),
        };
        assert!(!o.settle(0, Ok("a".into())));
        assert!(o.settle(1, Err(classify(0x58, "x"))));
        assert!(matches!(rx.try_recv().unwrap(), Err(SendError::Unknown(_))));
    }
}

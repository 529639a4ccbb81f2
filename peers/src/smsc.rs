//! An SMPP 3.4 SMSC simulator on loopback, the peer of herald's SMS channel.
//!
//! Contract: clients bind (transmitter, receiver or transceiver; interface
//! version 0x34 or 0x50) with the configured system_id and password; other
//! requests before a bind get ESME_RINVBNDSTS. Every submit_sm is recorded
//! ([`Smsc::submits`]) and answered after `submit_resp_delay_ms`, concurrently
//! (so a client's window shows in [`Smsc::max_unanswered`]); an accepted one
//! asking for a receipt gets a deliver_sm receipt (esm_class 0x04, TLVs
//! receipted_message_id and message_state) after `receipt_delay_ms`: for
//! registered_delivery 1 always, 2 only UNDELIV, 3 only DELIVRD.
//! [`Smsc::send_mo`] delivers MO messages; unknown or undecodable PDUs get
//! generic_nack ESME_RINVCMDID and the session goes on; dropping the [`Smsc`]
//! stops it. Text is decoded with this module's own GSM 03.38 tables (one
//! septet per octet), independent of herald's encoder so one checks the other.
//!
//! Scripted outcomes, by the destination address's last digits:
//! - `…404`: submit_sm_resp ESME_RINVDSTADR (0x0B), no receipt;
//! - `…429`: the first 2 submits to that exact address get ESME_RTHROTTLED
//!   (0x58), later ones are accepted;
//! - `…503`: the first 2 get ESME_RSYSERR (0x08), later ones are accepted;
//! - `…000`: accepted, the receipt says `stat:UNDELIV err:001` (message_state 5);
//! - anything else: accepted, the receipt says `stat:DELIVRD err:000` (state 2).
//!
//! Also refused: text both in short_message and in message_payload
//! (ESME_RINVMSGLEN 0x01), a UDH that overruns the message (ESME_RINVESMCLASS
//! 0x43), submit_sm on a receiver session (ESME_RINVBNDSTS).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail};
use bytes::{Buf, BytesMut};
use futures::{SinkExt, StreamExt};
use rusmpp::decode::DecodeWithLength;
use rusmpp::pdus::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DeliverSm, SubmitSm, SubmitSmResp,
};
use rusmpp::tlvs::{MessageDeliveryRequestTlvValue, TlvTag, TlvValue};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{AnyOctetString, COctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, InterfaceVersion, MessagePayload, MessageState, Npi, RegisteredDelivery,
    Ton,
};
use rusmpp::{Command, CommandStatus, Pdu};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{Decoder, Encoder, Framed};

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SmscConfig {
    /// A bind must carry this system_id, else ESME_RBINDFAIL (0x0D).
    pub system_id: String,
    /// And this password, else ESME_RINVPASWD (0x0E).
    pub password: String,
    /// Delay before answering each submit_sm; 0 answers at once.
    pub submit_resp_delay_ms: u64,
    /// Delay between the submit_sm_resp and the delivery receipt.
    pub receipt_delay_ms: u64,
    /// 0: the SMSC never sends enquire_link; else it sends one to each bound
    /// session at this interval.
    pub enquire_link_interval_ms: u64,
}

impl Default for SmscConfig {
    fn default() -> Self {
        Self {
            system_id: "herald".into(),
            password: "secret".into(),
            submit_resp_delay_ms: 0,
            receipt_delay_ms: 50,
            enquire_link_interval_ms: 0,
        }
    }
}

/// One submit_sm as the SMSC saw and answered it.
#[derive(Debug, Clone, Serialize)]
pub struct Submit {
    /// The id in the submit_sm_resp ("" when refused).
    pub message_id: String,
    /// The status answered (0 = OK).
    pub command_status: u32,
    pub source_addr: String,
    pub source_addr_ton: u8,
    pub destination_addr: String,
    pub data_coding: u8,
    pub esm_class: u8,
    pub registered_delivery: u8,
    /// The concatenation IE of the UDH (esm_class 0x40), 8- or 16-bit reference.
    pub udh: Option<Concat>,
    /// The message after the UDH, as lowercase hex.
    pub payload_hex: String,
    /// The message decoded: data_coding 0 GSM 03.38 (one septet per octet),
    /// 8 UTF-16BE, 3 Latin-1, anything else lossy UTF-8.
    pub text: String,
    /// The message came in the message_payload TLV, not in short_message.
    pub tlv_message_payload: bool,
}

/// A concatenation information element (IEI 0x00 or 0x08).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Concat {
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
}

/// A mobile-originated message the SMSC delivered (deliver_sm_resp OK).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mo {
    pub from: String,
    pub to: String,
    pub text: String,
}

/// The running simulator; dropping it stops listening and drops its sessions.
pub struct Smsc {
    addr: SocketAddr,
    inner: Arc<Inner>,
    accept: tokio::task::AbortHandle,
}

const ESME_ROK: u32 = 0x00;
const ESME_RINVMSGLEN: u32 = 0x01;
const ESME_RINVCMDLEN: u32 = 0x02;
const ESME_RINVCMDID: u32 = 0x03;
const ESME_RINVBNDSTS: u32 = 0x04;
const ESME_RALYBND: u32 = 0x05;
const ESME_RSYSERR: u32 = 0x08;
const ESME_RINVDSTADR: u32 = 0x0B;
const ESME_RBINDFAIL: u32 = 0x0D;
const ESME_RINVPASWD: u32 = 0x0E;
const ESME_RINVESMCLASS: u32 = 0x43;
const ESME_RTHROTTLED: u32 = 0x58;

/// Largest PDU accepted (message_payload may carry up to 64 KiB).
const MAX_PDU: usize = 70_000;
/// How long [`Smsc::send_mo`] waits for the deliver_sm_resp.
const MO_TIMEOUT: Duration = Duration::from_secs(5);

struct Inner {
    cfg: SmscConfig,
    submits: Mutex<Vec<Submit>>,
    binds: AtomicU64,
    enquire_links: AtomicU64,
    max_unanswered: AtomicUsize,
    delivered_mo: Mutex<Vec<Mo>>,
    /// Submits seen per scripted (429/503) destination.
    tries: Mutex<BTreeMap<String, u32>>,
    /// Open connections, oldest first.
    sessions: Mutex<Vec<Arc<Session>>>,
    next_session: AtomicU64,
}

const UNBOUND: u8 = 0;
const TRANSMITTER: u8 = 1;
const RECEIVER: u8 = 2;
const TRANSCEIVER: u8 = 3;

struct Session {
    id: u64,
    /// PDUs to write; the session task is the only writer.
    out: mpsc::UnboundedSender<Command>,
    bound: AtomicU8,
    next_seq: AtomicU32,
    /// Requests the SMSC sent and waits an answer for: sequence → status.
    pending: Mutex<BTreeMap<u32, oneshot::Sender<u32>>>,
    unanswered: AtomicUsize,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Session {
    fn bound(&self) -> u8 {
        self.bound.load(Ordering::SeqCst)
    }

    /// Bound as receiver or transceiver and still connected.
    fn receives(&self) -> bool {
        matches!(self.bound(), RECEIVER | TRANSCEIVER) && !self.out.is_closed()
    }

    /// The next sequence number of a PDU the SMSC originates (1..=0x7FFFFFFF).
    fn seq(&self) -> u32 {
        self.next_seq.fetch_add(1, Ordering::SeqCst) % 0x7FFF_FFFF + 1
    }

    fn send(&self, cmd: Command) -> bool {
        self.out.send(cmd).is_ok()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn status(code: u32) -> CommandStatus {
    CommandStatus::from(code)
}

fn cstr<const MIN: usize, const MAX: usize>(s: &str) -> anyhow::Result<COctetString<MIN, MAX>> {
    COctetString::from_str(s).map_err(|e| anyhow!("{s:?}: {e}"))
}

impl Smsc {
    /// Listens on `listen` (127.0.0.1:0 picks a port) and serves on spawned tasks.
    pub async fn start(listen: SocketAddr, cfg: SmscConfig) -> anyhow::Result<Smsc> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            cfg,
            submits: Mutex::new(Vec::new()),
            binds: AtomicU64::new(0),
            enquire_links: AtomicU64::new(0),
            max_unanswered: AtomicUsize::new(0),
            delivered_mo: Mutex::new(Vec::new()),
            tries: Mutex::new(BTreeMap::new()),
            sessions: Mutex::new(Vec::new()),
            next_session: AtomicU64::new(1),
        });
        let inn = inner.clone();
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((tcp, _)) => {
                        let _ = tcp.set_nodelay(true);
                        start_session(&inn, tcp);
                    }
                    // e.g. out of file descriptors: let it pass
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .abort_handle();
        Ok(Smsc {
            addr,
            inner,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every submit_sm accepted or refused, in arrival order (undecodable
    /// ones, answered generic_nack, are not recorded).
    pub fn submits(&self) -> Vec<Submit> {
        lock(&self.inner.submits).clone()
    }

    /// Successful binds so far.
    pub fn binds(&self) -> u64 {
        self.inner.binds.load(Ordering::SeqCst)
    }

    /// enquire_link PDUs received from clients.
    pub fn enquire_links(&self) -> u64 {
        self.inner.enquire_links.load(Ordering::SeqCst)
    }

    /// The most submit_sm received on one session and not yet answered at once.
    pub fn max_unanswered(&self) -> usize {
        self.inner.max_unanswered.load(Ordering::SeqCst)
    }

    /// MO messages delivered (the client answered deliver_sm_resp OK).
    pub fn delivered_mo(&self) -> Vec<Mo> {
        lock(&self.inner.delivered_mo).clone()
    }

    /// Delivers a mobile-originated message as deliver_sm (esm_class 0) to the
    /// newest receiver or transceiver session: data_coding 0 when every
    /// character is in the GSM default alphabet (one septet per octet), else
    /// UCS-2 (8, UTF-16BE); in message_payload beyond 254 octets. A `+` in
    /// front of an address is dropped and makes TON 1 (international).
    /// Returns once the deliver_sm_resp arrives (error if it is not OK, or
    /// after 5 s, or when no session is bound to receive).
    pub async fn send_mo(&self, from: &str, to: &str, text: &str) -> anyhow::Result<()> {
        let session = newest_receiver(&self.inner, None)
            .ok_or_else(|| anyhow!("no bound receiver or transceiver session"))?;
        let (data_coding, octets) = encode_mo(text);
        let (from_ton, from_npi, from_addr) = address(from);
        let (to_ton, to_npi, to_addr) = address(to);
        let mut builder = DeliverSm::builder()
            .source_addr_ton(from_ton)
            .source_addr_npi(from_npi)
            .source_addr(cstr(&from_addr)?)
            .dest_addr_ton(to_ton)
            .dest_addr_npi(to_npi)
            .destination_addr(cstr(&to_addr)?)
            .esm_class(EsmClass::from(0))
            .data_coding(DataCoding::from(data_coding));
        if octets.len() <= 254 {
            let sm = OctetString::from_vec(octets).map_err(|e| anyhow!("short_message: {e}"))?;
            builder = builder.short_message(sm);
        } else {
            builder = builder.push_tlv(MessageDeliveryRequestTlvValue::MessagePayload(
                MessagePayload::new(AnyOctetString::from_vec(octets)),
            ));
        }
        let seq = session.seq();
        let (tx, rx) = oneshot::channel();
        lock(&session.pending).insert(seq, tx);
        if !session.send(Command::new(status(ESME_ROK), seq, builder.build())) {
            lock(&session.pending).remove(&seq);
            bail!("the session closed");
        }
        match tokio::time::timeout(MO_TIMEOUT, rx).await {
            Err(_) => {
                lock(&session.pending).remove(&seq);
                bail!("no deliver_sm_resp within {} s", MO_TIMEOUT.as_secs())
            }
            Ok(Err(_)) => bail!("the session closed before its deliver_sm_resp"),
            Ok(Ok(ESME_ROK)) => {
                lock(&self.inner.delivered_mo).push(Mo {
                    from: from.into(),
                    to: to.into(),
                    text: text.into(),
                });
                Ok(())
            }
            Ok(Ok(code)) => bail!("deliver_sm_resp command_status {code:#04x}"),
        }
    }

    /// Closes every client connection at once, without unbind.
    pub fn drop_sessions(&self) {
        drop_all(&self.inner);
    }
}

impl Drop for Smsc {
    fn drop(&mut self) {
        self.accept.abort();
        drop_all(&self.inner);
    }
}

fn drop_all(inner: &Inner) {
    let sessions = std::mem::take(&mut *lock(&inner.sessions));
    for s in sessions {
        if let Some(task) = lock(&s.task).take() {
            task.abort();
        }
        // the senders dropped here fail whoever waits for an answer
        lock(&s.pending).clear();
    }
}

/// The newest session that can take a deliver_sm, `prefer` if it can.
fn newest_receiver(inner: &Inner, prefer: Option<&Arc<Session>>) -> Option<Arc<Session>> {
    let sessions = lock(&inner.sessions);
    if let Some(p) = prefer {
        if p.receives() && sessions.iter().any(|s| s.id == p.id) {
            return Some(p.clone());
        }
    }
    sessions.iter().rev().find(|s| s.receives()).cloned()
}

fn start_session(inner: &Arc<Inner>, tcp: TcpStream) {
    let (out, rx) = mpsc::unbounded_channel();
    let session = Arc::new(Session {
        id: inner.next_session.fetch_add(1, Ordering::SeqCst),
        out,
        bound: AtomicU8::new(UNBOUND),
        next_seq: AtomicU32::new(0),
        pending: Mutex::new(BTreeMap::new()),
        unanswered: AtomicUsize::new(0),
        task: Mutex::new(None),
    });
    // registered under the lock so that drop_sessions finds the task
    let mut sessions = lock(&inner.sessions);
    let task = tokio::spawn(run_session(inner.clone(), session.clone(), tcp, rx));
    *lock(&session.task) = Some(task.abort_handle());
    sessions.push(session);
}

enum Flow {
    Continue,
    /// Write what is queued (the unbind_resp last), then close.
    Close,
}

async fn run_session(
    inner: Arc<Inner>,
    session: Arc<Session>,
    tcp: TcpStream,
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    let mut framed = Framed::new(tcp, FrameCodec::default());
    let period = Duration::from_millis(inner.cfg.enquire_link_interval_ms);
    let mut ticker = (!period.is_zero())
        .then(|| tokio::time::interval_at(tokio::time::Instant::now() + period, period));
    loop {
        tokio::select! {
            frame = framed.next() => match frame {
                Some(Ok(frame)) => {
                    if let Flow::Close = on_frame(&inner, &session, frame) {
                        while let Ok(cmd) = rx.try_recv() {
                            if framed.feed(cmd).await.is_err() {
                                break;
                            }
                        }
                        let _ = framed.flush().await;
                        break;
                    }
                }
                Some(Err(e)) => {
                    // a command_length out of bounds: the stream cannot be
                    // resynchronised
                    if e.kind() == io::ErrorKind::InvalidData {
                        let nack = Command::new(status(ESME_RINVCMDLEN), 0, Pdu::GenericNack);
                        let _ = framed.send(nack).await;
                    }
                    break;
                }
                None => break,
            },
            Some(cmd) = rx.recv() => {
                let mut ok = framed.feed(cmd).await.is_ok();
                while ok {
                    let Ok(more) = rx.try_recv() else { break };
                    ok = framed.feed(more).await.is_ok();
                }
                if !ok || framed.flush().await.is_err() {
                    break;
                }
            }
            _ = tick(&mut ticker) => {
                if session.bound() != UNBOUND {
                    let enquire = Command::new(status(ESME_ROK), session.seq(), Pdu::EnquireLink);
                    if framed.send(enquire).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    lock(&inner.sessions).retain(|s| s.id != session.id);
    lock(&session.pending).clear();
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Handles one PDU from the client; answers go through the session's queue.
fn on_frame(inner: &Arc<Inner>, session: &Arc<Session>, frame: Frame) -> Flow {
    let Frame {
        id,
        status: code,
        seq,
        cmd,
    } = frame;
    if id & 0x8000_0000 != 0 {
        // an answer (deliver_sm_resp, enquire_link_resp, generic_nack)
        if let Some(waiting) = lock(&session.pending).remove(&seq) {
            let _ = waiting.send(code);
        }
        return Flow::Continue;
    }
    let reply = |code: u32, pdu: Pdu| {
        session.send(Command::new(status(code), seq, pdu));
    };
    let pdu = cmd.as_ref().and_then(|c| c.pdu());
    let bind = match pdu {
        Some(Pdu::BindTransmitter(b)) => Some((
            TRANSMITTER,
            b.system_id.as_str(),
            b.password.as_str(),
            u8::from(b.interface_version),
        )),
        Some(Pdu::BindReceiver(b)) => Some((
            RECEIVER,
            b.system_id.as_str(),
            b.password.as_str(),
            u8::from(b.interface_version),
        )),
        Some(Pdu::BindTransceiver(b)) => Some((
            TRANSCEIVER,
            b.system_id.as_str(),
            b.password.as_str(),
            u8::from(b.interface_version),
        )),
        _ => None,
    };
    if let Some((kind, system_id, password, version)) = bind {
        let code = if session.bound() != UNBOUND {
            ESME_RALYBND
        } else if system_id != inner.cfg.system_id || !matches!(version, 0x34 | 0x50) {
            ESME_RBINDFAIL
        } else if password != inner.cfg.password {
            ESME_RINVPASWD
        } else {
            ESME_ROK
        };
        if code == ESME_ROK {
            session.bound.store(kind, Ordering::SeqCst);
            inner.binds.fetch_add(1, Ordering::SeqCst);
        }
        let version = (code == ESME_ROK).then_some(InterfaceVersion::Smpp3_4);
        let Ok(me) = cstr::<1, 16>("mock-smsc") else {
            return Flow::Continue;
        };
        let resp: Pdu = match kind {
            TRANSMITTER => BindTransmitterResp::new(me, version).into(),
            RECEIVER => BindReceiverResp::new(me, version).into(),
            _ => BindTransceiverResp::new(me, version).into(),
        };
        reply(code, resp);
        return Flow::Continue;
    }
    if matches!(pdu, Some(Pdu::EnquireLink)) {
        inner.enquire_links.fetch_add(1, Ordering::SeqCst);
    }
    if session.bound() == UNBOUND {
        match pdu {
            Some(Pdu::SubmitSm(_)) => reply(ESME_RINVBNDSTS, no_id_resp()),
            Some(Pdu::EnquireLink) => reply(ESME_RINVBNDSTS, Pdu::EnquireLinkResp),
            Some(Pdu::Unbind) => reply(ESME_RINVBNDSTS, Pdu::UnbindResp),
            _ => reply(ESME_RINVBNDSTS, Pdu::GenericNack),
        }
        return Flow::Continue;
    }
    match pdu {
        Some(Pdu::SubmitSm(_)) if session.bound() == RECEIVER => {
            reply(ESME_RINVBNDSTS, no_id_resp())
        }
        Some(Pdu::SubmitSm(sm)) => on_submit(inner, session, seq, sm),
        Some(Pdu::EnquireLink) => reply(ESME_ROK, Pdu::EnquireLinkResp),
        Some(Pdu::Unbind) => {
            reply(ESME_ROK, Pdu::UnbindResp);
            return Flow::Close;
        }
        _ => reply(ESME_RINVCMDID, Pdu::GenericNack),
    }
    Flow::Continue
}

fn no_id_resp() -> Pdu {
    SubmitSmResp::new(COctetString::empty(), Vec::new()).into()
}

/// What a receipt needs of its submit beyond the record.
struct ReceiptTo {
    submit: Submit,
    submitted: String,
    source: (u8, u8),
    destination: (u8, u8),
    delivered: bool,
}

fn on_submit(inner: &Arc<Inner>, session: &Arc<Session>, seq: u32, sm: &SubmitSm) {
    let esm_class = u8::from(sm.esm_class);
    let registered_delivery = u8::from(sm.registered_delivery);
    let short = sm.short_message().as_ref();
    let payload_tlv = sm.tlvs().iter().find_map(|t| match (t.tag(), t.value()) {
        (TlvTag::MessagePayload, Some(TlvValue::MessagePayload(p))) => Some(p.value.as_ref()),
        (TlvTag::MessagePayload, _) => Some(&[][..]),
        _ => None,
    });
    let mut refused = None;
    let (octets, tlv_message_payload) = match payload_tlv {
        Some(p) if short.is_empty() => (p, true),
        Some(_) => {
            refused = Some(ESME_RINVMSGLEN);
            (short, false)
        }
        None => (short, false),
    };
    let (udh, payload) = if esm_class & 0x40 != 0 {
        match split_udh(octets) {
            Some(split) => split,
            None => {
                refused = refused.or(Some(ESME_RINVESMCLASS));
                (None, octets)
            }
        }
    } else {
        (None, octets)
    };
    let data_coding = u8::from(sm.data_coding);
    let destination_addr = sm.destination_addr.as_str().to_owned();
    let code = refused.unwrap_or_else(|| scripted(inner, &destination_addr));
    let message_id = if code == ESME_ROK {
        fresh_message_id()
    } else {
        String::new()
    };
    let submit = Submit {
        message_id: message_id.clone(),
        command_status: code,
        source_addr: sm.source_addr.as_str().to_owned(),
        source_addr_ton: u8::from(sm.source_addr_ton),
        destination_addr: destination_addr.clone(),
        data_coding,
        esm_class,
        registered_delivery,
        udh,
        payload_hex: payload.iter().map(|b| format!("{b:02x}")).collect(),
        text: decode_text(data_coding, payload),
        tlv_message_payload,
    };
    lock(&inner.submits).push(submit.clone());
    let undeliverable = destination_addr.ends_with("000");
    let wants_receipt = match registered_delivery & 0x03 {
        1 => true,
        2 => undeliverable,
        3 => !undeliverable,
        _ => false,
    };
    let receipt = (code == ESME_ROK && wants_receipt).then(|| ReceiptTo {
        submit,
        submitted: yymmddhhmm(),
        source: (u8::from(sm.source_addr_ton), u8::from(sm.source_addr_npi)),
        destination: (u8::from(sm.dest_addr_ton), u8::from(sm.dest_addr_npi)),
        delivered: !undeliverable,
    });
    let Ok(id) = cstr::<1, 65>(&message_id) else {
        return;
    };
    let resp = Command::new(status(code), seq, SubmitSmResp::new(id, Vec::new()));
    let delay = Duration::from_millis(inner.cfg.submit_resp_delay_ms);
    let now = session.unanswered.fetch_add(1, Ordering::SeqCst) + 1;
    inner.max_unanswered.fetch_max(now, Ordering::SeqCst);
    if delay.is_zero() {
        session.unanswered.fetch_sub(1, Ordering::SeqCst);
        session.send(resp);
        if let Some(r) = receipt {
            let (inner, session) = (inner.clone(), session.clone());
            tokio::spawn(async move { send_receipt(&inner, &session, r).await });
        }
        return;
    }
    let (inner, session) = (inner.clone(), session.clone());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        session.unanswered.fetch_sub(1, Ordering::SeqCst);
        session.send(resp);
        if let Some(r) = receipt {
            send_receipt(&inner, &session, r).await;
        }
    });
}

/// The status a submit to `destination` gets (see the module doc).
fn scripted(inner: &Inner, destination: &str) -> u32 {
    if destination.ends_with("404") {
        return ESME_RINVDSTADR;
    }
    let refusal = if destination.ends_with("429") {
        ESME_RTHROTTLED
    } else if destination.ends_with("503") {
        ESME_RSYSERR
    } else {
        return ESME_ROK;
    };
    let mut tries = lock(&inner.tries);
    let n = tries.entry(destination.to_owned()).or_insert(0);
    *n += 1;
    if *n <= 2 {
        refusal
    } else {
        ESME_ROK
    }
}

/// After `receipt_delay_ms`, the receipt on the submit's session, or on the
/// newest receiving one when that one cannot take it; dropped when none can.
async fn send_receipt(inner: &Arc<Inner>, origin: &Arc<Session>, r: ReceiptTo) {
    tokio::time::sleep(Duration::from_millis(inner.cfg.receipt_delay_ms)).await;
    let Some(session) = newest_receiver(inner, Some(origin)) else {
        return;
    };
    let (stat, err, state) = if r.delivered {
        ("DELIVRD", "000", MessageState::Delivered)
    } else {
        ("UNDELIV", "001", MessageState::Undeliverable)
    };
    let excerpt: String = r
        .submit
        .text
        .chars()
        .take(20)
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    let text = format!(
        "id:{} sub:001 dlvrd:001 submit date:{} done date:{} stat:{stat} err:{err} text:{excerpt}",
        r.submit.message_id,
        r.submitted,
        yymmddhhmm()
    );
    let pdu = (|| -> anyhow::Result<DeliverSm> {
        Ok(DeliverSm::builder()
            .source_addr_ton(Ton::from(r.destination.0))
            .source_addr_npi(Npi::from(r.destination.1))
            .source_addr(cstr(&r.submit.destination_addr)?)
            .dest_addr_ton(Ton::from(r.source.0))
            .dest_addr_npi(Npi::from(r.source.1))
            .destination_addr(cstr(&r.submit.source_addr)?)
            .esm_class(EsmClass::from(0x04))
            .registered_delivery(RegisteredDelivery::from(0))
            .data_coding(DataCoding::from(0))
            .short_message(OctetString::from_vec(text.into_bytes()).map_err(|e| anyhow!("{e}"))?)
            .push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(cstr(
                &r.submit.message_id,
            )?))
            .push_tlv(MessageDeliveryRequestTlvValue::MessageState(state))
            .build())
    })();
    if let Ok(pdu) = pdu {
        // not waited for: an unanswered receipt is simply lost
        session.send(Command::new(status(ESME_ROK), session.seq(), pdu));
    }
}

/// A message id unique in this process (and, by its time-based base, across
/// processes started at different seconds), as lowercase hex.
fn fresh_message_id() -> String {
    static BASE: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let base = *BASE.get_or_init(|| (unix_seconds() & 0xFFFF_FFFF) << 24);
    format!("{:x}", base + NEXT.fetch_add(1, Ordering::SeqCst))
}

#[allow(clippy::disallowed_methods)] // a loopback peer, not on simulated paths: receipts carry wall-clock dates
fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The current UTC time as YYMMDDhhmm (receipt dates).
fn yymmddhhmm() -> String {
    let secs = unix_seconds();
    let (mut days, rem) = (secs / 86_400, secs % 86_400);
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut year = 1970;
    // bounded: one pass per year since 1970
    while days >= if leap(year) { 366 } else { 365 } {
        days -= if leap(year) { 366 } else { 365 };
        year += 1;
    }
    let feb = if leap(year) { 29 } else { 28 };
    let mut month = 1;
    for len in [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] {
        if days < len {
            break;
        }
        days -= len;
        month += 1;
    }
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        year % 100,
        month,
        days + 1,
        rem / 3600,
        rem % 3600 / 60
    )
}

/// TON, NPI and digits of an MO address: `+` → international/ISDN, digits
/// → unknown/ISDN, anything else → alphanumeric.
fn address(a: &str) -> (Ton, Npi, String) {
    if let Some(digits) = a.strip_prefix('+') {
        (Ton::International, Npi::Isdn, digits.to_owned())
    } else if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) {
        (Ton::Unknown, Npi::Isdn, a.to_owned())
    } else {
        (Ton::Alphanumeric, Npi::Unknown, a.to_owned())
    }
}

/// The UDH's concatenation IE and the rest of the message; `None` when the
/// UDH does not fit or its IEs overrun it.
fn split_udh(octets: &[u8]) -> Option<(Option<Concat>, &[u8])> {
    let udhl = usize::from(*octets.first()?);
    let mut ies = octets.get(1..1 + udhl)?;
    let mut concat = None;
    while !ies.is_empty() {
        let (iei, len) = (ies[0], usize::from(*ies.get(1)?));
        let data = ies.get(2..2 + len)?;
        match (iei, data) {
            (0x00, &[reference, total, seq]) => {
                concat = Some(Concat {
                    reference: u16::from(reference),
                    total,
                    seq,
                })
            }
            (0x08, &[hi, lo, total, seq]) => {
                concat = Some(Concat {
                    reference: u16::from_be_bytes([hi, lo]),
                    total,
                    seq,
                })
            }
            _ => {}
        }
        ies = &ies[2 + len..];
    }
    Some((concat, &octets[1 + udhl..]))
}

fn decode_text(data_coding: u8, octets: &[u8]) -> String {
    match data_coding {
        0 => gsm7_decode(octets),
        8 => {
            let units: Vec<u16> = octets
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            let mut s = String::from_utf16_lossy(&units);
            if octets.len() % 2 == 1 {
                s.push(char::REPLACEMENT_CHARACTER);
            }
            s
        }
        3 => octets.iter().map(|&b| char::from(b)).collect(),
        _ => String::from_utf8_lossy(octets).into_owned(),
    }
}

/// The GSM 03.38 default alphabet; 0x1B is the escape to the extension table.
const GSM7_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

const ESC: u8 = 0x1B;

/// The GSM 03.38 extension table (after ESC).
fn gsm7_extension(code: u8) -> Option<char> {
    Some(match code {
        0x0A => '\u{0C}',
        0x14 => '^',
        0x28 => '{',
        0x29 => '}',
        0x2F => '\\',
        0x3C => '[',
        0x3D => '~',
        0x3E => ']',
        0x40 => '|',
        0x65 => '€',
        _ => return None,
    })
}

/// Unpacked GSM-7 (one septet per octet). Octets above 0x7F and an ESC at
/// the end decode to U+FFFD; ESC before a code the extension table lacks
/// gives that code's default-alphabet character (as 03.38 asks).
fn gsm7_decode(octets: &[u8]) -> String {
    let basic = |b: u8| match b {
        ESC => ' ',
        0..=0x7F => GSM7_BASIC[usize::from(b)],
        _ => char::REPLACEMENT_CHARACTER,
    };
    let mut out = String::with_capacity(octets.len());
    let mut it = octets.iter().copied();
    while let Some(b) = it.next() {
        if b != ESC {
            out.push(basic(b));
            continue;
        }
        match it.next() {
            Some(next) => out.push(gsm7_extension(next).unwrap_or_else(|| basic(next))),
            None => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
    out
}

/// An MO text as (data_coding, octets): GSM-7 unpacked when every character
/// is in the default alphabet, else UTF-16BE.
fn encode_mo(text: &str) -> (u8, Vec<u8>) {
    let gsm: Option<Vec<u8>> = text
        .chars()
        .map(|c| {
            GSM7_BASIC
                .iter()
                .position(|&g| g == c && c != '\u{1B}')
                .map(|p| p as u8)
        })
        .collect();
    match gsm {
        Some(octets) => (0, octets),
        None => (8, text.encode_utf16().flat_map(u16::to_be_bytes).collect()),
    }
}

/// One PDU off the wire: its header, and the command when rusmpp decodes it.
struct Frame {
    id: u32,
    status: u32,
    seq: u32,
    cmd: Option<Command>,
}

/// Frames PDUs by command_length itself so that a PDU rusmpp cannot decode
/// still yields its header (for a generic_nack) without ending the stream;
/// encodes with rusmpp's codec.
#[derive(Default)]
struct FrameCodec {
    commands: CommandCodec,
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Frame>> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if !(16..=MAX_PDU).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("command_length {len}"),
            ));
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let mut pdu = src.split_to(len);
        pdu.advance(4);
        let word = |i: usize| u32::from_be_bytes([pdu[i], pdu[i + 1], pdu[i + 2], pdu[i + 3]]);
        let (id, status, seq) = (word(0), word(4), word(8));
        let cmd = Command::decode(&mut pdu, len - 4).ok().map(|(c, _)| c);
        Ok(Some(Frame {
            id,
            status,
            seq,
            cmd,
        }))
    }
}

impl Encoder<Command> for FrameCodec {
    type Error = io::Error;

    fn encode(&mut self, cmd: Command, dst: &mut BytesMut) -> io::Result<()> {
        self.commands
            .encode(cmd, dst)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_table_round_trips_and_decodes_the_extension_table() {
        let (dcs, octets) = encode_mo("Hello @ £1 _Ω");
        assert_eq!(dcs, 0);
        assert_eq!(gsm7_decode(&octets), "Hello @ £1 _Ω");
        assert_eq!(
            gsm7_decode(&[0x1B, 0x65, 0x1B, 0x28, 0x1B, 0x29, 0x1B, 0x3C, 0x1B, 0x3E]),
            "€{}[]"
        );
        assert_eq!(gsm7_decode(&[0x41, 0x1B]), "A\u{FFFD}");
        assert_eq!(encode_mo("€").0, 8);
    }

    #[test]
    fn udh_concat_ies() {
        let (c, rest) = split_udh(&[5, 0, 3, 0x7A, 2, 1, b'h', b'i']).unwrap();
        assert_eq!(
            c,
            Some(Concat {
                reference: 0x7A,
                total: 2,
                seq: 1
            })
        );
        assert_eq!(rest, b"hi");
        let (c, _) = split_udh(&[6, 8, 4, 0x12, 0x34, 3, 2]).unwrap();
        assert_eq!(c.unwrap().reference, 0x1234);
        assert!(split_udh(&[5, 0, 3, 1]).is_none());
        assert!(split_udh(&[3, 0, 3, 1]).is_none());
    }

    #[test]
    fn receipt_dates_look_like_yymmddhhmm() {
        let d = yymmddhhmm();
        assert_eq!(d.len(), 10);
        assert!(d.bytes().all(|b| b.is_ascii_digit()));
    }
}

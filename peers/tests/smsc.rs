//! The SMSC simulator against a client built from rusmpp's codec alone:
//! binds, submits and their scripted answers, receipts, MO delivery,
//! windowing, session handling, and the `mock-smsc` process.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use herald_peers::smsc::{Concat, Mo, Smsc, SmscConfig};
use rusmpp::pdus::{BindTransceiver, DeliverSm, DeliverSmResp, SubmitSm};
use rusmpp::tlvs::{MessageSubmissionRequestTlvValue, TlvValue};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{AnyOctetString, COctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, InterfaceVersion, MessagePayload, MessageState, RegisteredDelivery, Ton,
};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

type Client = Framed<TcpStream, CommandCodec>;

const WAIT: Duration = Duration::from_secs(5);

async fn start(cfg: SmscConfig) -> Smsc {
    Smsc::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

async fn connect(smsc: &Smsc) -> Client {
    Framed::new(
        TcpStream::connect(smsc.addr()).await.unwrap(),
        CommandCodec::new(),
    )
}

/// The next PDU from the SMSC (panics after 5 s or on a closed connection).
async fn next(c: &mut Client) -> Command {
    tokio::time::timeout(WAIT, c.next())
        .await
        .expect("a PDU within 5 s")
        .expect("the connection is open")
        .expect("a decodable PDU")
}

/// Nothing arrives for `ms` milliseconds.
async fn quiet(c: &mut Client, ms: u64) {
    if let Ok(pdu) = tokio::time::timeout(Duration::from_millis(ms), c.next()).await {
        panic!("unexpected {pdu:?}");
    }
}

/// The connection is closed by the SMSC.
async fn closed(c: &mut Client) {
    match tokio::time::timeout(WAIT, c.next()).await {
        Ok(None) | Ok(Some(Err(_))) => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
}

fn ok() -> CommandStatus {
    CommandStatus::EsmeRok
}

fn code(cmd: &Command) -> u32 {
    u32::from(cmd.status())
}

fn cstr<const MIN: usize, const MAX: usize>(s: &str) -> COctetString<MIN, MAX> {
    s.parse().unwrap()
}

/// bind_transceiver; returns the answer's status.
async fn bind(c: &mut Client, system_id: &str, password: &str) -> u32 {
    let pdu = BindTransceiver::builder()
        .system_id(cstr(system_id))
        .password(cstr(password))
        .system_type(COctetString::empty())
        .interface_version(InterfaceVersion::Smpp3_4)
        .address_range(COctetString::empty())
        .build();
    c.send(Command::new(ok(), 1, pdu)).await.unwrap();
    let resp = next(c).await;
    assert_eq!(resp.sequence_number(), 1);
    match resp.pdu() {
        Some(Pdu::BindTransceiverResp(r)) => assert_eq!(r.system_id.as_str(), "mock-smsc"),
        other => panic!("expected bind_transceiver_resp, got {other:?}"),
    }
    code(&resp)
}

async fn bound(smsc: &Smsc) -> Client {
    let mut c = connect(smsc).await;
    assert_eq!(bind(&mut c, "herald", "secret").await, 0);
    c
}

fn submit_sm(destination: &str, data_coding: u8, esm_class: u8, rd: u8, sm: &[u8]) -> SubmitSm {
    SubmitSm::builder()
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr(cstr("Herald"))
        .dest_addr_ton(Ton::International)
        .destination_addr(cstr(destination))
        .esm_class(EsmClass::from(esm_class))
        .registered_delivery(RegisteredDelivery::from(rd))
        .data_coding(DataCoding::from(data_coding))
        .short_message(OctetString::from_vec(sm.to_vec()).unwrap())
        .build()
}

/// Sends `sm` as sequence `seq` and returns the submit_sm_resp.
async fn submit(c: &mut Client, seq: u32, sm: SubmitSm) -> Command {
    c.send(Command::new(ok(), seq, sm)).await.unwrap();
    let resp = next(c).await;
    assert_eq!(resp.id(), CommandId::SubmitSmResp, "{resp:?}");
    assert_eq!(resp.sequence_number(), seq);
    resp
}

fn message_id(resp: &Command) -> String {
    match resp.pdu() {
        Some(Pdu::SubmitSmResp(r)) => r.message_id().as_str().to_owned(),
        other => panic!("expected submit_sm_resp, got {other:?}"),
    }
}

/// The deliver_sm in `cmd`, after answering it OK.
async fn take_deliver(c: &mut Client, cmd: Command) -> DeliverSm {
    let Some(Pdu::DeliverSm(d)) = cmd.pdu() else {
        panic!("expected deliver_sm, got {cmd:?}");
    };
    let resp = DeliverSmResp::new(COctetString::empty(), Vec::new());
    c.send(Command::new(ok(), cmd.sequence_number(), resp))
        .await
        .unwrap();
    d.clone()
}

fn receipt_tlvs(d: &DeliverSm) -> (String, MessageState) {
    let (mut id, mut state) = (None, None);
    for tlv in d.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(v)) => id = Some(v.as_str().to_owned()),
            Some(TlvValue::MessageState(s)) => state = Some(*s),
            _ => {}
        }
    }
    (
        id.expect("receipted_message_id"),
        state.expect("message_state"),
    )
}

#[tokio::test]
async fn binds_are_checked() {
    let smsc = start(SmscConfig::default()).await;
    let mut c = connect(&smsc).await;
    // nothing but a bind before a bind
    let resp = submit(&mut c, 9, submit_sm("15550001", 0, 0, 0, b"hi")).await;
    assert_eq!(code(&resp), 0x04);
    assert_eq!(bind(&mut c, "herald", "wrong").await, 0x0E);
    assert_eq!(bind(&mut c, "intruder", "secret").await, 0x0D);
    assert_eq!(smsc.binds(), 0);
    assert_eq!(bind(&mut c, "herald", "secret").await, 0);
    assert_eq!(smsc.binds(), 1);
    // already bound
    assert_eq!(bind(&mut c, "herald", "secret").await, 0x05);
    assert_eq!(smsc.binds(), 1);
    assert!(smsc.submits().is_empty());
}

#[tokio::test]
async fn a_submit_gets_an_id_then_a_receipt() {
    let smsc = start(SmscConfig {
        receipt_delay_ms: 20,
        ..SmscConfig::default()
    })
    .await;
    let mut c = bound(&smsc).await;
    let resp = submit(&mut c, 2, submit_sm("15550001", 0, 0, 1, b"Hello there")).await;
    assert_eq!(code(&resp), 0);
    let id = message_id(&resp);
    assert!(!id.is_empty());
    let first = next(&mut c).await;
    let d = take_deliver(&mut c, first).await;
    assert_eq!(u8::from(d.esm_class), 0x04);
    assert_eq!(d.source_addr.as_str(), "15550001");
    assert_eq!(d.destination_addr.as_str(), "Herald");
    assert_eq!(u8::from(d.data_coding), 0);
    assert_eq!(receipt_tlvs(&d), (id.clone(), MessageState::Delivered));
    let text = String::from_utf8(d.short_message().to_vec()).unwrap();
    assert!(
        text.starts_with(&format!("id:{id} sub:001 dlvrd:001 submit date:")),
        "{text}"
    );
    assert!(
        text.contains(" stat:DELIVRD err:000 text:Hello there"),
        "{text}"
    );

    // …000 is undeliverable
    let resp = submit(&mut c, 3, submit_sm("15550000", 0, 0, 1, b"x")).await;
    let id2 = message_id(&resp);
    assert_ne!(id, id2);
    let second = next(&mut c).await;
    let d = take_deliver(&mut c, second).await;
    assert_eq!(receipt_tlvs(&d), (id2.clone(), MessageState::Undeliverable));
    let text = String::from_utf8(d.short_message().to_vec()).unwrap();
    assert!(text.contains(" stat:UNDELIV err:001 text:x"), "{text}");

    // no receipt asked, none sent
    let resp = submit(&mut c, 4, submit_sm("15550002", 0, 0, 0, b"y")).await;
    assert_eq!(code(&resp), 0);
    quiet(&mut c, 200).await;

    let submits = smsc.submits();
    assert_eq!(submits.len(), 3);
    assert_eq!(submits[0].message_id, id);
    assert_eq!(submits[0].text, "Hello there");
    assert_eq!(submits[0].source_addr, "Herald");
    assert_eq!(submits[0].source_addr_ton, 5);
    assert_eq!(submits[0].registered_delivery, 1);
    assert_eq!(submits[1].message_id, id2);
}

#[tokio::test]
async fn concatenated_gsm_parts_are_parsed_and_decoded() {
    let smsc = start(SmscConfig {
        receipt_delay_ms: 0,
        ..SmscConfig::default()
    })
    .await;
    let mut c = bound(&smsc).await;
    // "Price: 5€" + " {x} @home", GSM-7 one septet per octet, 8-bit reference
    let mut part1 = vec![0x05, 0x00, 0x03, 0x7A, 0x02, 0x01];
    part1.extend_from_slice(b"Price: 5");
    part1.extend_from_slice(&[0x1B, 0x65]);
    let mut part2 = vec![0x05, 0x00, 0x03, 0x7A, 0x02, 0x02];
    part2.extend_from_slice(&[b' ', 0x1B, 0x28, b'x', 0x1B, 0x29, b' ', 0x00]);
    part2.extend_from_slice(b"home");
    // a 16-bit reference
    let mut part3 = vec![0x06, 0x08, 0x04, 0x12, 0x34, 0x01, 0x01];
    part3.extend_from_slice(b"Hi");
    for (seq, part) in [(2, part1), (3, part2), (4, part3)] {
        let resp = submit(&mut c, seq, submit_sm("15550001", 0, 0x40, 1, &part)).await;
        assert_eq!(code(&resp), 0);
    }
    // one receipt per part
    for _ in 0..3 {
        let pdu = next(&mut c).await;
        take_deliver(&mut c, pdu).await;
    }
    // the text in message_payload
    let mut sm = submit_sm("15550001", 0, 0, 0, b"");
    sm.push_tlv(MessageSubmissionRequestTlvValue::MessagePayload(
        MessagePayload::new(AnyOctetString::from_static_slice(b"via payload")),
    ));
    assert_eq!(code(&submit(&mut c, 5, sm).await), 0);
    // a UDH longer than the message is refused
    let resp = submit(&mut c, 6, submit_sm("15550001", 0, 0x40, 0, &[9, 0, 3])).await;
    assert_eq!(code(&resp), 0x43);

    let s = smsc.submits();
    assert_eq!(
        s[0].udh,
        Some(Concat {
            reference: 0x7A,
            total: 2,
            seq: 1
        })
    );
    assert_eq!(s[0].text, "Price: 5€");
    assert_eq!(s[0].payload_hex, "50726963653a20351b65");
    assert_eq!(s[0].esm_class, 0x40);
    assert_eq!(
        s[1].udh,
        Some(Concat {
            reference: 0x7A,
            total: 2,
            seq: 2
        })
    );
    assert_eq!(s[1].text, " {x} @home");
    assert_eq!(s[2].udh.as_ref().map(|u| u.reference), Some(0x1234));
    assert_eq!(s[2].text, "Hi");
    assert!(s[3].tlv_message_payload);
    assert_eq!(s[3].text, "via payload");
    assert!(!s[0].tlv_message_payload);
    assert_eq!(s[4].command_status, 0x43);
    assert_eq!(s[4].message_id, "");
}

#[tokio::test]
async fn ucs2_is_decoded() {
    let smsc = start(SmscConfig::default()).await;
    let mut c = bound(&smsc).await;
    let text = "Привет, мир 👋";
    let octets: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let resp = submit(&mut c, 2, submit_sm("15550001", 8, 0, 0, &octets)).await;
    assert_eq!(code(&resp), 0);
    let s = &smsc.submits()[0];
    assert_eq!(s.data_coding, 8);
    assert_eq!(s.text, text);
    assert_eq!(s.udh, None);
}

#[tokio::test]
async fn scripted_refusals() {
    let smsc = start(SmscConfig {
        receipt_delay_ms: 0,
        ..SmscConfig::default()
    })
    .await;
    let mut c = bound(&smsc).await;
    let resp = submit(&mut c, 2, submit_sm("15550404", 0, 0, 1, b"x")).await;
    assert_eq!(code(&resp), 0x0B);
    assert_eq!(message_id(&resp), "");
    // refused: no receipt
    quiet(&mut c, 200).await;
    let mut seq = 3;
    for (destination, refusal) in [("15550429", 0x58), ("15550503", 0x08)] {
        let mut codes = Vec::new();
        for _ in 0..3 {
            let resp = submit(&mut c, seq, submit_sm(destination, 0, 0, 0, b"x")).await;
            codes.push(code(&resp));
            seq += 1;
        }
        assert_eq!(codes, [refusal, refusal, 0], "{destination}");
    }
    let statuses: Vec<u32> = smsc.submits().iter().map(|s| s.command_status).collect();
    assert_eq!(statuses, [0x0B, 0x58, 0x58, 0, 0x08, 0x08, 0]);
}

#[tokio::test]
async fn mo_messages_reach_the_bound_client() {
    let smsc = start(SmscConfig::default()).await;
    assert!(smsc
        .send_mo("+15551230001", "+15550100", "STOP")
        .await
        .is_err());
    let mut c = bound(&smsc).await;
    let client = async {
        let pdu = next(&mut c).await;
        take_deliver(&mut c, pdu).await
    };
    let (sent, d) = tokio::join!(smsc.send_mo("+15551230001", "+15550100", "STOP"), client);
    sent.unwrap();
    assert_eq!(d.source_addr.as_str(), "15551230001");
    assert_eq!(d.source_addr_ton, Ton::International);
    assert_eq!(d.destination_addr.as_str(), "15550100");
    assert_eq!(u8::from(d.esm_class), 0);
    assert_eq!(u8::from(d.data_coding), 0);
    assert_eq!(d.short_message().as_ref(), b"STOP");

    // not GSM: UCS-2
    let client = async {
        let pdu = next(&mut c).await;
        take_deliver(&mut c, pdu).await
    };
    let (sent, d) = tokio::join!(
        smsc.send_mo("+15551230001", "+15550100", "Ça va 😀"),
        client
    );
    sent.unwrap();
    assert_eq!(u8::from(d.data_coding), 8);
    let expected: Vec<u8> = "Ça va 😀"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    assert_eq!(d.short_message().as_ref(), &expected[..]);

    // refused by the client: an error, not recorded
    let client = async {
        let pdu = next(&mut c).await;
        let resp = DeliverSmResp::new(COctetString::empty(), Vec::new());
        let refusal = CommandStatus::from(0x08u32);
        c.send(Command::new(refusal, pdu.sequence_number(), resp))
            .await
            .unwrap();
    };
    let (sent, ()) = tokio::join!(smsc.send_mo("+15551230001", "+15550100", "x"), client);
    assert!(sent.is_err());

    assert_eq!(
        smsc.delivered_mo(),
        [
            Mo {
                from: "+15551230001".into(),
                to: "+15550100".into(),
                text: "STOP".into()
            },
            Mo {
                from: "+15551230001".into(),
                to: "+15550100".into(),
                text: "Ça va 😀".into()
            }
        ]
    );
}

#[tokio::test]
async fn submits_are_answered_concurrently() {
    let smsc = start(SmscConfig {
        submit_resp_delay_ms: 200,
        ..SmscConfig::default()
    })
    .await;
    let mut c = bound(&smsc).await;
    let started = tokio::time::Instant::now();
    for seq in 2..7 {
        let sm = submit_sm("15550001", 0, 0, 0, b"x");
        c.feed(Command::new(ok(), seq, sm)).await.unwrap();
    }
    SinkExt::<Command>::flush(&mut c).await.unwrap();
    let mut seqs = Vec::new();
    for _ in 0..5 {
        let resp = next(&mut c).await;
        assert_eq!(code(&resp), 0);
        seqs.push(resp.sequence_number());
    }
    seqs.sort();
    assert_eq!(seqs, [2, 3, 4, 5, 6]);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(
        took < Duration::from_millis(800),
        "answered one by one: {took:?}"
    );
    assert_eq!(smsc.max_unanswered(), 5);
}

#[tokio::test]
async fn session_pdus() {
    let smsc = start(SmscConfig {
        enquire_link_interval_ms: 100,
        ..SmscConfig::default()
    })
    .await;
    let mut c = bound(&smsc).await;
    c.send(Command::new(ok(), 2, Pdu::EnquireLink))
        .await
        .unwrap();
    // the SMSC's own enquire_link may come first
    let mut answered = false;
    for _ in 0..3 {
        let pdu = next(&mut c).await;
        match pdu.id() {
            CommandId::EnquireLinkResp => {
                assert_eq!(pdu.sequence_number(), 2);
                answered = true;
                break;
            }
            CommandId::EnquireLink => {
                let resp = Command::new(ok(), pdu.sequence_number(), Pdu::EnquireLinkResp);
                c.send(resp).await.unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(answered);
    assert_eq!(smsc.enquire_links(), 1);
    // the SMSC probes the link itself
    let mut probed = false;
    for _ in 0..3 {
        let pdu = next(&mut c).await;
        if pdu.id() == CommandId::EnquireLink {
            probed = true;
            break;
        }
    }
    assert!(probed);

    // an unknown command and an undecodable submit_sm: generic_nack, session kept
    let unknown = Pdu::Other {
        command_id: CommandId::from(0x0000_0999u32),
        body: AnyOctetString::from_static_slice(b"xyz"),
    };
    let garbage = Pdu::Other {
        command_id: CommandId::SubmitSm,
        body: AnyOctetString::from_static_slice(&[0xFF; 3]),
    };
    for (seq, pdu) in [(3, unknown), (4, garbage)] {
        c.send(Command::new(ok(), seq, pdu)).await.unwrap();
        let mut nacked = false;
        for _ in 0..3 {
            let resp = next(&mut c).await;
            if resp.id() == CommandId::GenericNack {
                assert_eq!((resp.sequence_number(), code(&resp)), (seq, 0x03));
                nacked = true;
                break;
            }
        }
        assert!(nacked);
    }

    // unbind: unbind_resp, then the SMSC closes
    c.send(Command::new(ok(), 5, Pdu::Unbind)).await.unwrap();
    let mut unbound = false;
    for _ in 0..3 {
        let resp = next(&mut c).await;
        if resp.id() == CommandId::UnbindResp {
            assert_eq!(resp.sequence_number(), 5);
            unbound = true;
            break;
        }
    }
    assert!(unbound);
    closed(&mut c).await;
}

#[tokio::test]
async fn drop_sessions_cuts_connections_and_clients_can_rebind() {
    let smsc = start(SmscConfig::default()).await;
    let mut a = bound(&smsc).await;
    let mut b = bound(&smsc).await;
    smsc.drop_sessions();
    closed(&mut a).await;
    closed(&mut b).await;
    assert!(smsc.send_mo("1", "2", "x").await.is_err());
    let mut c = bound(&smsc).await;
    assert_eq!(smsc.binds(), 3);
    let resp = submit(&mut c, 2, submit_sm("15550001", 0, 0, 0, b"again")).await;
    assert_eq!(code(&resp), 0);
}

/// Kills the child process it holds when dropped (also on a failed assert).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn mock_smsc_process_serves_smpp_and_control() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("submits.ndjson");
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_mock-smsc"))
            .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .args(["--receipt-delay-ms", "0"])
            .arg("--log")
            .arg(&log)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let rest = line.trim().strip_prefix("listening smpp://").unwrap();
    let (smpp, control) = rest.split_once(" http://").unwrap();
    assert!(
        smpp.starts_with("127.0.0.1:") && control.starts_with("127.0.0.1:"),
        "{line}"
    );

    let http = reqwest::Client::new();
    let stats = || async {
        let body = http
            .get(format!("http://{control}/stats"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    assert_eq!(
        stats().await,
        serde_json::json!({"binds":0,"enquire_links":0,"max_unanswered":0,"mo_delivered":0})
    );

    let mut c = Framed::new(TcpStream::connect(smpp).await.unwrap(), CommandCodec::new());
    assert_eq!(bind(&mut c, "herald", "secret").await, 0);
    let resp = submit(&mut c, 2, submit_sm("15550404", 0, 0, 0, b"logged")).await;
    assert_eq!(code(&resp), 0x0B);

    let mo = http
        .post(format!("http://{control}/mo"))
        .body(r#"{"from":"+15551230001","to":"+15550100","text":"STOP"}"#)
        .send();
    let client = async {
        let pdu = next(&mut c).await;
        take_deliver(&mut c, pdu).await
    };
    let (mo, d) = tokio::join!(mo, client);
    let mo = mo.unwrap();
    assert_eq!(mo.status().as_u16(), 200);
    assert_eq!(d.short_message().as_ref(), b"STOP");
    let s = stats().await;
    assert_eq!(
        (s["binds"].as_u64(), s["mo_delivered"].as_u64()),
        (Some(1), Some(1))
    );

    let dropped = http
        .post(format!("http://{control}/drop"))
        .send()
        .await
        .unwrap();
    assert_eq!(dropped.status().as_u16(), 200);
    closed(&mut c).await;
    let refused = http
        .post(format!("http://{control}/mo"))
        .body(r#"{"from":"+15551230001","to":"+15550100","text":"STOP"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 503);

    let mut logged = String::new();
    for _ in 0..50 {
        logged = std::fs::read_to_string(&log).unwrap_or_default();
        if !logged.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let submit: serde_json::Value = serde_json::from_str(logged.lines().next().unwrap()).unwrap();
    assert_eq!(submit["destination_addr"], "15550404");
    assert_eq!(submit["command_status"], 0x0B);
    assert_eq!(submit["text"], "logged");
}

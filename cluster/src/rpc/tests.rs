//! Tests of the RPC layer over real QUIC on 127.0.0.1.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use super::*;

fn loopback() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}

fn identity(ca: &CertAuthority, id: NodeId) -> NodeIdentity {
    let sans = [SubjectAltName::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))];
    let node = ca
        .issue_node_cert(id, &sans, DEFAULT_NODE_VALIDITY)
        .unwrap();
    NodeIdentity::from_pem(ca.cert_pem(), &node.cert_pem, &node.key_pem).unwrap()
}

fn new_ca() -> CertAuthority {
    CertAuthority::generate(DEFAULT_CA_VALIDITY).unwrap()
}

fn client_config(ca: &CertAuthority, id: NodeId) -> ClientConfig {
    let mut config = ClientConfig::new(loopback(), identity(ca, id));
    config.backoff_initial = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(200);
    config.connect_timeout = Duration::from_secs(2);
    config
}

fn client(ca: &CertAuthority, id: NodeId) -> RpcClient {
    RpcClient::new(client_config(ca, id)).unwrap()
}

const T: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Put {
    key: String,
    values: Vec<u64>,
    tag: Option<(i32, bool)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PutAck {
    from: NodeId,
    caller: NodeId,
    sum: u64,
    key_len: usize,
}

fn echo_server(ca: &CertAuthority, id: NodeId) -> RpcServer {
    let config = ServerConfig::new(loopback(), identity(ca, id));
    RpcServer::bind(config, move |caller: Caller, put: Put| async move {
        PutAck {
            from: id,
            caller: caller.node,
            sum: put.values.iter().sum(),
            key_len: put.key.len(),
        }
    })
    .unwrap()
}

fn put() -> Put {
    Put {
        key: "endpoint/42".into(),
        values: vec![1, 2, 3, u64::MAX - 6],
        tag: Some((-7, true)),
    }
}

/// Polls `check` every 10 ms, at most `tries` times.
async fn eventually(tries: usize, mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

// ---------------------------------------------------------------- frames

#[test]
fn frame_round_trip_and_header_layout() {
    let frame = encode_frame(&put(), 1024).unwrap();
    assert_eq!(frame[0], FRAME_VERSION);
    let len = u32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - FRAME_HEADER_LEN);
    assert_eq!(decode_frame::<Put>(&frame, 1024).unwrap(), put());
}

#[test]
fn frame_bad_version_is_rejected() {
    let mut frame = encode_frame(&put(), 1024).unwrap();
    frame[0] = 2;
    let err = decode_frame::<Put>(&frame, 1024).unwrap_err();
    assert!(matches!(err, FrameError::BadVersion { found: 2 }), "{err}");
}

#[test]
fn frame_oversize_is_rejected_on_both_sides() {
    let frame = encode_frame(&put(), 1024).unwrap();
    let err = decode_frame::<Put>(&frame, 8).unwrap_err();
    assert!(matches!(err, FrameError::TooLarge { max: 8, .. }), "{err}");
    let err = encode_frame(&vec![0u8; 100], 50).unwrap_err();
    assert!(matches!(err, FrameError::TooLarge { max: 50, .. }), "{err}");
}

#[tokio::test]
async fn read_frame_checks_the_header_before_reading_the_payload() {
    // A header announcing 4 GiB - 1 followed by nothing: rejected from the header alone.
    let mut header: &[u8] = &[FRAME_VERSION, 0xff, 0xff, 0xff, 0xff];
    let err = read_frame::<_, Put>(&mut header, DEFAULT_MAX_FRAME_BYTES)
        .await
        .unwrap_err();
    assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
    let mut bad: &[u8] = &[9, 0, 0, 0, 1, 0];
    let err = read_frame::<_, u8>(&mut bad, 1024).await.unwrap_err();
    assert!(matches!(err, FrameError::BadVersion { found: 9 }), "{err}");
    let full = encode_frame(&put(), 1024).unwrap();
    let mut short = &full[..full.len() - 1];
    let err = read_frame::<_, Put>(&mut short, 1024).await.unwrap_err();
    assert!(matches!(err, FrameError::Truncated), "{err}");
    let mut whole = &full[..];
    assert_eq!(read_frame::<_, Put>(&mut whole, 1024).await.unwrap(), put());
}

#[test]
fn frame_trailing_bytes_and_hostile_lengths_are_errors() {
    let mut frame = encode_frame(&7u8, 1024).unwrap();
    frame.push(0);
    frame[4] += 1; // the length now covers the extra byte
    let err = decode_frame::<u8>(&frame, 1024).unwrap_err();
    assert!(
        matches!(err, FrameError::TrailingBytes { extra: 1 }),
        "{err}"
    );

    // A 10-byte payload announcing a string of 2^40 bytes must fail, not allocate.
    let mut payload = vec![253u8]; // bincode varint marker: u64 follows
    payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
    payload.push(b'x');
    let mut frame = vec![FRAME_VERSION];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    let err = decode_frame::<String>(&frame, 1024).unwrap_err();
    assert!(matches!(err, FrameError::Decode(_)), "{err}");
}

// ---------------------------------------------------------------- certificates

#[test]
fn node_names_parse_only_canonically() {
    assert_eq!(node_dns_name(17), "node-17.herald");
    assert_eq!(node_id_from_dns_name("node-17.herald"), Some(17));
    for bad in [
        "node-017.herald",
        "node-+1.herald",
        "node-.herald",
        "node-1.example",
        "x",
    ] {
        assert_eq!(node_id_from_dns_name(bad), None, "{bad}");
    }
}

#[test]
fn certificates_generate_and_round_trip_through_pem() {
    let ca = new_ca();
    let sans = [
        SubjectAltName::Dns("herald-2.internal".into()),
        SubjectAltName::Ip("10.0.0.2".parse().unwrap()),
    ];
    let node = ca.issue_node_cert(2, &sans, DEFAULT_NODE_VALIDITY).unwrap();
    let id = NodeIdentity::from_pem(ca.cert_pem(), &node.cert_pem, &node.key_pem).unwrap();
    assert_eq!(id.node_id(), 2);

    let der = rustls::pki_types::CertificateDer::from_pem_slice(node.cert_pem.as_bytes()).unwrap();
    let parsed = webpki::EndEntityCert::try_from(&der).unwrap();
    let names: Vec<&str> = parsed.valid_dns_names().collect();
    assert!(names.contains(&"node-2.herald") && names.contains(&"herald-2.internal"));

    // Files, and the CA reloaded from its PEM, which can still issue.
    let dir = std::env::temp_dir().join(format!("herald-rpc-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let (crt, key) = (dir.join("node.crt"), dir.join("node.key"));
    std::fs::write(&ca_crt, ca.cert_pem()).unwrap();
    std::fs::write(&ca_key, ca.key_pem()).unwrap();
    std::fs::write(&crt, &node.cert_pem).unwrap();
    std::fs::write(&key, &node.key_pem).unwrap();
    let reloaded = CertAuthority::from_pem_files(&ca_crt, &ca_key).unwrap();
    assert_eq!(reloaded.cert_pem(), ca.cert_pem());
    let from_files = NodeIdentity::from_pem_files(&ca_crt, &crt, &key).unwrap();
    assert_eq!(from_files.node_id(), 2);
    from_files.verify_chain().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    // Mismatches are clear errors.
    let other = ca.issue_node_cert(3, &[], DEFAULT_NODE_VALIDITY).unwrap();
    let err = NodeIdentity::from_pem(ca.cert_pem(), &node.cert_pem, &other.key_pem).unwrap_err();
    assert!(matches!(err, CertError::KeyMismatch), "{err}");
    let other_ca = new_ca();
    let err = CertAuthority::from_pem(ca.cert_pem(), &other_ca.key_pem()).unwrap_err();
    assert!(matches!(err, CertError::KeyMismatch), "{err}");
    let rogue = other_ca
        .issue_node_cert(2, &[], DEFAULT_NODE_VALIDITY)
        .unwrap();
    let untrusted = NodeIdentity::from_pem(ca.cert_pem(), &rogue.cert_pem, &rogue.key_pem);
    let err = untrusted.unwrap().verify_chain().unwrap_err();
    assert!(matches!(err, CertError::Untrusted(_)), "{err}");
    let err = ca
        .issue_node_cert(4, &[SubjectAltName::Dns("node-5.herald".into())], T)
        .unwrap_err();
    assert!(matches!(err, CertError::InvalidSan(_)), "{err}");
}

#[test]
fn a_foreign_ca_cannot_be_loaded_for_signing_and_a_nameless_cert_is_no_identity() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["example.org".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let foreign = params.self_signed(&key).unwrap();
    let err = CertAuthority::from_pem(&foreign.pem(), &key.serialize_pem()).unwrap_err();
    assert!(matches!(err, CertError::ForeignCa), "{err}");

    let err =
        NodeIdentity::from_pem(&foreign.pem(), &foreign.pem(), &key.serialize_pem()).unwrap_err();
    assert!(matches!(err, CertError::NoNodeId), "{err}");
}

#[tokio::test]
async fn a_reloaded_ca_issues_certificates_peers_of_the_original_accept() {
    let ca = new_ca();
    let reloaded = CertAuthority::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
    let server = echo_server(&ca, 1);
    let client = client(&reloaded, 9);
    let ack: PutAck = client
        .call(1, server.local_addr(), &put(), T)
        .await
        .unwrap();
    assert_eq!(ack.caller, 9);
}

// ---------------------------------------------------------------- calls

#[tokio::test]
async fn request_response_round_trip_with_a_struct_payload() {
    let ca = new_ca();
    let server = echo_server(&ca, 1);
    let client = client(&ca, 2);
    let ack: PutAck = client
        .call(1, server.local_addr(), &put(), T)
        .await
        .unwrap();
    assert_eq!(
        ack,
        PutAck {
            from: 1,
            caller: 2,
            sum: u64::MAX,
            key_len: 11
        }
    );
    server.shutdown(T).await;
}

#[tokio::test]
async fn the_server_sees_the_clients_verified_node_id() {
    let ca = new_ca();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let config = ServerConfig::new(loopback(), identity(&ca, 1));
    let server = RpcServer::bind(config, move |caller: Caller, (): ()| {
        record.lock().unwrap().push(caller);
        async move { caller.node }
    })
    .unwrap();
    for id in [7, 8] {
        let client = client(&ca, id);
        let echoed: NodeId = client.call(1, server.local_addr(), &(), T).await.unwrap();
        assert_eq!(echoed, id);
        let caller = *seen.lock().unwrap().last().unwrap();
        assert_eq!(caller.node, id);
        assert_eq!(caller.addr, client.local_addr().unwrap());
    }
}

/// Counts concurrent handler runs.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
    total: AtomicUsize,
    addrs: Mutex<HashSet<SocketAddr>>,
}

fn gauge_server(ca: &CertAuthority, streams: u32, gauge: Arc<Gauge>) -> RpcServer {
    let mut config = ServerConfig::new(loopback(), identity(ca, 1));
    config.max_concurrent_streams = streams;
    RpcServer::bind(config, move |caller: Caller, n: u32| {
        let gauge = gauge.clone();
        async move {
            gauge.addrs.lock().unwrap().insert(caller.addr);
            let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
            gauge.max.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            gauge.now.fetch_sub(1, Ordering::SeqCst);
            gauge.total.fetch_add(1, Ordering::SeqCst);
            n * 2
        }
    })
    .unwrap()
}

async fn many_calls(client: &RpcClient, addr: SocketAddr, n: u32) {
    let calls = (0..n).map(|i| {
        let client = client.clone();
        async move { client.call::<u32, u32>(1, addr, &i, T).await }
    });
    let results = futures::future::join_all(calls).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), i as u32 * 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_one_connection_and_respect_the_in_flight_bound() {
    let ca = new_ca();
    let gauge = Arc::new(Gauge::default());
    let server = gauge_server(&ca, 256, gauge.clone());
    let mut config = client_config(&ca, 2);
    config.max_in_flight_per_peer = 4;
    let client = RpcClient::new(config).unwrap();
    many_calls(&client, server.local_addr(), 40).await;
    assert_eq!(gauge.total.load(Ordering::SeqCst), 40);
    let max = gauge.max.load(Ordering::SeqCst);
    assert!((2..=4).contains(&max), "max concurrent handlers {max}");
    assert_eq!(
        gauge.addrs.lock().unwrap().len(),
        1,
        "more than one connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_stream_limit_bounds_concurrency_per_connection() {
    let ca = new_ca();
    let gauge = Arc::new(Gauge::default());
    let server = gauge_server(&ca, 3, gauge.clone());
    let mut config = client_config(&ca, 2);
    config.max_in_flight_per_peer = 32;
    let client = RpcClient::new(config).unwrap();
    many_calls(&client, server.local_addr(), 30).await;
    assert_eq!(gauge.total.load(Ordering::SeqCst), 30);
    let max = gauge.max.load(Ordering::SeqCst);
    assert!((2..=3).contains(&max), "max concurrent handlers {max}");
}

fn slow_server(ca: &CertAuthority) -> RpcServer {
    let config = ServerConfig::new(loopback(), identity(ca, 1));
    RpcServer::bind(config, |_: Caller, sleep_ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        sleep_ms
    })
    .unwrap()
}

#[tokio::test]
async fn an_expired_deadline_is_a_timeout_and_the_handler_is_cancelled() {
    let ca = new_ca();
    let server = slow_server(&ca);
    let client = client(&ca, 2);
    let addr = server.local_addr();
    let err = client
        .call::<u64, u64>(1, addr, &60_000, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { peer: 1, .. }), "{err}");
    assert!(!err.request_not_sent());
    // The caller gave up, so the server drops the handler (it would sleep a minute).
    assert!(eventually(500, || server.in_flight() == 0).await);
    // The connection is still good.
    assert_eq!(client.call::<u64, u64>(1, addr, &0, T).await.unwrap(), 0);
}

#[tokio::test]
async fn waiting_for_an_in_flight_slot_counts_against_the_deadline() {
    let ca = new_ca();
    let server = slow_server(&ca);
    let mut config = client_config(&ca, 2);
    config.max_in_flight_per_peer = 1;
    let client = RpcClient::new(config).unwrap();
    let addr = server.local_addr();
    let hog = {
        let client = client.clone();
        tokio::spawn(async move { client.call::<u64, u64>(1, addr, &60_000, T).await })
    };
    assert!(eventually(500, || server.in_flight() == 1).await);
    let err = client
        .call::<u64, u64>(1, addr, &0, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::Timeout { sent: false, .. }),
        "{err}"
    );
    // It never left this node, so retrying it elsewhere cannot run it twice.
    assert!(err.request_not_sent());
    hog.abort();
}

#[tokio::test]
async fn remote_errors_bad_request_and_handler_panic() {
    let ca = new_ca();
    let config = ServerConfig::new(loopback(), identity(&ca, 1));
    let server = RpcServer::bind(config, |_: Caller, n: u32| async move {
        assert!(n != 13, "unlucky request");
        n
    })
    .unwrap();
    let client = client(&ca, 2);
    let addr = server.local_addr();
    let err = client.call::<_, u32>(1, addr, &13u32, T).await.unwrap_err();
    assert!(
        matches!(&err, RpcError::Remote { kind: RemoteErrorKind::HandlerPanicked, message, .. }
            if message.contains("unlucky")),
        "{err}"
    );
    // A string is not a u32: the server cannot decode it and says so.
    let err = client
        .call::<_, u32>(1, addr, "not a number", T)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::Remote {
                kind: RemoteErrorKind::BadRequest,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.request_not_sent());
    assert_eq!(client.call::<_, u32>(1, addr, &5u32, T).await.unwrap(), 5);
}

#[tokio::test]
async fn an_oversize_reply_is_rejected_by_the_client() {
    let ca = new_ca();
    let config = ServerConfig::new(loopback(), identity(&ca, 1));
    let server =
        RpcServer::bind(config, |_: Caller, n: usize| async move { vec![7u8; n] }).unwrap();
    let mut config = client_config(&ca, 2);
    config.max_frame_bytes = 1024;
    let client = RpcClient::new(config).unwrap();
    let addr = server.local_addr();
    let err = client
        .call::<_, Vec<u8>>(1, addr, &4096usize, T)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::Protocol {
                source: FrameError::TooLarge { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        client
            .call::<_, Vec<u8>>(1, addr, &3usize, T)
            .await
            .unwrap(),
        vec![7u8; 3]
    );
    let err = client
        .call::<_, u8>(1, addr, &vec![0u8; 2048], T)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::Encode(FrameError::TooLarge { .. })),
        "{err}"
    );
}

/// Sends raw bytes on a new stream of a raw quinn connection and reads the whole reply.
async fn raw_exchange(conn: &quinn::Connection, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(bytes).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    recv.read_to_end(1 << 20).await.map_err(|e| e.to_string())
}

async fn raw_connect(
    crypto: quinn::crypto::rustls::QuicClientConfig,
    addr: SocketAddr,
    server_node: NodeId,
) -> Result<quinn::Connection, String> {
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let config = quinn::ClientConfig::new(Arc::new(crypto));
    let connecting = endpoint
        .connect_with(config, addr, &node_dns_name(server_node))
        .unwrap();
    connecting.await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_server_rejects_bad_version_and_oversize_frames() {
    let ca = new_ca();
    let mut config = ServerConfig::new(loopback(), identity(&ca, 1));
    config.max_frame_bytes = 1024;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let server = RpcServer::bind(config, move |_: Caller, n: u32| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { n + 1 }
    })
    .unwrap();
    let crypto = identity(&ca, 2).quic_client_config().unwrap();
    let conn = raw_connect(crypto, server.local_addr(), 1).await.unwrap();

    let mut bad_version = encode_frame(&5u32, 1024).unwrap();
    bad_version[0] = 0;
    let reply = raw_exchange(&conn, &bad_version).await.unwrap();
    match decode_frame::<Reply<u32>>(&reply, 1024).unwrap() {
        Reply::Err { kind, message } => {
            assert_eq!(kind, RemoteErrorKind::BadRequest);
            assert!(message.contains("version"), "{message}");
        }
        Reply::Ok(n) => panic!("accepted a bad version: {n}"),
    }

    // Announces 1 MiB against a 1 KiB limit and sends no payload.
    let oversize = [FRAME_VERSION, 0, 0x10, 0, 0];
    let reply = raw_exchange(&conn, &oversize).await.unwrap();
    match decode_frame::<Reply<u32>>(&reply, 1024).unwrap() {
        Reply::Err { kind, message } => {
            assert_eq!(kind, RemoteErrorKind::BadRequest);
            assert!(message.contains("exceeds"), "{message}");
        }
        Reply::Ok(n) => panic!("accepted an oversize frame: {n}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let good = encode_frame(&5u32, 1024).unwrap();
    let reply = raw_exchange(&conn, &good).await.unwrap();
    assert!(matches!(
        decode_frame::<Reply<u32>>(&reply, 1024).unwrap(),
        Reply::Ok(6)
    ));
}

// ---------------------------------------------------------------- identity

fn counting_server(ca: &CertAuthority, id: NodeId, calls: Arc<AtomicUsize>) -> RpcServer {
    let config = ServerConfig::new(loopback(), identity(ca, id));
    RpcServer::bind(config, move |_: Caller, (): ()| {
        calls.fetch_add(1, Ordering::SeqCst);
        async {}
    })
    .unwrap()
}

#[tokio::test]
async fn a_client_with_a_certificate_from_another_ca_is_refused() {
    let ca = new_ca();
    let calls = Arc::new(AtomicUsize::new(0));
    let server = counting_server(&ca, 1, calls.clone());
    // Trusts the cluster CA but presents a certificate signed by another one.
    let rogue = new_ca();
    let node = rogue
        .issue_node_cert(2, &[], DEFAULT_NODE_VALIDITY)
        .unwrap();
    let id = NodeIdentity::from_pem(ca.cert_pem(), &node.cert_pem, &node.key_pem).unwrap();
    let client = RpcClient::new(ClientConfig {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        ..ClientConfig::new(loopback(), id)
    })
    .unwrap();
    let err = client
        .call::<_, ()>(1, server.local_addr(), &(), Duration::from_secs(3))
        .await
        .unwrap_err();
    // Refused in the handshake (the client may already have sent its request).
    assert!(
        matches!(&err, RpcError::Unreachable { reason, .. } if reason.contains("certificate")),
        "{err}"
    );
    assert!(err.request_not_sent());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = new_ca();
    let calls = Arc::new(AtomicUsize::new(0));
    let server = counting_server(&ca, 1, calls.clone());
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = rustls::pki_types::CertificateDer::from_pem_slice(ca.cert_pem().as_bytes());
    roots.add(ca_der.unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    // The client may finish its half of the handshake; the server then closes.
    let outcome = match raw_connect(crypto, server.local_addr(), 1).await {
        Err(e) => Err(e),
        Ok(conn) => raw_exchange(&conn, &encode_frame(&(), 1024).unwrap()).await,
    };
    assert!(outcome.is_err(), "an anonymous client got a reply");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_server_with_a_certificate_from_another_ca_is_refused() {
    let ca = new_ca();
    let rogue = new_ca();
    let calls = Arc::new(AtomicUsize::new(0));
    // Its certificate names node 1 but comes from the rogue CA.
    let node = rogue
        .issue_node_cert(1, &[], DEFAULT_NODE_VALIDITY)
        .unwrap();
    let id = NodeIdentity::from_pem(ca.cert_pem(), &node.cert_pem, &node.key_pem).unwrap();
    let counted = calls.clone();
    let server = RpcServer::bind(
        ServerConfig::new(loopback(), id),
        move |_: Caller, (): ()| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        },
    )
    .unwrap();
    let client = client(&ca, 2);
    let err = client
        .call::<_, ()>(1, server.local_addr(), &(), Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Unreachable { .. }), "{err}");
    assert!(err.request_not_sent());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_server_that_is_not_the_node_asked_for_is_refused() {
    let ca = new_ca();
    let calls = Arc::new(AtomicUsize::new(0));
    let server = counting_server(&ca, 1, calls.clone());
    let client = client(&ca, 2);
    let err = client
        .call::<_, ()>(3, server.local_addr(), &(), Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::Unreachable { peer: 3, .. }),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------- lifecycle

/// Binds a server on `addr`, retrying while the old socket is still being released.
async fn bind_retrying(
    ca: &CertAuthority,
    addr: SocketAddr,
    generation: u32,
) -> Result<RpcServer, SetupError> {
    let mut last = None;
    for _ in 0..100 {
        let config = ServerConfig::new(addr, identity(ca, 1));
        match RpcServer::bind(config, move |_: Caller, (): ()| async move { generation }) {
            Ok(server) => return Ok(server),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.expect("at least one attempt"))
}

#[tokio::test]
async fn a_restarted_server_is_reached_again() {
    let ca = new_ca();
    let first = bind_retrying(&ca, loopback(), 1).await.unwrap();
    let addr = first.local_addr();
    let client = client(&ca, 2);
    assert_eq!(client.call::<_, u32>(1, addr, &(), T).await.unwrap(), 1);

    assert_eq!(first.shutdown(T).await, 0);
    // While it is down, calls fail (and the client backs off).
    let err = client
        .call::<_, u32>(1, addr, &(), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(!matches!(err, RpcError::Remote { .. }), "{err}");

    let second = bind_retrying(&ca, addr, 2).await.unwrap();
    let mut reached = None;
    for _ in 0..50 {
        match client
            .call::<_, u32>(1, addr, &(), Duration::from_millis(500))
            .await
        {
            Ok(generation) => {
                reached = Some(generation);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(reached, Some(2), "the restarted server was never reached");
    second.shutdown(T).await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_within_the_grace_period() {
    let ca = new_ca();
    let server = slow_server(&ca);
    let addr = server.local_addr();
    let client = client(&ca, 2);
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.call::<u64, u64>(1, addr, &300, T).await })
    };
    assert!(eventually(500, || server.in_flight() == 1).await);
    assert_eq!(server.shutdown(T).await, 0);
    assert_eq!(call.await.unwrap().unwrap(), 300);
    let after = client
        .call::<u64, u64>(1, addr, &0, Duration::from_millis(300))
        .await;
    assert!(after.is_err(), "a stopped server answered");
}

#[tokio::test]
async fn shutdown_cancels_requests_still_running_after_the_grace_period() {
    let ca = new_ca();
    let server = slow_server(&ca);
    let addr = server.local_addr();
    let client = client(&ca, 2);
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.call::<u64, u64>(1, addr, &60_000, T).await })
    };
    assert!(eventually(500, || server.in_flight() == 1).await);
    assert_eq!(server.shutdown(Duration::from_millis(100)).await, 1);
    let err = call.await.unwrap().unwrap_err();
    assert!(matches!(err, RpcError::ConnectionLost { .. }), "{err}");
}

#[tokio::test]
async fn a_closed_client_refuses_calls() {
    let ca = new_ca();
    let server = echo_server(&ca, 1);
    let client = client(&ca, 2);
    let _: PutAck = client
        .call(1, server.local_addr(), &put(), T)
        .await
        .unwrap();
    client.close();
    let err = client
        .call::<_, PutAck>(1, server.local_addr(), &put(), T)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Closed), "{err}");
}

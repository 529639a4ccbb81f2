//! The SMTP client against a real SMTP conversation on loopback: a small
//! server started by the test that records every message it accepts and can
//! refuse recipients permanently (550) or for now (451). Each test runs
//! against a server that offers PIPELINING (herald's own transactions) and
//! one that does not (lettre's lock-step exchange).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_channels::smtp::{OutgoingEmail, SendError, SmtpClient, SmtpConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Default)]
struct Sink {
    /// Accepted messages: (recipients, raw data).
    messages: Mutex<Vec<(Vec<String>, String)>>,
    connections: AtomicUsize,
    /// Transactions whose RCPT arrived together with their MAIL.
    pipelined: AtomicUsize,
    /// STARTTLS upgrades.
    upgrades: AtomicUsize,
}

impl Sink {
    /// The recipients of each accepted message, in order.
    fn recipients(&self) -> Vec<Vec<String>> {
        let messages = self.messages.lock().unwrap();
        messages.iter().map(|(r, _)| r.clone()).collect()
    }
}

const MODES: [bool; 2] = [false, true];

/// Recipients starting with `reject` get 550, with `later` 451; after a
/// message to `close...` the server hangs up; a message to `vanish...` is
/// kept but the server hangs up before replying to its data.
async fn start_server(pipelining: bool) -> (u16, Arc<Sink>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = Arc::new(Sink::default());
    let s = sink.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(sock, s.clone(), pipelining));
        }
    });
    (port, sink)
}

async fn serve<S>(sock: S, sink: Arc<Sink>, pipelining: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    serve_after_greeting(sock, sink, pipelining, true).await
}

async fn serve_after_greeting<S>(sock: S, sink: Arc<Sink>, pipelining: bool, greet: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (r, mut w) = tokio::io::split(sock);
    let mut lines = BufReader::new(r).lines();
    if greet {
        let _ = w.write_all(b"220 test-sink ESMTP\r\n").await;
    }
    let mut rcpts = Vec::new();
    let mut out = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            if pipelining {
                b"250-test-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
            } else {
                b"250-test-sink\r\n250 8BITMIME\r\n"
            }
        } else if upper.starts_with("MAIL FROM")
            || upper.starts_with("RSET")
            || upper.starts_with("NOOP")
        {
            rcpts.clear();
            if upper.starts_with("MAIL") && lines.get_ref().buffer().starts_with(b"RCPT") {
                sink.pipelined.fetch_add(1, Ordering::SeqCst);
            }
            b"250 2.1.0 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            let addr = line[8..]
                .trim()
                .trim_matches(|c| c == '<' || c == '>')
                .to_owned();
            if addr.starts_with("reject") {
                b"550 5.1.1 no such user\r\n"
            } else if addr.starts_with("later") {
                b"451 4.3.0 try again later\r\n"
            } else {
                rcpts.push(addr);
                b"250 2.1.5 ok\r\n"
            }
        } else if upper == "DATA" && rcpts.is_empty() {
            b"554 5.5.1 no valid recipients\r\n"
        } else if upper == "DATA" {
            out.extend_from_slice(b"354 go ahead\r\n");
            let _ = w.write_all(&std::mem::take(&mut out)).await;
            let mut data = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                if l == "." {
                    break;
                }
                data.push_str(&l);
                data.push('\n');
            }
            let close_after = rcpts.iter().any(|r| r.starts_with("close"));
            let vanish = rcpts.iter().any(|r| r.starts_with("vanish"));
            sink.messages
                .lock()
                .unwrap()
                .push((std::mem::take(&mut rcpts), data));
            if vanish {
                return;
            }
            if close_after {
                // Accept, then hang up as a server restarting would.
                let _ = w.write_all(b"250 2.0.0 queued\r\n").await;
                return;
            }
            b"250 2.0.0 queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = w.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"502 5.5.2 unknown command\r\n"
        };
        // As RFC 2920 asks, replies wait while more commands are buffered
        // and leave together.
        out.extend_from_slice(reply);
        if lines.get_ref().buffer().is_empty()
            && w.write_all(&std::mem::take(&mut out)).await.is_err()
        {
            return;
        }
    }
}

fn client(port: u16, pool_max: usize) -> SmtpClient {
    let mut cfg = SmtpConfig::from_url(&format!("smtp://127.0.0.1:{port}/mta.test")).unwrap();
    cfg.pool_max = pool_max;
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.command_timeout = Duration::from_secs(5);
    SmtpClient::new(cfg)
}

fn email(id: &str, to: &str) -> OutgoingEmail {
    OutgoingEmail {
        message_id: id.into(),
        from: "News <news@example.com>".into(),
        to: to.into(),
        subject: format!("Hello {id}"),
        text: Some(format!("text for {id}")),
        html: Some(format!("<p>html for {id}</p>")),
        list_unsubscribe: Some(format!("<https://herald.test/u/{id}>")),
        ..Default::default()
    }
}

#[tokio::test]
async fn messages_arrive_once_each_over_pooled_connections() {
    for pipelining in MODES {
        let (port, sink) = start_server(pipelining).await;
        let c = Arc::new(client(port, 4));
        let mut tasks = Vec::new();
        for i in 0..100 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                c.send(&email(&format!("m{i}"), &format!("user{i}@example.org")))
                    .await
            }));
        }
        for t in tasks {
            let reply = t.await.unwrap().expect("delivered");
            assert!(reply.starts_with("250"), "{reply}");
        }
        let messages = sink.messages.lock().unwrap();
        assert_eq!(messages.len(), 100);
        let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
        for (rcpts, data) in messages.iter() {
            let id = data
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: <"))
                .and_then(|l| l.strip_suffix("@mta.test>"))
                .expect("Message-ID header")
                .to_owned();
            assert_eq!(rcpts, &vec![format!("user{}@example.org", &id[1..])]);
            assert!(data.contains(&format!("Subject: Hello {id}")));
            assert!(data.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
            assert!(
                data.contains(&format!("text for {id}"))
                    && data.contains(&format!("html for {id}"))
            );
            *by_id.entry(id).or_default() += 1;
        }
        assert_eq!(by_id.len(), 100);
        assert!(by_id.values().all(|n| *n == 1));
        let conns = sink.connections.load(Ordering::SeqCst);
        assert!(
            (1..=4).contains(&conns),
            "{conns} connections for a pool of 4"
        );
        let pipelined = sink.pipelined.load(Ordering::SeqCst);
        if pipelining {
            assert_eq!(pipelined, 100, "every transaction pipelined");
        } else {
            assert_eq!(pipelined, 0, "no pipelining unless offered");
        }
    }
}

#[tokio::test]
async fn refusals_are_classified_and_the_client_keeps_working() {
    for pipelining in MODES {
        let (port, sink) = start_server(pipelining).await;
        let c = client(port, 1);
        match c.send(&email("r1", "reject@example.org")).await {
            Err(SendError::Permanent { code: 550, .. }) => {}
            other => panic!("want a permanent 550, got {other:?}"),
        }
        match c.send(&email("r2", "later@example.org")).await {
            Err(SendError::Temporary {
                code: Some(451), ..
            }) => {}
            other => panic!("want a temporary 451, got {other:?}"),
        }
        c.send(&email("r3", "ok@example.org"))
            .await
            .expect("delivered after refusals");
        let delivered = sink.messages.lock().unwrap().len();
        assert_eq!(delivered, 1, "only the accepted message was delivered");
        match c.send(&email("bad", "not an address")).await {
            Err(SendError::Invalid(_)) => {}
            other => panic!("want Invalid, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_server_that_is_down_is_a_temporary_failure_without_hanging() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(port, 2);
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        c.send(&email("d1", "ok@example.org")),
    )
    .await
    .expect("a send to a server that is down must not hang");
    match outcome {
        Err(SendError::Temporary { code: None, .. }) => {}
        other => panic!("want a temporary failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced_before_sending() {
    for pipelining in MODES {
        let (port, sink) = start_server(pipelining).await;
        let c = client(port, 1);
        c.send(&email("p1", "close@example.org"))
            .await
            .expect("first");
        // The pooled connection is dead now; the next message must go out once,
        // on a new connection.
        c.send(&email("p2", "b@example.org")).await.expect("second");
        assert_eq!(
            sink.recipients(),
            vec![
                vec!["close@example.org".to_owned()],
                vec!["b@example.org".to_owned()]
            ]
        );
        assert_eq!(sink.connections.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test]
async fn a_message_whose_data_went_out_is_never_sent_again() {
    for pipelining in MODES {
        let (port, sink) = start_server(pipelining).await;
        let c = client(port, 1);
        // The server takes the data and hangs up without a reply: the message
        // may have been delivered, so the outcome is unknown and it is not resent.
        match c.send(&email("v1", "vanish@example.org")).await {
            Err(SendError::Unknown(_)) => {}
            other => panic!("want an unknown outcome, got {other:?}"),
        }
        c.send(&email("v2", "b@example.org")).await.expect("next");
        assert_eq!(
            sink.recipients(),
            vec![
                vec!["vanish@example.org".to_owned()],
                vec!["b@example.org".to_owned()]
            ]
        );
    }
}

/// A certificate for 127.0.0.1, self-signed, written as PEM for `ca_file`.
fn certificate(dir: &std::path::Path) -> (TlsAcceptor, std::path::PathBuf) {
    let (acceptor, pem) = common::tls_identity();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    (acceptor, ca)
}

/// `implicit`: TLS from the first byte. Otherwise plain text that offers
/// STARTTLS and refuses mail before it.
async fn start_tls_server(acceptor: TlsAcceptor, implicit: bool) -> (u16, Arc<Sink>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = Arc::new(Sink::default());
    let s = sink.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            let (s, acceptor) = (s.clone(), acceptor.clone());
            tokio::spawn(async move {
                if implicit {
                    if let Ok(tls) = acceptor.accept(sock).await {
                        serve(tls, s, true).await;
                    }
                } else if let Some(sock) = until_starttls(sock).await {
                    if let Ok(tls) = acceptor.accept(sock).await {
                        s.upgrades.fetch_add(1, Ordering::SeqCst);
                        serve_after_greeting(tls, s, true, false).await;
                    }
                }
            });
        }
    });
    (port, sink)
}

/// The plain-text part of a STARTTLS session; answers the socket once the
/// client asked for TLS.
async fn until_starttls(mut sock: tokio::net::TcpStream) -> Option<tokio::net::TcpStream> {
    sock.write_all(b"220 test-sink ESMTP\r\n").await.ok()?;
    loop {
        // Byte by byte, so nothing of the TLS handshake is read here.
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if tokio::io::AsyncReadExt::read(&mut sock, &mut b)
                .await
                .ok()?
                == 0
            {
                return None;
            }
            line.push(b[0]);
        }
        let upper = String::from_utf8_lossy(&line).to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-test-sink\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("STARTTLS") {
            sock.write_all(b"220 2.0.0 go ahead\r\n").await.ok()?;
            return Some(sock);
        } else if upper.starts_with("QUIT") {
            return None;
        } else {
            b"530 5.7.0 must issue a STARTTLS command first\r\n"
        };
        sock.write_all(reply).await.ok()?;
    }
}

fn tls_client(url: &str) -> SmtpClient {
    let mut cfg = SmtpConfig::from_url(url).unwrap();
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.command_timeout = Duration::from_secs(5);
    SmtpClient::new(cfg)
}

#[tokio::test]
async fn implicit_tls_carries_pipelined_messages_to_a_trusted_server() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca) = certificate(dir.path());
    let (port, sink) = start_tls_server(acceptor, true).await;
    let c = tls_client(&format!(
        "smtps://127.0.0.1:{port}/mta.test?ca_file={}",
        ca.display()
    ));
    for i in 0..3 {
        c.send(&email(&format!("t{i}"), &format!("u{i}@example.org")))
            .await
            .expect("delivered over TLS");
    }
    assert_eq!(sink.messages.lock().unwrap().len(), 3);
    assert_eq!(sink.pipelined.load(Ordering::SeqCst), 3);
    assert_eq!(sink.connections.load(Ordering::SeqCst), 1);

    // Without the CA the server's certificate is not trusted: nothing goes.
    let untrusting = tls_client(&format!("smtps://127.0.0.1:{port}/mta.test"));
    match untrusting.send(&email("t9", "u9@example.org")).await {
        Err(SendError::Temporary {
            code: None,
            message,
        }) => {
            assert!(message.contains("TLS"), "{message}")
        }
        other => panic!("want a temporary TLS failure, got {other:?}"),
    }
    assert_eq!(sink.messages.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn starttls_upgrades_before_any_mail_and_is_enforced_when_required() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca) = certificate(dir.path());
    let (port, sink) = start_tls_server(acceptor, false).await;
    let c = tls_client(&format!(
        "smtp://127.0.0.1:{port}/mta.test?tls=required&ca_file={}",
        ca.display()
    ));
    c.send(&email("s1", "a@example.org")).await.expect("first");
    c.send(&email("s2", "b@example.org")).await.expect("second");
    assert_eq!(sink.messages.lock().unwrap().len(), 2);
    assert_eq!(
        sink.upgrades.load(Ordering::SeqCst),
        1,
        "one TLS session, reused"
    );

    // A server without STARTTLS gets nothing when TLS is required.
    let (plain_port, plain) = start_server(true).await;
    let c = tls_client(&format!(
        "smtp://127.0.0.1:{plain_port}/mta.test?tls=required&ca_file={}",
        ca.display()
    ));
    match c.send(&email("s3", "c@example.org")).await {
        Err(SendError::Temporary { message, .. }) => {
            assert!(message.contains("STARTTLS"), "{message}")
        }
        other => panic!("want a temporary failure naming STARTTLS, got {other:?}"),
    }
    assert!(plain.messages.lock().unwrap().is_empty());
}

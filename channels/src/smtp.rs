//! Email over SMTP with lettre, on sockets herald opens itself.
//!
//! lettre 0.11.23 leaves Nagle's algorithm on, which caps a connection at
//! ~22 messages/s on loopback (docs/lettre.md). So this client connects with
//! `TCP_NODELAY`, hands the socket to `AsyncSmtpConnection` through a corking
//! stream (`corked`: a command and what follows it leave in one segment),
//! and keeps its own bounded pool of open connections. Every network step
//! has a deadline. A message is sent again on a fresh connection only when
//! the server provably never saw its data (no `354` yet); otherwise never
//! retried here. TLS: `smtps://` is implicit TLS done here with rustls
//! (under the corking, so pipelining and the 354 watch still work);
//! STARTTLS is lettre's (above the corking: lock-step, and a broken
//! exchange is always of unknown outcome). When the server offers RFC 2920
//! PIPELINING (and the corking sees plain SMTP), herald runs the mail
//! transaction itself: MAIL, RCPT and DATA in one segment, the data after
//! the 354, two round trips a message; lettre keeps the greeting, EHLO,
//! STARTTLS, AUTH, NOOP and QUIT.
//! Failures are classified the way the send path needs them: a 5xx reply is
//! [`SendError::Permanent`], a 4xx reply or a network failure
//! [`SendError::Temporary`], a message that cannot be built
//! [`SendError::Invalid`]. Retries and rate limits are the caller's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::corked::{Corked, DataMark, Io, Shared};

/// A pooled connection idle longer than this is checked with NOOP first.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(2);

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text (`smtp://host`), for local relays and tests.
    None,
    /// STARTTLS if the server offers it (`?tls=opportunistic`).
    Opportunistic,
    /// STARTTLS or fail (`?tls=required`).
    Required,
    /// TLS from the first byte (`smtps://`, RFC 8314), port 465 by default.
    Implicit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// AUTH PLAIN/LOGIN user and password.
    pub credentials: Option<(String, String)>,
    /// The name herald gives in EHLO.
    pub hello_name: String,
    pub connect_timeout: Duration,
    /// Deadline for each SMTP exchange (greeting, STARTTLS, AUTH, one message).
    pub command_timeout: Duration,
    /// Open connections at most, and so messages in flight at most.
    pub pool_max: usize,
    /// PEM certificates trusted besides the public roots (`?ca_file=`), read
    /// when the URL is parsed: a private relay's own CA.
    pub ca_pem: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SMTP URL {url:?}: {why}")]
pub struct UrlError {
    pub url: String,
    pub why: String,
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl SmtpConfig {
    /// Parses `smtp[s]://[user[:password]@]host[:port][/ehlo-name][?tls=…&ca_file=…]`.
    /// `smtps://` is implicit TLS (port 465); `smtp://` is plain text
    /// (port 25) unless `tls=opportunistic` or `tls=required` asks for
    /// STARTTLS (port 587). `ca_file` names a PEM file of certificates to
    /// trust besides the public roots; it is read here.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let bad = |why: &str| UrlError {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let (implicit, rest) = match url.split_once("://") {
            Some(("smtp", rest)) => (false, rest),
            Some(("smtps", rest)) => (true, rest),
            _ => return Err(bad("the scheme must be smtp:// or smtps://")),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut tls = if implicit {
            TlsMode::Implicit
        } else {
            TlsMode::None
        };
        let mut ca_pem = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("tls", mode)) if !implicit => {
                    tls = match mode {
                        "none" => TlsMode::None,
                        "opportunistic" => TlsMode::Opportunistic,
                        "required" => TlsMode::Required,
                        _ => return Err(bad("tls may only be none, opportunistic or required")),
                    }
                }
                Some(("tls", _)) => {
                    return Err(bad("smtps:// is always TLS; tls= goes with smtp:// only"))
                }
                Some(("ca_file", path)) => {
                    let path =
                        percent_decode(path).ok_or_else(|| bad("bad %-escape in ca_file"))?;
                    let pem = std::fs::read(&path)
                        .map_err(|e| bad(&format!("cannot read ca_file {path}: {e}")))?;
                    if Certificate::from_pem(&pem).map_or(true, |_| {
                        !String::from_utf8_lossy(&pem).contains("BEGIN CERTIFICATE")
                    }) {
                        return Err(bad(&format!("ca_file {path} holds no PEM certificate")));
                    }
                    ca_pem = Some(pem);
                }
                _ => return Err(bad("the query may only hold tls= and ca_file=")),
            }
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in the user"))?;
                let pass =
                    percent_decode(pass).ok_or_else(|| bad("bad %-escape in the password"))?;
                Some((user, pass))
            }
        };
        let port_of = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number"))
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(port_of(p)?)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("junk after the IPv6 address")),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(port_of(p)?)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = port.unwrap_or(match tls {
            TlsMode::None => 25,
            TlsMode::Opportunistic | TlsMode::Required => 587,
            TlsMode::Implicit => 465,
        });
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
            credentials,
            hello_name: if path.is_empty() {
                "herald.localdomain".to_owned()
            } else {
                path.trim_matches('/').to_owned()
            },
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            pool_max: 8,
            ca_pem,
        })
    }
}

/// One message to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingEmail {
    /// herald's message id; becomes the `Message-ID` header `<id@hello-name>`.
    pub message_id: String,
    /// The app that sends it (for logs and the dev outbox).
    pub app_id: String,
    pub from: String,
    pub to: String,
    pub reply_to: Vec<String>,
    /// Extra headers (`SimpleEmail.Headers`), added as given.
    pub headers: Vec<(String, String)>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// `List-Unsubscribe` value (`<https://...>`); when set, the RFC 8058
    /// one-click `List-Unsubscribe-Post` header goes with it.
    pub list_unsubscribe: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The server refused for good (5xx), e.g. an unknown recipient.
    #[error("permanent failure ({code}): {message}")]
    Permanent { code: u16, message: String },
    /// Worth retrying later: a 4xx reply, a timeout or a network failure.
    #[error("temporary failure{}: {message}", code.map(|c| format!(" ({c})")).unwrap_or_default())]
    Temporary { code: Option<u16>, message: String },
    /// The provider asked to wait `after_ms` before trying again (HTTP 429
    /// or 503 with `Retry-After`): worth retrying, not sooner.
    #[error("temporary failure ({code}), retry after {after_ms} ms: {message}")]
    Throttled {
        code: u16,
        message: String,
        after_ms: u64,
    },
    /// The message cannot be built (bad address, bad header).
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The exchange broke after the message may have been accepted (a
    /// timeout or a dropped connection during or after the data): it may
    /// have been delivered, so it must not be sent again.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

impl SendError {
    /// Whether sending the same message again cannot deliver it twice.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SendError::Temporary { .. } | SendError::Throttled { .. }
        )
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let code = e.status().map(u16::from);
    if e.is_permanent() {
        SendError::Permanent {
            code: code.unwrap_or(550),
            message: e.to_string(),
        }
    } else {
        SendError::Temporary {
            code,
            message: e.to_string(),
        }
    }
}

fn temporary(message: impl Into<String>) -> SendError {
    SendError::Temporary {
        code: None,
        message: message.into(),
    }
}

/// Builds the RFC 5322 message.
pub fn build_message(email: &OutgoingEmail, hello_name: &str) -> Result<Message, SendError> {
    let invalid =
        |what: &str, e: &dyn std::fmt::Display| SendError::Invalid(format!("{what}: {e}"));
    let mut b = Message::builder()
        .from(email.from.parse().map_err(|e| invalid("From", &e))?)
        .to(email.to.parse().map_err(|e| invalid("To", &e))?)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{}@{hello_name}>", email.message_id)));
    for r in &email.reply_to {
        b = b.reply_to(r.parse().map_err(|e| invalid("Reply-To", &e))?);
    }
    for (name, value) in &email.headers {
        let name =
            HeaderName::new_from_ascii(name.clone()).map_err(|e| invalid("header name", &e))?;
        b = b.raw_header(HeaderValue::new(name, value.clone()));
    }
    if let Some(u) = &email.list_unsubscribe {
        b = b
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                u.clone(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
    }
    let built = match (&email.text, &email.html) {
        (Some(t), Some(h)) => b.multipart(MultiPart::alternative_plain_html(t.clone(), h.clone())),
        (None, Some(h)) => b.singlepart(SinglePart::html(h.clone())),
        (t, None) => b.singlepart(SinglePart::plain(t.clone().unwrap_or_default())),
    };
    built.map_err(|e| invalid("message", &e))
}

/// rustls with ring (as lettre's STARTTLS), trusting the public roots and
/// the certificates of `ca_file`. Certificates that do not parse were
/// refused when the URL was read, so none are skipped silently here.
fn tls_connector(cfg: &SmtpConfig) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &cfg.ca_pem {
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem).flatten() {
            if let Err(e) = roots.add(cert) {
                tracing::warn!(error = %e, "a ca_file certificate is not usable as a root");
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Replies longer than this end the connection (lettre's bound too).
const REPLY_MAX: usize = 100_000;

/// Reads one (possibly multi-line) reply.
async fn read_reply(r: &mut BufReader<Shared>) -> std::io::Result<Response> {
    let mut text = String::new();
    loop {
        let start = text.len();
        if r.read_line(&mut text).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = &text.as_bytes()[start..];
        if text.len() > REPLY_MAX || !line.ends_with(b"\n") {
            return Err(std::io::Error::other("malformed SMTP reply"));
        }
        if line.get(3) != Some(&b'-') {
            break;
        }
    }
    text.parse::<Response>()
        .map_err(|e| std::io::Error::other(format!("malformed SMTP reply: {e}")))
}

fn reply_text(r: &Response) -> String {
    format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" "))
}

fn classify_reply(r: &Response) -> SendError {
    let code = u16::from(r.code());
    let text = r.message().collect::<Vec<_>>().join(" ");
    if code >= 500 {
        SendError::Permanent {
            code,
            message: format!("permanent error ({code}): {text}"),
        }
    } else {
        SendError::Temporary {
            code: Some(code),
            message: format!("transient error ({code}): {text}"),
        }
    }
}

/// RFC 5321 4.5.2: a line of the data that starts with `.` gets another.
fn dot_stuff(raw: &[u8], out: &mut Vec<u8>) {
    for line in raw.split_inclusive(|b| *b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
}

/// How one attempt on one connection failed.
enum Attempt {
    /// Before the server said 354: it has none of the message.
    BeforeData(SendError),
    Failed(SendError),
}

/// An SMTP client with a bounded pool of `TCP_NODELAY` connections.
pub struct SmtpClient {
    cfg: SmtpConfig,
    /// For `smtps://`: the public roots and the configured CA.
    implicit_tls: Option<tokio_rustls::TlsConnector>,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

struct Conn {
    smtp: AsyncSmtpConnection,
    /// The stream under `smtp`, for herald's own pipelined transactions.
    wire: Shared,
    /// Set while the stream under lettre is plain text, so `354` can be seen.
    mark: Option<Arc<DataMark>>,
    /// A transaction of ours left it in an unknown state.
    broken: bool,
    idle_since: Instant,
    /// Whether it has carried a message before.
    reused: bool,
}

impl SmtpClient {
    pub fn new(cfg: SmtpConfig) -> Self {
        let permits = Semaphore::new(cfg.pool_max.max(1));
        let implicit_tls = (cfg.tls == TlsMode::Implicit).then(|| tls_connector(&cfg));
        Self {
            implicit_tls,
            cfg,
            idle: Mutex::new(Vec::new()),
            permits,
        }
    }

    pub fn config(&self) -> &SmtpConfig {
        &self.cfg
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let cfg = &self.cfg;
        let addr = (cfg.host.as_str(), cfg.port);
        let tcp = tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| temporary(format!("connecting to {}:{} timed out", cfg.host, cfg.port)))?
            .map_err(|e| temporary(format!("connecting to {}:{}: {e}", cfg.host, cfg.port)))?;
        tcp.set_nodelay(true)
            .map_err(|e| temporary(format!("TCP_NODELAY: {e}")))?;
        let peer = tcp
            .peer_addr()
            .map_err(|e| temporary(format!("connecting to {}:{}: {e}", cfg.host, cfg.port)))?;
        let deadline = cfg.command_timeout;
        let step = |what: &'static str| move |_| temporary(format!("SMTP {what} timed out"));
        let io = match &self.implicit_tls {
            None => Io::Plain(tcp),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(cfg.host.clone())
                    .map_err(|e| temporary(format!("TLS server name {}: {e}", cfg.host)))?;
                let stream = tokio::time::timeout(deadline, tls.connect(name, tcp))
                    .await
                    .map_err(step("TLS handshake"))?
                    .map_err(|e| temporary(format!("TLS with {}: {e}", cfg.host)))?;
                Io::Tls(Box::new(stream))
            }
        };
        let mark = Arc::new(DataMark::default());
        let wire = Shared::new(Corked::new(io, peer, mark.clone()));
        let hello = ClientId::Domain(cfg.hello_name.clone());
        let mut conn = tokio::time::timeout(
            deadline,
            AsyncSmtpConnection::connect_with_transport(Box::new(wire.clone()), &hello),
        )
        .await
        .map_err(step("greeting"))?
        .map_err(|e| classify(&e))?;
        let starttls = match cfg.tls {
            TlsMode::None | TlsMode::Implicit => false,
            TlsMode::Opportunistic => conn.can_starttls(),
            TlsMode::Required if conn.can_starttls() => true,
            TlsMode::Required => {
                return Err(temporary(format!(
                    "{} does not offer STARTTLS, which the configuration requires",
                    cfg.host
                )))
            }
        };
        if starttls {
            let mut params = TlsParameters::builder(cfg.host.clone());
            if let Some(pem) = &cfg.ca_pem {
                let cert = Certificate::from_pem(pem).map_err(|e| {
                    temporary(format!("the configured ca_file holds no certificates: {e}"))
                })?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build_rustls().map_err(|e| classify(&e))?;
            tokio::time::timeout(deadline, conn.starttls(params, &hello))
                .await
                .map_err(step("STARTTLS"))?
                .map_err(|e| classify(&e))?;
        }
        if let Some((user, pass)) = &cfg.credentials {
            let creds = Credentials::new(user.clone(), pass.clone());
            tokio::time::timeout(
                deadline,
                conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds),
            )
            .await
            .map_err(step("AUTH"))?
            .map_err(|e| classify(&e))?;
        }
        Ok(Conn {
            smtp: conn,
            wire,
            mark: (!starttls).then_some(mark),
            broken: false,
            idle_since: Instant::now(),
            reused: false,
        })
    }

    /// Sends one message once; answers the server's reply to the message
    /// data. A pooled connection idle for a while is checked with NOOP; one
    /// that turns out broken before the server saw any of the message is
    /// replaced and the message goes out on the new one.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        let msg = build_message(email, &self.cfg.hello_name)?;
        let raw = msg.formatted();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| temporary("the SMTP client is shut down"))?;
        let pooled = self.idle.lock().expect("smtp pool lock").pop();
        let mut conn = match pooled {
            Some(mut c) if c.mark.is_none() || c.idle_since.elapsed() > CHECK_AFTER_IDLE => {
                let alive = tokio::time::timeout(self.cfg.command_timeout, c.smtp.test_connected())
                    .await
                    .unwrap_or(false);
                if alive {
                    c
                } else {
                    c.smtp.abort().await;
                    self.connect().await?
                }
            }
            Some(c) => c,
            None => self.connect().await?,
        };
        let mut outcome = self.send_on(&mut conn, &msg, &raw).await;
        if conn.reused && matches!(outcome, Err(Attempt::BeforeData(_))) {
            // The server closed a pooled connection; it never got the data.
            conn.smtp.abort().await;
            conn = self.connect().await?;
            outcome = self.send_on(&mut conn, &msg, &raw).await;
        }
        if !conn.smtp.has_broken() && !conn.broken {
            conn.idle_since = Instant::now();
            conn.reused = true;
            self.idle.lock().expect("smtp pool lock").push(conn);
        }
        outcome.map_err(|a| match a {
            Attempt::BeforeData(e) | Attempt::Failed(e) => e,
        })
    }

    async fn send_on(&self, conn: &mut Conn, msg: &Message, raw: &[u8]) -> Result<String, Attempt> {
        if conn.mark.as_ref().is_some_and(|m| m.pipelining()) {
            return self.pipelined(conn, msg, raw).await;
        }
        if let Some(m) = &conn.mark {
            m.clear();
        }
        let sent = tokio::time::timeout(
            self.cfg.command_timeout,
            conn.smtp.send(msg.envelope(), raw),
        )
        .await;
        // Whether the server can have the message: it said 354, or we cannot
        // tell (the stream under lettre is encrypted).
        let data_seen = conn.mark.as_ref().is_none_or(|m| m.seen());
        match sent {
            Err(_) if !data_seen => {
                conn.smtp.abort().await;
                Err(Attempt::BeforeData(temporary(
                    "the SMTP server did not answer before the message data",
                )))
            }
            Err(_) => {
                conn.smtp.abort().await;
                Err(Attempt::Failed(SendError::Unknown(
                    "the SMTP message exchange timed out; the server may have accepted it".into(),
                )))
            }
            // A reply code tells what the server decided; a broken exchange
            // without one leaves it unknown, unless the data never left.
            Ok(Err(e)) if e.status().is_some() => Err(Attempt::Failed(classify(&e))),
            Ok(Err(e)) if !data_seen => Err(Attempt::BeforeData(temporary(format!(
                "the SMTP connection broke before the message data: {e}"
            )))),
            Ok(Err(e)) => Err(Attempt::Failed(SendError::Unknown(format!(
                "the SMTP exchange broke: {e}; the server may have accepted the message"
            )))),
            Ok(Ok(resp)) => Ok(reply_text(&resp)),
        }
    }

    /// One transaction with RFC 2920 pipelining: MAIL, RCPT and DATA leave
    /// together and their replies are read in order, then the data: two
    /// round trips per message instead of four. The data goes out only after
    /// a 354, so anything that breaks before it is retryable.
    async fn pipelined(
        &self,
        conn: &mut Conn,
        msg: &Message,
        raw: &[u8],
    ) -> Result<String, Attempt> {
        let env = msg.envelope();
        let info = conn.smtp.server_info();
        let mut params = Vec::new();
        let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
        let non_ascii = !env.from().is_none_or(ascii) || !env.to().iter().all(ascii);
        if non_ascii {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err(Attempt::Failed(SendError::Invalid(
                    "the addresses are not ASCII and the server does not offer SMTPUTF8".into(),
                )));
            }
            params.push(MailParameter::SmtpUtfEight);
        }
        if !raw.is_ascii() {
            if !info.supports_feature(Extension::EightBitMime) {
                return Err(Attempt::Failed(SendError::Invalid(
                    "the message is not ASCII and the server does not offer 8BITMIME".into(),
                )));
            }
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let mut head = Mail::new(env.from().cloned(), params).to_string();
        for to in env.to() {
            head.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
        }
        head.push_str("DATA\r\n");
        let mut w = conn.wire.clone();
        // Replies are short (RFC 5321: 512-byte lines); a small buffer each time.
        let mut r = BufReader::with_capacity(1024, conn.wire.clone());
        let mut data_sent = false;
        let exchange = async {
            w.write_all(head.as_bytes()).await?;
            let mut refused = None;
            for _ in 0..=env.to().len() {
                let reply = read_reply(&mut r).await?;
                if !reply.is_positive() && refused.is_none() {
                    refused = Some(reply);
                }
            }
            let go = read_reply(&mut r).await?;
            let refusal = match (go.has_code(354), refused) {
                (true, None) => {
                    let mut data = Vec::with_capacity(raw.len() + raw.len() / 64 + 8);
                    dot_stuff(raw, &mut data);
                    data.extend_from_slice(b"\r\n.\r\n");
                    data_sent = true;
                    w.write_all(&data).await?;
                    return Ok(Ok(read_reply(&mut r).await?));
                }
                // A server that says 354 with no recipient gets an empty
                // message, which it cannot deliver to anyone.
                (true, Some(refused)) => {
                    w.write_all(b".\r\n").await?;
                    read_reply(&mut r).await?;
                    refused
                }
                (false, refused) => refused.unwrap_or(go),
            };
            w.write_all(b"RSET\r\n").await?;
            let reset = read_reply(&mut r).await?;
            Ok::<_, std::io::Error>(Err((refusal, reset.is_positive())))
        };
        let outcome = tokio::time::timeout(self.cfg.command_timeout, exchange).await;
        let broken = |why: String| {
            if data_sent {
                Attempt::Failed(SendError::Unknown(format!(
                    "{why}; the server may have accepted the message"
                )))
            } else {
                Attempt::BeforeData(temporary(format!("{why} before the message data")))
            }
        };
        match outcome {
            Err(_) => {
                conn.broken = true;
                Err(broken("the SMTP exchange timed out".into()))
            }
            Ok(Err(e)) => {
                conn.broken = true;
                Err(broken(format!("the SMTP connection broke: {e}")))
            }
            Ok(Ok(Ok(done))) if done.is_positive() => Ok(reply_text(&done)),
            Ok(Ok(Ok(refused))) => Err(Attempt::Failed(classify_reply(&refused))),
            Ok(Ok(Err((refused, reset)))) => {
                conn.broken = !reset;
                Err(Attempt::Failed(classify_reply(&refused)))
            }
        }
    }

    /// Open connections waiting in the pool.
    pub fn idle_connections(&self) -> usize {
        self.idle.lock().expect("smtp pool lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_starting_with_a_dot_are_stuffed() {
        let mut out = Vec::new();
        dot_stuff(b".a\r\nb.\r\n..c\r\n.", &mut out);
        assert_eq!(out, b"..a\r\nb.\r\n...c\r\n..");
    }

    #[test]
    fn urls_parse_into_configs() {
        let c = SmtpConfig::from_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("127.0.0.1", 2525, TlsMode::None)
        );
        assert_eq!(c.credentials, None);
        let c = SmtpConfig::from_url(
            "smtp://me%40x.org:p%3Ass@mail.example.com/mta.example.com?tls=required",
        )
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("mail.example.com", 587, TlsMode::Required)
        );
        assert_eq!(c.credentials, Some(("me@x.org".into(), "p:ss".into())));
        assert_eq!(c.hello_name, "mta.example.com");
        assert_eq!(SmtpConfig::from_url("smtp://h").unwrap().port, 25);
        let c = SmtpConfig::from_url("smtps://mail.example.com").unwrap();
        assert_eq!((c.port, c.tls), (465, TlsMode::Implicit));
        for bad in [
            "http://h",
            "smtps://h?tls=none",
            "smtp://h?ca_file=/nonexistent/ca.pem",
            "smtp://h?tls=required&other=1",
            "smtp://",
            "smtp://h:port",
            "smtp://h?tls=maybe",
            "smtp://u:%zz@h",
        ] {
            assert!(SmtpConfig::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_carry_id_and_one_click_unsubscribe_headers() {
        let email = OutgoingEmail {
            message_id: "m-1".into(),
            app_id: "app".into(),
            reply_to: vec!["help@example.com".into()],
            headers: vec![("X-Campaign".into(), "c1".into())],
            from: "News <news@example.com>".into(),
            to: "ada@example.org".into(),
            subject: "Hello".into(),
            text: Some("plain".into()),
            html: Some("<p>html</p>".into()),
            list_unsubscribe: Some("<https://herald.example.com/u/tok>".into()),
        };
        let raw = String::from_utf8(
            build_message(&email, "mta.example.com")
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert!(raw.contains("Message-ID: <m-1@mta.example.com>"), "{raw}");
        assert!(raw.contains("List-Unsubscribe: <https://herald.example.com/u/tok>"));
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("Reply-To: help@example.com"), "{raw}");
        assert!(raw.contains("X-Campaign: c1"), "{raw}");
        let bad = OutgoingEmail {
            to: "not an address".into(),
            ..email
        };
        assert!(matches!(
            build_message(&bad, "x"),
            Err(SendError::Invalid(_))
        ));
    }
}

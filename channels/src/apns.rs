//! Apple Push Notification service over HTTP/2 (`POST /3/device/{token}`).
//!
//! The base URL is configurable (Apple's production or sandbox host by
//! default; a local peer in tests), which a2's client does not allow. Auth
//! is a provider token (an ES256 JWT signed with the team's `.p8` key,
//! cached and renewed every 50 minutes: Apple refuses tokens older than an
//! hour and too frequent renewals) or a TLS client certificate.
//!
//! Connections: up to `connections` HTTP/2 connections, opened on first use
//! and again after they close; each carries at most `streams_per_connection`
//! requests at once (and never more than the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`, which hyper honours by queueing).
//!
//! Outcomes: 200 delivered (answers the `apns-id`); 429 and 5xx temporary;
//! `ExpiredProviderToken` temporary (the token is renewed); 400
//! `BadDeviceToken` and 410 `Unregistered` permanent, naming the reason, so
//! the endpoint is made inactive above; 413 invalid; other 4xx permanent. A
//! request that may have reached Apple before the connection broke is
//! `Unknown` (never sent again by the layers above).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::sync::Semaphore;

use crate::smtp::SendError;

/// Apple's production host.
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Apple's development (sandbox) host.
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// A provider token is renewed after this long (Apple: valid for an hour,
/// renew no more often than every 20 minutes).
pub const TOKEN_RENEW_SECS: i64 = 50 * 60;
/// Error bodies longer than this are cut (Apple's are ~50 bytes).
const ERROR_BODY_BYTES_MAX: usize = 4096;

#[derive(Debug, Clone)]
pub struct ApnsConfig {
    /// `https://host[:port]`, without a path.
    pub base_url: String,
    /// HTTP/2 connections at most (Apple: a few per provider).
    pub connections: usize,
    /// Requests in flight per connection at most.
    pub streams_per_connection: usize,
    /// Bounds connecting (TCP + TLS + HTTP/2) and each request.
    pub timeout: Duration,
    /// Certificates trusted besides the public roots (PEM).
    pub ca_pem: Option<Vec<u8>>,
}

impl ApnsConfig {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            connections: 2,
            streams_per_connection: 500,
            timeout: Duration::from_secs(10),
            ca_pem: None,
        }
    }
}

/// How herald proves to APNs that it may push for the app.
pub enum ApnsAuth {
    /// A provider token signed with the team's key (`TokenKey`, a PKCS#8
    /// PEM `.p8` file), naming `key_id` (`TokenKeyId`) and `team_id`.
    Token {
        key: Box<EcdsaKeyPair>,
        key_id: String,
        team_id: String,
    },
    /// A TLS client certificate (`Certificate`, `PrivateKey`; PEM).
    Certificate {
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    },
}

impl ApnsAuth {
    /// Token auth from the `.p8` key's PEM text.
    pub fn token(key_pem: &str, key_id: &str, team_id: &str) -> Result<Self, SendError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
            SendError::Invalid(format!("TokenKey is not a PKCS#8 PEM private key: {e}"))
        })?;
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| SendError::Invalid(format!("TokenKey is not a P-256 key: {e}")))?;
        if key_id.is_empty() || team_id.is_empty() {
            return Err(SendError::Invalid(
                "token authentication needs TokenKeyId and TeamId".into(),
            ));
        }
        Ok(ApnsAuth::Token {
            key: Box::new(key),
            key_id: key_id.to_owned(),
            team_id: team_id.to_owned(),
        })
    }

    /// Certificate auth from PEM text.
    pub fn certificate(cert_pem: &str, key_pem: &str) -> Result<Self, SendError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| SendError::Invalid(format!("Certificate is not PEM: {e}")))?;
        if chain.is_empty() {
            return Err(SendError::Invalid(
                "Certificate holds no PEM certificate".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| SendError::Invalid(format!("PrivateKey is not a PEM key: {e}")))?;
        Ok(ApnsAuth::Certificate { chain, key })
    }
}

/// One push to one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingPush {
    pub message_id: String,
    pub app_id: String,
    /// The device token (hex), the endpoint's `Address`.
    pub device_token: String,
    /// `apns-topic`: the app's bundle id (`.voip` appended for VoIP).
    pub topic: String,
    pub push: herald_model::push::ApnsPush,
}

/// One connection slot: the open connection's handle, read on every push
/// without waiting, and a lock taken only to (re)connect.
#[derive(Default)]
struct Conn {
    send: Mutex<Option<SendRequest<Full<Bytes>>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl Conn {
    fn open(&self) -> Option<SendRequest<Full<Bytes>>> {
        self.send
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|s| !s.is_closed())
            .cloned()
    }
}

/// Sends pushes to one APNs host with one identity.
pub struct ApnsClient {
    cfg: ApnsConfig,
    auth: ApnsAuth,
    tls: tokio_rustls::TlsConnector,
    host: String,
    port: u16,
    conns: Vec<Conn>,
    slots: Vec<Arc<Semaphore>>,
    next: AtomicUsize,
    /// The current provider token and when it was issued (unix seconds).
    token: Mutex<Option<(i64, String)>>,
}

impl ApnsClient {
    pub fn new(cfg: ApnsConfig, auth: ApnsAuth) -> Result<Self, SendError> {
        let rest = cfg.base_url.strip_prefix("https://").ok_or_else(|| {
            SendError::Invalid(format!("APNs URL {} is not https://", cfg.base_url))
        })?;
        if rest.is_empty() || rest.contains('/') {
            return Err(SendError::Invalid(format!(
                "APNs URL {} must be https://host[:port]",
                cfg.base_url
            )));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse()
                    .map_err(|_| SendError::Invalid(format!("bad port in {}", cfg.base_url)))?,
            ),
            None => (rest.to_owned(), 443),
        };
        let tls = tls_connector(&cfg, &auth)?;
        let n = cfg.connections.clamp(1, 64);
        let streams = cfg.streams_per_connection.clamp(1, 10_000);
        Ok(Self {
            conns: (0..n).map(|_| Conn::default()).collect(),
            slots: (0..n).map(|_| Arc::new(Semaphore::new(streams))).collect(),
            next: AtomicUsize::new(0),
            token: Mutex::new(None),
            cfg,
            auth,
            tls,
            host,
            port,
        })
    }

    /// Sends one push at `now_unix_secs` (the provider token's clock);
    /// answers the `apns-id` Apple gave it.
    pub async fn send(&self, p: &OutgoingPush, now_unix_secs: i64) -> Result<String, SendError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let deadline = tokio::time::Instant::now() + self.cfg.timeout;
        let _slot = tokio::time::timeout_at(deadline, self.slots[i].clone().acquire_owned())
            .await
            .map_err(|_| temporary(None, "no free APNs stream before the deadline"))?
            .map_err(|_| temporary(None, "the APNs client is closed"))?;
        let mut send = tokio::time::timeout_at(deadline, self.connection(i))
            .await
            .map_err(|_| temporary(None, "connecting to APNs timed out"))??;
        let req = self.request(p, now_unix_secs)?;
        // Until the request is handed to the connection nothing left.
        tokio::time::timeout_at(deadline, send.ready())
            .await
            .map_err(|_| temporary(None, "the APNs connection was not ready in time"))?
            .map_err(|e| temporary(None, &format!("APNs connection closed: {e}")))?;
        let answer = tokio::time::timeout_at(deadline, async {
            let resp = send.send_request(req).await?;
            let status = resp.status().as_u16();
            let apns_id = resp
                .headers()
                .get("apns-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(resp.into_body(), ERROR_BODY_BYTES_MAX)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper::Error>((status, apns_id, body))
        })
        .await;
        let (status, apns_id, body) = match answer {
            Err(_) => {
                return Err(SendError::Unknown(
                    "no answer from APNs before the deadline".into(),
                ))
            }
            Ok(Err(e)) => return Err(classify_transport(&e)),
            Ok(Ok(a)) => a,
        };
        if status == 200 {
            return Ok(format!(
                "200 apns-id {}",
                apns_id.unwrap_or_else(|| apns_id_of(&p.message_id))
            ));
        }
        let reason = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {status}"));
        if reason == "ExpiredProviderToken" {
            self.token.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        Err(classify(status, &reason))
    }

    /// The connection `i`, opened when it has none or it closed.
    async fn connection(&self, i: usize) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let slot = &self.conns[i];
        if let Some(send) = slot.open() {
            return Ok(send);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(send) = slot.open() {
            return Ok(send);
        }
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                temporary(
                    None,
                    &format!("connecting to APNs {}: {e}", self.cfg.base_url),
                )
            })?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| SendError::Invalid(format!("APNs host {}: {e}", self.host)))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| temporary(None, &format!("TLS with APNs: {e}")))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(temporary(None, "APNs did not agree to HTTP/2"));
        }
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // Nothing beyond one stream until the server's SETTINGS say more.
            .initial_max_send_streams(1)
            .keep_alive_interval(Duration::from_secs(60))
            .keep_alive_timeout(Duration::from_secs(20))
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| temporary(None, &format!("HTTP/2 with APNs: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "APNs connection ended");
            }
        });
        tracing::debug!(url = %self.cfg.base_url, connection = i, "APNs connection opened");
        *slot.send.lock().unwrap_or_else(|e| e.into_inner()) = Some(send.clone());
        Ok(send)
    }

    fn request(
        &self,
        p: &OutgoingPush,
        now_unix_secs: i64,
    ) -> Result<http::Request<Full<Bytes>>, SendError> {
        let token = &p.device_token;
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SendError::Permanent {
                code: 400,
                message: "BadDeviceToken: the device token is not hex".into(),
            });
        }
        let mut b = http::Request::post(format!("{}/3/device/{token}", self.cfg.base_url))
            .header("apns-topic", &p.topic)
            .header("apns-push-type", &p.push.push_type)
            .header("apns-priority", p.push.priority.to_string())
            .header("apns-id", apns_id_of(&p.message_id))
            .header("content-type", "application/json");
        if let Some(exp) = p.push.expiration {
            b = b.header("apns-expiration", exp.to_string());
        }
        if let Some(c) = &p.push.collapse_id {
            b = b.header("apns-collapse-id", c);
        }
        if let Some(jwt) = self.provider_token(now_unix_secs)? {
            b = b.header("authorization", format!("bearer {jwt}"));
        }
        b.body(Full::new(Bytes::from(p.push.payload.clone())))
            .map_err(|e| SendError::Invalid(format!("APNs request: {e}")))
    }

    /// The provider token for `now` (token auth), issued anew when the
    /// cached one is `TOKEN_RENEW_SECS` old or was refused as expired.
    fn provider_token(&self, now: i64) -> Result<Option<String>, SendError> {
        let ApnsAuth::Token {
            key,
            key_id,
            team_id,
        } = &self.auth
        else {
            return Ok(None);
        };
        let mut cached = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((issued, jwt)) = cached.as_ref() {
            if now >= *issued && now - issued < TOKEN_RENEW_SECS {
                return Ok(Some(jwt.clone()));
            }
        }
        let jwt = provider_jwt(key, key_id, team_id, now)?;
        tracing::info!(key_id = %key_id, team_id = %team_id, "APNs provider token issued");
        *cached = Some((now, jwt.clone()));
        Ok(Some(jwt))
    }
}

/// An ES256 JWT: `{"alg":"ES256","kid":key_id}.{"iss":team_id,"iat":now}`.
pub fn provider_jwt(
    key: &EcdsaKeyPair,
    key_id: &str,
    team_id: &str,
    now: i64,
) -> Result<String, SendError> {
    let header = serde_json::json!({ "alg": "ES256", "kid": key_id });
    let claims = serde_json::json!({ "iss": team_id, "iat": now });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .map_err(|_| SendError::Invalid("signing the APNs provider token failed".into()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(sig.as_ref())
    ))
}

/// The `apns-id` of a message: its id (32 hex digits) as a UUID.
pub fn apns_id_of(message_id: &str) -> String {
    let h: String = message_id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .chain(std::iter::repeat('0'))
        .take(32)
        .collect::<String>()
        .to_ascii_lowercase();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn temporary(code: Option<u16>, message: &str) -> SendError {
    SendError::Temporary {
        code,
        message: message.to_owned(),
    }
}

/// What an APNs error answer means for the message.
pub fn classify(status: u16, reason: &str) -> SendError {
    match (status, reason) {
        (429, _) | (500..=599, _) => temporary(Some(status), reason),
        (403, "ExpiredProviderToken") => temporary(Some(status), reason),
        (413, _) => SendError::Invalid(format!("APNs: {reason}")),
        _ => SendError::Permanent {
            code: status,
            message: reason.to_owned(),
        },
    }
}

/// Whether an APNs refusal means the device token is dead: the endpoint
/// should not be pushed to again.
pub fn is_dead_token(code: u16, message: &str) -> bool {
    code == 410 || (code == 400 && message.starts_with("BadDeviceToken"))
}

/// A request that failed in the connection: refused before processing
/// (REFUSED_STREAM, or never sent) is temporary; otherwise it may have
/// reached Apple.
fn classify_transport(e: &hyper::Error) -> SendError {
    use std::error::Error;
    let refused = e
        .source()
        .and_then(|s| s.downcast_ref::<h2::Error>())
        .and_then(|h| h.reason())
        .is_some_and(|r| r == h2::Reason::REFUSED_STREAM);
    if refused || e.is_canceled() {
        temporary(None, &format!("APNs did not take the request: {e}"))
    } else {
        SendError::Unknown(format!("the APNs exchange broke: {e}"))
    }
}

fn tls_connector(
    cfg: &ApnsConfig,
    auth: &ApnsAuth,
) -> Result<tokio_rustls::TlsConnector, SendError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &cfg.ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| SendError::Invalid(format!("APNs CA file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| SendError::Invalid(format!("APNs CA certificate: {e}")))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots);
    let mut config = match auth {
        ApnsAuth::Token { .. } => builder.with_no_client_auth(),
        ApnsAuth::Certificate { chain, key } => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| SendError::Invalid(format!("APNs certificate and key: {e}")))?,
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apns_ids_are_uuids_of_the_message_id() {
        assert_eq!(
            apns_id_of("06d2584a753dc3da27b8891a9711f83a"),
            "06d2584a-753d-c3da-27b8-891a9711f83a"
        );
        assert_eq!(apns_id_of("ab").len(), 36);
    }

    #[test]
    fn answers_are_classified_as_apple_documents_them() {
        assert!(classify(429, "TooManyRequests").is_retryable());
        assert!(classify(503, "ServiceUnavailable").is_retryable());
        assert!(classify(403, "ExpiredProviderToken").is_retryable());
        assert!(!classify(403, "InvalidProviderToken").is_retryable());
        assert!(matches!(
            classify(413, "PayloadTooLarge"),
            SendError::Invalid(_)
        ));
        let SendError::Permanent { code, message } = classify(410, "Unregistered") else {
            panic!("410 is permanent")
        };
        assert!(is_dead_token(code, &message));
        let SendError::Permanent { code, message } = classify(400, "BadDeviceToken") else {
            panic!("400 is permanent")
        };
        assert!(is_dead_token(code, &message));
        assert!(!is_dead_token(400, "BadTopic"));
    }
}

/// Who a push is sent as: an app's APNs channel, as stored when the push
/// was planned (`version` changes with every update of the channel).
#[derive(Clone, PartialEq, Eq)]
pub struct ApnsIdentity {
    pub app_id: String,
    /// `APNS`, `APNS_SANDBOX`, `APNS_VOIP` or `APNS_VOIP_SANDBOX`.
    pub platform: String,
    pub version: u32,
    /// Token auth: the `.p8` key's PEM, its key id and the team id.
    pub token: Option<(String, String, String)>,
    /// Certificate auth: the certificate chain's and the key's PEM.
    pub certificate: Option<(String, String)>,
    /// Use the certificate even when a token is there too.
    pub prefer_certificate: bool,
}

impl std::fmt::Debug for ApnsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("ApnsIdentity")
            .field("app_id", &self.app_id)
            .field("platform", &self.platform)
            .field("version", &self.version)
            .field("token", &self.token.is_some())
            .field("certificate", &self.certificate.is_some())
            .finish()
    }
}

impl ApnsIdentity {
    /// Whether it sends to Apple's development environment.
    pub fn sandbox(&self) -> bool {
        self.platform.ends_with("_SANDBOX")
    }

    fn auth(&self) -> Result<ApnsAuth, SendError> {
        match (&self.token, &self.certificate) {
            (Some((key, kid, team)), None) => ApnsAuth::token(key, kid, team),
            (Some((key, kid, team)), Some(_)) if !self.prefer_certificate => {
                ApnsAuth::token(key, kid, team)
            }
            (_, Some((cert, key))) => ApnsAuth::certificate(cert, key),
            (None, None) => Err(SendError::Invalid(format!(
                "the {} channel has no credentials",
                self.platform
            ))),
        }
    }
}

/// Where the pool's clients connect.
#[derive(Debug, Clone)]
pub struct ApnsPoolConfig {
    pub production_url: String,
    pub sandbox_url: String,
    /// Per client (one client per app channel).
    pub connections: usize,
    pub streams_per_connection: usize,
    pub timeout: Duration,
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for ApnsPoolConfig {
    fn default() -> Self {
        Self {
            production_url: PRODUCTION_URL.into(),
            sandbox_url: SANDBOX_URL.into(),
            connections: 2,
            streams_per_connection: 500,
            timeout: Duration::from_secs(10),
            ca_pem: None,
        }
    }
}

/// Clients kept per app channel at most; the least recently built goes.
const POOL_CLIENTS_MAX: usize = 1024;

/// The node's APNs clients, one per (app, channel), built on first use and
/// again when the channel's version changes.
pub struct ApnsPool {
    cfg: ApnsPoolConfig,
    #[allow(clippy::type_complexity)]
    clients: Mutex<std::collections::BTreeMap<(String, String), (u32, u64, Arc<ApnsClient>)>>,
    built: std::sync::atomic::AtomicU64,
}

impl ApnsPool {
    pub fn new(cfg: ApnsPoolConfig) -> Self {
        Self {
            cfg,
            clients: Mutex::new(std::collections::BTreeMap::new()),
            built: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn client(&self, id: &ApnsIdentity) -> Result<Arc<ApnsClient>, SendError> {
        let key = (id.app_id.clone(), id.platform.clone());
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((version, _, c)) = clients.get(&key) {
            if *version == id.version {
                return Ok(c.clone());
            }
        }
        let mut cfg = ApnsConfig::new(if id.sandbox() {
            &self.cfg.sandbox_url
        } else {
            &self.cfg.production_url
        });
        cfg.connections = self.cfg.connections;
        cfg.streams_per_connection = self.cfg.streams_per_connection;
        cfg.timeout = self.cfg.timeout;
        cfg.ca_pem = self.cfg.ca_pem.clone();
        let client = Arc::new(ApnsClient::new(cfg, id.auth()?)?);
        if clients.len() >= POOL_CLIENTS_MAX && !clients.contains_key(&key) {
            let oldest = clients
                .iter()
                .min_by_key(|(_, (_, n, _))| *n)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                clients.remove(&k);
            }
        }
        let n = self.built.fetch_add(1, Ordering::Relaxed);
        clients.insert(key, (id.version, n, client.clone()));
        Ok(client)
    }

    /// Sends `push` as `id`.
    pub async fn send(
        &self,
        id: &ApnsIdentity,
        push: &OutgoingPush,
        now_unix_secs: i64,
    ) -> Result<String, SendError> {
        self.client(id)?.send(push, now_unix_secs).await
    }
}

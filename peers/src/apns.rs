//! A mock APNs: HTTP/2 over TLS on loopback, advertising a concurrent-stream
//! limit as Apple does, checking each push as Apple would (path, method,
//! `apns-*` headers, the provider token's ES256 signature, key id, team and
//! age), and recording what it accepted.
//!
//! Scripted answers, by the device token's first four hex digits:
//! `dead` → 410 `Unregistered`; `bad0` → 400 `BadDeviceToken`; `c429` →
//! 429 `TooManyRequests` on the first two pushes to that token; `c503` →
//! 503 `ServiceUnavailable` on the first. Every other token is accepted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde::Serialize;

/// Provider tokens older than this are refused (Apple: one hour).
pub const TOKEN_AGE_SECS_MAX: i64 = 3600;

#[derive(Debug, Clone)]
pub struct MockApnsConfig {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` of every connection.
    pub max_concurrent_streams: u32,
    /// Token auth: the team, key id and the key's public point
    /// (uncompressed, 65 bytes). `None`: no token is asked for (certificate
    /// auth).
    pub token: Option<(String, String, Vec<u8>)>,
    /// Pushes must name this topic, when set.
    pub topic: Option<String>,
    /// Certificate auth: connections must present a client certificate
    /// issued by this CA (PEM).
    pub client_ca_pem: Option<String>,
    /// Record each push (benchmarks turn it off).
    pub record: bool,
}

/// What the mock saw of one push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Push {
    pub device_token: String,
    pub topic: String,
    pub push_type: String,
    pub priority: Option<String>,
    pub expiration: Option<String>,
    pub collapse_id: Option<String>,
    pub apns_id: Option<String>,
    /// `iat` of the provider token.
    pub token_issued_at: Option<i64>,
    pub payload: serde_json::Value,
    /// What the mock answered.
    pub status: u16,
    pub reason: Option<String>,
}

struct State {
    cfg: MockApnsConfig,
    pushes: Mutex<Vec<Push>>,
    /// Pushes seen per device token (for the scripted failures).
    tries: Mutex<BTreeMap<String, u32>>,
    accepted: AtomicU64,
    /// The most requests one connection had in flight at once.
    in_flight_max: AtomicUsize,
    /// Tokens issued before this are answered `ExpiredProviderToken`.
    expire_before: AtomicI64,
    /// The mock's clock for token ages (unix seconds), set by the test.
    now: AtomicI64,
}

pub struct MockApns {
    addr: SocketAddr,
    ca_pem: String,
    state: Arc<State>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl MockApns {
    /// Listens on `addr` (port 0: any free one) with a fresh self-signed
    /// certificate for 127.0.0.1 and localhost.
    pub async fn start(addr: SocketAddr, cfg: MockApnsConfig) -> anyhow::Result<Self> {
        let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])?;
        let ca_pem = cert.pem();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match &cfg.client_ca_pem {
            Some(pem) => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    roots.add(c?)?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut tls = builder.with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into()),
        )?;
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            cfg,
            pushes: Mutex::new(Vec::new()),
            tries: Mutex::new(BTreeMap::new()),
            accepted: AtomicU64::new(0),
            in_flight_max: AtomicUsize::new(0),
            expire_before: AtomicI64::new(i64::MIN),
            now: AtomicI64::new(i64::MIN),
        });
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = listener.accept() => match a {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                    _ = stopped.changed() => return,
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, st) = (acceptor.clone(), st.clone());
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let streams = st.cfg.max_concurrent_streams;
                    let on_this = Arc::new(AtomicUsize::new(0));
                    let service = hyper::service::service_fn(move |req| {
                        let (st, on_this) = (st.clone(), on_this.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(handle(&st, &on_this, req).await)
                        }
                    });
                    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .max_concurrent_streams(streams)
                        .serve_connection(TokioIo::new(tls), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = stopped.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            ca_pem,
            state,
            stop,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The certificate clients must trust (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Every push answered so far, in order (when recording).
    pub fn pushes(&self) -> Vec<Push> {
        self.state
            .pushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Pushes answered 200.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::Relaxed)
    }

    /// The most requests one connection had in flight at once (the
    /// stream limit applies per connection).
    pub fn in_flight_max(&self) -> usize {
        self.state.in_flight_max.load(Ordering::Relaxed)
    }

    /// Starts counting `in_flight_max` afresh.
    pub fn reset_in_flight_max(&self) {
        self.state.in_flight_max.store(0, Ordering::Relaxed);
    }

    /// Sets the mock's clock (unix seconds) that token ages count from;
    /// unset, tokens are not checked for age.
    pub fn set_now(&self, now: i64) {
        self.state.now.store(now, Ordering::Relaxed);
    }

    /// Answers `ExpiredProviderToken` to tokens issued before `iat`.
    pub fn expire_tokens_before(&self, iat: i64) {
        self.state.expire_before.store(iat, Ordering::Relaxed);
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for MockApns {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answer(status: StatusCode, reason: Option<&str>) -> Response<Full<Bytes>> {
    let body = match reason {
        Some(r) => Bytes::from(serde_json::json!({ "reason": r }).to_string()),
        None => Bytes::new(),
    };
    Response::builder()
        .status(status)
        .body(Full::new(body))
        .expect("a valid response")
}

async fn handle(
    st: &State,
    on_this: &AtomicUsize,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let now = on_this.fetch_add(1, Ordering::SeqCst) + 1;
    st.in_flight_max.fetch_max(now, Ordering::SeqCst);
    let res = check(st, req).await;
    on_this.fetch_sub(1, Ordering::SeqCst);
    res
}

async fn check(st: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = req.uri().path().to_owned();
    let Some(device_token) = path.strip_prefix("/3/device/").map(str::to_owned) else {
        return answer(StatusCode::NOT_FOUND, Some("BadPath"));
    };
    if req.method() != http::Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED, Some("MethodNotAllowed"));
    }
    let mut push = Push {
        device_token: device_token.clone(),
        topic: header("apns-topic").unwrap_or_default(),
        push_type: header("apns-push-type").unwrap_or_default(),
        priority: header("apns-priority"),
        expiration: header("apns-expiration"),
        collapse_id: header("apns-collapse-id"),
        apns_id: header("apns-id"),
        token_issued_at: None,
        payload: serde_json::Value::Null,
        status: 200,
        reason: None,
    };
    let auth = header("authorization");
    let body = match Limited::new(req.into_body(), 8192).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return record(st, push, StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
    };
    if body.len() > 5120 || (push.push_type != "voip" && body.len() > 4096) {
        return record(st, push, StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge");
    }
    push.payload = match serde_json::from_slice(&body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => return record(st, push, StatusCode::BAD_REQUEST, "PayloadEmpty"),
    };
    if let Some((team, key_id, public)) = &st.cfg.token {
        let Some(jwt) = auth.as_deref().and_then(|a| a.strip_prefix("bearer ")) else {
            return record(st, push, StatusCode::FORBIDDEN, "MissingProviderToken");
        };
        match verify_jwt(jwt, team, key_id, public) {
            Ok(iat) => push.token_issued_at = Some(iat),
            Err(reason) => return record(st, push, StatusCode::FORBIDDEN, reason),
        }
        let iat = push.token_issued_at.unwrap_or_default();
        let now = st.now.load(Ordering::Relaxed);
        if iat < st.expire_before.load(Ordering::Relaxed)
            || (now != i64::MIN && now - iat > TOKEN_AGE_SECS_MAX)
        {
            return record(st, push, StatusCode::FORBIDDEN, "ExpiredProviderToken");
        }
    }
    if push.topic.is_empty() {
        return record(st, push, StatusCode::BAD_REQUEST, "MissingTopic");
    }
    if st.cfg.topic.as_ref().is_some_and(|t| *t != push.topic) {
        return record(st, push, StatusCode::BAD_REQUEST, "DeviceTokenNotForTopic");
    }
    if push.push_type.is_empty() {
        return record(st, push, StatusCode::BAD_REQUEST, "InvalidPushType");
    }
    if push
        .priority
        .as_deref()
        .is_some_and(|p| p != "10" && p != "5")
    {
        return record(st, push, StatusCode::BAD_REQUEST, "BadPriority");
    }
    if device_token.is_empty() || !device_token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return record(st, push, StatusCode::BAD_REQUEST, "BadDeviceToken");
    }
    let tries = {
        let mut t = st.tries.lock().unwrap_or_else(|e| e.into_inner());
        let n = t.entry(device_token.clone()).or_insert(0);
        *n += 1;
        *n
    };
    match &device_token[..device_token.len().min(4)] {
        "dead" => record(st, push, StatusCode::GONE, "Unregistered"),
        "bad0" => record(st, push, StatusCode::BAD_REQUEST, "BadDeviceToken"),
        "c429" if tries <= 2 => record(st, push, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
        "c503" if tries <= 1 => record(
            st,
            push,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
        ),
        _ => {
            st.accepted.fetch_add(1, Ordering::Relaxed);
            let id = push.apns_id.clone();
            if st.cfg.record {
                st.pushes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(push);
            }
            let mut r = answer(StatusCode::OK, None);
            if let Some(id) = id.and_then(|i| http::HeaderValue::from_str(&i).ok()) {
                r.headers_mut().insert("apns-id", id);
            }
            r
        }
    }
}

fn record(st: &State, mut push: Push, status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    push.status = status.as_u16();
    push.reason = Some(reason.to_owned());
    if st.cfg.record {
        st.pushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(push);
    }
    answer(status, Some(reason))
}

/// Checks an ES256 provider token; answers its `iat`, or Apple's reason.
fn verify_jwt(jwt: &str, team: &str, key_id: &str, public: &[u8]) -> Result<i64, &'static str> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("InvalidProviderToken");
    };
    let decode = |p: &str| {
        URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| "InvalidProviderToken")
    };
    let header: serde_json::Value =
        serde_json::from_slice(&decode(h)?).map_err(|_| "InvalidProviderToken")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&decode(c)?).map_err(|_| "InvalidProviderToken")?;
    if header["alg"] != "ES256" || header["kid"] != key_id {
        return Err("InvalidProviderToken");
    }
    if claims["iss"] != team {
        return Err("InvalidProviderToken");
    }
    let signed = format!("{h}.{c}");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public)
        .verify(signed.as_bytes(), &decode(s)?)
        .map_err(|_| "InvalidProviderToken")?;
    claims["iat"].as_i64().ok_or("InvalidProviderToken")
}

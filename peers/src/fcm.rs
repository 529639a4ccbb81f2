//! A mock FCM (HTTP v1 API and Google's OAuth2 token endpoint) over plain
//! HTTP/1.1 on loopback.
//!
//! `POST /token` takes a JWT-bearer grant, checks its RS256 signature with
//! the service account's public key, its issuer, audience and scope, and
//! hands out an access token valid for an hour. `POST
//! /v1/projects/{project}/messages:send` wants one of those tokens and a
//! `message` with a `token`. Scripted answers, by the registration token's
//! first four characters: `dead` → 404 `UNREGISTERED`; `q429` → 429
//! `QUOTA_EXCEEDED` with `Retry-After: 1` on the first push to it; `u503` →
//! 503 `UNAVAILABLE` on the first. The bundled test key and
//! [`service_json`] make a matching service account.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde::Serialize;

/// The RSA key of the tests' service account (PKCS#8 PEM; test-only).
pub const TEST_KEY_PEM: &str = include_str!("../testdata/fcm-test-key.pem");
/// Another RSA key (test-only), whose grants the mock refuses.
pub const OTHER_KEY_PEM: &str = include_str!("../testdata/fcm-other-key.pem");
pub const CLIENT_EMAIL: &str = "herald-test@herald-test.iam.gserviceaccount.com";

/// A service account JSON for `project` whose token endpoint is `token_uri`.
pub fn service_json(project: &str, token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": "0123456789abcdef",
        "private_key": TEST_KEY_PEM,
        "client_email": CLIENT_EMAIL,
        "client_id": "1",
        "token_uri": token_uri,
    })
    .to_string()
}

/// What the mock saw of one send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sent {
    pub project: String,
    pub device_token: String,
    pub message: serde_json::Value,
    pub status: u16,
    pub error: Option<String>,
}

struct State {
    public_key: Vec<u8>,
    tokens: Mutex<BTreeSet<String>>,
    grants: AtomicU64,
    sent: Mutex<Vec<Sent>>,
    tries: Mutex<BTreeMap<String, u32>>,
    base: String,
}

pub struct MockFcm {
    addr: SocketAddr,
    state: Arc<State>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl MockFcm {
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Self> {
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(TEST_KEY_PEM.as_bytes())?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| anyhow::anyhow!("test key: {e}"))?;
        let public_key = ring::signature::KeyPair::public_key(&key).as_ref().to_vec();
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            public_key,
            tokens: Mutex::new(BTreeSet::new()),
            grants: AtomicU64::new(0),
            sent: Mutex::new(Vec::new()),
            tries: Mutex::new(BTreeMap::new()),
            base: format!("http://127.0.0.1:{}", addr.port()),
        });
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    _ = stopped.changed() => return,
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&st, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, stop })
    }

    /// `http://127.0.0.1:PORT` (the FCM base URL).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    /// Access tokens granted so far.
    pub fn grants(&self) -> u64 {
        self.state.grants.load(Ordering::Relaxed)
    }

    /// Forgets every access token granted (as if they expired).
    pub fn revoke_tokens(&self) {
        self.state
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.state
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for MockFcm {
    fn drop(&mut self) {
        self.stop();
    }
}

fn error(status: StatusCode, code: &str, fcm_code: Option<&str>) -> Response<Full<Bytes>> {
    let details = match fcm_code {
        Some(c) => serde_json::json!([{
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": c
        }]),
        None => serde_json::json!([]),
    };
    let body = serde_json::json!({ "error": {
        "code": status.as_u16(), "message": format!("mock: {code}"), "status": code, "details": details
    }});
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

fn ok(body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

async fn handle(st: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = Limited::new(req.into_body(), 64 * 1024).collect().await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "INVALID_ARGUMENT", None);
    };
    let body = body.to_bytes();
    if path == "/token" {
        return grant(st, &body);
    }
    let Some(project) = path
        .strip_prefix("/v1/projects/")
        .and_then(|p| p.strip_suffix("/messages:send"))
        .map(str::to_owned)
    else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", None);
    };
    let token_ok = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| {
            st.tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(t)
        });
    let message: serde_json::Value = serde_json::from_slice::<serde_json::Value>(&body)
        .map(|v| v["message"].clone())
        .unwrap_or_default();
    let device_token = message["token"].as_str().unwrap_or_default().to_owned();
    let mut sent = Sent {
        project: project.clone(),
        device_token: device_token.clone(),
        message,
        status: 200,
        error: None,
    };
    let answer = if !token_ok {
        Err((StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", None, None))
    } else if device_token.is_empty() {
        Err((StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", None, None))
    } else {
        let tries = {
            let mut t = st.tries.lock().unwrap_or_else(|e| e.into_inner());
            let n = t.entry(device_token.clone()).or_insert(0);
            *n += 1;
            *n
        };
        match &device_token[..device_token.len().min(4)] {
            "dead" => Err((
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                Some("UNREGISTERED"),
                None,
            )),
            "q429" if tries == 1 => Err((
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                Some("QUOTA_EXCEEDED"),
                Some("1"),
            )),
            "u503" if tries == 1 => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                Some("UNAVAILABLE"),
                Some("0"),
            )),
            _ => Ok(()),
        }
    };
    let resp = match answer {
        Ok(()) => ok(serde_json::json!({
            "name": format!("projects/{project}/messages/{}", st.sent.lock().unwrap_or_else(|e| e.into_inner()).len() + 1)
        })),
        Err((status, code, fcm, retry_after)) => {
            sent.status = status.as_u16();
            sent.error = Some(fcm.unwrap_or(code).to_owned());
            let mut r = error(status, code, fcm);
            if let Some(s) = retry_after {
                r.headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static(s));
            }
            r
        }
    };
    st.sent.lock().unwrap_or_else(|e| e.into_inner()).push(sent);
    resp
}

fn grant(st: &State, body: &[u8]) -> Response<Full<Bytes>> {
    let form: BTreeMap<String, String> = form_pairs(body);
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type", None);
    }
    let Some(jwt) = form.get("assertion") else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", None);
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let valid = parts.len() == 3
        && URL_SAFE_NO_PAD.decode(parts[2]).ok().is_some_and(|sig| {
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &st.public_key)
                .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
                .is_ok()
        });
    let claims: serde_json::Value = parts
        .get(1)
        .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
        .and_then(|c| serde_json::from_slice(&c).ok())
        .unwrap_or_default();
    if !valid
        || claims["iss"] != CLIENT_EMAIL
        || claims["aud"] != format!("{}/token", st.base)
        || claims["scope"] != "https://www.googleapis.com/auth/firebase.messaging"
    {
        return error(StatusCode::BAD_REQUEST, "invalid_grant", None);
    }
    let n = st.grants.fetch_add(1, Ordering::Relaxed) + 1;
    let token = format!("ya29.mock-{n}");
    st.tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(token.clone());
    ok(serde_json::json!({ "access_token": token, "expires_in": 3599, "token_type": "Bearer" }))
}

fn form_pairs(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

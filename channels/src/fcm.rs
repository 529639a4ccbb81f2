//! Firebase Cloud Messaging, HTTP v1 API
//! (`POST {base}/v1/projects/{project}/messages:send`).
//!
//! Auth: an OAuth2 access token obtained with the service account's key
//! (a JWT grant, RS256, against the account's `token_uri` or a configured
//! token URL), cached until five minutes before it expires and fetched
//! anew when FCM answers 401. The legacy server key API is gone (Google
//! turned it off in 2024) and is refused when a channel is written.
//!
//! Outcomes: 200 delivered (answers the message name); 429 and 5xx
//! temporary, with FCM's `Retry-After` when it gives one; `UNREGISTERED`
//! permanent and names the token dead (the endpoint is made inactive
//! above); other 4xx permanent with FCM's status. A request whose answer
//! never came may have reached FCM: `Unknown`.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde::Deserialize;

use crate::smtp::SendError;

/// Google's FCM host.
pub const FCM_URL: &str = "https://fcm.googleapis.com";
/// The OAuth2 scope FCM sends need.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// An access token is fetched anew this long before it expires.
const TOKEN_MARGIN_SECS: i64 = 300;
/// Error bodies read at most.
const ERROR_BODY_BYTES_MAX: usize = 16 * 1024;

#[derive(Deserialize)]
struct ServiceJson {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    client_email: Option<String>,
    token_uri: Option<String>,
}

/// A Google service account: who signs the token grants, for which project.
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key_id: String,
    pub token_uri: String,
    key: RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .finish()
    }
}

impl ServiceAccount {
    /// Reads the service account JSON Firebase hands out (`ServiceJson`).
    pub fn from_json(json: &str) -> Result<Self, SendError> {
        let bad = |m: &str| SendError::Invalid(format!("ServiceJson: {m}"));
        let s: ServiceJson = serde_json::from_str(json)
            .map_err(|e| bad(&format!("not a service account JSON: {e}")))?;
        if s.kind.as_deref() != Some("service_account") {
            return Err(bad("\"type\" must be \"service_account\""));
        }
        let field = |v: Option<String>, name: &str| {
            v.filter(|v| !v.trim().is_empty())
                .ok_or_else(|| bad(&format!("{name} is missing")))
        };
        let pem = field(s.private_key, "private_key")?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| bad(&format!("private_key is not a PKCS#8 PEM key: {e}")))?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| bad(&format!("private_key is not an RSA key: {e}")))?;
        Ok(Self {
            project_id: field(s.project_id, "project_id")?,
            client_email: field(s.client_email, "client_email")?,
            private_key_id: s.private_key_id.unwrap_or_default(),
            token_uri: s
                .token_uri
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
            key,
        })
    }

    /// The signed JWT of a token grant for `audience` at `now`.
    pub fn grant_assertion(&self, audience: &str, now: i64) -> Result<String, SendError> {
        let header =
            serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": self.private_key_id });
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": FCM_SCOPE,
            "aud": audience,
            "iat": now,
            "exp": now + 3600,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| SendError::Invalid("signing the FCM token grant failed".into()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

#[derive(Debug, Clone)]
pub struct FcmConfig {
    /// `http(s)://host[:port]` of the FCM API.
    pub base_url: String,
    /// Where access tokens come from; `None`: the account's `token_uri`.
    pub token_url: Option<String>,
    /// Bounds each request (token grants and sends).
    pub timeout: Duration,
    /// Certificates trusted besides the public roots (PEM).
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for FcmConfig {
    fn default() -> Self {
        Self {
            base_url: FCM_URL.into(),
            token_url: None,
            timeout: Duration::from_secs(10),
            ca_pem: None,
        }
    }
}

/// Sends FCM messages as one service account.
pub struct FcmClient {
    http: reqwest::Client,
    cfg: FcmConfig,
    account: ServiceAccount,
    /// The access token and when it must be renewed (unix seconds).
    token: tokio::sync::Mutex<Option<(i64, String)>>,
}

impl FcmClient {
    pub fn new(cfg: FcmConfig, account: ServiceAccount) -> Result<Self, SendError> {
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .tcp_nodelay(true);
        if let Some(pem) = &cfg.ca_pem {
            for c in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| SendError::Invalid(format!("FCM CA certificates: {e}")))?
            {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| SendError::Invalid(format!("FCM client: {e}")))?;
        Ok(Self {
            http,
            cfg,
            account,
            token: tokio::sync::Mutex::new(None),
        })
    }

    pub fn project_id(&self) -> &str {
        &self.account.project_id
    }

    /// A valid access token at `now`, fetched when there is none left.
    async fn access_token(&self, now: i64) -> Result<String, SendError> {
        let mut cached = self.token.lock().await;
        if let Some((renew_at, t)) = cached.as_ref() {
            if now < *renew_at {
                return Ok(t.clone());
            }
        }
        let url = self
            .cfg
            .token_url
            .clone()
            .unwrap_or_else(|| self.account.token_uri.clone());
        let assertion = self.account.grant_assertion(&url, now)?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &assertion)
            .finish();
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| temporary(None, &format!("FCM token grant at {url}: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if status != 200 {
            let text: String = body.chars().take(300).collect();
            return Err(if status == 429 || status >= 500 {
                temporary(Some(status), &format!("FCM token grant: {text}"))
            } else {
                SendError::Permanent {
                    code: status,
                    message: format!("FCM token grant refused: {text}"),
                }
            });
        }
        #[derive(Deserialize)]
        struct Grant {
            access_token: String,
            expires_in: Option<i64>,
        }
        let g: Grant = serde_json::from_str(&body)
            .map_err(|e| temporary(None, &format!("FCM token grant answer: {e}")))?;
        let renew_at = now + g.expires_in.unwrap_or(3600) - TOKEN_MARGIN_SECS;
        tracing::info!(project_id = %self.account.project_id, "FCM access token obtained");
        *cached = Some((renew_at, g.access_token.clone()));
        Ok(g.access_token)
    }

    /// Sends one message (`body`, FCM's `{"message": ...}` JSON) at `now`;
    /// answers the message name FCM gave it.
    pub async fn send(&self, body: &[u8], now: i64) -> Result<String, SendError> {
        let token = self.access_token(now).await?;
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.cfg.base_url.trim_end_matches('/'),
            self.account.project_id
        );
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    temporary(None, &format!("connecting to FCM: {e}"))
                } else {
                    SendError::Unknown(format!("the FCM exchange broke: {e}"))
                }
            })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut bytes = Vec::new();
        let mut resp = resp;
        while let Ok(Some(chunk)) = resp.chunk().await {
            if bytes.len() + chunk.len() > ERROR_BODY_BYTES_MAX {
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if status == 200 {
            let name = json["name"].as_str().unwrap_or_default();
            return Ok(format!("200 {name}"));
        }
        if status == 401 {
            self.token.lock().await.take();
        }
        let code = json["error"]["details"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|d| d["errorCode"].as_str())
            .or_else(|| json["error"]["status"].as_str())
            .unwrap_or("")
            .to_owned();
        let message = json["error"]["message"].as_str().unwrap_or_default();
        let reason = if code.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("{code}: {message}")
        };
        Err(classify(status, &reason, retry_after))
    }
}

fn temporary(code: Option<u16>, message: &str) -> SendError {
    SendError::Temporary {
        code,
        message: message.to_owned(),
    }
}

/// What an FCM error answer means for the message.
pub fn classify(status: u16, reason: &str, retry_after_secs: Option<u64>) -> SendError {
    match status {
        429 | 500..=599 => match retry_after_secs {
            Some(s) => SendError::Throttled {
                code: status,
                message: reason.to_owned(),
                after_ms: s.saturating_mul(1000),
            },
            None => temporary(Some(status), reason),
        },
        // The access token was refused: renewed, then retried.
        401 => temporary(Some(status), reason),
        _ => SendError::Permanent {
            code: status,
            message: reason.to_owned(),
        },
    }
}

/// Whether an FCM refusal means the registration token is dead.
pub fn is_dead_token(_code: u16, message: &str) -> bool {
    message.starts_with("UNREGISTERED")
}

/// Who a message is sent as: an app's GCM channel as planned.
#[derive(Clone, PartialEq, Eq)]
pub struct FcmIdentity {
    pub app_id: String,
    pub version: u32,
    /// The service account JSON.
    pub service_json: String,
}

impl std::fmt::Debug for FcmIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmIdentity")
            .field("app_id", &self.app_id)
            .field("version", &self.version)
            .finish()
    }
}

/// One FCM message to one registration token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingFcm {
    pub message_id: String,
    pub app_id: String,
    pub device_token: String,
    /// `{"message": ...}`.
    pub body: Vec<u8>,
}

/// The node's FCM clients, one per app channel version.
pub struct FcmPool {
    cfg: FcmConfig,
    #[allow(clippy::type_complexity)]
    clients: std::sync::Mutex<std::collections::BTreeMap<String, (u32, Arc<FcmClient>)>>,
}

/// Clients kept at most; one is dropped at random past it.
const POOL_CLIENTS_MAX: usize = 1024;

impl FcmPool {
    pub fn new(cfg: FcmConfig) -> Self {
        Self {
            cfg,
            clients: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    fn client(&self, id: &FcmIdentity) -> Result<Arc<FcmClient>, SendError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, c)) = clients.get(&id.app_id) {
            if *v == id.version {
                return Ok(c.clone());
            }
        }
        let client = Arc::new(FcmClient::new(
            self.cfg.clone(),
            ServiceAccount::from_json(&id.service_json)?,
        )?);
        if clients.len() >= POOL_CLIENTS_MAX {
            if let Some(k) = clients.keys().next().cloned() {
                clients.remove(&k);
            }
        }
        clients.insert(id.app_id.clone(), (id.version, client.clone()));
        Ok(client)
    }

    pub async fn send(
        &self,
        id: &FcmIdentity,
        msg: &OutgoingFcm,
        now: i64,
    ) -> Result<String, SendError> {
        self.client(id)?.send(&msg.body, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_fcm_documents_them() {
        assert!(matches!(
            classify(429, "QUOTA_EXCEEDED: x", Some(7)),
            SendError::Throttled { after_ms: 7000, .. }
        ));
        assert!(classify(503, "UNAVAILABLE", None).is_retryable());
        assert!(classify(401, "UNAUTHENTICATED", None).is_retryable());
        let SendError::Permanent { code, message } = classify(404, "UNREGISTERED: gone", None)
        else {
            panic!("404 is permanent")
        };
        assert!(is_dead_token(code, &message));
        assert!(!is_dead_token(400, "INVALID_ARGUMENT: x"));
    }

    #[test]
    fn a_service_account_needs_its_fields_and_an_rsa_key() {
        let e = ServiceAccount::from_json(r#"{"type":"service_account"}"#).unwrap_err();
        assert!(e.to_string().contains("private_key"), "{e}");
        let e = ServiceAccount::from_json(r#"{"type":"authorized_user"}"#).unwrap_err();
        assert!(e.to_string().contains("service_account"), "{e}");
        assert!(ServiceAccount::from_json("AIzaSyLegacyServerKey").is_err());
    }
}

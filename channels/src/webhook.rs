//! The custom channel's transport: an HTTP POST of a JSON body to the
//! campaign's or request's `DeliveryUri`, signed so the receiver can check
//! that herald sent it.
//!
//! Signature: `X-Herald-Timestamp: <unix seconds>` and
//! `X-Herald-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! A receiver recomputes the HMAC over the raw body and rejects old
//! timestamps. Outcomes: 2xx delivered; 429, 5xx, timeouts and connection
//! failures temporary; any other status permanent. `https://` URLs are
//! verified with rustls against the public roots and, when configured, a
//! private CA (`[delivery] webhook_ca_file`).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::smtp::SendError;

pub const TIMESTAMP_HEADER: &str = "X-Herald-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Herald-Signature";

/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct WebhookClient {
    http: reqwest::Client,
    secret: Vec<u8>,
}

impl WebhookClient {
    /// `timeout` bounds each whole request (connect, send, response);
    /// `ca_pem` holds certificates trusted besides the public roots.
    pub fn new(
        secret: Vec<u8>,
        timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, SendError> {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .https_only(false);
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| SendError::Invalid(format!("webhook CA certificates: {e}")))?;
            if certs.is_empty() {
                return Err(SendError::Invalid(
                    "the webhook CA file holds no PEM certificate".into(),
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| SendError::Invalid(format!("webhook client: {e}")))?;
        Ok(Self { http, secret })
    }

    /// POSTs `body` (JSON) to `url`, signed at `now_unix_secs` with the
    /// client's secret; answers the response status.
    pub async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        now_unix_secs: i64,
    ) -> Result<u16, SendError> {
        self.post_signed(url, body, now_unix_secs, &self.secret)
            .await
    }

    /// A signed POST whose answer matters (campaign hooks): the 2xx body,
    /// at most `response_bytes_max` bytes.
    pub async fn call_signed(
        &self,
        url: &str,
        body: Vec<u8>,
        now_unix_secs: i64,
        secret: &[u8],
        response_bytes_max: usize,
    ) -> Result<Vec<u8>, SendError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SendError::Invalid(format!(
                "hook URL {url:?}: must be http:// or https://"
            )));
        }
        let sig = signature(secret, now_unix_secs, &body);
        let mut resp = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, now_unix_secs.to_string())
            .header(SIGNATURE_HEADER, sig)
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Unknown(format!("POST {url}: {e}")))?;
        let status = resp.status().as_u16();
        if !(200..=299).contains(&status) {
            return Err(SendError::Permanent {
                code: status,
                message: format!("POST {url} answered {status}"),
            });
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| SendError::Unknown(format!("reading the answer of {url}: {e}")))?
        {
            if out.len() + chunk.len() > response_bytes_max {
                return Err(SendError::Permanent {
                    code: status,
                    message: format!(
                        "the answer of {url} is larger than {response_bytes_max} bytes"
                    ),
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// As [`WebhookClient::post`], signed with `secret` (a per-app key).
    pub async fn post_signed(
        &self,
        url: &str,
        body: Vec<u8>,
        now_unix_secs: i64,
        secret: &[u8],
    ) -> Result<u16, SendError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SendError::Invalid(format!(
                "webhook URL {url:?}: must be http:// or https://"
            )));
        }
        let sig = signature(secret, now_unix_secs, &body);
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, now_unix_secs.to_string())
            .header(SIGNATURE_HEADER, sig)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                // Refused or unreachable: nothing was sent. Anything later
                // (a timeout, a reset while waiting) may have been received.
                if e.is_connect() {
                    SendError::Temporary {
                        code: None,
                        message: format!("POST {url}: {e}"),
                    }
                } else {
                    SendError::Unknown(format!("POST {url}: {e}"))
                }
            })?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(status),
            429 | 500..=599 => Err(SendError::Temporary {
                code: Some(status),
                message: format!("POST {url} answered {status}"),
            }),
            _ => Err(SendError::Permanent {
                code: status,
                message: format!("POST {url} answered {status}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        let a = signature(b"k", 1, b"{}");
        assert!(a.starts_with("v1=") && a.len() == 3 + 64);
        assert_ne!(a, signature(b"k", 2, b"{}"));
        assert_ne!(a, signature(b"k", 1, b"{ }"));
        assert_ne!(a, signature(b"other", 1, b"{}"));
        assert_eq!(a, signature(b"k", 1, b"{}"));
    }
}

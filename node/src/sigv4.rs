//! AWS Signature Version 4 verification for the Pinpoint-compatible API.
//!
//! Accepts what the AWS SDKs and the CLI send: an `Authorization:
//! AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` header with
//! `X-Amz-Date` (or, as botocore does when the request carries one, `Date`),
//! and presigned URLs (`X-Amz-Algorithm`/`X-Amz-Credential`/`X-Amz-Date`/
//! `X-Amz-Expires`/`X-Amz-SignedHeaders`/`X-Amz-Signature` query parameters).
//! The region is whatever the credential scope names; the service must be the
//! configured one (`mobiletargeting`).
//!
//! Who canonicalises what:
//! - `aws-sigv4` (`http_request::sign`) builds the canonical request and the
//!   string to sign and derives the signing key: URI path normalisation and
//!   double percent-encoding of the raw path (what botocore and the Smithy
//!   SDKs do for non-S3 services), query decoding, re-encoding and sorting,
//!   header-name lowercasing, value trimming and joining of repeated headers,
//!   the signed-headers line, the payload hash, the scope and the HMAC chain.
//! - This module parses the `Authorization` header or the presign query
//!   parameters, checks the scope (service, date, terminator), the date and
//!   the clock skew, picks the secret, hands the library a request containing
//!   exactly the headers the client signed, decides the payload hash, checks
//!   that the library's signed-header list is the client's, and compares the
//!   signatures in constant time.
//!
//! Nothing here reads a clock: `now` is an argument.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody,
    SignableRequest, SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use chrono::{DateTime, NaiveDateTime, Utc};
use http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const SCOPE_TERMINATOR: &str = "aws4_request";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SigV4 caps presigned URLs at seven days.
const MAX_PRESIGN_EXPIRES_SECS: u64 = 7 * 24 * 60 * 60;
/// Longest piece of client input echoed back in an error message.
const ECHO_MAX: usize = 128;

const X_AMZ_DATE: &str = "x-amz-date";
const DATE: &str = "date";
const HOST: &str = "host";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

const Q_ALGORITHM: &str = "X-Amz-Algorithm";
const Q_CREDENTIAL: &str = "X-Amz-Credential";
const Q_DATE: &str = "X-Amz-Date";
const Q_EXPIRES: &str = "X-Amz-Expires";
const Q_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
const Q_SIGNATURE: &str = "X-Amz-Signature";

/// Verifies SigV4-signed requests against a set of configured access keys.
#[derive(Clone)]
pub struct SigV4Verifier {
    /// access key id -> secret access key
    keys: BTreeMap<String, String>,
    service: String,
    max_skew: Duration,
}

impl fmt::Debug for SigV4Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Verifier")
            .field("access_key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("service", &self.service)
            .field("max_skew", &self.max_skew)
            .finish_non_exhaustive()
    }
}

/// Who signed a request, and for which region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    /// The region named in the credential scope.
    pub region: String,
}

/// Why a request was not accepted. Every variant is a 403 `ForbiddenException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "missing authentication token: sign the request with aws signature version 4 \
         (an authorization header or X-Amz-* query parameters)"
    )]
    MissingAuthentication,
    #[error("unsupported signing algorithm '{0}': only AWS4-HMAC-SHA256 is accepted")]
    UnsupportedAlgorithm(String),
    #[error("incomplete or malformed signature: {0}")]
    Malformed(String),
    #[error(
        "malformed credential '{0}': expected \
         <access key id>/<yyyymmdd>/<region>/<service>/aws4_request"
    )]
    MalformedCredential(String),
    #[error("the access key id '{0}' is not known to this server")]
    UnknownAccessKey(String),
    #[error(
        "the credential scope names service '{found}' but requests to this server \
         must be signed for '{expected}'"
    )]
    WrongService { expected: String, found: String },
    #[error(
        "the credential scope date {scope_date} does not match the request date {request_date}"
    )]
    ScopeDateMismatch {
        scope_date: String,
        request_date: String,
    },
    #[error(
        "the request has no date: send an x-amz-date header (yyyymmddThhmmssZ) or a date header"
    )]
    MissingDate,
    #[error("invalid {field} '{value}': expected {expected}")]
    BadDate {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the {0} header must be included in the signed headers")]
    HeaderNotSigned(&'static str),
    #[error("the signed header '{0}' is not present in the request")]
    MissingSignedHeader(String),
    #[error(
        "signature expired or not yet valid: the request time {request_time} is more than \
         {max_skew_secs} seconds from the server time {server_time}; check the client's clock"
    )]
    ClockSkew {
        request_time: String,
        server_time: String,
        max_skew_secs: u64,
    },
    #[error("the presigned url expired at {expired_at} (server time {server_time})")]
    Expired {
        expired_at: String,
        server_time: String,
    },
    #[error("the x-amz-content-sha256 header does not match the sha-256 of the request body")]
    PayloadHashMismatch,
    #[error(
        "unsigned or streaming payloads are not accepted: sign the sha-256 of the request body"
    )]
    UnsignedPayload,
    #[error(
        "the request signature we calculated does not match the signature you provided; \
         check your secret access key and signing method"
    )]
    SignatureMismatch,
}

/// The signature parameters of a request, wherever they came from.
struct Claim<'a> {
    credential: Credential<'a>,
    /// As sent: lowercase, sorted, `;`-separated.
    signed_headers: &'a str,
    signature: &'a str,
    time: SystemTime,
    mode: Mode,
}

enum Mode {
    /// `Authorization` header, request time from a signed `x-amz-date`.
    Header,
    /// `Authorization` header, request time from a signed `date`;
    /// `x-amz-date` absent and therefore not part of the canonical request.
    HeaderDateOnly,
    /// Presigned URL; `query` is the raw query minus the presign parameters.
    Query { expires: u64, query: String },
}

#[derive(Clone, Copy)]
struct Credential<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

/// Presign parameters, percent-decoded, plus the rest of the query (raw).
struct PresignParams {
    algorithm: Option<String>,
    credential: Option<String>,
    date: Option<String>,
    expires: Option<String>,
    signed_headers: Option<String>,
    signature: Option<String>,
    rest: String,
}

impl SigV4Verifier {
    /// `keys` are (access key id, secret access key) pairs; with a repeated id
    /// the last pair wins. `service` is the signing name (`mobiletargeting`).
    /// `max_skew` bounds the distance between the request time and `now`.
    pub fn new(
        keys: impl IntoIterator<Item = (String, String)>,
        service: &str,
        max_skew: Duration,
    ) -> Self {
        Self {
            keys: keys.into_iter().collect(),
            service: service.to_owned(),
            max_skew,
        }
    }

    /// Checks the request's SigV4 signature. `body` is the whole request body;
    /// `uri` must be the URI as received (raw, still percent-encoded path).
    pub fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified, AuthError> {
        let authorization = single_header(headers, "authorization")?;
        let presign = parse_presign_params(uri.query().unwrap_or(""))?;
        let presigned = presign.algorithm.is_some()
            || presign.credential.is_some()
            || presign.signature.is_some();

        let claim = match (authorization, presigned) {
            (Some(_), true) => {
                return Err(AuthError::Malformed(
                    "use either an authorization header or presigned query parameters, not both"
                        .into(),
                ));
            }
            (None, false) => return Err(AuthError::MissingAuthentication),
            (Some(value), false) => claim_from_header(value, headers)?,
            (None, true) => claim_from_query(&presign)?,
        };

        self.check_scope(&claim)?;
        self.check_time(&claim, now)?;
        let secret = self
            .keys
            .get(claim.credential.access_key_id)
            .ok_or_else(|| AuthError::UnknownAccessKey(echo(claim.credential.access_key_id)))?;

        let expected = self.expected_signature(&claim, secret, method, uri, headers, body)?;
        if bool::from(expected.as_bytes().ct_eq(claim.signature.as_bytes())) {
            Ok(Verified {
                access_key_id: claim.credential.access_key_id.to_owned(),
                region: claim.credential.region.to_owned(),
            })
        } else {
            Err(AuthError::SignatureMismatch)
        }
    }

    fn check_scope(&self, claim: &Claim<'_>) -> Result<(), AuthError> {
        let c = claim.credential;
        if c.service != self.service {
            return Err(AuthError::WrongService {
                expected: self.service.clone(),
                found: echo(c.service),
            });
        }
        let request_date = format_time(claim.time, "%Y%m%d");
        if c.date != request_date {
            return Err(AuthError::ScopeDateMismatch {
                scope_date: echo(c.date),
                request_date,
            });
        }
        Ok(())
    }

    fn check_time(&self, claim: &Claim<'_>, now: SystemTime) -> Result<(), AuthError> {
        let skew = || AuthError::ClockSkew {
            request_time: format_time(claim.time, AMZ_DATE_FORMAT),
            server_time: format_time(now, AMZ_DATE_FORMAT),
            max_skew_secs: self.max_skew.as_secs(),
        };
        match &claim.mode {
            Mode::Header | Mode::HeaderDateOnly => {
                let distance = match now.duration_since(claim.time) {
                    Ok(d) => d,
                    Err(e) => e.duration(),
                };
                if distance > self.max_skew {
                    return Err(skew());
                }
            }
            Mode::Query { expires, .. } => {
                // Not valid before its time (give or take the skew), nor after it expires.
                if claim
                    .time
                    .duration_since(now)
                    .is_ok_and(|ahead| ahead > self.max_skew)
                {
                    return Err(skew());
                }
                let expired_at = claim.time + Duration::from_secs(*expires);
                if now > expired_at {
                    return Err(AuthError::Expired {
                        expired_at: format_time(expired_at, AMZ_DATE_FORMAT),
                        server_time: format_time(now, AMZ_DATE_FORMAT),
                    });
                }
            }
        }
        Ok(())
    }

    /// Recomputes the signature with aws-sigv4 over exactly the signed headers.
    fn expected_signature(
        &self,
        claim: &Claim<'_>,
        secret: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<String, AuthError> {
        // The headers the client signed, with the values we received.
        let mut signed: Vec<(&str, &str)> = Vec::new();
        for name in claim.signed_headers.split(';') {
            let before = signed.len();
            for value in headers.get_all(name) {
                let value = std::str::from_utf8(value.as_bytes()).map_err(|_| {
                    AuthError::Malformed(format!("the value of header '{name}' is not utf-8"))
                })?;
                signed.push((name, value));
            }
            if signed.len() == before {
                // HTTP/2 carries the host in `:authority`, which lands in the URI.
                match uri.authority() {
                    Some(authority) if name == HOST => signed.push((HOST, authority.as_str())),
                    _ => return Err(AuthError::MissingSignedHeader(name.to_owned())),
                }
            }
        }

        let body_hash = hex::encode(Sha256::digest(body));
        let mut payload = SignableBody::Precomputed(body_hash.clone());
        if let Some(declared) = single_header(headers, X_AMZ_CONTENT_SHA256)? {
            if declared.len() == 64 && declared.bytes().all(|b| b.is_ascii_hexdigit()) {
                if !declared.eq_ignore_ascii_case(&body_hash) {
                    return Err(AuthError::PayloadHashMismatch);
                }
                // The client's canonical request carries the header value verbatim.
                payload = SignableBody::Precomputed(declared.to_owned());
            } else if declared == UNSIGNED_PAYLOAD && body.is_empty() {
                // Nothing to protect; accept the unsigned-payload marker.
                payload = SignableBody::UnsignedPayload;
            } else {
                return Err(AuthError::UnsignedPayload);
            }
        }

        // Origin form of the request target; presign parameters removed.
        let target = match &claim.mode {
            Mode::Query { query, .. } if query.is_empty() => uri.path().to_owned(),
            Mode::Query { query, .. } => format!("{}?{}", uri.path(), query),
            _ => uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned(),
        };

        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Double;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        // Sign whatever the client signed: no built-in exclusions.
        settings.excluded_headers = None;
        settings.session_token_mode = SessionTokenMode::Include;
        let mut session_token = None;
        match &claim.mode {
            Mode::Header => settings.signature_location = SignatureLocation::Headers,
            Mode::HeaderDateOnly => {
                // In header mode aws-sigv4 always adds `x-amz-date` to the signed
                // headers, but a client that dated its request with `Date` signed
                // none. aws-sigv4 has no switch for that; what it does have is the
                // session-token exclusion, which keeps the header named by
                // `session_token_name_override` out of the signed headers. We
                // repurpose it for `x-amz-date` (with a dummy token). The check of
                // the library's signed-header list below catches any change in
                // this behaviour, and the botocore `Date` vector covers it.
                settings.signature_location = SignatureLocation::Headers;
                settings.session_token_mode = SessionTokenMode::Exclude;
                settings.session_token_name_override = Some(X_AMZ_DATE);
                session_token = Some("unused".to_owned());
            }
            Mode::Query { expires, .. } => {
                settings.signature_location = SignatureLocation::QueryParams;
                settings.expires_in = Some(Duration::from_secs(*expires));
            }
        }

        let compute = |payload: SignableBody<'_>| -> Result<(String, String), AuthError> {
            let creds = Credentials::new(
                claim.credential.access_key_id,
                secret,
                session_token.clone(),
                None,
                "herald-config",
            );
            let identity = creds.into();
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region(claim.credential.region)
                .name(&self.service)
                .time(claim.time)
                .settings(settings.clone())
                .build()
                .map_err(|e| AuthError::Malformed(format!("cannot build signing parameters: {e}")))?
                .into();
            let request = SignableRequest::new(
                method.as_str(),
                target.as_str(),
                signed.iter().copied(),
                payload,
            )
            .map_err(|e| AuthError::Malformed(format!("cannot canonicalise the request: {e}")))?;
            let (instructions, signature) = sign(request, &params)
                .map_err(|e| AuthError::Malformed(format!("cannot canonicalise the request: {e}")))?
                .into_parts();
            let library_signed = match &claim.mode {
                Mode::Query { .. } => instructions
                    .params()
                    .iter()
                    .find(|(k, _)| *k == Q_SIGNED_HEADERS)
                    .map(|(_, v)| v.to_string()),
                _ => instructions
                    .headers()
                    .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                    .and_then(|(_, v)| {
                        parse_authorization(v)
                            .ok()
                            .map(|a| a.signed_headers.to_owned())
                    }),
            };
            Ok((signature, library_signed.unwrap_or_default()))
        };

        let (signature, library_signed) = compute(payload)?;
        if library_signed != claim.signed_headers {
            return Err(AuthError::Malformed(format!(
                "this server cannot reproduce the signed header list '{}' (it would sign '{}')",
                echo(claim.signed_headers),
                library_signed
            )));
        }
        if let Mode::Query { .. } = claim.mode {
            // Presigners for non-S3 services hash the (empty) body; some use the
            // UNSIGNED-PAYLOAD marker instead. Either is fine when there is no body.
            if body.is_empty()
                && !bool::from(signature.as_bytes().ct_eq(claim.signature.as_bytes()))
            {
                return compute(SignableBody::UnsignedPayload).map(|(s, _)| s);
            }
        }
        Ok(signature)
    }
}

fn claim_from_header<'a>(value: &'a str, headers: &'a HeaderMap) -> Result<Claim<'a>, AuthError> {
    let auth = parse_authorization(value)?;
    let signed_headers = check_signed_headers(auth.signed_headers)?;
    let is_signed = |name: &str| signed_headers.split(';').any(|h| h == name);
    let credential = parse_credential(auth.credential)?;
    let signature = check_signature_format(auth.signature)?;

    let (time, mode) = if let Some(amz_date) = single_header(headers, X_AMZ_DATE)? {
        if !is_signed(X_AMZ_DATE) {
            return Err(AuthError::HeaderNotSigned(X_AMZ_DATE));
        }
        (parse_amz_date(amz_date, X_AMZ_DATE)?, Mode::Header)
    } else if let Some(date) = single_header(headers, DATE)? {
        if !is_signed(DATE) {
            return Err(AuthError::HeaderNotSigned(DATE));
        }
        (parse_http_date(date)?, Mode::HeaderDateOnly)
    } else {
        return Err(AuthError::MissingDate);
    };

    Ok(Claim {
        credential,
        signed_headers,
        signature,
        time,
        mode,
    })
}

fn claim_from_query(p: &PresignParams) -> Result<Claim<'_>, AuthError> {
    fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, AuthError> {
        value.as_deref().ok_or_else(|| {
            AuthError::Malformed(format!("the presigned url has no {name} query parameter"))
        })
    }
    let algorithm = required(&p.algorithm, Q_ALGORITHM)?;
    let credential = required(&p.credential, Q_CREDENTIAL)?;
    let signed = required(&p.signed_headers, Q_SIGNED_HEADERS)?;
    let signature = required(&p.signature, Q_SIGNATURE)?;
    let expires = required(&p.expires, Q_EXPIRES)?;
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm(echo(algorithm)));
    }
    let signed_headers = check_signed_headers(signed)?;
    let credential = parse_credential(credential)?;
    let signature = check_signature_format(signature)?;
    let time = parse_amz_date(required(&p.date, Q_DATE)?, Q_DATE)?;
    let expires_secs = expires
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=MAX_PRESIGN_EXPIRES_SECS).contains(s) && s.to_string() == expires)
        .ok_or_else(|| {
            AuthError::Malformed(format!(
                "{Q_EXPIRES} must be a whole number of seconds from 1 to {MAX_PRESIGN_EXPIRES_SECS}, got '{}'",
                echo(expires)
            ))
        })?;
    Ok(Claim {
        credential,
        signed_headers,
        signature,
        time,
        mode: Mode::Query {
            expires: expires_secs,
            query: p.rest.clone(),
        },
    })
}

struct AuthorizationHeader<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`
fn parse_authorization(value: &str) -> Result<AuthorizationHeader<'_>, AuthError> {
    let value = value.trim();
    let (scheme, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if scheme != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm(echo(scheme)));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').ok_or_else(|| {
            AuthError::Malformed(format!(
                "expected key=value in the authorization header, found '{}'",
                echo(part)
            ))
        })?;
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(AuthError::Malformed(format!(
                    "unexpected '{}' in the authorization header",
                    echo(other)
                )))
            }
        };
        if slot.replace(value.trim()).is_some() {
            return Err(AuthError::Malformed(format!(
                "'{}' appears more than once in the authorization header",
                key.trim()
            )));
        }
    }
    let missing = |what: &str| {
        AuthError::Malformed(format!("the authorization header has no {what}= component"))
    };
    Ok(AuthorizationHeader {
        credential: credential.ok_or_else(|| missing("Credential"))?,
        signed_headers: signed_headers.ok_or_else(|| missing("SignedHeaders"))?,
        signature: signature.ok_or_else(|| missing("Signature"))?,
    })
}

/// `AKID/yyyymmdd/region/service/aws4_request`
fn parse_credential(raw: &str) -> Result<Credential<'_>, AuthError> {
    let parts: Vec<&str> = raw.split('/').collect();
    match parts.as_slice() {
        [akid, date, region, service, SCOPE_TERMINATOR]
            if !akid.is_empty()
                && date.len() == 8
                && date.bytes().all(|b| b.is_ascii_digit())
                && !region.is_empty()
                && !service.is_empty() =>
        {
            Ok(Credential {
                access_key_id: akid,
                date,
                region,
                service,
            })
        }
        _ => Err(AuthError::MalformedCredential(echo(raw))),
    }
}

/// SignedHeaders must be lowercase header names, sorted, without duplicates,
/// and include `host`.
fn check_signed_headers(list: &str) -> Result<&str, AuthError> {
    let names: Vec<&str> = list.split(';').collect();
    let well_formed = names.iter().all(|n| {
        !n.is_empty()
            && n.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
            })
    }) && names.windows(2).all(|w| w[0] < w[1]);
    if !well_formed {
        return Err(AuthError::Malformed(format!(
            "SignedHeaders must list lowercase header names, sorted and separated by ';', got '{}'",
            echo(list)
        )));
    }
    if names.contains(&"authorization") {
        return Err(AuthError::Malformed(
            "the authorization header cannot be one of the signed headers".into(),
        ));
    }
    if !names.contains(&HOST) {
        return Err(AuthError::HeaderNotSigned(HOST));
    }
    Ok(list)
}

fn check_signature_format(signature: &str) -> Result<&str, AuthError> {
    if signature.len() == 64
        && signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(signature)
    } else {
        Err(AuthError::Malformed(
            "the signature must be 64 lowercase hexadecimal digits".into(),
        ))
    }
}

/// `yyyymmddThhmmssZ`, strictly (the value is signed verbatim).
fn parse_amz_date(value: &str, field: &'static str) -> Result<SystemTime, AuthError> {
    let bad = || AuthError::BadDate {
        field,
        value: echo(value),
        expected: "an iso 8601 basic utc timestamp such as 20240101T000000Z",
    };
    let parsed = NaiveDateTime::parse_from_str(value, AMZ_DATE_FORMAT).map_err(|_| bad())?;
    let time = SystemTime::from(parsed.and_utc());
    // Reject anything that does not print back identically (padding, leap seconds).
    if value.len() != 16 || format_time(time, AMZ_DATE_FORMAT) != value {
        return Err(bad());
    }
    Ok(time)
}

/// An HTTP `Date` (RFC 7231 IMF-fixdate or RFC 2822, which botocore sends).
fn parse_http_date(value: &str) -> Result<SystemTime, AuthError> {
    DateTime::parse_from_rfc2822(value)
        .map(|t| SystemTime::from(t.with_timezone(&Utc)))
        .map_err(|_| AuthError::BadDate {
            field: DATE,
            value: echo(value),
            expected: "an http date such as Mon, 01 Jan 2024 00:00:00 GMT",
        })
}

fn format_time(time: SystemTime, format: &str) -> String {
    DateTime::<Utc>::from(time).format(format).to_string()
}

/// At most one value; `None` when absent.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed(format!(
            "the request has more than one {name} header"
        )));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| AuthError::Malformed(format!("the {name} header is not printable ascii")))
}

/// Splits the raw query into the presign parameters (decoded) and the rest (raw, in order).
fn parse_presign_params(query: &str) -> Result<PresignParams, AuthError> {
    let mut p = PresignParams {
        algorithm: None,
        credential: None,
        date: None,
        expires: None,
        signed_headers: None,
        signature: None,
        rest: String::new(),
    };
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            Q_ALGORITHM => &mut p.algorithm,
            Q_CREDENTIAL => &mut p.credential,
            Q_DATE => &mut p.date,
            Q_EXPIRES => &mut p.expires,
            Q_SIGNED_HEADERS => &mut p.signed_headers,
            Q_SIGNATURE => &mut p.signature,
            _ => {
                if !p.rest.is_empty() {
                    p.rest.push('&');
                }
                p.rest.push_str(pair);
                continue;
            }
        };
        let decoded = percent_decode(value).ok_or_else(|| {
            AuthError::Malformed(format!(
                "the {key} query parameter is not valid percent-encoded utf-8"
            ))
        })?;
        if slot.replace(decoded).is_some() {
            return Err(AuthError::Malformed(format!(
                "the {key} query parameter appears more than once"
            )));
        }
    }
    Ok(p)
}

fn percent_decode(s: &str) -> Option<String> {
    fn hex_digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_digit(*bytes.get(i + 1)?)?;
            let lo = hex_digit(*bytes.get(i + 2)?)?;
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Client input quoted in an error message, clipped.
fn echo(s: &str) -> String {
    if s.len() <= ECHO_MAX {
        return s.to_owned();
    }
    let mut end = ECHO_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// botocore vectors: AKIDHERALDTEST000001 signed at 2026-03-15T08:09:10Z.
    const AKID: &str = "AKIDHERALDTEST000001";
    const SECRET: &str = "herald/Secret+Key/For/Tests/0123456789ab";
    const FIXED_SECS: u64 = 1_773_562_150; // 2026-03-15T08:09:10Z

    fn fixed() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(FIXED_SECS)
    }

    fn verifier() -> SigV4Verifier {
        SigV4Verifier::new(
            [(AKID.to_owned(), SECRET.to_owned())],
            "mobiletargeting",
            Duration::from_secs(15 * 60),
        )
    }

    /// A request as the server sees it: origin-form URI plus a Host header
    /// taken from the URL's authority (as urllib3/hyper send it).
    struct Req {
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Req {
        fn from_wire(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Self {
            let full: Uri = url.parse().unwrap();
            let host = match (full.scheme_str(), full.port_u16()) {
                (Some("https"), Some(443)) | (Some("http"), Some(80)) | (_, None) => {
                    full.host().unwrap().to_owned()
                }
                _ => full.authority().unwrap().as_str().to_owned(),
            };
            let mut map = HeaderMap::new();
            map.insert("host", host.parse().unwrap());
            for (k, v) in headers {
                map.append(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            Req {
                method: method.parse().unwrap(),
                uri: full.path_and_query().unwrap().as_str().parse().unwrap(),
                headers: map,
                body: body.as_bytes().to_vec(),
            }
        }

        fn verify_with(&self, v: &SigV4Verifier, now: SystemTime) -> Result<Verified, AuthError> {
            v.verify(&self.method, &self.uri, &self.headers, &self.body, now)
        }

        fn verify(&self) -> Result<Verified, AuthError> {
            self.verify_with(&verifier(), fixed())
        }

        fn set_header(&mut self, name: &'static str, value: &str) {
            self.headers.insert(name, value.parse().unwrap());
        }
    }

    const BOTOCORE_UA: &str = "Botocore/1.44.8 ua/2.1 os/linux#6.18.44-fc-v657 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/N,e,b,E,Z cfg/retry-mode#standard";

    // ---- vectors produced by real botocore 1.44.8 ----------------------------------
    //
    // Generated with a botocore `pinpoint` client (endpoint http://127.0.0.1:5060,
    // unless noted), `botocore.auth.get_current_datetime` patched to return
    // 2026-03-15T08:09:10, and a `before-send` hook capturing method, URL,
    // headers and body; the Date-header and presigned cases call
    // `SigV4Auth`/`SigV4QueryAuth` directly. Headers are as sent; botocore adds
    // amz-sdk-* and Content-Length after signing, so they are not signed.

    /// `create_app(CreateApplicationRequest={"Name": "demo", "tags": {"team": "a b"}})`
    fn botocore_create_app() -> Req {
        Req::from_wire(
            "POST",
            "http://127.0.0.1:5060/v1/apps",
            &[
                ("Content-Type", "application/json"),
                ("User-Agent", BOTOCORE_UA),
                ("X-Amz-Date", "20260315T080910Z"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDHERALDTEST000001/20260315/us-east-1/mobiletargeting/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=a7d1b734baba8241c31ac1538e1389b7b8d17c11f8e741ae2af4238522cfed54"),
                ("amz-sdk-invocation-id", "5b7738b1-637c-4305-b273-c517a9213a79"),
                ("amz-sdk-request", "attempt=1; max=3"),
                ("Content-Length", "41"),
            ],
            r#"{"Name": "demo", "tags": {"team": "a b"}}"#,
        )
    }

    /// `get_apps(PageSize="2", Token="abc")`
    fn botocore_get_apps() -> Req {
        Req::from_wire(
            "GET",
            "http://127.0.0.1:5060/v1/apps?page-size=2&token=abc",
            &[
                ("User-Agent", BOTOCORE_UA),
                ("X-Amz-Date", "20260315T080910Z"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDHERALDTEST000001/20260315/us-east-1/mobiletargeting/aws4_request, SignedHeaders=host;x-amz-date, Signature=b594634badff831e6e9e43e54f27abaaaa0445d709bc5fc83de1de47e604cec3"),
                ("amz-sdk-invocation-id", "3ae34947-e921-4794-a2d4-5950a7caff59"),
                ("amz-sdk-request", "attempt=1; max=3"),
            ],
            "",
        )
    }

    /// `delete_user_endpoints(ApplicationId=…, UserId="user 1")`, region eu-west-1.
    fn botocore_delete_user_endpoints() -> Req {
        Req::from_wire(
            "DELETE",
            "http://127.0.0.1:5060/v1/apps/0123456789abcdef0123456789abcdef/users/user%201",
            &[
                ("User-Agent", BOTOCORE_UA),
                ("X-Amz-Date", "20260315T080910Z"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDHERALDTEST000001/20260315/eu-west-1/mobiletargeting/aws4_request, SignedHeaders=host;x-amz-date, Signature=f5811b05aa17e302518df55ee03646b2b29a45b45061a0c332ad26a9d713859c"),
                ("amz-sdk-invocation-id", "6636444f-a3e3-4973-a434-1c0b5356a087"),
                ("amz-sdk-request", "attempt=1; max=3"),
                ("Content-Length", "0"),
            ],
            "",
        )
    }

    /// `tag_resource(ResourceArn="arn:aws:mobiletargeting:us-east-1:123456789012:apps/abc",
    /// TagsModel={"tags": {"k": "v"}})`: the ARN is one percent-encoded segment,
    /// double-encoded (`%253A`, `%252F`) in the canonical request.
    fn botocore_tag_resource() -> Req {
        Req::from_wire(
            "POST",
            "http://127.0.0.1:5060/v1/tags/arn%3Aaws%3Amobiletargeting%3Aus-east-1%3A123456789012%3Aapps%2Fabc",
            &[
                ("Content-Type", "application/json"),
                ("User-Agent", BOTOCORE_UA),
                ("X-Amz-Date", "20260315T080910Z"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDHERALDTEST000001/20260315/us-east-1/mobiletargeting/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=4a5a9054ad5bf24683bdd797ac520fbba341b4e6d5c3720a9f7ac3a65a009bfa"),
                ("amz-sdk-invocation-id", "4c6346b3-5af1-42e9-a388-00cf89a9da41"),
                ("amz-sdk-request", "attempt=1; max=3"),
                ("Content-Length", "20"),
            ],
            r#"{"tags": {"k": "v"}}"#,
        )
    }

    /// `untag_resource(ResourceArn=<same>, TagKeys=["a", "b c", "d/e"])`: repeated
    /// query keys and encoded values.
    fn botocore_untag_resource() -> Req {
        Req::from_wire(
            "DELETE",
            "http://127.0.0.1:5060/v1/tags/arn%3Aaws%3Amobiletargeting%3Aus-east-1%3A123456789012%3Aapps%2Fabc?tagKeys=a&tagKeys=b%20c&tagKeys=d%2Fe",
            &[
                ("User-Agent", BOTOCORE_UA),
                ("X-Amz-Date", "20260315T080910Z"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDHERALDTEST000001/20260315/us-east-1/mobiletargeting/aws4_request, SignedHeaders=host;x-amz-date, Signature=eaafc5d2b8da92918ba4011944be9b159afd5da9dfe160d15a3ea614bb9308de"),
                ("amz-sdk-invocation-id", "16a8291c-59f8-4922-bb34-d93019a832e8"),
                ("amz-sdk-request", "attempt=1; max=3"),
                ("Content-Length", "0"),
            ],
            "",
        )
    }

    /// `get_application_date_range_kpi(…, StartTime=…, EndTime=…, PageSize="10")`,
    /// region ap-southeast-2: `:` percent-encoded in query values, unsorted query.
    fn botocore_kpi() -> Req {
        Req::from_wire(
            "GET",
            "http://127.0.0.1:5060/v1/apps/0123456789abcdef0123456789abcdef/kpis/daterange/unique-deliveries?start-time=2026-03-01T00%3A00%3A00Z&end-time=2026-03-14T23%3A59%3A59Z&page-size=10",
            &[
                ("User-Agent", BOTOCORE_UA),
                ("X-Amz-Date", "20260315T080910Z"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDHERALDTEST000001/20260315/ap-southeast-2/mobiletargeting/aws4_request, SignedHeaders=host;x-amz-date, Signature=9b8147597eddb9372e6e038cf07c560ac73a143efbe33afd36a526623ba5cd54"),
                ("amz-sdk-invocation-id", "eed4e234-b7b0-4fa2-84f4-dcbcb9fbe8a0"),
                ("amz-sdk-request", "attempt=1; max=3"),
            ],
            "",
        )
    }

    /// `update_endpoint(EndpointId="ep/1 ü", …)` with temporary credentials
    /// (session token signed) against https://pinpoint.example.test (host without port).
    fn botocore_session_token() -> Req {
        Req::from_wire(
            "PUT",
            "https://pinpoint.example.test/v1/apps/0123456789abcdef0123456789abcdef/endpoints/ep%2F1%20%C3%BC",
            &[
                ("Content-Type", "application/json"),
                ("User-Agent", BOTOCORE_UA),
                ("X-Amz-Date", "20260315T080910Z"),
                ("X-Amz-Security-Token", "FQoGZXIvYXdzEXAMPLETOKEN//+/="),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDHERALDTEST000001/20260315/us-east-1/mobiletargeting/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=508f5e81aa108b6e327920cdb0402a79ac95c002f9d3634588f7b25425c1867c"),
                ("amz-sdk-invocation-id", "b29ad00e-6cdf-4f05-8ff4-454fc06254da"),
                ("amz-sdk-request", "attempt=1; max=3"),
                ("Content-Length", "84"),
            ],
            r#"{"Address": "a@example.com", "ChannelType": "EMAIL", "User": {"UserId": "Zo\u00eb"}}"#,
        )
    }

    /// `SigV4Auth(creds, "mobiletargeting", "us-west-2").add_auth(req)` on a GET that
    /// carries a `Date` header: botocore then dates the request with `Date` and
    /// sends no X-Amz-Date.
    fn botocore_date_header() -> Req {
        Req::from_wire(
            "GET",
            "http://127.0.0.1:5060/v1/apps/abc",
            &[
                ("Date", "Sun, 15 Mar 2026 08:09:10 -0000"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDHERALDTEST000001/20260315/us-west-2/mobiletargeting/aws4_request, SignedHeaders=date;host, Signature=18a066a389384c844c2441dfa7875a32422884e4de54e7489966e47b9194e2c7"),
            ],
            "",
        )
    }

    /// `SigV4QueryAuth(creds, "mobiletargeting", "us-east-1", expires=900)` on
    /// `GET /v1/apps?page-size=5`.
    fn botocore_presigned() -> Req {
        Req::from_wire(
            "GET",
            "http://127.0.0.1:5060/v1/apps?page-size=5&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDHERALDTEST000001%2F20260315%2Fus-east-1%2Fmobiletargeting%2Faws4_request&X-Amz-Date=20260315T080910Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=b7d0ca326d47259deb491ecf0e3ec1d47104d6e96e8ed2ddcca3b52501b38338",
            &[],
            "",
        )
    }

    fn ok(region: &str) -> Result<Verified, AuthError> {
        Ok(Verified {
            access_key_id: AKID.to_owned(),
            region: region.to_owned(),
        })
    }

    #[test]
    fn botocore_post_with_json_body() {
        assert_eq!(botocore_create_app().verify(), ok("us-east-1"));
    }

    #[test]
    fn botocore_get_with_query() {
        assert_eq!(botocore_get_apps().verify(), ok("us-east-1"));
    }

    #[test]
    fn botocore_delete_with_encoded_space_in_path_and_region_from_scope() {
        assert_eq!(botocore_delete_user_endpoints().verify(), ok("eu-west-1"));
    }

    #[test]
    fn botocore_resource_arn_segment_is_double_encoded() {
        assert_eq!(botocore_tag_resource().verify(), ok("us-east-1"));
    }

    #[test]
    fn botocore_repeated_query_keys_and_encoded_values() {
        assert_eq!(botocore_untag_resource().verify(), ok("us-east-1"));
    }

    #[test]
    fn botocore_encoded_colons_in_unsorted_query() {
        assert_eq!(botocore_kpi().verify(), ok("ap-southeast-2"));
    }

    #[test]
    fn botocore_session_token_https_default_port_and_non_ascii_path() {
        assert_eq!(botocore_session_token().verify(), ok("us-east-1"));
    }

    #[test]
    fn botocore_date_header_instead_of_x_amz_date() {
        assert_eq!(botocore_date_header().verify(), ok("us-west-2"));
        // The Date value is bound by the signature too.
        let mut r = botocore_date_header();
        r.set_header("date", "Sun, 15 Mar 2026 08:09:11 -0000");
        assert_eq!(r.verify(), Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn botocore_presigned_url() {
        let r = botocore_presigned();
        assert_eq!(r.verify(), ok("us-east-1"));
        // Valid until X-Amz-Date + 900 s, then expired.
        let v = verifier();
        assert!(r
            .verify_with(&v, fixed() + Duration::from_secs(900))
            .is_ok());
        assert!(matches!(
            r.verify_with(&v, fixed() + Duration::from_secs(901)),
            Err(AuthError::Expired { .. })
        ));
        // Not before its time (beyond the allowed skew).
        assert!(matches!(
            r.verify_with(&v, fixed() - Duration::from_secs(16 * 60)),
            Err(AuthError::ClockSkew { .. })
        ));
        // Tampered operation parameter.
        let mut t = botocore_presigned();
        t.uri = t
            .uri
            .to_string()
            .replace("page-size=5", "page-size=6")
            .parse()
            .unwrap();
        assert_eq!(t.verify(), Err(AuthError::SignatureMismatch));
        // Tampered expiry.
        let mut t = botocore_presigned();
        t.uri = t
            .uri
            .to_string()
            .replace("X-Amz-Expires=900", "X-Amz-Expires=9000")
            .parse()
            .unwrap();
        assert_eq!(t.verify(), Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn botocore_vectors_tampered() {
        // tampered body
        let mut r = botocore_create_app();
        r.body = br#"{"Name": "demp", "tags": {"team": "a b"}}"#.to_vec();
        assert_eq!(r.verify(), Err(AuthError::SignatureMismatch));
        // tampered path: a different ARN
        let mut r = botocore_tag_resource();
        r.uri = "/v1/tags/arn%3Aaws%3Amobiletargeting%3Aus-east-1%3A123456789012%3Aapps%2Fabd"
            .parse()
            .unwrap();
        assert_eq!(r.verify(), Err(AuthError::SignatureMismatch));
        // the same ARN sent single-encoded must not verify either
        let mut r = botocore_tag_resource();
        r.uri = "/v1/tags/arn:aws:mobiletargeting:us-east-1:123456789012:apps%2Fabc"
            .parse()
            .unwrap();
        assert_eq!(r.verify(), Err(AuthError::SignatureMismatch));
        // tampered query
        let mut r = botocore_get_apps();
        r.uri = "/v1/apps?page-size=3&token=abc".parse().unwrap();
        assert_eq!(r.verify(), Err(AuthError::SignatureMismatch));
        // tampered signed header value
        let mut r = botocore_create_app();
        r.set_header("content-type", "text/plain");
        assert_eq!(r.verify(), Err(AuthError::SignatureMismatch));
        // tampered host
        let mut r = botocore_get_apps();
        r.set_header("host", "127.0.0.1:5061");
        assert_eq!(r.verify(), Err(AuthError::SignatureMismatch));
        // tampered method
        let mut r = botocore_delete_user_endpoints();
        r.method = Method::GET;
        assert_eq!(r.verify(), Err(AuthError::SignatureMismatch));
        // unsigned headers may change freely
        let mut r = botocore_get_apps();
        r.set_header("user-agent", "something else");
        r.set_header("amz-sdk-request", "attempt=2; max=3");
        assert_eq!(r.verify(), ok("us-east-1"));
    }

    #[test]
    fn wrong_secret_is_a_signature_mismatch() {
        let v = SigV4Verifier::new(
            [(AKID.to_owned(), "not-the-secret".to_owned())],
            "mobiletargeting",
            Duration::from_secs(900),
        );
        assert_eq!(
            botocore_create_app().verify_with(&v, fixed()),
            Err(AuthError::SignatureMismatch)
        );
    }

    #[test]
    fn unknown_access_key() {
        let v = SigV4Verifier::new(
            [("AKIDSOMEONEELSE".to_owned(), SECRET.to_owned())],
            "mobiletargeting",
            Duration::from_secs(900),
        );
        assert_eq!(
            botocore_get_apps().verify_with(&v, fixed()),
            Err(AuthError::UnknownAccessKey(AKID.to_owned()))
        );
        let none = SigV4Verifier::new(Vec::new(), "mobiletargeting", Duration::from_secs(900));
        assert_eq!(
            botocore_get_apps().verify_with(&none, fixed()),
            Err(AuthError::UnknownAccessKey(AKID.to_owned()))
        );
    }

    #[test]
    fn unsigned_request_is_rejected() {
        let mut r = botocore_get_apps();
        r.headers.remove("authorization");
        assert_eq!(r.verify(), Err(AuthError::MissingAuthentication));
    }

    #[test]
    fn missing_signed_header() {
        let mut r = botocore_create_app();
        r.headers.remove("content-type");
        assert_eq!(
            r.verify(),
            Err(AuthError::MissingSignedHeader("content-type".into()))
        );
    }

    #[test]
    fn clock_skew() {
        let v = verifier();
        let r = botocore_get_apps();
        let m15 = Duration::from_secs(15 * 60);
        let m16 = Duration::from_secs(16 * 60);
        assert!(r.verify_with(&v, fixed() + m15).is_ok());
        assert!(r.verify_with(&v, fixed() - m15).is_ok());
        for now in [fixed() + m16, fixed() - m16] {
            assert!(
                matches!(r.verify_with(&v, now), Err(AuthError::ClockSkew { .. })),
                "{:?}",
                r.verify_with(&v, now)
            );
        }
        let err = r.verify_with(&v, fixed() + m16).unwrap_err().to_string();
        assert!(
            err.contains("20260315T080910Z") && err.contains("20260315T082510Z"),
            "{err}"
        );
    }

    #[test]
    fn several_keys() {
        let v = SigV4Verifier::new(
            [
                ("AKIDFIRST".to_owned(), "secret-one".to_owned()),
                (AKID.to_owned(), SECRET.to_owned()),
                ("AKIDTHIRD".to_owned(), "secret-three".to_owned()),
            ],
            "mobiletargeting",
            Duration::from_secs(900),
        );
        assert_eq!(
            botocore_tag_resource().verify_with(&v, fixed()),
            ok("us-east-1")
        );
        for (akid, secret, region) in [
            ("AKIDFIRST", "secret-one", "us-east-1"),
            ("AKIDTHIRD", "secret-three", "eu-central-1"),
        ] {
            let r = client_signed(akid, secret, region, None, SignatureLocation::Headers);
            assert_eq!(
                r.verify_with(&v, fixed()),
                Ok(Verified {
                    access_key_id: akid.into(),
                    region: region.into()
                })
            );
        }
        // Signed with the first key's secret but claiming the third key's id.
        let r = client_signed(
            "AKIDTHIRD",
            "secret-one",
            "us-east-1",
            None,
            SignatureLocation::Headers,
        );
        assert_eq!(
            r.verify_with(&v, fixed()),
            Err(AuthError::SignatureMismatch)
        );
    }

    #[test]
    fn scope_checks() {
        let mut r = botocore_get_apps();
        let auth = r.headers["authorization"].to_str().unwrap().to_owned();
        r.set_header(
            "authorization",
            &auth.replace("/mobiletargeting/", "/pinpoint/"),
        );
        assert_eq!(
            r.verify(),
            Err(AuthError::WrongService {
                expected: "mobiletargeting".into(),
                found: "pinpoint".into()
            })
        );
        r.set_header("authorization", &auth.replace("/20260315/", "/20260314/"));
        assert_eq!(
            r.verify(),
            Err(AuthError::ScopeDateMismatch {
                scope_date: "20260314".into(),
                request_date: "20260315".into()
            })
        );
        for bad in ["/aws5_request,", "/aws4_request/x,", "/aws4_request/,"] {
            r.set_header("authorization", &auth.replace("/aws4_request,", bad));
            assert!(
                matches!(r.verify(), Err(AuthError::MalformedCredential(_))),
                "{bad}"
            );
        }
        r.set_header(
            "authorization",
            &auth.replace("Credential=AKIDHERALDTEST000001/", "Credential="),
        );
        assert!(matches!(r.verify(), Err(AuthError::MalformedCredential(_))));
    }

    #[test]
    fn date_checks() {
        let mut r = botocore_get_apps();
        r.headers.remove("x-amz-date");
        assert_eq!(r.verify(), Err(AuthError::MissingDate));
        for bad in [
            "2026-03-15T08:09:10Z",
            "20260315T080910",
            "20260315T250910Z",
            "20260315t080910z",
        ] {
            r.set_header("x-amz-date", bad);
            assert!(
                matches!(
                    r.verify(),
                    Err(AuthError::BadDate {
                        field: "x-amz-date",
                        ..
                    })
                ),
                "{bad}: {:?}",
                r.verify()
            );
        }
        // x-amz-date present but not signed
        let mut r = botocore_date_header();
        r.set_header("x-amz-date", "20260315T080910Z");
        assert_eq!(r.verify(), Err(AuthError::HeaderNotSigned("x-amz-date")));
        // date present but not signed (and no x-amz-date)
        let mut r = botocore_get_apps();
        r.headers.remove("x-amz-date");
        r.set_header("date", "Sun, 15 Mar 2026 08:09:10 GMT");
        assert_eq!(r.verify(), Err(AuthError::HeaderNotSigned("date")));
        // unparseable Date
        let mut r = botocore_date_header();
        r.set_header("date", "yesterday");
        assert!(matches!(
            r.verify(),
            Err(AuthError::BadDate { field: "date", .. })
        ));
    }

    #[test]
    fn malformed_authorization_headers() {
        let r = botocore_get_apps();
        let auth = r.headers["authorization"].to_str().unwrap().to_owned();
        let check = |value: &str| {
            let mut r = botocore_get_apps();
            r.set_header("authorization", value);
            r.verify()
        };
        assert_eq!(
            check(&auth.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")),
            Err(AuthError::UnsupportedAlgorithm(
                "AWS4-ECDSA-P256-SHA256".into()
            ))
        );
        assert!(matches!(
            check("AWS AKIDHERALDTEST000001:c2lnbmF0dXJl"),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            check("AWS4-HMAC-SHA256"),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            check(&auth.replace(", Signature=", ", Sig=")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            check(&format!("{auth}, Signature=00")),
            Err(AuthError::Malformed(_))
        ));
        // signature not 64 lowercase hex digits
        assert!(matches!(
            check(&auth.replace("Signature=b5", "Signature=B5")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            check(&auth.replace("Signature=b5", "Signature=")),
            Err(AuthError::Malformed(_))
        ));
        // signed headers: host is required, the list must be sorted lowercase names
        assert_eq!(
            check(&auth.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date")),
            Err(AuthError::HeaderNotSigned("host"))
        );
        for list in [
            "x-amz-date;host",
            "Host;x-amz-date",
            "host;;x-amz-date",
            "host;host;x-amz-date",
        ] {
            assert!(matches!(
                check(&auth.replace("host;x-amz-date", list)),
                Err(AuthError::Malformed(_))
            ));
        }
        // two authorization headers
        let mut r = botocore_get_apps();
        r.headers.append("authorization", auth.parse().unwrap());
        assert!(matches!(r.verify(), Err(AuthError::Malformed(_))));
        // header and query auth at once
        let mut r = botocore_get_apps();
        r.uri = "/v1/apps?page-size=2&token=abc&X-Amz-Signature=00"
            .parse()
            .unwrap();
        assert!(matches!(r.verify(), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn payload_hash_header() {
        let body = br#"{"Name": "demo", "tags": {"team": "a b"}}"#;
        let good = hex::encode(Sha256::digest(body));
        // Declared and matching: verifies (botocore puts the header value in the
        // canonical request; here it equals the body hash).
        let mut r = botocore_create_app();
        r.set_header("x-amz-content-sha256", &good);
        assert_eq!(r.verify(), ok("us-east-1"));
        // Declared but not matching the body.
        r.set_header(
            "x-amz-content-sha256",
            &hex::encode(Sha256::digest(b"other")),
        );
        assert_eq!(r.verify(), Err(AuthError::PayloadHashMismatch));
        // Unsigned and streaming payloads with a body.
        for marker in ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"] {
            r.set_header("x-amz-content-sha256", marker);
            assert_eq!(r.verify(), Err(AuthError::UnsignedPayload));
        }
    }

    #[test]
    fn messages_are_lowercase_and_actionable() {
        assert_eq!(
            AuthError::SignatureMismatch.to_string(),
            "the request signature we calculated does not match the signature you provided; \
             check your secret access key and signing method"
        );
        let samples = [
            AuthError::MissingAuthentication,
            AuthError::UnsupportedAlgorithm("AWS".into()),
            AuthError::Malformed("x".into()),
            AuthError::MalformedCredential("x".into()),
            AuthError::UnknownAccessKey("AKID".into()),
            AuthError::WrongService {
                expected: "mobiletargeting".into(),
                found: "s3".into(),
            },
            AuthError::ScopeDateMismatch {
                scope_date: "20240101".into(),
                request_date: "20240102".into(),
            },
            AuthError::MissingDate,
            AuthError::BadDate {
                field: "x-amz-date",
                value: "x".into(),
                expected: "y",
            },
            AuthError::HeaderNotSigned("host"),
            AuthError::MissingSignedHeader("content-type".into()),
            AuthError::ClockSkew {
                request_time: "a".into(),
                server_time: "b".into(),
                max_skew_secs: 900,
            },
            AuthError::Expired {
                expired_at: "a".into(),
                server_time: "b".into(),
            },
            AuthError::PayloadHashMismatch,
            AuthError::UnsignedPayload,
            AuthError::SignatureMismatch,
        ];
        for e in samples {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_ascii_lowercase()), "{m}");
        }
        // Long client input is clipped when echoed.
        let long = "A".repeat(10_000);
        let mut r = botocore_get_apps();
        r.set_header("authorization", &format!("{long} x"));
        let m = r.verify().unwrap_err().to_string();
        assert!(m.len() < 400, "{m}");
    }

    #[test]
    fn debug_does_not_print_secrets() {
        let s = format!("{:?}", verifier());
        assert!(s.contains(AKID) && !s.contains(SECRET), "{s}");
    }

    // ---- round trips through aws-sigv4 acting as the client ----------------------------

    /// Signs a request the way the Rust SDK does (aws-sigv4 default settings),
    /// then turns it into what the server sees.
    fn client_signed(
        akid: &str,
        secret: &str,
        region: &str,
        token: Option<&str>,
        location: SignatureLocation,
    ) -> Req {
        let body = br#"{"Name":"round trip","tags":{"a":"b"}}"#.to_vec();
        let mut request = http::Request::builder()
            .method("POST")
            .uri("http://127.0.0.1:5060/v1/tags/arn%3Aaws%3Amobiletargeting%3Aus-east-1%3A123%3Aapps%2Fx?b=2&a=1%3A2")
            .header("content-type", "application/json")
            .header("x-amz-user-agent", "aws-sdk-rust/1.0")
            .header("amz-sdk-invocation-id", "0b1c")
            .header("user-agent", "aws-sdk-rust/1.0 os/linux")
            .header("x-custom", "  spaced   value  ")
            .header("x-multi", "one")
            .header("x-multi", "two")
            .body(body.clone())
            .unwrap();
        let identity =
            Credentials::new(akid, secret, token.map(str::to_owned), None, "test").into();
        let mut settings = SigningSettings::default();
        settings.signature_location = location;
        if location == SignatureLocation::QueryParams {
            settings.expires_in = Some(Duration::from_secs(300));
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("mobiletargeting")
            .time(fixed())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.uri().to_string(),
            request
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().unwrap())),
            SignableBody::Bytes(request.body()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(&mut request);

        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        headers.insert("host", "127.0.0.1:5060".parse().unwrap());
        Req {
            method: parts.method,
            uri: parts
                .uri
                .path_and_query()
                .unwrap()
                .as_str()
                .parse()
                .unwrap(),
            headers,
            body,
        }
    }

    #[test]
    fn round_trip_header_signature() {
        let r = client_signed(AKID, SECRET, "us-east-1", None, SignatureLocation::Headers);
        let auth = r.headers["authorization"].to_str().unwrap();
        assert!(auth.contains("SignedHeaders=amz-sdk-invocation-id;content-type;host;x-amz-date;x-amz-user-agent;x-custom;x-multi,"), "{auth}");
        assert_eq!(r.verify(), ok("us-east-1"));

        let mut t = client_signed(AKID, SECRET, "us-east-1", None, SignatureLocation::Headers);
        t.body.push(b' ');
        assert_eq!(t.verify(), Err(AuthError::SignatureMismatch));
        let mut t = client_signed(AKID, SECRET, "us-east-1", None, SignatureLocation::Headers);
        t.headers.append("x-multi", "three".parse().unwrap());
        assert_eq!(t.verify(), Err(AuthError::SignatureMismatch));
        let mut t = client_signed(AKID, SECRET, "us-east-1", None, SignatureLocation::Headers);
        t.uri = t
            .uri
            .to_string()
            .replace("a=1%3A2", "a=1%3A3")
            .parse()
            .unwrap();
        assert_eq!(t.verify(), Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn round_trip_with_session_token() {
        let r = client_signed(
            AKID,
            SECRET,
            "eu-west-1",
            Some("token/with+chars="),
            SignatureLocation::Headers,
        );
        assert!(r.headers["authorization"]
            .to_str()
            .unwrap()
            .contains("x-amz-security-token"));
        assert_eq!(r.verify(), ok("eu-west-1"));
    }

    #[test]
    fn round_trip_host_from_uri_authority() {
        // HTTP/2 requests carry the host in :authority, i.e. in the URI.
        let mut r = client_signed(AKID, SECRET, "us-east-1", None, SignatureLocation::Headers);
        r.headers.remove("host");
        let pq = r.uri.path_and_query().unwrap().as_str().to_owned();
        r.uri = format!("http://127.0.0.1:5060{pq}").parse().unwrap();
        assert_eq!(r.verify(), ok("us-east-1"));
        // No host anywhere.
        r.uri = pq.parse().unwrap();
        assert_eq!(
            r.verify(),
            Err(AuthError::MissingSignedHeader("host".into()))
        );
    }

    #[test]
    fn round_trip_presigned() {
        let r = client_signed(
            AKID,
            SECRET,
            "us-east-1",
            None,
            SignatureLocation::QueryParams,
        );
        assert!(r.uri.query().unwrap().contains("X-Amz-Signature="));
        assert_eq!(r.verify(), ok("us-east-1"));
        let v = verifier();
        assert!(matches!(
            r.verify_with(&v, fixed() + Duration::from_secs(301)),
            Err(AuthError::Expired { .. })
        ));
        let mut t = client_signed(
            AKID,
            SECRET,
            "us-east-1",
            None,
            SignatureLocation::QueryParams,
        );
        t.body.pop();
        assert_eq!(t.verify(), Err(AuthError::SignatureMismatch));
        let mut t = client_signed(
            AKID,
            SECRET,
            "us-east-1",
            None,
            SignatureLocation::QueryParams,
        );
        t.uri = t
            .uri
            .to_string()
            .replace("X-Amz-Expires=300", "X-Amz-Expires=0300")
            .parse()
            .unwrap();
        assert!(matches!(t.verify(), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn presigned_with_token_and_missing_parameters() {
        let r = client_signed(
            AKID,
            SECRET,
            "us-east-1",
            Some("tok/en+="),
            SignatureLocation::QueryParams,
        );
        assert!(r.uri.query().unwrap().contains("X-Amz-Security-Token="));
        assert_eq!(r.verify(), ok("us-east-1"));
        for drop in [
            "X-Amz-Date=",
            "X-Amz-Expires=",
            "X-Amz-SignedHeaders=",
            "X-Amz-Algorithm=",
        ] {
            let mut t = client_signed(
                AKID,
                SECRET,
                "us-east-1",
                None,
                SignatureLocation::QueryParams,
            );
            let q: Vec<&str> = t
                .uri
                .query()
                .unwrap()
                .split('&')
                .filter(|p| !p.starts_with(drop))
                .collect();
            t.uri = format!("{}?{}", t.uri.path(), q.join("&")).parse().unwrap();
            let got = t.verify();
            assert!(
                matches!(
                    got,
                    Err(AuthError::Malformed(_)) | Err(AuthError::MissingDate)
                ),
                "{drop}: {got:?}"
            );
        }
    }

    #[test]
    fn wrong_service_configured() {
        let v = SigV4Verifier::new(
            [(AKID.to_owned(), SECRET.to_owned())],
            "execute-api",
            Duration::from_secs(900),
        );
        assert!(matches!(
            botocore_get_apps().verify_with(&v, fixed()),
            Err(AuthError::WrongService { .. })
        ));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%3a").as_deref(), Some("a/b:"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%C3%BC").as_deref(), Some("ü"));
        assert_eq!(percent_decode("%FF"), None);
    }
}

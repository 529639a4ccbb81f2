//! One-time passwords (Pinpoint's SendOTPMessage and VerifyOTPMessage).
//!
//! Pure rules: the request checks, a code drawn uniformly from random
//! bytes the caller supplies (a CSPRNG in the service), the code's keyed
//! hash (HMAC-SHA256 under the cluster secret, bound to the app, the
//! destination and the reference id, so a code is only good where it was
//! sent), and the verdict the state machine applies: a code is valid once,
//! before it expires, within its attempts; a wrong guess spends an attempt,
//! and the record is gone when it is used, expired or out of attempts.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::validate::ValidationError;

/// Pinpoint's `SendOTPMessageRequestParameters`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendOtpRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origination_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_period: Option<i64>,
}

/// Pinpoint's `VerifyOTPMessageRequestParameters`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyOtpRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
}

/// A checked send: everything the service needs, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpSend {
    pub brand: String,
    /// E.164.
    pub destination: String,
    pub origination: String,
    pub reference_id: String,
    pub code_length: usize,
    pub validity_minutes: u32,
    pub attempts: u32,
}

pub const CODE_LENGTH_DEFAULT: usize = 6;
pub const CODE_LENGTH_MIN: usize = 5;
pub const CODE_LENGTH_MAX: usize = 8;
pub const VALIDITY_MINUTES_DEFAULT: u32 = 15;
pub const VALIDITY_MINUTES_MIN: u32 = 5;
pub const VALIDITY_MINUTES_MAX: u32 = 60;
pub const ATTEMPTS_DEFAULT: u32 = 3;
pub const ATTEMPTS_MAX: u32 = 10;
pub const BRAND_CHARS_MAX: usize = 20;
pub const REFERENCE_ID_CHARS_MAX: usize = 48;

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, ValidationError> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ValidationError(format!("{name} is required"))),
    }
}

fn ranged(
    v: Option<i64>,
    name: &str,
    min: i64,
    max: i64,
    default: i64,
) -> Result<i64, ValidationError> {
    match v {
        None => Ok(default),
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(n) => Err(ValidationError(format!(
            "{name} must be from {min} to {max}, not {n}"
        ))),
    }
}

/// Checks a send request (only the SMS channel sends codes).
pub fn send_check(r: &SendOtpRequest) -> Result<OtpSend, ValidationError> {
    let channel = required(&r.channel, "Channel")?;
    if !channel.eq_ignore_ascii_case("SMS") {
        return Err(ValidationError(format!(
            "Channel must be SMS, not {channel:?} (herald sends one-time passwords by SMS)"
        )));
    }
    let brand = required(&r.brand_name, "BrandName")?;
    if brand.chars().count() > BRAND_CHARS_MAX {
        return Err(ValidationError(format!(
            "BrandName: at most {BRAND_CHARS_MAX} characters"
        )));
    }
    let destination = crate::sms::e164(required(&r.destination_identity, "DestinationIdentity")?)
        .map_err(|e| ValidationError(format!("DestinationIdentity: {}", e.0)))?;
    let origination = required(&r.origination_identity, "OriginationIdentity")?.to_owned();
    let reference_id = required(&r.reference_id, "ReferenceId")?;
    if reference_id.chars().count() > REFERENCE_ID_CHARS_MAX {
        return Err(ValidationError(format!(
            "ReferenceId: at most {REFERENCE_ID_CHARS_MAX} characters"
        )));
    }
    Ok(OtpSend {
        brand: brand.to_owned(),
        destination,
        origination,
        reference_id: reference_id.to_owned(),
        code_length: ranged(
            r.code_length,
            "CodeLength",
            CODE_LENGTH_MIN as i64,
            CODE_LENGTH_MAX as i64,
            CODE_LENGTH_DEFAULT as i64,
        )? as usize,
        validity_minutes: ranged(
            r.validity_period,
            "ValidityPeriod",
            VALIDITY_MINUTES_MIN as i64,
            VALIDITY_MINUTES_MAX as i64,
            VALIDITY_MINUTES_DEFAULT as i64,
        )? as u32,
        attempts: ranged(
            r.allowed_attempts,
            "AllowedAttempts",
            1,
            ATTEMPTS_MAX as i64,
            ATTEMPTS_DEFAULT as i64,
        )? as u32,
    })
}

/// Checks a verify request: `(destination in E.164, reference id, code)`.
pub fn verify_check(r: &VerifyOtpRequest) -> Result<(String, String, String), ValidationError> {
    let destination = crate::sms::e164(required(&r.destination_identity, "DestinationIdentity")?)
        .map_err(|e| ValidationError(format!("DestinationIdentity: {}", e.0)))?;
    Ok((
        destination,
        required(&r.reference_id, "ReferenceId")?.to_owned(),
        required(&r.otp, "Otp")?.to_owned(),
    ))
}

/// A code of `len` digits, uniform over all of them, drawn from `next`
/// (32 random bits per call; values past the largest multiple of 10^len are
/// drawn again so no code is likelier than another).
pub fn code(len: usize, mut next: impl FnMut() -> u32) -> String {
    assert!((1..=9).contains(&len), "codes of 1 to 9 digits");
    let modulus = 10u64.pow(len as u32);
    let limit = (u64::from(u32::MAX) + 1) / modulus * modulus;
    loop {
        let v = u64::from(next());
        if v < limit {
            return format!("{:0len$}", v % modulus);
        }
    }
}

/// The stored hash of a code.
pub fn code_hash(
    secret: &[u8],
    app_id: &str,
    destination: &str,
    reference_id: &str,
    code: &str,
) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for part in [app_id, destination, reference_id, code] {
        m.update(&(part.len() as u32).to_be_bytes());
        m.update(part.as_bytes());
    }
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A code waiting to be verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OtpRecord {
    pub code_hash: String,
    pub expires_at_ms: i64,
    pub attempts_left: u32,
}

/// The verdict on a guess, and the record after it (`None`: removed).
pub fn verify(record: &OtpRecord, guess_hash: &str, now_ms: i64) -> (bool, Option<OtpRecord>) {
    if now_ms >= record.expires_at_ms || record.attempts_left == 0 {
        return (false, None);
    }
    if constant_time_eq(record.code_hash.as_bytes(), guess_hash.as_bytes()) {
        return (true, None);
    }
    let left = record.attempts_left - 1;
    if left == 0 {
        (false, None)
    } else {
        (
            false,
            Some(OtpRecord {
                attempts_left: left,
                ..record.clone()
            }),
        )
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req() -> SendOtpRequest {
        SendOtpRequest {
            brand_name: Some("Acme".into()),
            channel: Some("SMS".into()),
            destination_identity: Some("+12065550123".into()),
            origination_identity: Some("+12065550100".into()),
            reference_id: Some("login".into()),
            ..Default::default()
        }
    }

    #[test]
    fn sends_are_checked_and_defaulted() {
        let s = send_check(&req()).unwrap();
        assert_eq!((s.code_length, s.validity_minutes, s.attempts), (6, 15, 3));
        for (bad, field) in [
            (
                SendOtpRequest {
                    channel: Some("EMAIL".into()),
                    ..req()
                },
                "Channel",
            ),
            (
                SendOtpRequest {
                    brand_name: None,
                    ..req()
                },
                "BrandName",
            ),
            (
                SendOtpRequest {
                    destination_identity: Some("555".into()),
                    ..req()
                },
                "DestinationIdentity",
            ),
            (
                SendOtpRequest {
                    code_length: Some(4),
                    ..req()
                },
                "CodeLength",
            ),
            (
                SendOtpRequest {
                    validity_period: Some(61),
                    ..req()
                },
                "ValidityPeriod",
            ),
            (
                SendOtpRequest {
                    allowed_attempts: Some(0),
                    ..req()
                },
                "AllowedAttempts",
            ),
            (
                SendOtpRequest {
                    reference_id: Some(" ".into()),
                    ..req()
                },
                "ReferenceId",
            ),
        ] {
            assert!(send_check(&bad).unwrap_err().0.contains(field), "{field}");
        }
    }

    #[test]
    fn a_code_is_valid_once_before_it_expires_and_within_its_attempts() {
        let h = code_hash(b"k", "app", "+1", "ref", "123456");
        let rec = OtpRecord {
            code_hash: h.clone(),
            expires_at_ms: 1_000,
            attempts_left: 2,
        };
        assert_eq!(verify(&rec, &h, 999), (true, None));
        assert_eq!(verify(&rec, &h, 1_000), (false, None), "expired");
        let wrong = code_hash(b"k", "app", "+1", "ref", "654321");
        let (ok, after) = verify(&rec, &wrong, 0);
        assert!(!ok);
        let after = after.unwrap();
        assert_eq!(after.attempts_left, 1);
        assert_eq!(verify(&after, &wrong, 0), (false, None), "out of attempts");
        // The hash binds the code to its app, destination and reference.
        assert_ne!(h, code_hash(b"k", "app", "+1", "other", "123456"));
        assert_ne!(h, code_hash(b"k", "app2", "+1", "ref", "123456"));
        assert_ne!(h, code_hash(b"k2", "app", "+1", "ref", "123456"));
    }

    #[test]
    fn codes_reject_the_biased_tail() {
        let mut draws = vec![u32::MAX, 7].into_iter();
        assert_eq!(code(6, || draws.next().unwrap()), "000007");
    }

    proptest! {
        #[test]
        fn codes_have_their_length_in_digits(len in 5usize..=8, seed: u32) {
            let mut x = seed;
            let c = code(len, || { x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223); x });
            prop_assert_eq!(c.len(), len);
            prop_assert!(c.chars().all(|ch| ch.is_ascii_digit()));
        }
    }
}

//! One-time passwords (SendOTPMessage, VerifyOTPMessage): a code from the
//! operating system's CSPRNG is stored only as its keyed hash, in the shard
//! `keys::otp_shard_key` places (destination, reference id) in, with its
//! expiry and attempts, before it is sent by SMS; a verification is one
//! proposal whose verdict the state machine decides (valid once, before it
//! expires, within its attempts), so two concurrent guesses cannot both
//! spend the same attempt.

use std::collections::BTreeMap;

use herald_channels::smpp::OutgoingSms;
use herald_model::message::{DeliveryStatus, MessageResponse, Outcome};
use herald_model::otp::{self, OtpRecord, SendOtpRequest, VerifyOtpRequest};
use herald_storage::{keys, CmdResult, Command, KvEngine};
use ring::rand::SecureRandom;

use crate::delivery::Job;
use crate::service::{Herald, Result, ServiceError};

/// Pinpoint's `VerificationResponse`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerificationResponse {
    pub valid: bool,
}

fn random_u32(rng: &ring::rand::SystemRandom) -> u32 {
    let mut b = [0u8; 4];
    rng.fill(&mut b)
        .expect("the operating system's random source failed");
    u32::from_be_bytes(b)
}

impl<E: KvEngine> Herald<E> {
    /// Sends a new code to `DestinationIdentity` by SMS (replacing any
    /// earlier code for the same destination and reference id).
    pub async fn send_otp(
        &self,
        app_id: &str,
        req: SendOtpRequest,
        request_id: &str,
    ) -> Result<MessageResponse> {
        let s = otp::send_check(&req)?;
        let app = self.app(app_id).await?;
        let ch = app
            .sms_channel
            .as_ref()
            .filter(|c| c.enabled)
            .ok_or_else(|| {
                ServiceError::BadRequest(format!(
                    "application {app_id} has no enabled SMS channel to send the code by"
                ))
            })?;
        let origination = match herald_model::sms::e164(&s.origination) {
            Ok(n) if self.cfg.sms.number(&n).is_some() => n,
            Ok(n) => {
                return Err(ServiceError::BadRequest(format!(
                    "OriginationIdentity {n} is not one of this cluster's origination numbers ([sms] numbers)"
                )))
            }
            Err(_) if Some(&s.origination) == ch.sender_id.as_ref()
                || Some(&s.origination) == ch.short_code.as_ref() =>
            {
                s.origination.clone()
            }
            Err(_) => {
                herald_model::sms::sender_id_check(&s.origination).map_err(|e| {
                    ServiceError::BadRequest(format!("OriginationIdentity: {}", e.0))
                })?;
                s.origination.clone()
            }
        };
        let rng = ring::rand::SystemRandom::new();
        let code = otp::code(s.code_length, || random_u32(&rng));
        let now = self.clock.now_ms();
        let record = OtpRecord {
            code_hash: otp::code_hash(
                &self.cfg.tracking.secret,
                app_id,
                &s.destination,
                &s.reference_id,
                &code,
            ),
            expires_at_ms: now + i64::from(s.validity_minutes) * 60_000,
            attempts_left: s.attempts,
        };
        let g = self.host.group_of(
            app_id,
            &keys::otp_shard_key(&s.destination, &s.reference_id),
        );
        if let CmdResult::Rejected(why) = self
            .host
            .propose(
                g,
                Command::PutOtp {
                    app_id: app_id.to_owned(),
                    destination: s.destination.clone(),
                    reference_id: s.reference_id.clone(),
                    record,
                },
            )
            .await?
        {
            return Err(ServiceError::Internal(format!("storing the code: {why}")));
        }
        let text = format!(
            "{code} is your {} verification code. It expires in {} minutes.",
            s.brand, s.validity_minutes
        );
        let message_id = format!("otp-{request_id}");
        let job = Job::Sms {
            sms: OutgoingSms {
                message_id: message_id.clone(),
                app_id: app_id.to_owned(),
                source: origination,
                destination: s.destination.clone(),
                parts: herald_model::sms::encode(&text)?,
                reference: (herald_model::hash::xxh3(message_id.as_bytes()) & 0xFF) as u8,
                receipt: true,
            },
            endpoint_id: None,
        };
        let d = self.dispatcher()?;
        let outcome = match d.admit(1).await {
            Ok(admission) => {
                d.send(app_id, "SMS", None, vec![job], admission)
                    .await
                    .remove(0)
                    .outcome
            }
            Err(e) => Outcome::new(DeliveryStatus::Throttled, 429, e.to_string()),
        };
        tracing::info!(app_id, reference_id = %s.reference_id, status = outcome.status.as_str(), "one-time password sent");
        let mut result = BTreeMap::new();
        result.insert(s.destination, outcome.address_result(Some(&message_id)));
        Ok(MessageResponse {
            application_id: app_id.to_owned(),
            endpoint_result: None,
            request_id: Some(request_id.to_owned()),
            result: Some(result),
        })
    }

    /// Checks a code; a wrong one spends an attempt.
    pub async fn verify_otp(
        &self,
        app_id: &str,
        req: VerifyOtpRequest,
    ) -> Result<VerificationResponse> {
        let (destination, reference_id, code) = otp::verify_check(&req)?;
        self.app(app_id).await?;
        let g = self
            .host
            .group_of(app_id, &keys::otp_shard_key(&destination, &reference_id));
        let guess_hash = otp::code_hash(
            &self.cfg.tracking.secret,
            app_id,
            &destination,
            &reference_id,
            &code,
        );
        let verdict = self
            .host
            .propose(
                g,
                Command::VerifyOtp {
                    app_id: app_id.to_owned(),
                    destination,
                    reference_id,
                    guess_hash,
                    now_ms: self.clock.now_ms(),
                },
            )
            .await?;
        match verdict {
            CmdResult::OtpVerdict(valid) => {
                metrics::counter!("herald_otp_verifications_total", "valid" => valid.to_string())
                    .increment(1);
                Ok(VerificationResponse { valid })
            }
            other => Err(ServiceError::Internal(format!(
                "verifying the code: unexpected {other:?}"
            ))),
        }
    }
}

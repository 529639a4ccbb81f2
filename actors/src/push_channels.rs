//! The push channel APIs (`/v1/apps/{app}/channels/apns`, `apns_sandbox`,
//! `apns_voip`, `apns_voip_sandbox`, `gcm`): credentials are checked by building
//! the client's signer or TLS identity from them (a key that does not parse
//! is refused before anything is stored), then sealed (`credentials`) and
//! committed to the meta group with the channel.

use herald_channels::apns::ApnsAuth;
use herald_channels::smtp::SendError;
use herald_model::channel::{
    apns_channel_check, gcm_channel_check, ApnsChannelRequest, ApnsChannelResponse,
    ApnsCredentialsGiven, GcmChannelRequest, GcmChannelResponse,
};
use herald_storage::{
    ApnsChannelRecord, ApnsChannelWrite, CmdResult, Command, GcmChannelRecord, KvEngine, META_GROUP,
};
use serde::{Deserialize, Serialize};

use crate::service::{Herald, Result, ServiceError};

/// The secret parts of an APNs channel, sealed in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApnsCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

fn no_apns_channel(app_id: &str, platform: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "the {platform} channel of application {app_id} is not configured"
    ))
}

fn invalid(e: SendError) -> ServiceError {
    match e {
        SendError::Invalid(m) => ServiceError::BadRequest(m),
        other => ServiceError::BadRequest(other.to_string()),
    }
}

impl<E: KvEngine> Herald<E> {
    pub async fn apns_channel(&self, app_id: &str, platform: &str) -> Result<ApnsChannelResponse> {
        self.app(app_id)
            .await?
            .apns_channels
            .get(platform)
            .map(|c| c.response.clone())
            .ok_or_else(|| no_apns_channel(app_id, platform))
    }

    /// The stored channel with its credentials opened (for sending).
    pub(crate) fn open_apns_credentials(
        &self,
        app_id: &str,
        ch: &ApnsChannelRecord,
    ) -> Result<ApnsCredentials> {
        let plain = crate::credentials::open(
            &self.cfg.tracking.secret,
            app_id,
            &ch.write.sealed_credentials,
        )
        .map_err(ServiceError::Internal)?;
        serde_json::from_slice(&plain)
            .map_err(|e| ServiceError::Internal(format!("sealed APNs credentials: {e}")))
    }

    pub async fn update_apns_channel(
        &self,
        app_id: &str,
        platform: &str,
        req: ApnsChannelRequest,
    ) -> Result<ApnsChannelResponse> {
        let app = self.app(app_id).await?;
        let stored = app.apns_channels.get(platform);
        let had = ApnsCredentialsGiven {
            token: stored.is_some_and(|c| c.write.has_token),
            certificate: stored.is_some_and(|c| c.write.has_certificate),
        };
        let (method, given) = apns_channel_check(&req, stored.map(|c| &c.response), had)?;
        let mut creds = match stored {
            Some(c) => self.open_apns_credentials(app_id, c)?,
            None => ApnsCredentials::default(),
        };
        let (mut team_id, mut key_id) = (
            stored.and_then(|c| c.write.team_id.clone()),
            stored.and_then(|c| c.write.token_key_id.clone()),
        );
        if given.token {
            let (key, kid, team) = (
                req.token_key.clone().unwrap_or_default(),
                req.token_key_id.clone().unwrap_or_default(),
                req.team_id.clone().unwrap_or_default(),
            );
            ApnsAuth::token(&key, &kid, &team).map_err(invalid)?;
            creds.token_key = Some(key);
            (team_id, key_id) = (Some(team), Some(kid));
        }
        if given.certificate {
            let (cert, key) = (
                req.certificate.clone().unwrap_or_default(),
                req.private_key.clone().unwrap_or_default(),
            );
            ApnsAuth::certificate(&cert, &key).map_err(invalid)?;
            creds.certificate = Some(cert);
            creds.private_key = Some(key);
        }
        let bundle_id = req
            .bundle_id
            .clone()
            .filter(|b| !b.trim().is_empty())
            .or_else(|| stored.map(|c| c.write.bundle_id.clone()))
            .unwrap_or_default();
        let plain = serde_json::to_vec(&creds).expect("credentials serialize");
        let write = ApnsChannelWrite {
            enabled: req.enabled,
            method,
            bundle_id,
            team_id,
            token_key_id: key_id,
            has_token: creds.token_key.is_some(),
            has_certificate: creds.certificate.is_some(),
            sealed_credentials: crate::credentials::seal(&self.cfg.tracking.secret, app_id, &plain),
        };
        let cmd = Command::UpdateApnsChannel {
            app_id: app_id.to_owned(),
            platform: platform.to_owned(),
            write,
            now_iso: self.now_iso(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::ApnsChannel(Some(ch)) => {
                tracing::info!(
                    app_id,
                    platform,
                    version = ch.version,
                    "APNs channel updated"
                );
                Ok(*ch)
            }
            _ => Err(ServiceError::NotFound(format!(
                "application {app_id} not found"
            ))),
        }
    }

    pub async fn delete_apns_channel(
        &self,
        app_id: &str,
        platform: &str,
    ) -> Result<ApnsChannelResponse> {
        self.app(app_id).await?;
        let cmd = Command::DeleteApnsChannel {
            app_id: app_id.to_owned(),
            platform: platform.to_owned(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::ApnsChannel(Some(ch)) => Ok(*ch),
            _ => Err(no_apns_channel(app_id, platform)),
        }
    }
}

impl<E: KvEngine> Herald<E> {
    pub async fn gcm_channel(&self, app_id: &str) -> Result<GcmChannelResponse> {
        self.app(app_id)
            .await?
            .gcm_channel
            .map(|c| c.response)
            .ok_or_else(|| no_apns_channel(app_id, "GCM"))
    }

    /// The stored service account JSON, opened (for sending).
    pub(crate) fn open_gcm_service_json(
        &self,
        app_id: &str,
        ch: &GcmChannelRecord,
    ) -> Result<String> {
        let plain =
            crate::credentials::open(&self.cfg.tracking.secret, app_id, &ch.sealed_service_json)
                .map_err(ServiceError::Internal)?;
        String::from_utf8(plain)
            .map_err(|e| ServiceError::Internal(format!("sealed ServiceJson: {e}")))
    }

    pub async fn update_gcm_channel(
        &self,
        app_id: &str,
        req: GcmChannelRequest,
    ) -> Result<GcmChannelResponse> {
        let app = self.app(app_id).await?;
        let stored = app.gcm_channel.as_ref();
        gcm_channel_check(&req, stored.map(|c| &c.response))?;
        let json = match req.service_json.as_deref().filter(|j| !j.trim().is_empty()) {
            Some(j) => {
                herald_channels::fcm::ServiceAccount::from_json(j).map_err(invalid)?;
                j.to_owned()
            }
            None => self.open_gcm_service_json(
                app_id,
                stored.expect("gcm_channel_check wants ServiceJson for a new channel"),
            )?,
        };
        let cmd = Command::UpdateGcmChannel {
            app_id: app_id.to_owned(),
            enabled: req.enabled,
            sealed_service_json: crate::credentials::seal(
                &self.cfg.tracking.secret,
                app_id,
                json.as_bytes(),
            ),
            now_iso: self.now_iso(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::GcmChannel(Some(ch)) => {
                tracing::info!(app_id, version = ch.version, "GCM channel updated");
                Ok(*ch)
            }
            _ => Err(ServiceError::NotFound(format!(
                "application {app_id} not found"
            ))),
        }
    }

    pub async fn delete_gcm_channel(&self, app_id: &str) -> Result<GcmChannelResponse> {
        self.app(app_id).await?;
        let cmd = Command::DeleteGcmChannel {
            app_id: app_id.to_owned(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::GcmChannel(Some(ch)) => Ok(*ch),
            _ => Err(no_apns_channel(app_id, "GCM")),
        }
    }
}

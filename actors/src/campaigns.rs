//! Campaigns: the Pinpoint campaign operations and what they answer.
//!
//! A campaign is a versioned definition in the meta group (the write
//! request as given) with its execution progress in its head; runs are
//! driven by [`crate::campaign_run`]. Its state (SCHEDULED, EXECUTING,
//! PENDING_NEXT_RUN, COMPLETED, PAUSED) is derived from the latest version's
//! schedule and that progress, never stored separately.

use herald_model::campaign::{
    self as camp, ActivitiesResponse, ActivityResponse, CampaignResponse, CampaignState,
    CampaignsResponse, TreatmentResource, WriteCampaignRequest,
};
use herald_model::schedule::{self, Frequency, Recurrence};
use herald_model::{ids, time, validate};
use herald_storage::{
    def_kind, ActivityRecord, CmdResult, Command, DefHead, DefVersion, DefWrite, KvEngine,
    META_GROUP,
};
use serde_json::Value;

use crate::definitions::version_param;
use crate::segments::page_size;
use crate::service::{Herald, Result, ServiceError};

/// Campaigns per app at most (Pinpoint's default quota is 200 active).
pub const CAMPAIGNS_MAX: usize = 200;

fn not_found(app_id: &str, id: &str) -> ServiceError {
    ServiceError::NotFound(format!("campaign {id} of application {app_id} not found"))
}

pub(crate) fn parse_campaign(body: &Value) -> Result<WriteCampaignRequest> {
    serde_json::from_value(body.clone())
        .map_err(|e| ServiceError::BadRequest(format!("the campaign request is invalid: {e}")))
}

/// The campaign's recurrence as its version defines it; `created_ms`
/// stands for `IMMEDIATE`.
pub(crate) fn recurrence(req: &WriteCampaignRequest, created_ms: i64) -> Option<Recurrence> {
    let s = req.schedule.as_ref()?;
    let start_ms = match s.start_time.as_deref() {
        Some("IMMEDIATE") | None => created_ms,
        Some(t) => time::parse_iso8601_ms(t).ok()?,
    };
    let end_ms = s
        .end_time
        .as_deref()
        .and_then(|t| time::parse_iso8601_ms(t).ok());
    let frequency = Frequency::parse(s.frequency.as_deref().unwrap_or("ONCE"))?;
    Some(Recurrence {
        start_ms,
        end_ms,
        frequency,
    })
}

/// The campaign's `Schedule.Timezone`, if valid.
pub(crate) fn campaign_zone(req: &WriteCampaignRequest) -> Option<schedule::Zone> {
    req.schedule
        .as_ref()
        .and_then(|s| s.timezone.as_deref())
        .and_then(schedule::parse_zone)
}

/// Whether the campaign sends at the scheduled wall-clock time in each
/// endpoint's zone (`IsLocalTime`).
pub(crate) fn is_local_time(req: &WriteCampaignRequest) -> bool {
    req.schedule.as_ref().and_then(|s| s.is_local_time) == Some(true)
}

/// For `IsLocalTime` campaigns: the recurrence in wall-clock ("floating")
/// milliseconds, StartTime and EndTime read in the campaign's `Timezone`
/// (UTC without one), as `schedule::local_occurrence` expects.
pub(crate) fn wall_recurrence(req: &WriteCampaignRequest, created_ms: i64) -> Option<Recurrence> {
    let r = recurrence(req, created_ms)?;
    let zone = campaign_zone(req);
    Some(Recurrence {
        start_ms: schedule::wall_clock_ms(r.start_ms, zone.as_ref()),
        end_ms: r.end_ms.map(|e| schedule::wall_clock_ms(e, zone.as_ref())),
        frequency: r.frequency,
    })
}

/// Whether the version is paused (`IsPaused`).
pub(crate) fn is_paused(req: &WriteCampaignRequest) -> bool {
    req.is_paused == Some(true)
}

fn created_ms(head: &DefHead) -> i64 {
    time::parse_iso8601_ms(&head.creation_date).unwrap_or(0)
}

/// The campaign's status now.
pub(crate) fn status(head: &DefHead, req: &WriteCampaignRequest) -> &'static str {
    let p = head.progress.clone().unwrap_or_default();
    let rec = recurrence(req, created_ms(head));
    let event =
        rec.is_some_and(|r| matches!(r.frequency, Frequency::Event | Frequency::InAppEvent));
    let next_run_ms = if p.finished {
        None
    } else if event {
        // An event-triggered campaign waits for events until its EndTime.
        Some(i64::MAX)
    } else {
        rec.and_then(|r| schedule::occurrence(&r, p.runs_started))
    };
    camp::campaign_status(&camp::CampaignProgress {
        deleted: false,
        paused: is_paused(req),
        executing: p.current.is_some(),
        runs_started: p.runs_started,
        next_run_ms,
    })
    .as_str()
}

pub(crate) fn campaign_response(
    app_id: &str,
    head: &DefHead,
    v: &DefVersion,
    deleted: bool,
) -> Result<CampaignResponse> {
    let req = parse_campaign(&v.body).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let state = if deleted {
        "DELETED"
    } else {
        status(head, &req)
    };
    let state = Some(CampaignState {
        campaign_status: Some(state.into()),
    });
    let additional = req.additional_treatments.as_ref().map(|ts| {
        ts.iter()
            .enumerate()
            .map(|(i, t)| TreatmentResource {
                custom_delivery_configuration: t.custom_delivery_configuration.clone(),
                id: (i + 1).to_string(),
                message_configuration: t.message_configuration.clone(),
                schedule: t.schedule.clone(),
                size_percent: t.size_percent.unwrap_or(0),
                state: state.clone(),
                template_configuration: t.template_configuration.clone(),
                treatment_description: t.treatment_description.clone(),
                treatment_name: t.treatment_name.clone(),
            })
            .collect()
    });
    Ok(CampaignResponse {
        additional_treatments: additional,
        application_id: app_id.to_owned(),
        arn: head.arn.clone(),
        creation_date: head.creation_date.clone(),
        custom_delivery_configuration: req.custom_delivery_configuration,
        default_state: state.clone(),
        description: req.description,
        holdout_percent: req.holdout_percent,
        hook: req.hook,
        id: head.id.clone(),
        is_paused: Some(req.is_paused.unwrap_or(false)),
        last_modified_date: v.last_modified_date.clone(),
        limits: req.limits,
        message_configuration: req.message_configuration,
        name: req.name,
        schedule: req.schedule,
        segment_id: req.segment_id.unwrap_or_default(),
        segment_version: req.segment_version.unwrap_or(1),
        state,
        tags: Some(head.tags.clone()),
        template_configuration: req.template_configuration,
        treatment_description: req.treatment_description,
        treatment_name: req.treatment_name,
        version: i32::try_from(v.version).ok(),
        priority: req.priority,
    })
}

pub(crate) fn activity_response(
    app_id: &str,
    campaign_id: &str,
    a: &ActivityRecord,
) -> ActivityResponse {
    let mut metrics = std::collections::BTreeMap::new();
    for (k, v) in &a.skipped {
        metrics.insert(format!("skipped_{k}"), v.to_string());
    }
    ActivityResponse {
        application_id: app_id.to_owned(),
        campaign_id: campaign_id.to_owned(),
        end: a.end_ms.map(time::format_iso8601_ms),
        id: activity_id(a.run, a.treatment),
        result: a.result.clone(),
        scheduled_start: Some(time::format_iso8601_ms(a.scheduled_ms)),
        start: Some(time::format_iso8601_ms(a.start_ms)),
        state: Some(a.state.clone()),
        successful_endpoint_count: i32::try_from(a.successful).ok(),
        timezones_completed_count: i32::try_from(a.timezones_completed).ok(),
        timezones_total_count: i32::try_from(a.timezones_total).ok(),
        total_endpoint_count: i32::try_from(a.total).ok(),
        treatment_id: Some(a.treatment.to_string()),
        execution_metrics: Some(metrics),
    }
}

pub use herald_model::campaign::activity_id;

impl<E: KvEngine> Herald<E> {
    /// `CreateCampaign`.
    pub async fn create_campaign(
        &self,
        app_id: &str,
        id: String,
        region: &str,
        mut body: Value,
    ) -> Result<CampaignResponse> {
        let mut req = parse_campaign(&body)?;
        camp::validate_write_campaign(&req, true)?;
        let tags = req.tags.clone().unwrap_or_default();
        validate::tags(&tags, &self.cfg.limits)?;
        self.app(app_id).await?;
        if self
            .host
            .reader()
            .def_heads(app_id, def_kind::CAMPAIGN)?
            .len()
            >= CAMPAIGNS_MAX
        {
            return Err(ServiceError::BadRequest(format!(
                "an application may have at most {CAMPAIGNS_MAX} campaigns"
            )));
        }
        self.check_campaign_refs(app_id, &mut req)?;
        body = serde_json::to_value(&req).map_err(|e| ServiceError::Internal(e.to_string()))?;
        if let Some(o) = body.as_object_mut() {
            o.remove("tags");
        }
        let arn = ids::resource_arn(
            region,
            &self.cfg.account,
            &format!("apps/{app_id}/campaigns/{id}"),
        );
        let cmd = Command::PutDefinition {
            app_id: app_id.to_owned(),
            kind: def_kind::CAMPAIGN,
            id: id.clone(),
            write: DefWrite::Create { arn, tags },
            body,
            now_iso: self.now_iso(),
        };
        let r = self.put_campaign(app_id, &id, cmd).await?;
        self.wake_campaigns();
        Ok(r)
    }

    /// `UpdateCampaign`: a new version; the next run uses it.
    pub async fn update_campaign(
        &self,
        app_id: &str,
        id: &str,
        body: Value,
    ) -> Result<CampaignResponse> {
        parse_campaign(&body)?;
        self.app(app_id).await?;
        let (_, old) = self.campaign_record(app_id, id, None)?;
        let old = parse_campaign(&old.body).map_err(|e| ServiceError::Internal(e.to_string()))?;
        // Members left out keep their values from the previous version.
        let mut merged = serde_json::to_value(&old).unwrap_or_default();
        if let (Some(m), Value::Object(new)) = (merged.as_object_mut(), body) {
            for (k, v) in new {
                if k != "tags" {
                    m.insert(k, v);
                }
            }
        }
        let mut req = parse_campaign(&merged)?;
        camp::validate_write_campaign(&req, true)?;
        self.check_campaign_refs(app_id, &mut req)?;
        let mut body =
            serde_json::to_value(&req).map_err(|e| ServiceError::Internal(e.to_string()))?;
        if let Some(o) = body.as_object_mut() {
            o.remove("tags");
        }
        let cmd = Command::PutDefinition {
            app_id: app_id.to_owned(),
            kind: def_kind::CAMPAIGN,
            id: id.to_owned(),
            write: DefWrite::NewVersion,
            body,
            now_iso: self.now_iso(),
        };
        let r = self.put_campaign(app_id, id, cmd).await?;
        self.wake_campaigns();
        Ok(r)
    }

    /// The segment must exist; its version is pinned to the latest when
    /// the request names none. Templates named must exist.
    fn check_campaign_refs(&self, app_id: &str, req: &mut WriteCampaignRequest) -> Result<()> {
        let seg_id = req.segment_id.clone().unwrap_or_default();
        let version = req.segment_version.map(|v| u32::try_from(v).unwrap_or(0));
        let (head, _) = self
            .segment_record(app_id, &seg_id, version)
            .map_err(|e| match e {
                ServiceError::NotFound(m) => ServiceError::BadRequest(format!("SegmentId: {m}")),
                other => other,
            })?;
        if req.segment_version.is_none() {
            req.segment_version = i32::try_from(head.latest).ok();
        }
        Ok(())
    }

    async fn put_campaign(&self, app_id: &str, id: &str, cmd: Command) -> Result<CampaignResponse> {
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::Def(Some((head, v))) => campaign_response(app_id, &head, &v, false),
            CmdResult::Def(None) => Err(not_found(app_id, id)),
            CmdResult::Rejected(why) => Err(ServiceError::BadRequest(why)),
            other => Err(ServiceError::Internal(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// A campaign's head and one version (the latest when `None`).
    pub(crate) fn campaign_record(
        &self,
        app_id: &str,
        id: &str,
        version: Option<u32>,
    ) -> Result<(DefHead, DefVersion)> {
        self.def_record(app_id, def_kind::CAMPAIGN, id, version)
    }

    /// `GetCampaign` (latest version) and `GetCampaignVersion`.
    pub async fn campaign(
        &self,
        app_id: &str,
        id: &str,
        version: Option<&str>,
    ) -> Result<CampaignResponse> {
        let version = version_param(version)?;
        self.app(app_id).await?;
        self.host.read_barrier(META_GROUP).await?;
        let (head, v) = self.campaign_record(app_id, id, version)?;
        campaign_response(app_id, &head, &v, false)
    }

    /// `GetCampaigns`: latest versions by id; the token is the last id of
    /// the previous page.
    pub async fn campaigns(
        &self,
        app_id: &str,
        size: Option<&str>,
        token: Option<&str>,
    ) -> Result<CampaignsResponse> {
        let size = page_size(size)?;
        self.app(app_id).await?;
        self.host.read_barrier(META_GROUP).await?;
        let heads = self.host.reader().def_heads(app_id, def_kind::CAMPAIGN)?;
        let after = token.filter(|t| !t.is_empty());
        let mut item: Vec<CampaignResponse> = Vec::new();
        let mut next_token = None;
        for h in heads
            .iter()
            .filter(|h| after.is_none_or(|t| h.id.as_str() > t))
        {
            if item.len() == size {
                next_token = item.last().map(|c| c.id.clone());
                break;
            }
            let (head, v) = self.campaign_record(app_id, &h.id, None)?;
            item.push(campaign_response(app_id, &head, &v, false)?);
        }
        Ok(CampaignsResponse { item, next_token })
    }

    /// `GetCampaignVersions`: newest first; the token is the last version
    /// of the previous page.
    pub async fn campaign_versions(
        &self,
        app_id: &str,
        id: &str,
        size: Option<&str>,
        token: Option<&str>,
    ) -> Result<CampaignsResponse> {
        let (head, versions, next_token) = self
            .def_version_page(app_id, def_kind::CAMPAIGN, id, size, token)
            .await?;
        let item = versions
            .iter()
            .map(|v| campaign_response(app_id, &head, v, false))
            .collect::<Result<Vec<_>>>()?;
        Ok(CampaignsResponse { item, next_token })
    }

    /// `DeleteCampaign`: answers the campaign as DELETED. A run in
    /// progress stops at its next batch.
    pub async fn delete_campaign(&self, app_id: &str, id: &str) -> Result<CampaignResponse> {
        self.app(app_id).await?;
        let cmd = Command::DeleteDefinition {
            app_id: app_id.to_owned(),
            kind: def_kind::CAMPAIGN,
            id: id.to_owned(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::Def(Some((head, v))) => campaign_response(app_id, &head, &v, true),
            CmdResult::Def(None) => Err(not_found(app_id, id)),
            other => Err(ServiceError::Internal(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// `GetCampaignActivities`: newest run first; the token is the index
    /// of the next activity.
    pub async fn campaign_activities(
        &self,
        app_id: &str,
        id: &str,
        size: Option<&str>,
        token: Option<&str>,
    ) -> Result<ActivitiesResponse> {
        let size = page_size(size)?;
        let from = match token.filter(|t| !t.is_empty()) {
            None => 0,
            Some(t) => t.parse::<usize>().map_err(|_| {
                ServiceError::BadRequest(format!("{t:?} is not a valid pagination token"))
            })?,
        };
        self.app(app_id).await?;
        self.host.read_barrier(META_GROUP).await?;
        self.campaign_record(app_id, id, None)?;
        let mut all = self.host.reader().activities(app_id, id)?;
        all.sort_by(|a, b| (b.run, a.treatment).cmp(&(a.run, b.treatment)));
        let item: Vec<ActivityResponse> = all
            .iter()
            .skip(from)
            .take(size)
            .map(|a| activity_response(app_id, id, a))
            .collect();
        let next_token = (all.len() > from + size).then(|| (from + size).to_string());
        Ok(ActivitiesResponse { item, next_token })
    }

    /// Ids of the campaigns whose latest version targets `segment_id`.
    pub(crate) fn campaigns_using_segment(
        &self,
        app_id: &str,
        segment_id: &str,
    ) -> Result<Vec<String>> {
        let reader = self.host.reader();
        let mut out = Vec::new();
        for h in reader.def_heads(app_id, def_kind::CAMPAIGN)? {
            let Some(v) = reader.def_version(app_id, def_kind::CAMPAIGN, &h.id, h.latest)? else {
                continue;
            };
            if v.body.get("SegmentId").and_then(Value::as_str) == Some(segment_id) {
                out.push(h.id);
            }
        }
        Ok(out)
    }
}

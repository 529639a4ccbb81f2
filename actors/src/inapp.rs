//! GetInAppMessages: the in-app campaigns (`Frequency: IN_APP_EVENT`) an
//! endpoint may be shown now, with each campaign's message for the
//! endpoint's treatment, in priority order (see `herald_model::inapp` for
//! the rules). Reads the campaigns from the meta group and the endpoint and
//! its display events from its shard, each after a read barrier.

use herald_model::campaign::{self as camp, Assignment, WriteCampaignRequest};
use herald_model::inapp::{
    self, CampaignInAppMessage, Caps, InAppCampaignSchedule, InAppMessage, InAppMessageCampaign,
    InAppMessagesResponse,
};
use herald_model::message::TemplateConfiguration;
use herald_model::schedule::Frequency;
use herald_model::time;
use herald_storage::{def_kind, KvEngine, META_GROUP};

use crate::campaigns::{is_paused, parse_campaign, recurrence};
use crate::service::{Herald, Result, ServiceError};

/// Events of one endpoint looked at for its display counts, at most.
const DISPLAY_EVENTS_MAX: usize = 10_000;

impl<E: KvEngine> Herald<E> {
    pub async fn in_app_messages(
        &self,
        app_id: &str,
        endpoint_id: &str,
    ) -> Result<InAppMessagesResponse> {
        self.app(app_id).await?;
        let g = self.host.group_of(app_id, endpoint_id);
        self.host.read_barrier(g).await?;
        let ep = self
            .host
            .reader()
            .endpoint(g, app_id, endpoint_id)?
            .ok_or_else(|| ServiceError::NotFound(format!("endpoint {endpoint_id} not found")))?;
        let mut out = Vec::new();
        if ep.opt_out.as_deref() == Some("ALL") || ep.endpoint_status.as_deref() == Some("INACTIVE")
        {
            return Ok(InAppMessagesResponse {
                in_app_message_campaigns: out,
            });
        }
        let events = self.host.reader().endpoint_events(
            g,
            app_id,
            endpoint_id,
            DISPLAY_EVENTS_MAX,
            1_000_000,
        )?;
        // (type, attributes, UTC day, session id) of each event, and the
        // endpoint's latest session.
        let empty = Default::default();
        let facts: Vec<inapp::DisplayFact<'_>> = events
            .iter()
            .map(|r| {
                let e = &r.event;
                let day = e
                    .timestamp
                    .as_deref()
                    .and_then(|t| time::parse_iso8601_ms(t).ok())
                    .map_or(i64::MIN, |ms| ms.div_euclid(time::DAY_MS));
                (
                    e.event_type.as_deref().unwrap_or_default(),
                    e.attributes.as_ref().unwrap_or(&empty),
                    day,
                    e.session.as_ref().and_then(|s| s.id.as_deref()),
                )
            })
            .collect();
        let latest_session = facts.iter().rev().find_map(|f| f.3);
        let now = self.clock.now_ms();
        let today = now.div_euclid(time::DAY_MS);
        self.host.read_barrier(META_GROUP).await?;
        for head in self.host.reader().def_heads(app_id, def_kind::CAMPAIGN)? {
            let (_, v) = self.campaign_record(app_id, &head.id, None)?;
            let req = parse_campaign(&v.body)?;
            let created = time::parse_iso8601_ms(&head.creation_date).unwrap_or(0);
            let Some(rec) = recurrence(&req, created) else {
                continue;
            };
            if rec.frequency != Frequency::InAppEvent
                || is_paused(&req)
                || head.progress.as_ref().is_some_and(|p| p.finished)
                || now < rec.start_ms
                || rec.end_ms.is_some_and(|e| now > e)
            {
                continue;
            }
            let seg_id = req.segment_id.clone().unwrap_or_default();
            let seg_version = req.segment_version.and_then(|v| u32::try_from(v).ok());
            let segment = match self.resolve_segment(app_id, &seg_id, seg_version) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(app_id, campaign_id = %head.id, error = %e, "in-app campaign's segment not found");
                    continue;
                }
            };
            if !segment.matches(&ep, now, &self.member_check(app_id, g)) {
                continue;
            }
            let sizes: Vec<u32> = req
                .additional_treatments
                .iter()
                .flatten()
                .map(|t| u32::try_from(t.size_percent.unwrap_or(0)).unwrap_or(0))
                .collect();
            let holdout = u32::try_from(req.holdout_percent.unwrap_or(0)).unwrap_or(0);
            let t = match camp::assign(&head.id, endpoint_id, holdout, &sizes) {
                Assignment::Holdout => continue,
                Assignment::Treatment(t) => t.min(sizes.len()),
            };
            let limits = req.limits.clone().unwrap_or_default();
            let cap = |v: Option<i32>| u32::try_from(v.unwrap_or(0)).unwrap_or(0);
            let caps = Caps {
                daily: cap(limits.daily),
                session: cap(limits.session),
                total: cap(limits.total),
            };
            let shown =
                inapp::count_displays(facts.iter().copied(), &head.id, today, latest_session);
            if !inapp::under_caps(caps, shown) {
                continue;
            }
            let Some(message) = self.in_app_message_of(&req, t).await? else {
                continue;
            };
            let schedule = req.schedule.clone().unwrap_or_default();
            out.push(InAppMessageCampaign {
                campaign_id: head.id.clone(),
                daily_cap: i64::from(caps.daily),
                in_app_message: message,
                priority: i64::from(req.priority.unwrap_or(3)),
                schedule: InAppCampaignSchedule {
                    end_date: schedule.end_time.clone(),
                    event_filter: schedule
                        .event_filter
                        .as_ref()
                        .and_then(|f| serde_json::to_value(f).ok()),
                    quiet_time: schedule
                        .quiet_time
                        .as_ref()
                        .and_then(|q| serde_json::to_value(q).ok()),
                },
                session_cap: i64::from(caps.session),
                total_cap: i64::from(caps.total),
                treatment_id: t.to_string(),
            });
        }
        inapp::order(&mut out);
        Ok(InAppMessagesResponse {
            in_app_message_campaigns: out,
        })
    }

    /// Treatment `t`'s in-app message: its own `InAppMessage`, else its
    /// in-app template's content.
    async fn in_app_message_of(
        &self,
        req: &WriteCampaignRequest,
        t: usize,
    ) -> Result<Option<InAppMessage>> {
        let (mc, tc) = match t {
            0 => (
                req.message_configuration.as_ref(),
                req.template_configuration.as_ref(),
            ),
            n => match req
                .additional_treatments
                .as_ref()
                .and_then(|ts| ts.get(n - 1))
            {
                Some(tr) => (
                    tr.message_configuration
                        .as_ref()
                        .or(req.message_configuration.as_ref()),
                    tr.template_configuration
                        .as_ref()
                        .or(req.template_configuration.as_ref()),
                ),
                None => (None, None),
            },
        };
        if let Some(v) = mc.and_then(|m| m.in_app_message.as_ref()) {
            let m: CampaignInAppMessage = serde_json::from_value(v.clone()).map_err(|e| {
                ServiceError::Internal(format!("stored InAppMessage does not parse: {e}"))
            })?;
            return Ok(Some(InAppMessage {
                content: m.content,
                custom_config: m.custom_config,
                layout: m.layout,
            }));
        }
        self.in_app_template_message(tc).await
    }

    async fn in_app_template_message(
        &self,
        tc: Option<&TemplateConfiguration>,
    ) -> Result<Option<InAppMessage>> {
        let Some(t) = tc.and_then(|t| t.in_app_template.as_ref()) else {
            return Ok(None);
        };
        let name = t.name.as_deref().unwrap_or_default();
        let version = t.version.as_deref().and_then(|v| v.parse().ok());
        let (_, rec) = self
            .template_record(herald_model::template::TemplateType::InApp, name, version)
            .await?;
        let body: herald_model::template::InAppTemplateRequest =
            serde_json::from_value(rec.body.clone())
                .map_err(|e| ServiceError::Internal(format!("stored template {name}: {e}")))?;
        Ok(Some(InAppMessage {
            content: body.content,
            custom_config: body.custom_config,
            layout: body.layout,
        }))
    }
}

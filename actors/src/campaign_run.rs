//! Campaign runs: the scheduler and the per-shard fan-out.
//!
//! The scheduler (one loop per node, acting while the node leads the meta
//! group) looks at every campaign each tick, or at once when one is
//! created or changed. A due run is claimed in the campaign's head with a
//! compare-and-set (`SetCampaignProgress`), so two schedulers never start
//! the same run, and a run found in progress after a restart is resumed.
//!
//! A run visits every data shard in turn. In each shard it evaluates the
//! segment version against the endpoints as they are now, assigns each
//! member its treatment or the holdout (a pure function of campaign and
//! endpoint), skips opted-out and inactive endpoints and those in quiet
//! time, and records the sends as intents in the endpoint's own shard with
//! message ids derived from (campaign, run, treatment, endpoint). The
//! intent command checks and charges the per-endpoint caps (Daily, Total,
//! Session), so caps hold whatever fails; an id the ledger already holds is
//! never sent again, which is what makes a resumed run safe. Only new
//! intents reach the channel actors; outcomes and delivery events are
//! committed after.
//!
//! Local-time runs (`IsLocalTime`) are handled in waves: each tick sends to
//! the endpoints whose local send time has come since the last wave (the
//! run's watermark), until the last time zone's send time has passed.
//! Quiet time follows Pinpoint: a message whose send time falls in the
//! endpoint's quiet time is not sent (counted as `quiet_time`); endpoints
//! without a valid time zone are never held back.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use herald_channels::transport::OutgoingWebhook;
use herald_model::campaign::{self as camp, Assignment, WriteCampaignRequest};
use herald_model::message::{
    self, DefaultMessage, DeliveryStatus, DirectMessageConfiguration, EmailMessage,
    EndpointSendConfiguration, MessageHeader, Outcome, RecipientKey, SimpleEmail, SimpleEmailPart,
};
use herald_model::schedule::{self, Frequency, Quiet, Zone};
use herald_model::time;
use herald_model::wire::{EndpointResponse, Event};
use herald_storage::{
    def_kind, ActivityRecord, AppRecord, CampaignOutcome, CampaignProgress, ChargeLimits,
    CmdResult, Command, DefHead, GroupId, IntentVerdict, KvEngine, RunState, SendIntent,
    META_GROUP,
};

use crate::campaigns::{
    activity_id, campaign_zone, is_local_time, is_paused, parse_campaign, recurrence,
    wall_recurrence,
};
use crate::delivery::{Delivered, Job};
use crate::segments::Resolved;
use crate::sends::{CustomSpec, EmailSpec};
use crate::service::{Herald, Result, ServiceError};

/// Endpoints per intent batch (one Raft entry, one channel hand-off).
pub const BATCH_MAX: usize = 256;
/// Batches of one shard on their way at once.
const BATCHES_IN_FLIGHT: usize = 4;
/// Shards of one run handled at once, each on its shard's leader.
pub const SHARDS_IN_FLIGHT: usize = 4;
/// How long one shard's part of a wave may take on another node.
const SHARD_RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Tries to reach a shard's leader before running the shard here instead
/// (which forwards each proposal to wherever the leader is).
const SHARD_RUN_TRIES: u32 = 10;
/// Pause between those tries (a leader election takes about a second).
const SHARD_RUN_RETRY: Duration = Duration::from_millis(300);
/// How often the scheduler looks at campaigns when nothing wakes it.
pub const TICK: Duration = Duration::from_secs(1);
/// The earliest zone (UTC+14) reaches a wall-clock time this long before
/// UTC does; the latest (UTC-12) this long after.
const EARLIEST_ZONE_MS: i64 = 14 * time::HOUR_MS;
const LATEST_ZONE_MS: i64 = 12 * time::HOUR_MS;
/// Local-time runs send in waves at most this often.
const LOCAL_WAVE_MS: i64 = 60_000;

/// What one treatment of a run sends.
struct TreatmentPlan {
    email: std::result::Result<EmailSpec, String>,
    custom: std::result::Result<CustomSpec, String>,
    /// Per APNs channel type.
    apns: BTreeMap<&'static str, crate::sends::ApnsPlan>,
    gcm: crate::sends::GcmPlan,
    sms: crate::sends::SmsPlan,
    /// `CustomDeliveryConfiguration`: endpoint types delivered by webhook.
    delivery: Option<(CustomSpec, Vec<String>)>,
}

/// Everything a run needs, read once per wave.
struct RunPlan {
    app: AppRecord,
    campaign_id: String,
    run: u32,
    /// What the message ids derive from besides campaign, treatment and
    /// endpoint: the run number, or `e:{event id}` for event triggers.
    cause: String,
    segment: Resolved,
    holdout: u32,
    sizes: Vec<u32>,
    treatments: Vec<TreatmentPlan>,
    quiet: Option<Quiet>,
    local_time: bool,
    recurrence: schedule::Recurrence,
    /// Local-time runs: the recurrence in wall-clock milliseconds.
    wall_recurrence: schedule::Recurrence,
    /// Where endpoints without a valid zone get local-time messages: the
    /// campaign's `Timezone`, else UTC.
    default_zone: Zone,
    limits: ChargeLimits,
    messages_per_second: Option<f64>,
    deadline_ms: Option<i64>,
    /// The campaign's hook, else the app's: (mode, URL).
    hook: Option<(HookMode, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HookMode {
    /// The hook answers which endpoints to send to.
    Filter,
    /// The hook delivers: one signed POST per endpoint instead of a message.
    Delivery,
}

/// Largest answer a FILTER hook may give.
const HOOK_RESPONSE_BYTES_MAX: usize = 8 << 20;

fn hook_of(h: Option<&herald_model::wire::CampaignHook>) -> Option<(HookMode, String)> {
    let h = h?;
    let url = h.web_url.clone().filter(|u| !u.is_empty()).or_else(|| {
        h.lambda_function_name
            .clone()
            .filter(|u| u.starts_with("http"))
    })?;
    let mode = match h.mode.as_deref() {
        Some("DELIVERY") => HookMode::Delivery,
        _ => HookMode::Filter,
    };
    Some((mode, url))
}

/// Counts of one treatment within a wave.
#[derive(Default, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Tally {
    total: u64,
    successful: u64,
    skipped: BTreeMap<String, u64>,
}

impl Tally {
    fn is_empty(&self) -> bool {
        self.total == 0 && self.successful == 0 && self.skipped.is_empty()
    }

    fn skip(&mut self, why: &str) {
        *self.skipped.entry(why.to_owned()).or_default() += 1;
    }
}

/// Records that the shard at position `i` of the wave is handled: the
/// prefix `groups_done` grows over every position handled in a row.
fn mark_done(run: &mut RunState, i: u32) {
    if !run.groups_also_done.contains(&i) {
        run.groups_also_done.push(i);
    }
    while let Some(k) = run
        .groups_also_done
        .iter()
        .position(|d| *d == run.groups_done)
    {
        run.groups_also_done.swap_remove(k);
        run.groups_done += 1;
    }
    run.groups_also_done.sort_unstable();
}

/// Adds per-treatment counts into `into`.
fn merge(into: &mut [Tally], from: Vec<Tally>) {
    for (a, b) in into.iter_mut().zip(from) {
        a.total += b.total;
        a.successful += b.successful;
        for (k, v) in b.skipped {
            *a.skipped.entry(k).or_default() += v;
        }
    }
}

enum Stop {
    Go,
    Pause,
    Cancel(String),
}

/// One shard's part of a wave, asked of the shard's leader.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShardRun {
    pub app_id: String,
    pub campaign_id: String,
    pub run: RunState,
    pub group: GroupId,
    /// Local-time runs: members whose send time is at or before this.
    pub upto: i64,
}

/// One message on its way: the endpoint, treatment and job.
struct Pending {
    endpoint_id: String,
    treatment: usize,
    message_id: String,
    job: Job,
}

impl<E: KvEngine> Herald<E> {
    /// Wakes the campaign scheduler (a campaign was created or changed).
    pub fn wake_campaigns(&self) {
        self.campaign_wake.notify_one();
    }

    /// The scheduler loop; returns when `stop` resolves.
    pub async fn run_campaign_scheduler(
        self: Arc<Self>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        // Schedules and event triggers run side by side, so a long run
        // does not hold back the sends that follow PutEvents.
        let schedules = async {
            loop {
                if self.host.is_leader(META_GROUP) {
                    if let Err(e) = self.campaign_tick().await {
                        tracing::warn!(error = %e, "campaign scheduler tick failed");
                    }
                }
                tokio::select! {
                    _ = self.campaign_wake.notified() => {}
                    _ = tokio::time::sleep(TICK) => {}
                }
            }
        };
        let triggers = async {
            let mut rx = self.triggers.1.lock().await;
            while let Some(t) = rx.recv().await {
                if let Err(e) = self.trigger_event_campaigns(t).await {
                    tracing::warn!(error = %e, "event-triggered campaign failed");
                }
            }
        };
        // Stopping mid-tick is safe: a send whose intent is committed is
        // never sent again, and a run resumes from its stored progress on
        // the next start.
        tokio::select! {
            _ = stop => {}
            _ = schedules => {}
            _ = triggers => {}
        }
    }

    /// One look at every campaign of every app.
    pub async fn campaign_tick(&self) -> Result<()> {
        self.host.read_barrier(META_GROUP).await?;
        let apps = self.host.reader().apps(None, usize::MAX, false)?;
        let mut event_apps = std::collections::BTreeSet::new();
        for app in &apps {
            for h in self.host.reader().def_heads(&app.id, def_kind::CAMPAIGN)? {
                let Some(v) =
                    self.host
                        .reader()
                        .def_version(&app.id, def_kind::CAMPAIGN, &h.id, h.latest)?
                else {
                    continue;
                };
                let freq = v
                    .body
                    .pointer("/Schedule/Frequency")
                    .and_then(|f| f.as_str());
                if freq == Some("EVENT") && !h.progress.as_ref().is_some_and(|p| p.finished) {
                    event_apps.insert(app.id.clone());
                }
            }
        }
        *self.event_apps.write().unwrap_or_else(|e| e.into_inner()) = event_apps;
        for app in apps {
            let heads = self.host.reader().def_heads(&app.id, def_kind::CAMPAIGN)?;
            for head in heads {
                if let Err(e) = self.advance_campaign(&app, head).await {
                    tracing::warn!(app_id = %app.id, error = %e, "campaign run failed");
                }
            }
        }
        Ok(())
    }

    /// Starts the campaign's due run, or continues the one in progress.
    async fn advance_campaign(&self, app: &AppRecord, head: DefHead) -> Result<()> {
        let progress = head.progress.clone().unwrap_or_default();
        if progress.finished {
            return Ok(());
        }
        let (_, latest) = self.campaign_record(&app.id, &head.id, None)?;
        let req = parse_campaign(&latest.body)?;
        if is_paused(&req) {
            return Ok(());
        }
        let created = time::parse_iso8601_ms(&head.creation_date).unwrap_or(0);
        let Some(rec) = recurrence(&req, created) else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        if matches!(rec.frequency, Frequency::Event | Frequency::InAppEvent) {
            if rec.end_ms.is_some_and(|e| now > e) {
                self.set_progress(
                    &app.id,
                    &head,
                    CampaignProgress {
                        finished: true,
                        ..progress
                    },
                )
                .await?;
            }
            return Ok(());
        }
        let run = match &progress.current {
            Some(r) => r.clone(),
            None => {
                // Local-time runs are scheduled in wall-clock time: `at` is
                // the wall-clock instant read as UTC.
                let sched = if is_local_time(&req) {
                    wall_recurrence(&req, created).unwrap_or(rec)
                } else {
                    rec
                };
                let Some(at) = schedule::occurrence(&sched, progress.runs_started) else {
                    self.set_progress(
                        &app.id,
                        &head,
                        CampaignProgress {
                            finished: true,
                            ..progress
                        },
                    )
                    .await?;
                    return Ok(());
                };
                // A local-time run starts when the first zone (UTC+14)
                // reaches its wall-clock time.
                let opens = if is_local_time(&req) {
                    at - EARLIEST_ZONE_MS
                } else {
                    at
                };
                if opens > now {
                    return Ok(());
                }
                let run = RunState {
                    run: progress.runs_started,
                    version: latest.version,
                    scheduled_ms: at,
                    started_ms: now,
                    watermark_ms: i64::MIN,
                    groups_done: 0,
                    groups_also_done: Vec::new(),
                };
                let next = CampaignProgress {
                    runs_started: progress.runs_started + 1,
                    current: Some(run.clone()),
                    finished: false,
                };
                if !self.set_progress(&app.id, &head, next).await? {
                    return Ok(());
                }
                tracing::info!(app_id = %app.id, campaign_id = %head.id, run = run.run, "campaign run started");
                run
            }
        };
        self.run_wave(app, &head.id, run).await
    }

    /// Compare-and-set of a campaign's progress; false when it moved.
    async fn set_progress(
        &self,
        app_id: &str,
        head: &DefHead,
        progress: CampaignProgress,
    ) -> Result<bool> {
        let cmd = Command::SetCampaignProgress {
            app_id: app_id.to_owned(),
            campaign_id: head.id.clone(),
            expect: head.progress.clone(),
            progress,
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::Def(Some(_)) => Ok(true),
            CmdResult::Def(None) | CmdResult::Rejected(_) => Ok(false),
            other => Err(ServiceError::Internal(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// One wave of a run: every shard, endpoints whose send time is in
    /// `(watermark, now]`; closes the run when its last zone is done.
    /// Progress is stored after each shard that had members, so a resumed
    /// run starts at the shard it was in.
    async fn run_wave(&self, app: &AppRecord, campaign_id: &str, mut run: RunState) -> Result<()> {
        let plan = match self.run_plan(app, campaign_id, &run).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(app_id = %app.id, campaign_id, run = run.run, error = %e, "campaign run cannot start");
                return self
                    .close_run(app, campaign_id, &run, None, Some(e.to_string()))
                    .await;
            }
        };
        let now = self.clock.now_ms();
        let last_wave_ms = run.scheduled_ms + LATEST_ZONE_MS;
        let upto = if plan.local_time {
            if now - run.watermark_ms.max(run.started_ms - LOCAL_WAVE_MS) < LOCAL_WAVE_MS
                && now < last_wave_ms
            {
                return Ok(());
            }
            now.min(last_wave_ms)
        } else {
            i64::MAX
        };
        if run.groups_done == 0 && run.groups_also_done.is_empty() && run.watermark_ms == i64::MIN {
            // The activities exist from the run's start, members or not.
            let empty = vec![Tally::default(); plan.treatments.len()];
            self.add_to_activities(app, campaign_id, &run, &empty)
                .await?;
        }
        let groups: Vec<GroupId> = self.host.data_groups().collect();
        // A MessagesPerSecond limit is kept by one node's channel actor at a
        // time, so such runs visit one shard at a time.
        let width = if plan.messages_per_second.is_some() {
            1
        } else {
            SHARDS_IN_FLIGHT
        };
        let todo: Vec<(usize, &GroupId)> = groups
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let i = *i as u32;
                i >= run.groups_done && !run.groups_also_done.contains(&i)
            })
            .collect();
        let mut todo = todo.into_iter();
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut cut_short = None;
        let mut paused = false;
        let mut failed = None;
        loop {
            while in_flight.len() < width && !paused && cut_short.is_none() && failed.is_none() {
                let Some((i, g)) = todo.next() else { break };
                match self.run_stops(&plan, campaign_id)? {
                    Stop::Go => {}
                    Stop::Pause => {
                        paused = true;
                        break;
                    }
                    Stop::Cancel(why) => {
                        cut_short = Some(why);
                        break;
                    }
                }
                let (plan, shard_run) = (&plan, run.clone());
                in_flight.push(async move {
                    let done = self.shard_run(plan, &shard_run, *g, upto).await;
                    (i as u32, done)
                });
            }
            // Shard runs already on their way are waited for, even when the
            // run pauses or one failed, so their counts are not lost.
            let Some((i, done)) = in_flight.next().await else {
                break;
            };
            let tallies = match done {
                Ok(t) => t,
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            };
            if tallies.iter().any(|t| !t.is_empty()) {
                self.add_to_activities(app, campaign_id, &run, &tallies)
                    .await?;
                mark_done(&mut run, i);
                if !self.store_run(app, campaign_id, &run).await? {
                    return Ok(());
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if paused {
            return Ok(());
        }
        if cut_short.is_some() || !plan.local_time || upto >= last_wave_ms {
            self.close_run(app, campaign_id, &run, Some(&plan), cut_short)
                .await
        } else {
            run.watermark_ms = upto;
            run.groups_done = 0;
            run.groups_also_done.clear();
            self.store_run(app, campaign_id, &run).await?;
            Ok(())
        }
    }

    /// Stores the run in progress; false if the campaign moved on.
    async fn store_run(&self, app: &AppRecord, campaign_id: &str, run: &RunState) -> Result<bool> {
        let Ok((head, _)) = self.campaign_record(&app.id, campaign_id, None) else {
            return Ok(false);
        };
        let mut p = head.progress.clone().unwrap_or_default();
        match p.current.as_mut() {
            Some(c) if c.run == run.run => *c = run.clone(),
            _ => return Ok(false),
        }
        self.set_progress(&app.id, &head, p).await
    }

    /// Whether a run goes on: deleted or past MaximumDuration cancels it;
    /// paused holds it where it is until the campaign is resumed.
    /// A node that no longer leads the meta group holds the run too: the new
    /// leader's scheduler resumes it from the stored progress.
    fn run_stops(&self, plan: &RunPlan, campaign_id: &str) -> Result<Stop> {
        if !self.host.is_leader(META_GROUP) {
            return Ok(Stop::Pause);
        }
        let Ok((_, v)) = self.campaign_record(&plan.app.id, campaign_id, None) else {
            return Ok(Stop::Cancel("the campaign was deleted".into()));
        };
        if is_paused(&parse_campaign(&v.body)?) {
            return Ok(Stop::Pause);
        }
        if plan.deadline_ms.is_some_and(|d| self.clock.now_ms() > d) {
            return Ok(Stop::Cancel("the run reached its MaximumDuration".into()));
        }
        Ok(Stop::Go)
    }

    /// The run's plan from the version it executes and the app's settings.
    async fn run_plan(
        &self,
        app: &AppRecord,
        campaign_id: &str,
        run: &RunState,
    ) -> Result<RunPlan> {
        let (head, v) = self.campaign_record(&app.id, campaign_id, Some(run.version))?;
        let req = parse_campaign(&v.body)?;
        let seg_id = req.segment_id.clone().unwrap_or_default();
        let seg_version = req.segment_version.and_then(|v| u32::try_from(v).ok());
        let segment = self.resolve_segment(&app.id, &seg_id, seg_version)?;
        let mut treatments = vec![self.treatment_plan(app, &req, None).await?];
        let mut sizes = Vec::new();
        for t in req.additional_treatments.iter().flatten() {
            sizes.push(u32::try_from(t.size_percent.unwrap_or(0)).unwrap_or(0));
            treatments.push(self.treatment_plan(app, &req, Some(t)).await?);
        }
        let limits = camp::effective_limits(req.limits.as_ref(), app.settings.limits.as_ref());
        let policy = camp::LimitPolicy::from_limits(&limits);
        let schedule = req.schedule.clone().unwrap_or_default();
        let quiet = match schedule.quiet_time.as_ref() {
            Some(q) if q.start.is_some() => schedule::quiet_from(Some(q)),
            _ => schedule::quiet_from(app.settings.quiet_time.as_ref()),
        };
        let created = time::parse_iso8601_ms(&head.creation_date).unwrap_or(0);
        let recurrence = recurrence(&req, created)
            .ok_or_else(|| ServiceError::Internal("the campaign has no schedule".into()))?;
        let wall = wall_recurrence(&req, created).unwrap_or(recurrence);
        let default_zone = campaign_zone(&req)
            .or_else(|| schedule::parse_zone("UTC"))
            .ok_or_else(|| ServiceError::Internal("UTC is not a zone".into()))?;
        Ok(RunPlan {
            app: app.clone(),
            campaign_id: campaign_id.to_owned(),
            run: run.run,
            cause: run.run.to_string(),
            segment,
            holdout: u32::try_from(req.holdout_percent.unwrap_or(0)).unwrap_or(0),
            sizes,
            treatments,
            quiet,
            local_time: schedule.is_local_time == Some(true),
            recurrence,
            wall_recurrence: wall,
            default_zone,
            limits: ChargeLimits {
                daily: policy.daily.unwrap_or(0),
                total: policy.total.unwrap_or(0),
                session: policy.session.unwrap_or(0),
            },
            messages_per_second: limits.messages_per_second.filter(|m| *m > 0).map(f64::from),
            hook: hook_of(req.hook.as_ref())
                .or_else(|| hook_of(app.settings.campaign_hook.as_ref())),
            deadline_ms: limits
                .maximum_duration
                .filter(|d| *d > 0)
                .map(|d| run.started_ms + i64::from(d) * 1000),
        })
    }

    /// Compiles one treatment's messages (the campaign's own when `t` is
    /// `None`; a treatment without messages uses the campaign's).
    async fn treatment_plan(
        &self,
        app: &AppRecord,
        req: &WriteCampaignRequest,
        t: Option<&camp::WriteTreatmentResource>,
    ) -> Result<TreatmentPlan> {
        let mc = t
            .and_then(|t| t.message_configuration.clone())
            .or_else(|| req.message_configuration.clone())
            .unwrap_or_default();
        let tc = t
            .and_then(|t| t.template_configuration.clone())
            .or_else(|| req.template_configuration.clone());
        let cdc = t
            .and_then(|t| t.custom_delivery_configuration.clone())
            .or_else(|| req.custom_delivery_configuration.clone());
        let email_msg = mc.email_message.clone().unwrap_or_default();
        let part = |s: &Option<String>| {
            s.clone().map(|d| SimpleEmailPart {
                charset: None,
                data: Some(d),
            })
        };
        let simple = SimpleEmail {
            html_part: part(&email_msg.html_body),
            subject: part(&email_msg.title),
            text_part: part(&email_msg.body),
            headers: email_msg.headers.clone().map(|hs| {
                hs.into_iter()
                    .map(|h| MessageHeader {
                        name: h.name,
                        value: h.value,
                    })
                    .collect()
            }),
        };
        let default_body = mc
            .custom_message
            .as_ref()
            .and_then(|c| c.data.clone())
            .or_else(|| mc.default_message.as_ref().and_then(|d| d.body.clone()));
        let dm = DirectMessageConfiguration {
            email_message: Some(EmailMessage {
                from_address: email_msg.from_address.clone(),
                simple_email: Some(simple),
                ..Default::default()
            }),
            default_message: Some(DefaultMessage {
                body: default_body,
                substitutions: None,
            }),
            ..Default::default()
        };
        let email = self.email_plan(app, &dm, tc.as_ref()).await?;
        let custom = self.custom_plan(app, &dm, None);
        let apns_message: Option<camp::Message> =
            crate::sends::parsed(&mc.apns_message, "MessageConfiguration.APNSMessage")?;
        let template = self.push_template(tc.as_ref()).await?;
        let defaults = template.as_ref().and_then(|(_, d)| d.clone());
        let mut push = herald_model::push::apns_from_campaign(
            mc.default_message.as_ref(),
            apns_message.as_ref(),
        );
        if let Some((t, _)) = &template {
            let from_template = herald_model::push::apns_from_template(t);
            push = Some(match push {
                Some(p) => herald_model::push::apns_over(p, from_template),
                None => from_template,
            });
        }
        // A push message that does not check fails the run's APNs
        // recipients only (it was accepted when the campaign was written).
        let apns = self
            .apns_specs(app, push, Default::default(), defaults.clone())
            .unwrap_or_else(|e| {
                herald_model::channel::APNS_CHANNELS
                    .iter()
                    .map(|(p, _)| (*p, Err(e.to_string())))
                    .collect()
            });
        let delivery = match cdc {
            Some(c) => {
                let url = c.delivery_uri.clone().unwrap_or_default();
                let body = dm
                    .default_message
                    .as_ref()
                    .and_then(|d| d.body.clone())
                    .unwrap_or_default();
                let compiled = herald_model::render::Compiled::compile(&[(
                    "Body",
                    body.as_str(),
                    herald_model::render::Escape::Plain,
                )])?;
                let spec = CustomSpec {
                    url,
                    secret: self.webhook_secret(&app.id),
                    compiled,
                    substitutions: Default::default(),
                    context: Default::default(),
                };
                Some((spec, c.endpoint_types.unwrap_or_default()))
            }
            None => None,
        };
        let gcm_message: Option<camp::Message> =
            crate::sends::parsed(&mc.gcm_message, "MessageConfiguration.GCMMessage")?;
        let mut gcm_push = herald_model::push::gcm_from_campaign(
            mc.default_message.as_ref(),
            gcm_message.as_ref(),
        );
        if let Some((t, _)) = &template {
            let from_template = herald_model::push::gcm_from_template(t);
            gcm_push = Some(match gcm_push {
                Some(p) => herald_model::push::gcm_over(p, from_template),
                None => from_template,
            });
        }
        let gcm = self
            .gcm_spec(app, gcm_push, Default::default(), defaults)
            .unwrap_or_else(|e| Err(e.to_string()));
        // SMSMessage over DefaultMessage.Body, over the SMS template.
        let sms_template = self.sms_template(tc.as_ref()).await?;
        let mut sms_message: herald_model::sms::SmsMessage =
            crate::sends::parsed(&mc.sms_message, "MessageConfiguration.SMSMessage")?
                .unwrap_or_default();
        if sms_message.body.is_none() {
            sms_message.body = mc
                .default_message
                .as_ref()
                .and_then(|d| d.body.clone())
                .or_else(|| sms_template.as_ref().and_then(|(b, _)| b.clone()));
        }
        let sms = self
            .sms_spec(
                app,
                sms_message,
                Default::default(),
                sms_template.and_then(|(_, d)| d),
            )
            .unwrap_or_else(|e| Err(e.to_string()));
        Ok(TreatmentPlan {
            email,
            custom,
            apns,
            gcm,
            sms,
            delivery,
        })
    }

    /// One shard's part of a wave, run on the shard's leader wherever it
    /// is: its proposals are then local and its sends leave from that
    /// node. A leader that moves, or a node that fails, mid-way is safe:
    /// the shard is run again on its new leader, where the intents already
    /// committed are not sent again.
    async fn shard_run(
        &self,
        plan: &RunPlan,
        run: &RunState,
        g: GroupId,
        upto: i64,
    ) -> Result<Vec<Tally>> {
        use crate::node_calls::{NodeAnswer, NodeCall};
        let me = self.host.node_id();
        let this = self.this.get().and_then(std::sync::Weak::upgrade);
        for attempt in 1..=SHARD_RUN_TRIES {
            let Some(leader) = self.host.leader_of(g) else {
                tokio::time::sleep(SHARD_RUN_RETRY).await;
                continue;
            };
            let req = ShardRun {
                app_id: plan.app.id.clone(),
                campaign_id: plan.campaign_id.clone(),
                run: run.clone(),
                group: g,
                upto,
            };
            tracing::debug!(campaign_id = %plan.campaign_id, run = plan.run, group = g, node = leader, "shard run asked of the shard's leader");
            let answer = match (leader == me, &this) {
                (true, Some(this)) => Ok(crate::node_calls::shard_run(this.clone(), req).await),
                // A bare service (tests) runs the shard itself.
                (true, None) => break,
                (false, _) => {
                    self.call_node(leader, &NodeCall::RunShard(req), SHARD_RUN_TIMEOUT)
                        .await
                }
            };
            let why = match answer {
                Ok(NodeAnswer::ShardRun(t)) => return Ok(t),
                Ok(NodeAnswer::NotLeader) => "it no longer leads the shard".into(),
                Ok(NodeAnswer::Failed(e)) => {
                    return Err(ServiceError::Internal(format!(
                        "shard {g} on node {leader}: {e}"
                    )))
                }
                Err(e) => e.to_string(),
            };
            tracing::info!(
                campaign_id = %plan.campaign_id, run = plan.run, group = g, node = leader, attempt,
                reason = %why, "a shard run is tried again"
            );
            tokio::time::sleep(SHARD_RUN_RETRY).await;
        }
        // The shard's leader cannot be reached: the shard runs here and
        // each proposal goes to the leader.
        metrics::counter!("herald_campaign_shard_runs_fallback_total").increment(1);
        let mut tallies = vec![Tally::default(); plan.treatments.len()];
        self.run_group(plan, run, g, upto, &mut tallies).await?;
        Ok(tallies)
    }

    /// Runs a shard's part of a wave for the run's coordinator (this node
    /// or another), if this node leads the shard.
    pub(crate) async fn serve_shard_run(&self, req: ShardRun) -> crate::node_calls::NodeAnswer {
        use crate::node_calls::NodeAnswer;
        if !self.host.is_leader(req.group) {
            return NodeAnswer::NotLeader;
        }
        let served = async {
            // The run's campaign version may be newer than this replica.
            self.host.read_barrier(META_GROUP).await?;
            let app = self
                .host
                .reader()
                .app(&req.app_id)?
                .ok_or_else(|| ServiceError::NotFound(format!("application {}", req.app_id)))?;
            let plan = self.run_plan(&app, &req.campaign_id, &req.run).await?;
            let mut tallies = vec![Tally::default(); plan.treatments.len()];
            self.run_group(&plan, &req.run, req.group, req.upto, &mut tallies)
                .await?;
            Ok::<_, ServiceError>(tallies)
        };
        match served.await {
            Ok(t) => {
                tracing::debug!(group = req.group, tallies = ?t, "shard run served");
                metrics::counter!("herald_campaign_shard_runs_served_total").increment(1);
                NodeAnswer::ShardRun(t)
            }
            Err(e) => NodeAnswer::Failed(e.to_string()),
        }
    }

    /// The members of one shard handled by this wave, in batches.
    async fn run_group(
        &self,
        plan: &RunPlan,
        run: &RunState,
        g: GroupId,
        upto: i64,
        tallies: &mut [Tally],
    ) -> Result<()> {
        self.host.read_barrier(g).await?;
        let now = self.clock.now_ms().min(upto);
        let mut members = Vec::new();
        self.for_each_member(&plan.app.id, &plan.segment, g, now, &mut |ep| {
            members.push(ep);
            ControlFlow::Continue(())
        })?;
        if matches!(plan.hook, Some((HookMode::Filter, _))) {
            members = self
                .filter_through_hook(plan, run, members, tallies)
                .await?;
        }
        // Up to BATCHES_IN_FLIGHT batches at once, so the channel actors
        // are fed while earlier batches' outcomes are committed.
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut batch: Vec<Pending> = Vec::new();
        let mut held = Vec::new();
        for ep in members {
            if let Some(p) = self.member_message(plan, run, &ep, now, tallies, &mut held) {
                batch.push(p);
            }
            if batch.len() == BATCH_MAX {
                if in_flight.len() >= BATCHES_IN_FLIGHT {
                    if let Some(r) = in_flight.next().await {
                        merge(tallies, r?);
                    }
                }
                in_flight.push(self.send_batch(plan, g, std::mem::take(&mut batch)));
            }
        }
        if !batch.is_empty() {
            in_flight.push(self.send_batch(plan, g, batch));
        }
        while let Some(r) = in_flight.next().await {
            merge(tallies, r?);
        }
        self.record_holdout(plan, g, held).await;
        Ok(())
    }

    /// Counts the run's holdout members of shard `g` for the campaign's
    /// results (and as their last touch), a batch per log entry. A failure
    /// is logged: the run goes on, only the comparison lacks them.
    async fn record_holdout(&self, plan: &RunPlan, g: GroupId, held: Vec<String>) {
        for chunk in held.chunks(BATCH_MAX) {
            let recorded = self
                .host
                .propose(
                    g,
                    Command::RecordHoldout {
                        app_id: plan.app.id.clone(),
                        campaign_id: plan.campaign_id.clone(),
                        activity_id: camp::holdout_activity_id(plan.run),
                        at_ms: self.clock.now_ms(),
                        endpoint_ids: chunk.to_vec(),
                    },
                )
                .await;
            if let Err(e) = recorded {
                tracing::error!(app_id = %plan.app.id, campaign_id = %plan.campaign_id, error = %e, "recording the holdout group failed");
            }
        }
    }

    /// Decides one segment member's fate in this wave: `None` when it is
    /// another wave's or is skipped (counted; holdout members are added to
    /// `held`), else its message.
    fn member_message(
        &self,
        plan: &RunPlan,
        run: &RunState,
        ep: &EndpointResponse,
        now: i64,
        tallies: &mut [Tally],
        held: &mut Vec<String>,
    ) -> Option<Pending> {
        let endpoint_id = ep.id.clone().unwrap_or_default();
        let zone = endpoint_zone(ep);
        let send_at = if plan.local_time {
            let z = zone.as_ref().unwrap_or(&plan.default_zone);
            schedule::local_occurrence(&plan.wall_recurrence, plan.run, z)
                .unwrap_or(run.scheduled_ms)
        } else {
            run.scheduled_ms
        };
        if plan.local_time && (send_at <= run.watermark_ms || send_at > now) {
            // Another wave's endpoint.
            return None;
        }
        let t = match camp::assign(&plan.campaign_id, &endpoint_id, plan.holdout, &plan.sizes) {
            Assignment::Holdout => {
                tallies[0].total += 1;
                tallies[0].skip(camp::SkipReason::Holdout.as_str());
                held.push(endpoint_id);
                return None;
            }
            Assignment::Treatment(t) => t.min(plan.treatments.len() - 1),
        };
        tallies[t].total += 1;
        if ep.opt_out.as_deref() == Some("ALL") {
            tallies[t].skip(camp::SkipReason::OptedOut.as_str());
            return None;
        }
        if ep.endpoint_status.as_deref() == Some("INACTIVE") {
            tallies[t].skip(camp::SkipReason::Inactive.as_str());
            return None;
        }
        if let Some(q) = &plan.quiet {
            if schedule::in_quiet_time(q, zone.as_ref(), now.max(send_at)) {
                tallies[t].skip(camp::SkipReason::QuietTime.as_str());
                return None;
            }
        }
        match self.campaign_job(plan, t, ep) {
            Ok((message_id, job)) => Some(Pending {
                endpoint_id,
                treatment: t,
                message_id,
                job,
            }),
            Err(why) => {
                tracing::debug!(app_id = %plan.app.id, campaign_id = %plan.campaign_id, endpoint_id, why, "campaign message not sent");
                tallies[t].skip(&why);
                None
            }
        }
    }

    /// FILTER hook: POSTs the members (up to a batch at a time, per
    /// treatment; held-out members are not shown to it) and keeps those it
    /// answers, with the endpoint data it answers (it may personalise).
    /// Members it drops count as skipped by `hook`; a failed call skips its
    /// batch as `hook_failed`.
    async fn filter_through_hook(
        &self,
        plan: &RunPlan,
        run: &RunState,
        members: Vec<EndpointResponse>,
        tallies: &mut [Tally],
    ) -> Result<Vec<EndpointResponse>> {
        let Some((_, url)) = &plan.hook else {
            return Ok(members);
        };
        let mut kept = Vec::with_capacity(members.len());
        let mut by_treatment: BTreeMap<usize, Vec<EndpointResponse>> = BTreeMap::new();
        for ep in members {
            let id = ep.id.clone().unwrap_or_default();
            match camp::assign(&plan.campaign_id, &id, plan.holdout, &plan.sizes) {
                Assignment::Holdout => kept.push(ep),
                Assignment::Treatment(t) => by_treatment
                    .entry(t.min(plan.treatments.len() - 1))
                    .or_default()
                    .push(ep),
            }
        }
        let dispatcher = self.dispatcher()?;
        for (t, eps) in by_treatment {
            for chunk in eps.chunks(BATCH_MAX) {
                let endpoints: serde_json::Map<String, serde_json::Value> = chunk
                    .iter()
                    .map(|e| {
                        (
                            e.id.clone().unwrap_or_default(),
                            serde_json::to_value(e).unwrap_or_default(),
                        )
                    })
                    .collect();
                let body = serde_json::json!({
                    "ApplicationId": plan.app.id,
                    "CampaignId": plan.campaign_id,
                    "TreatmentId": t.to_string(),
                    "ActivityId": activity_id(plan.run, t as u32),
                    "ScheduledTime": time::format_iso8601_ms(run.scheduled_ms),
                    "Endpoints": endpoints,
                });
                let call = OutgoingWebhook {
                    message_id: String::new(),
                    app_id: plan.app.id.clone(),
                    url: url.clone(),
                    body: serde_json::to_vec(&body)
                        .map_err(|e| ServiceError::Internal(e.to_string()))?,
                    secret: self.webhook_secret(&plan.app.id),
                };
                let answer = dispatcher
                    .call_hook(&call, HOOK_RESPONSE_BYTES_MAX)
                    .await
                    .and_then(|b| {
                        serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(&b).map_err(
                            |e| format!("the hook's answer is not a JSON object of endpoints: {e}"),
                        )
                    });
                match answer {
                    Ok(keep) => {
                        for ep in chunk {
                            let id = ep.id.clone().unwrap_or_default();
                            match keep.get(&id) {
                                Some(v) => {
                                    let mut e: EndpointResponse = serde_json::from_value(v.clone())
                                        .unwrap_or_else(|_| ep.clone());
                                    e.id = Some(id);
                                    kept.push(e);
                                }
                                None => {
                                    tallies[t].total += 1;
                                    tallies[t].skip(camp::SkipReason::Hook.as_str());
                                }
                            }
                        }
                    }
                    Err(why) => {
                        tracing::warn!(app_id = %plan.app.id, campaign_id = %plan.campaign_id, url, why, "campaign FILTER hook failed");
                        tallies[t].total += chunk.len() as u64;
                        *tallies[t].skipped.entry("hook_failed".into()).or_default() +=
                            chunk.len() as u64;
                    }
                }
            }
        }
        Ok(kept)
    }

    /// The message for one member, or why there is none (a skip reason).
    fn campaign_job(
        &self,
        plan: &RunPlan,
        t: usize,
        ep: &EndpointResponse,
    ) -> std::result::Result<(String, Job), String> {
        let tp = &plan.treatments[t];
        let endpoint_id = ep.id.as_deref().unwrap_or_default();
        let address = match ep.address.as_deref() {
            Some(a) if !a.is_empty() => a,
            _ => return Err("no_address".into()),
        };
        let channel = ep.channel_type.as_deref().unwrap_or_default();
        let key = format!("c:{}:{}:{}", plan.campaign_id, plan.cause, t);
        let message_id =
            message::message_id(&plan.app.id, &key, &RecipientKey::Endpoint(endpoint_id));
        let cfg = EndpointSendConfiguration::default();
        let webhook = |spec: &CustomSpec| -> std::result::Result<Job, String> {
            let subs = message::merged_substitutions(&[Some(&spec.substitutions)]);
            let ctx = herald_model::render::context(Some(ep), address, channel, None, &subs);
            let body = spec
                .compiled
                .render("Body", &ctx)
                .map_err(|_| "render_failed".to_owned())?;
            let json = serde_json::json!({
                "ApplicationId": plan.app.id,
                "CampaignId": plan.campaign_id,
                "TreatmentId": t.to_string(),
                "ActivityId": activity_id(plan.run, t as u32),
                "MessageId": message_id,
                "ChannelType": channel,
                "Address": address,
                "EndpointId": endpoint_id,
                "Endpoint": ep,
                "Message": { "Body": body },
            });
            Ok(Job::Webhook(OutgoingWebhook {
                message_id: message_id.clone(),
                app_id: plan.app.id.clone(),
                url: spec.url.clone(),
                body: serde_json::to_vec(&json).map_err(|e| e.to_string())?,
                secret: spec.secret.clone(),
            }))
        };
        if let Some((HookMode::Delivery, url)) = &plan.hook {
            let json = serde_json::json!({
                "ApplicationId": plan.app.id,
                "CampaignId": plan.campaign_id,
                "TreatmentId": t.to_string(),
                "ActivityId": activity_id(plan.run, t as u32),
                "MessageId": message_id,
                "Endpoints": { endpoint_id: ep },
            });
            return Ok((
                message_id.clone(),
                Job::Webhook(OutgoingWebhook {
                    message_id: message_id.clone(),
                    app_id: plan.app.id.clone(),
                    url: url.clone(),
                    body: serde_json::to_vec(&json).map_err(|e| e.to_string())?,
                    secret: self.webhook_secret(&plan.app.id),
                }),
            ));
        }
        if let Some((spec, types)) = &tp.delivery {
            if types.is_empty() || types.iter().any(|x| x == channel) {
                return webhook(spec).map(|j| (message_id.clone(), j));
            }
        }
        let job = match channel {
            "EMAIL" => match &tp.email {
                Ok(spec) => self
                    .render_campaign_email(&plan.app.id, &message_id, address, ep, spec, &cfg)
                    .map(Job::Email)
                    .map_err(|_| "render_failed".to_owned())?,
                Err(_) => return Err("no_message_for_channel".into()),
            },
            "CUSTOM" => match &tp.custom {
                Ok(spec) => webhook(spec)?,
                Err(_) => return Err("no_message_for_channel".into()),
            },
            "GCM" => match &tp.gcm {
                Ok(spec) => {
                    crate::sends::fcm_job(&plan.app.id, &message_id, address, Some(ep), spec, &cfg)
                        .map_err(|_| "render_failed".to_owned())?
                }
                Err(_) => return Err("no_message_for_channel".into()),
            },
            "SMS" => match &tp.sms {
                Ok(spec) => {
                    crate::sends::sms_job(&plan.app.id, &message_id, address, Some(ep), spec, &cfg)
                        .map_err(|_| "render_failed".to_owned())?
                }
                Err(_) => return Err("no_message_for_channel".into()),
            },
            c => match tp.apns.get(c) {
                Some(Ok(spec)) => crate::sends::apns_job(
                    &plan.app.id,
                    &message_id,
                    address,
                    Some(ep),
                    spec,
                    &cfg,
                    self.clock.now_ms().div_euclid(1000),
                )
                .map_err(|_| "render_failed".to_owned())?,
                Some(Err(_)) => return Err("no_message_for_channel".into()),
                None => return Err("unsupported_channel".into()),
            },
        };
        Ok((message_id, job))
    }

    /// Records a batch's intents (caps charged), sends the new ones, and
    /// commits their outcomes and delivery events.
    async fn send_batch(
        &self,
        plan: &RunPlan,
        g: GroupId,
        batch: Vec<Pending>,
    ) -> Result<Vec<Tally>> {
        let mut tallies = vec![Tally::default(); plan.treatments.len()];
        let intents = batch
            .iter()
            .map(|p| SendIntent {
                message_id: p.message_id.clone(),
                recipient: p.endpoint_id.clone(),
                channel: p.job.channel().into(),
                address: match &p.job {
                    Job::Email(e) => e.to.clone(),
                    Job::Webhook(w) => w.url.clone(),
                    Job::Apns { push, .. } => push.device_token.clone(),
                    Job::Fcm { msg, .. } => msg.device_token.clone(),
                    Job::Sms { sms, .. } => sms.destination.clone(),
                },
            })
            .collect();
        let verdicts = match self
            .host
            .propose(
                g,
                Command::RecordCampaignIntents {
                    app_id: plan.app.id.clone(),
                    campaign_id: plan.campaign_id.clone(),
                    at_ms: self.clock.now_ms(),
                    limits: plan.limits,
                    intents,
                },
            )
            .await?
        {
            CmdResult::CampaignLedger(v) => v,
            other => {
                return Err(ServiceError::Internal(format!(
                    "unexpected ledger result {other:?}"
                )))
            }
        };
        let mut fresh = Vec::new();
        for (p, v) in batch.into_iter().zip(verdicts) {
            match v {
                IntentVerdict::New => fresh.push(p),
                IntentVerdict::Exists(row) => match row.outcome {
                    Some(o) if o.status == DeliveryStatus::Successful => {
                        tallies[p.treatment].successful += 1
                    }
                    Some(_) => tallies[p.treatment].skip("delivery_failed"),
                    None => tallies[p.treatment].skip("outcome_unknown"),
                },
                IntentVerdict::Limited(why) => tallies[p.treatment].skip(&why),
            }
        }
        if fresh.is_empty() {
            return Ok(tallies);
        }
        let delivered = self.deliver(plan, &fresh).await?;
        let at_ms = self.clock.now_ms();
        for (p, d) in fresh.iter().zip(&delivered) {
            if d.outcome.status == DeliveryStatus::Successful {
                tallies[p.treatment].successful += 1;
            } else {
                tallies[p.treatment].skip("delivery_failed");
            }
        }
        let outcomes: Vec<CampaignOutcome> = fresh
            .iter()
            .zip(&delivered)
            .map(|(p, d)| CampaignOutcome {
                message_id: p.message_id.clone(),
                endpoint_id: p.endpoint_id.clone(),
                treatment: p.treatment as u32,
                channel: p.job.channel().to_owned(),
                outcome: d.outcome.clone(),
                hard_bounce: d.hard_bounce,
            })
            .collect();
        let activities: Vec<String> = (0..plan.treatments.len())
            .map(|t| activity_id(plan.run, t as u32))
            .collect();
        let ts = time::format_iso8601_ms(at_ms);
        let streamed: Vec<(String, herald_model::wire::Event)> = outcomes
            .iter()
            .filter(|_| plan.app.event_stream.is_some())
            .flat_map(|o: &CampaignOutcome| {
                herald_model::message::campaign_delivery_events(
                    &o.message_id,
                    &plan.campaign_id,
                    &activities[o.treatment as usize],
                    o.treatment,
                    &o.channel,
                    &o.outcome,
                    o.hard_bounce,
                    &ts,
                )
                .into_iter()
                .map(|(_, ev)| (o.endpoint_id.clone(), ev))
            })
            .collect();
        // The outcomes, their delivery events and hard-bounce marks, in one
        // log entry.
        let recorded = self
            .host
            .propose(
                g,
                Command::RecordCampaignOutcomes {
                    app_id: plan.app.id.clone(),
                    campaign_id: plan.campaign_id.clone(),
                    activities,
                    at_ms,
                    outcomes,
                },
            )
            .await;
        match recorded {
            Ok(CmdResult::Rejected(why)) => {
                tracing::error!(app_id = %plan.app.id, campaign_id = %plan.campaign_id, reason = %why, "campaign outcomes refused")
            }
            Ok(_) => self.stream_events(
                &plan.app.id,
                plan.app.event_stream.as_ref(),
                streamed.iter().map(|(e, ev)| (e.as_str(), ev)),
            ),
            // The messages went out; only their outcome is not durable. A
            // resumed run counts them as outcome_unknown, never resends.
            Err(e) => {
                tracing::error!(app_id = %plan.app.id, campaign_id = %plan.campaign_id, error = %e, "recording campaign outcomes failed")
            }
        }
        Ok(tallies)
    }

    /// Hands new messages to the channel actors, waiting for room in the
    /// queue (a run is background work: it waits rather than fails).
    async fn deliver(&self, plan: &RunPlan, fresh: &[Pending]) -> Result<Vec<Delivered>> {
        let dispatcher = self.dispatcher()?;
        let mut by_channel: BTreeMap<&'static str, (Vec<usize>, Vec<Job>)> = BTreeMap::new();
        for (i, p) in fresh.iter().enumerate() {
            let e = by_channel.entry(p.job.channel()).or_default();
            e.0.push(i);
            e.1.push(p.job.clone());
        }
        let mut out: Vec<Option<Delivered>> = vec![None; fresh.len()];
        for (channel, (idx, jobs)) in by_channel {
            let admission = loop {
                match dispatcher.admit(jobs.len()).await {
                    Ok(a) => break a,
                    Err(crate::delivery::AdmitError::Full { .. }) => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Err(e) => return Err(ServiceError::Internal(e.to_string())),
                }
            };
            let rate = if channel == "EMAIL" {
                plan.messages_per_second
            } else {
                None
            };
            let got = dispatcher
                .send(&plan.app.id, channel, rate, jobs, admission)
                .await;
            for (i, d) in idx.into_iter().zip(got) {
                out[i] = Some(d);
            }
        }
        Ok(out
            .into_iter()
            .map(|d| {
                d.unwrap_or(Delivered {
                    outcome: Outcome::new(DeliveryStatus::UnknownFailure, 500, "not answered"),
                    attempts: 0,
                    hard_bounce: false,
                })
            })
            .collect())
    }

    /// Adds a wave's counts to the run's activities (created on the first
    /// wave).
    async fn add_to_activities(
        &self,
        app: &AppRecord,
        campaign_id: &str,
        run: &RunState,
        tallies: &[Tally],
    ) -> Result<()> {
        let existing: BTreeMap<u32, ActivityRecord> = self
            .host
            .reader()
            .activities(&app.id, campaign_id)?
            .into_iter()
            .filter(|a| a.run == run.run)
            .map(|a| (a.treatment, a))
            .collect();
        let activities = tallies
            .iter()
            .enumerate()
            .map(|(t, tally)| {
                let t = t as u32;
                let mut a = existing.get(&t).cloned().unwrap_or_else(|| ActivityRecord {
                    run: run.run,
                    treatment: t,
                    scheduled_ms: run.scheduled_ms,
                    start_ms: run.started_ms,
                    state: "EXECUTING".into(),
                    timezones_total: 1,
                    ..Default::default()
                });
                a.total += tally.total;
                a.successful += tally.successful;
                for (k, v) in &tally.skipped {
                    *a.skipped.entry(k.clone()).or_default() += v;
                }
                a
            })
            .collect();
        self.host
            .propose(
                META_GROUP,
                Command::PutActivities {
                    app_id: app.id.clone(),
                    campaign_id: campaign_id.to_owned(),
                    activities,
                },
            )
            .await?;
        Ok(())
    }

    /// Ends a run: activities COMPLETED with their result, progress moved
    /// on (finished when no run follows).
    async fn close_run(
        &self,
        app: &AppRecord,
        campaign_id: &str,
        run: &RunState,
        plan: Option<&RunPlan>,
        cut_short: Option<String>,
    ) -> Result<()> {
        let now = self.clock.now_ms();
        let mut activities: Vec<ActivityRecord> = self
            .host
            .reader()
            .activities(&app.id, campaign_id)?
            .into_iter()
            .filter(|a| a.run == run.run)
            .collect();
        for a in &mut activities {
            a.end_ms = Some(now);
            a.state = if cut_short.is_some() {
                "CANCELLED".into()
            } else {
                "COMPLETED".into()
            };
            a.timezones_completed = a.timezones_total;
            let sent = a.successful;
            let failed = a.skipped.get("delivery_failed").copied().unwrap_or(0)
                + a.skipped.get("outcome_unknown").copied().unwrap_or(0);
            a.result = Some(
                if failed == 0 && cut_short.is_none() {
                    "SUCCESS"
                } else if sent > 0 {
                    "PARTIAL_SUCCESS"
                } else {
                    "FAILED"
                }
                .into(),
            );
        }
        if !activities.is_empty() {
            self.host
                .propose(
                    META_GROUP,
                    Command::PutActivities {
                        app_id: app.id.clone(),
                        campaign_id: campaign_id.to_owned(),
                        activities,
                    },
                )
                .await?;
        }
        let Ok((head, _)) = self.campaign_record(&app.id, campaign_id, None) else {
            return Ok(());
        };
        let p = head.progress.clone().unwrap_or_default();
        let finished = plan.is_none_or(|pl| {
            pl.recurrence.frequency == Frequency::Once
                || schedule::occurrence(&pl.recurrence, p.runs_started).is_none()
        });
        let next = CampaignProgress {
            runs_started: p.runs_started,
            current: None,
            finished,
        };
        if let Some(why) = &cut_short {
            tracing::info!(app_id = %app.id, campaign_id, run = run.run, why, "campaign run stopped");
        } else {
            tracing::info!(app_id = %app.id, campaign_id, run = run.run, "campaign run completed");
        }
        self.set_progress(&app.id, &head, next).await?;
        Ok(())
    }
}

/// Events of one PutEvents request that may trigger campaigns:
/// (app, [(endpoint id, event id, event)]).
pub type Trigger = (String, Vec<(String, String, Event)>);

/// Trigger batches waiting for the scheduler at most.
pub const TRIGGER_QUEUE_MAX: usize = 1024;

impl<E: KvEngine> Herald<E> {
    /// Whether the app has event-triggered campaigns (as of the last tick).
    pub(crate) fn wants_triggers(&self, app_id: &str) -> bool {
        self.event_apps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(app_id)
    }

    /// Hands a PutEvents request's events to the scheduler if the app has
    /// event-triggered campaigns; waits for room (back-pressure) when the
    /// queue is full.
    pub(crate) async fn offer_trigger(&self, app_id: &str, events: Vec<(String, String, Event)>) {
        if !events.is_empty() {
            let _ = self.triggers.0.send((app_id.to_owned(), events)).await;
        }
    }

    /// Sends each EVENT campaign of the app to the endpoints whose events
    /// match its filter and who are in its segment. Message ids derive from
    /// (campaign, event id, treatment, endpoint), so a retried PutEvents
    /// with the same event ids sends nothing twice; caps are charged as for
    /// any run. Counts go to the activity of the day.
    async fn trigger_event_campaigns(&self, (app_id, events): Trigger) -> Result<()> {
        self.host.read_barrier(META_GROUP).await?;
        let app = self.app(&app_id).await?;
        let now = self.clock.now_ms();
        for head in self.host.reader().def_heads(&app_id, def_kind::CAMPAIGN)? {
            let (_, v) = self.campaign_record(&app_id, &head.id, None)?;
            let req = parse_campaign(&v.body)?;
            let schedule = req.schedule.clone().unwrap_or_default();
            if schedule.frequency.as_deref() != Some("EVENT") || is_paused(&req) {
                continue;
            }
            let created = time::parse_iso8601_ms(&head.creation_date).unwrap_or(0);
            let Some(rec) = recurrence(&req, created) else {
                continue;
            };
            if now < rec.start_ms || rec.end_ms.is_some_and(|e| now > e) {
                continue;
            }
            let Some(filter) = schedule.event_filter.as_ref() else {
                continue;
            };
            let system = filter.filter_type.as_deref() == Some("SYSTEM");
            let matching: Vec<&(String, String, Event)> = events
                .iter()
                .filter(|(_, _, ev)| {
                    let t = ev.event_type.as_deref().unwrap_or_default();
                    t.starts_with('_') == system
                        && camp::event_matches(
                            filter,
                            t,
                            &ev.attributes.clone().unwrap_or_default(),
                            &ev.metrics.clone().unwrap_or_default(),
                        )
                })
                .collect();
            if matching.is_empty() {
                continue;
            }
            let run = RunState {
                run: u32::try_from(now.div_euclid(time::DAY_MS)).unwrap_or(0),
                version: v.version,
                scheduled_ms: now,
                started_ms: now,
                watermark_ms: i64::MIN,
                groups_done: 0,
                groups_also_done: Vec::new(),
            };
            let mut plan = self.run_plan(&app, &head.id, &run).await?;
            let mut tallies = vec![Tally::default(); plan.treatments.len()];
            let mut by_group: BTreeMap<GroupId, Vec<(String, String)>> = BTreeMap::new();
            for (endpoint_id, event_id, _) in matching {
                by_group
                    .entry(self.host.group_of(&app_id, endpoint_id))
                    .or_default()
                    .push((endpoint_id.clone(), event_id.clone()));
            }
            for (g, list) in by_group {
                for (endpoint_id, event_id) in list {
                    let Some(ep) = self.host.reader().endpoint(g, &app_id, &endpoint_id)? else {
                        continue;
                    };
                    if !plan
                        .segment
                        .matches(&ep, now, &self.member_check(&app_id, g))
                    {
                        continue;
                    }
                    plan.cause = format!("e:{event_id}");
                    let kept = if matches!(plan.hook, Some((HookMode::Filter, _))) {
                        self.filter_through_hook(&plan, &run, vec![ep], &mut tallies)
                            .await?
                    } else {
                        vec![ep]
                    };
                    let mut held = Vec::new();
                    for ep in kept {
                        if let Some(p) =
                            self.member_message(&plan, &run, &ep, now, &mut tallies, &mut held)
                        {
                            merge(&mut tallies, self.send_batch(&plan, g, vec![p]).await?);
                        }
                    }
                    self.record_holdout(&plan, g, held).await;
                }
            }
            self.add_to_activities(&app, &head.id, &run, &tallies)
                .await?;
        }
        Ok(())
    }
}

/// A zone for an endpoint, if its time zone is valid.
pub fn endpoint_zone(ep: &EndpointResponse) -> Option<Zone> {
    ep.demographic
        .as_ref()
        .and_then(|d| d.timezone.as_deref())
        .and_then(schedule::parse_zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunState {
        RunState {
            run: 0,
            version: 1,
            scheduled_ms: 0,
            started_ms: 0,
            watermark_ms: i64::MIN,
            groups_done: 0,
            groups_also_done: Vec::new(),
        }
    }

    #[test]
    fn shards_done_out_of_order_grow_the_prefix_once_it_is_reached() {
        let mut r = run();
        mark_done(&mut r, 2);
        mark_done(&mut r, 1);
        assert_eq!((r.groups_done, r.groups_also_done.clone()), (0, vec![1, 2]));
        mark_done(&mut r, 0);
        assert_eq!((r.groups_done, r.groups_also_done.clone()), (3, vec![]));
        mark_done(&mut r, 5);
        mark_done(&mut r, 5);
        assert_eq!((r.groups_done, r.groups_also_done.clone()), (3, vec![5]));
        mark_done(&mut r, 3);
        mark_done(&mut r, 4);
        assert_eq!((r.groups_done, r.groups_also_done), (6, vec![]));
    }
}

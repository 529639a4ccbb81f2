//! Segments: the Pinpoint segment operations, and membership.
//!
//! A segment is a versioned definition in the meta group (the create or
//! update request as given). Membership is never stored for dynamic
//! segments: each campaign run evaluates the segment version it names on
//! every data shard, against the endpoints as they are then (Pinpoint's
//! rule). Source segments of `SegmentGroups` are resolved to the version
//! they name (the latest when none), at most [`SOURCE_DEPTH_MAX`] deep.
//!
//! An imported segment (`SegmentType: IMPORT`, written by an import job; see
//! `jobs`) keeps its definition in the body's herald-private
//! `ImportDefinition` member. Its members are the endpoints the imports into
//! it named, stored per data group next to the endpoints; an imported
//! segment has one member set for all its versions. Like any segment, it is
//! evaluated against the endpoints as they are: deleted endpoints are gone,
//! and sends skip opted-out ones.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use herald_model::segment::{
    self as seg, EndpointFacts, SegmentImportResource, SegmentReference, SegmentResponse,
    SegmentsResponse, WriteSegmentRequest,
};
use herald_model::wire::EndpointResponse;
use herald_model::{ids, time, validate};
use herald_storage::{def_kind, CmdResult, Command, DefHead, DefVersion, DefWrite, GroupId};
use herald_storage::{KvEngine, META_GROUP};
use serde_json::Value;

use crate::definitions::version_param;
use crate::service::{Herald, Result, ServiceError, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX};

/// Segments per app at most (Pinpoint's default quota).
pub const SEGMENTS_MAX: usize = 100;
/// How deep `SourceSegments` may nest.
pub const SOURCE_DEPTH_MAX: usize = 5;

/// A segment version made ready for evaluation, its sources resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub id: String,
    pub version: u32,
    req: WriteSegmentRequest,
    /// An imported segment: its members are its stored member rows.
    pub imported: bool,
    /// Source segments by (id, version asked for).
    sources: BTreeMap<(String, Option<i32>), Resolved>,
}

/// Answers whether an endpoint (by id) was imported into a segment (by id);
/// see [`Herald::member_check`].
pub type MemberCheck<'a> = &'a dyn Fn(&str, &str) -> bool;

impl Resolved {
    /// The segment's dimensions when they alone decide membership (a
    /// dimensional segment without groups): the segment index answers it.
    pub fn plain_dimensions(&self) -> Option<&herald_model::segment::SegmentDimensions> {
        if self.imported || self.req.segment_groups.is_some() {
            return None;
        }
        static ALL: std::sync::OnceLock<herald_model::segment::SegmentDimensions> =
            std::sync::OnceLock::new();
        Some(
            self.req
                .dimensions
                .as_ref()
                .unwrap_or_else(|| ALL.get_or_init(Default::default)),
        )
    }

    /// Whether `ep` is a member at `now_ms`; `imported` answers for
    /// imported segments (this one or its sources).
    pub fn matches(&self, ep: &EndpointResponse, now_ms: i64, imported: MemberCheck<'_>) -> bool {
        if self.imported {
            return imported(&self.id, ep.id.as_deref().unwrap_or_default());
        }
        let facts = EndpointFacts {
            endpoint: ep,
            last_active_ms: last_active_ms(ep),
        };
        let in_source = |r: &SegmentReference| {
            self.sources
                .get(&(r.id.clone().unwrap_or_default(), r.version))
                .is_some_and(|s| s.matches(ep, now_ms, imported))
        };
        seg::segment_matches(
            self.req.dimensions.as_ref(),
            self.req.segment_groups.as_ref(),
            &facts,
            now_ms,
            &in_source,
        )
    }
}

/// When the endpoint was last active: its `EffectiveDate`, which every
/// endpoint write and every event batch for it moves forward.
pub fn last_active_ms(ep: &EndpointResponse) -> Option<i64> {
    ep.effective_date
        .as_deref()
        .and_then(|d| time::parse_iso8601_ms(d).ok())
}

fn not_found(app_id: &str, id: &str) -> ServiceError {
    ServiceError::NotFound(format!("segment {id} of application {app_id} not found"))
}

fn parse_body(body: &Value) -> Result<WriteSegmentRequest> {
    serde_json::from_value(body.clone())
        .map_err(|e| ServiceError::BadRequest(format!("the segment request is invalid: {e}")))
}

pub(crate) fn page_size(p: Option<&str>) -> Result<usize> {
    match p.filter(|s| !s.is_empty()) {
        None => Ok(PAGE_SIZE_DEFAULT),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=PAGE_SIZE_MAX).contains(&n) => Ok(n),
            _ => Err(ServiceError::BadRequest(format!(
                "page-size must be a number from 1 to {PAGE_SIZE_MAX}, not {s:?}"
            ))),
        },
    }
}

/// The body member that makes a segment version an imported one.
pub const IMPORT_DEFINITION: &str = "ImportDefinition";

/// The import definition of a stored segment body, if it is an imported one.
pub fn import_definition(body: &Value) -> Option<SegmentImportResource> {
    body.get(IMPORT_DEFINITION)
        .and_then(|d| serde_json::from_value(d.clone()).ok())
}

pub(crate) fn segment_response(
    app_id: &str,
    head: &DefHead,
    v: &DefVersion,
) -> Result<SegmentResponse> {
    let req = parse_body(&v.body).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let import = import_definition(&v.body);
    Ok(SegmentResponse {
        application_id: app_id.to_owned(),
        arn: head.arn.clone(),
        creation_date: head.creation_date.clone(),
        dimensions: req.dimensions,
        id: head.id.clone(),
        segment_type: if import.is_some() {
            "IMPORT".into()
        } else {
            "DIMENSIONAL".into()
        },
        import_definition: import,
        last_modified_date: Some(v.last_modified_date.clone()),
        name: req.name,
        segment_groups: req.segment_groups,
        tags: Some(head.tags.clone()),
        version: i32::try_from(v.version).ok(),
    })
}

impl<E: KvEngine> Herald<E> {
    /// `CreateSegment`.
    pub async fn create_segment(
        &self,
        app_id: &str,
        id: String,
        region: &str,
        mut body: Value,
    ) -> Result<SegmentResponse> {
        let req = parse_body(&body)?;
        seg::validate_write_segment(&req)?;
        let tags = req.tags.clone().unwrap_or_default();
        validate::tags(&tags, &self.cfg.limits)?;
        if let Some(o) = body.as_object_mut() {
            o.remove("tags");
            // Only import jobs write imported segments.
            o.remove(IMPORT_DEFINITION);
        }
        self.app(app_id).await?;
        let reader = self.host.reader();
        if reader.def_heads(app_id, def_kind::SEGMENT)?.len() >= SEGMENTS_MAX {
            return Err(ServiceError::BadRequest(format!(
                "an application may have at most {SEGMENTS_MAX} segments"
            )));
        }
        self.check_sources(app_id, &req)?;
        let arn = ids::resource_arn(
            region,
            &self.cfg.account,
            &format!("apps/{app_id}/segments/{id}"),
        );
        let cmd = Command::PutDefinition {
            app_id: app_id.to_owned(),
            kind: def_kind::SEGMENT,
            id,
            write: DefWrite::Create { arn, tags },
            body,
            now_iso: self.now_iso(),
        };
        self.put_segment(app_id, cmd).await
    }

    /// `UpdateSegment`: a new version.
    pub async fn update_segment(
        &self,
        app_id: &str,
        id: &str,
        mut body: Value,
    ) -> Result<SegmentResponse> {
        let req = parse_body(&body)?;
        seg::validate_write_segment(&req)?;
        if let Some(o) = body.as_object_mut() {
            o.remove("tags");
            o.remove(IMPORT_DEFINITION);
        }
        self.app(app_id).await?;
        if let Ok((_, latest)) = self.segment_record(app_id, id, None) {
            if import_definition(&latest.body).is_some() {
                return Err(ServiceError::BadRequest(format!(
                    "segment {id} is an imported segment; add a version with CreateImportJob \
                     (SegmentId) instead"
                )));
            }
        }
        self.check_sources(app_id, &req)?;
        let cmd = Command::PutDefinition {
            app_id: app_id.to_owned(),
            kind: def_kind::SEGMENT,
            id: id.to_owned(),
            write: DefWrite::NewVersion,
            body,
            now_iso: self.now_iso(),
        };
        self.put_segment(app_id, cmd).await.map_err(|e| match e {
            ServiceError::NotFound(_) => not_found(app_id, id),
            other => other,
        })
    }

    pub(crate) async fn put_segment(&self, app_id: &str, cmd: Command) -> Result<SegmentResponse> {
        let id = match &cmd {
            Command::PutDefinition { id, .. } => id.clone(),
            _ => unreachable!("put_segment takes PutDefinition"),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::Def(Some((head, v))) => segment_response(app_id, &head, &v),
            CmdResult::Def(None) => Err(not_found(app_id, &id)),
            CmdResult::Rejected(why) => Err(ServiceError::BadRequest(why)),
            other => Err(ServiceError::Internal(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// Source segments must exist (with the version named).
    fn check_sources(&self, app_id: &str, req: &WriteSegmentRequest) -> Result<()> {
        let groups = req
            .segment_groups
            .iter()
            .flat_map(|l| l.groups.iter().flatten());
        for r in groups.flat_map(|g| g.source_segments.iter().flatten()) {
            let v = r.version.map(|v| u32::try_from(v).unwrap_or(0));
            let id = r.id.as_deref().unwrap_or_default();
            self.segment_record(app_id, id, v).map_err(|e| match e {
                ServiceError::NotFound(m) => {
                    ServiceError::BadRequest(format!("SourceSegments: {m}"))
                }
                other => other,
            })?;
        }
        Ok(())
    }

    /// A segment's head and one version (the latest when `None`).
    pub(crate) fn segment_record(
        &self,
        app_id: &str,
        id: &str,
        version: Option<u32>,
    ) -> Result<(DefHead, DefVersion)> {
        self.def_record(app_id, def_kind::SEGMENT, id, version)
    }

    /// `GetSegment` (latest version) and `GetSegmentVersion`.
    pub async fn segment(
        &self,
        app_id: &str,
        id: &str,
        version: Option<&str>,
    ) -> Result<SegmentResponse> {
        let version = version_param(version)?;
        self.app(app_id).await?;
        let (head, v) = self.segment_record(app_id, id, version)?;
        segment_response(app_id, &head, &v)
    }

    /// `GetSegments`: the latest version of each, by id; the token is the
    /// last id of the previous page.
    pub async fn segments(
        &self,
        app_id: &str,
        size: Option<&str>,
        token: Option<&str>,
    ) -> Result<SegmentsResponse> {
        let size = page_size(size)?;
        self.app(app_id).await?;
        let reader = self.host.reader();
        let heads = reader.def_heads(app_id, def_kind::SEGMENT)?;
        let after = token.filter(|t| !t.is_empty());
        let mut item = Vec::new();
        let mut next_token = None;
        for h in heads
            .iter()
            .filter(|h| after.is_none_or(|t| h.id.as_str() > t))
        {
            if item.len() == size {
                next_token = item.last().map(|s: &SegmentResponse| s.id.clone());
                break;
            }
            let (head, v) = self.segment_record(app_id, &h.id, None)?;
            item.push(segment_response(app_id, &head, &v)?);
        }
        Ok(SegmentsResponse { item, next_token })
    }

    /// `GetSegmentVersions`: newest first; the token is the last version of
    /// the previous page.
    pub async fn segment_versions(
        &self,
        app_id: &str,
        id: &str,
        size: Option<&str>,
        token: Option<&str>,
    ) -> Result<SegmentsResponse> {
        let (head, versions, next_token) = self
            .def_version_page(app_id, def_kind::SEGMENT, id, size, token)
            .await?;
        let item = versions
            .iter()
            .map(|v| segment_response(app_id, &head, v))
            .collect::<Result<Vec<_>>>()?;
        Ok(SegmentsResponse { item, next_token })
    }

    /// `DeleteSegment`: refused while a campaign uses the segment.
    pub async fn delete_segment(&self, app_id: &str, id: &str) -> Result<SegmentResponse> {
        self.app(app_id).await?;
        let users = self.campaigns_using_segment(app_id, id)?;
        if let Some(c) = users.first() {
            return Err(ServiceError::BadRequest(format!(
                "segment {id} is used by campaign {c}; delete the campaign first"
            )));
        }
        let cmd = Command::DeleteDefinition {
            app_id: app_id.to_owned(),
            kind: def_kind::SEGMENT,
            id: id.to_owned(),
        };
        let deleted = match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::Def(Some((head, v))) => segment_response(app_id, &head, &v)?,
            CmdResult::Def(None) => return Err(not_found(app_id, id)),
            other => {
                return Err(ServiceError::Internal(format!(
                    "unexpected result {other:?}"
                )))
            }
        };
        // Imported members go with the segment (a no-op for others).
        let removals = self.host.data_groups().map(|g| {
            self.host.propose(
                g,
                Command::RemoveSegmentMembers {
                    app_id: app_id.to_owned(),
                    segment_id: id.to_owned(),
                },
            )
        });
        for r in futures::future::join_all(removals).await {
            r?;
        }
        Ok(deleted)
    }

    /// A segment version resolved for evaluation, sources included.
    pub fn resolve_segment(
        &self,
        app_id: &str,
        id: &str,
        version: Option<u32>,
    ) -> Result<Resolved> {
        self.resolve_at(app_id, id, version, 0)
    }

    fn resolve_at(
        &self,
        app_id: &str,
        id: &str,
        version: Option<u32>,
        depth: usize,
    ) -> Result<Resolved> {
        if depth > SOURCE_DEPTH_MAX {
            return Err(ServiceError::BadRequest(format!(
                "segment {id}: source segments nest deeper than {SOURCE_DEPTH_MAX} (or form a cycle)"
            )));
        }
        let (_, v) = self.segment_record(app_id, id, version)?;
        let req = parse_body(&v.body).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let mut sources = BTreeMap::new();
        let groups = req
            .segment_groups
            .iter()
            .flat_map(|l| l.groups.iter().flatten());
        for r in groups.flat_map(|g| g.source_segments.iter().flatten()) {
            let sv = r.version.map(|x| u32::try_from(x).unwrap_or(0));
            let id = r.id.clone().unwrap_or_default();
            let s = self.resolve_at(app_id, &id, sv, depth + 1)?;
            sources.insert((id, r.version), s);
        }
        Ok(Resolved {
            id: id.to_owned(),
            version: v.version,
            imported: import_definition(&v.body).is_some(),
            req,
            sources,
        })
    }

    /// Whether `(segment, endpoint)` is an imported membership, read from
    /// this node's replica of `group` (the endpoint's group). A read error
    /// counts as "not a member" and is logged.
    pub fn member_check(&self, app_id: &str, group: GroupId) -> impl Fn(&str, &str) -> bool + '_ {
        let app_id = app_id.to_owned();
        move |segment_id: &str, endpoint_id: &str| {
            self.host
                .reader()
                .is_segment_member(group, &app_id, segment_id, endpoint_id)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, segment_id, endpoint_id, "reading a segment member failed");
                    false
                })
        }
    }

    /// Visits the members of a resolved segment in one data shard (as this
    /// node's replica has them). Stops early when `visit` breaks.
    pub fn for_each_member(
        &self,
        app_id: &str,
        seg: &Resolved,
        group: GroupId,
        now_ms: i64,
        visit: &mut dyn FnMut(EndpointResponse) -> ControlFlow<()>,
    ) -> Result<()> {
        let reader = self.host.reader();
        let check = self.member_check(app_id, group);
        if seg.imported {
            // Only the member rows can match: visit those, not every endpoint.
            let mut err = None;
            reader.for_each_segment_member(group, app_id, &seg.id, &mut |id| match reader
                .endpoint(group, app_id, &id)
            {
                Ok(Some(ep)) => visit(ep),
                Ok(None) => ControlFlow::Continue(()),
                Err(e) => {
                    err = Some(e);
                    ControlFlow::Break(())
                }
            })?;
            return err.map_or(Ok(()), |e| Err(e.into()));
        }
        let ids = match (seg.plain_dimensions(), self.indexes.get()) {
            (Some(dims), Some(indexes)) => indexes.members(group, app_id, dims, now_ms),
            _ => None,
        };
        if let Some(ids) = ids {
            // The index answers the member ids; only members are read.
            for id in ids {
                if let Some(ep) = reader.endpoint(group, app_id, &id)? {
                    if visit(ep).is_break() {
                        break;
                    }
                }
            }
            return Ok(());
        }
        reader.for_each_app_endpoint(group, app_id, &mut |ep| {
            if seg.matches(&ep, now_ms, &check) {
                visit(ep)
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(())
    }

    /// How many endpoints are in a segment now, counted shard by shard
    /// after a read barrier on each (herald's extension).
    pub async fn segment_size(&self, app_id: &str, id: &str, version: Option<u32>) -> Result<u64> {
        self.app(app_id).await?;
        let seg = self.resolve_segment(app_id, id, version)?;
        let now = self.clock.now_ms();
        let mut n = 0u64;
        for g in self.host.data_groups() {
            self.host.read_barrier(g).await?;
            let counted = match (seg.plain_dimensions(), self.indexes.get()) {
                (Some(dims), Some(indexes)) => indexes.count(g, app_id, dims, now),
                _ => None,
            };
            if let Some(c) = counted {
                n += c;
                continue;
            }
            self.for_each_member(app_id, &seg, g, now, &mut |_| {
                n += 1;
                ControlFlow::Continue(())
            })?;
        }
        Ok(n)
    }
}

//! Import and export jobs: `CreateImportJob`, `CreateExportJob` and their
//! listings.
//!
//! A job is a [`JobRecord`] in the meta group, written (`PutJob`) when it is
//! created and after every piece it finishes. It runs as a background task on
//! the node that accepted it; at most [`JobsConfig::running_max`] jobs run on
//! a node at once, the others wait in `CREATED`. A job that was running when
//! its node stopped is marked `FAILED` when the node starts again.
//!
//! **Imports** stream the file (`file://` or `http(s)://`) in chunks, parse
//! CSV or JSON lines row by row, and write good rows in batches of
//! [`BATCH_ROWS`] through the same path as `UpdateEndpointsBatch` (validation,
//! quotas, address hand-over). A batch refused as a whole is retried row by
//! row, so one bad endpoint fails only its own row. A bad row is a failure
//! (`line N: message`), never the job's: the job fails only when the file
//! cannot be read or has no usable header. With `DefineSegment` the imported
//! endpoints become members of an imported segment, whose version is written
//! when the job completes. Memory is bounded by one chunk, one record and one
//! batch.
//!
//! **Exports** write the app's endpoints (or a segment's members) as
//! NDJSON files `{prefix}/{job id}/part-NNNNN.json` of at most
//! [`EXPORT_PART_LINES`] lines, one data shard per piece.
//!
//! `file://` paths are read and written with the server's permissions; when
//! [`JobsConfig::file_roots`] is not empty they must lie under one of them.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use herald_model::import::{
    self as imp, CsvHeader, CsvRecords, ExportJobRequest, ExportJobResource, ExportJobResponse,
    ExportJobsResponse, ImportJobRequest, ImportJobResource, ImportJobResponse, ImportJobsResponse,
};
use herald_model::segment::SegmentImportResource;
use herald_model::wire::{EndpointBatchItem, EndpointBatchRequest};
use herald_model::{ids, time};
use herald_storage::{
    def_kind, job_kind, CmdResult, Command, DefWrite, GroupId, JobRecord, KvEngine, META_GROUP,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::segments::{page_size, IMPORT_DEFINITION, SEGMENTS_MAX};
use crate::service::{Herald, Result, ServiceError};

/// Rows written per batch (one `UpdateEndpointsBatch`).
pub const BATCH_ROWS: usize = 100;
/// Longest CSV record or JSON line accepted.
pub const RECORD_BYTES_MAX: usize = 64 * 1024;
/// Failures a job keeps (the count goes on).
pub const FAILURES_KEPT: usize = 100;
/// Lines per export file at most.
pub const EXPORT_PART_LINES: usize = 10_000;
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// No byte from an http(s) source for this long fails the job.
const HTTP_STALL: Duration = Duration::from_secs(60);

/// Settings of import and export jobs.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Absolute directories `file://` URLs must lie under; empty: any
    /// absolute path (read and written with the server's permissions).
    pub file_roots: Vec<String>,
    /// Jobs running at once on one node.
    pub running_max: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            file_roots: Vec::new(),
            running_max: 2,
        }
    }
}

mod status {
    pub const CREATED: &str = "CREATED";
    pub const INITIALIZING: &str = "INITIALIZING";
    pub const PROCESSING: &str = "PROCESSING";
    pub const COMPLETING: &str = "COMPLETING";
    pub const COMPLETED: &str = "COMPLETED";
    pub const FAILED: &str = "FAILED";
}

fn finished(s: &str) -> bool {
    s == status::COMPLETED || s == status::FAILED
}

fn i32_of<T: TryInto<i32>>(n: T) -> Option<i32> {
    Some(n.try_into().unwrap_or(i32::MAX))
}

// ---------------------------------------------------------------------------
// Parsing rows out of a byte stream
// ---------------------------------------------------------------------------

/// One data row: its line and the endpoint, or why it cannot be imported.
pub(crate) type Row = (u64, std::result::Result<EndpointBatchItem, String>);

/// Turns chunks of an import file into rows, whatever the chunking.
pub(crate) enum RowParser {
    Csv {
        records: CsvRecords,
        header: Option<CsvHeader>,
    },
    Json {
        pending: Vec<u8>,
        /// The line `pending` is on (1-based).
        line: u64,
        /// The current line is over the size limit; its bytes are dropped.
        oversize: bool,
    },
}

impl RowParser {
    pub(crate) fn new(format: &str) -> RowParser {
        if format == "CSV" {
            RowParser::Csv {
                records: CsvRecords::new(RECORD_BYTES_MAX),
                header: None,
            }
        } else {
            RowParser::Json {
                pending: Vec::new(),
                line: 1,
                oversize: false,
            }
        }
    }

    /// Parses a chunk, appending the rows it completes. `Err`: the file
    /// cannot be imported at all (its header is unusable).
    pub(crate) fn push(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<Row>,
    ) -> std::result::Result<(), String> {
        match self {
            RowParser::Csv { records, .. } => {
                records.push(chunk);
                self.drain_csv(out)
            }
            RowParser::Json {
                pending,
                line,
                oversize,
            } => {
                for &b in chunk {
                    if b == b'\n' {
                        json_line(pending, *line, oversize, out);
                        *line += 1;
                    } else if !*oversize {
                        if pending.len() >= RECORD_BYTES_MAX {
                            *oversize = true;
                            *pending = Vec::new();
                        } else {
                            pending.push(b);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Ends the input, appending the last row.
    pub(crate) fn finish(&mut self, out: &mut Vec<Row>) -> std::result::Result<(), String> {
        match self {
            RowParser::Csv { records, .. } => {
                records.finish();
                self.drain_csv(out)?;
                match self {
                    RowParser::Csv { header: None, .. } => {
                        Err("the file is empty: a CSV import needs a header line".into())
                    }
                    _ => Ok(()),
                }
            }
            RowParser::Json {
                pending,
                line,
                oversize,
            } => {
                json_line(pending, *line, oversize, out);
                Ok(())
            }
        }
    }

    fn drain_csv(&mut self, out: &mut Vec<Row>) -> std::result::Result<(), String> {
        let RowParser::Csv { records, header } = self else {
            return Ok(());
        };
        while let Some(r) = records.next_record() {
            let line = records.record_line();
            match (r, header.as_ref()) {
                (Ok((_, fields)), None) => {
                    *header = Some(imp::parse_header(&fields).map_err(|e| e.0)?);
                }
                (Err(e), None) => return Err(format!("header: {e}")),
                (Ok((line, fields)), Some(h)) => {
                    out.push((line, imp::row_to_item(h, &fields).map_err(|e| e.0)));
                }
                (Err(e), Some(_)) => out.push((line, Err(e.0))),
            }
        }
        Ok(())
    }
}

/// Ends one JSON line (blank lines are skipped).
fn json_line(pending: &mut Vec<u8>, line: u64, oversize: &mut bool, out: &mut Vec<Row>) {
    if std::mem::take(oversize) {
        out.push((
            line,
            Err(format!("line is longer than {RECORD_BYTES_MAX} bytes")),
        ));
        return;
    }
    let bytes = std::mem::take(pending);
    match std::str::from_utf8(&bytes) {
        Err(_) => out.push((line, Err("line is not valid UTF-8".into()))),
        Ok(text) if text.trim().is_empty() => {}
        Ok(text) => out.push((line, imp::json_line_to_item(text).map_err(|e| e.0))),
    }
}

// ---------------------------------------------------------------------------
// Writing batches, with the per-row fallback
// ---------------------------------------------------------------------------

/// Where an import's rows go.
pub(crate) trait ImportSink {
    /// Writes the endpoints of a batch all together, or refuses them all.
    async fn write(&self, items: &[EndpointBatchItem]) -> std::result::Result<(), String>;
    /// Adds endpoint ids to the job's segment.
    async fn add_members(&self, ids: &[String]) -> std::result::Result<(), String>;
}

/// Where an import stands: the job's counters as rows are handled.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Progress {
    pub pieces: u32,
    pub completed_pieces: u32,
    pub failed_pieces: u32,
    pub processed: u64,
    pub failures: u64,
    /// The first [`FAILURES_KEPT`] failures.
    pub failure_lines: Vec<String>,
    /// Imported endpoints per channel.
    pub channel_counts: BTreeMap<String, i32>,
    pub imported: u64,
}

impl Progress {
    fn fail(&mut self, line: u64, message: &str) {
        self.failures += 1;
        if self.failure_lines.len() < FAILURES_KEPT {
            self.failure_lines.push(format!("line {line}: {message}"));
        }
    }

    /// A row the parser refused.
    pub(crate) fn bad_row(&mut self, line: u64, message: &str) {
        self.processed += 1;
        self.fail(line, message);
    }

    fn save_to(&self, job: &mut JobRecord) {
        job.total_pieces = self.pieces;
        job.completed_pieces = self.completed_pieces;
        job.failed_pieces = self.failed_pieces;
        job.total_processed = self.processed;
        job.total_failures = self.failures;
        job.failures = self.failure_lines.clone();
    }
}

/// Writes one batch of parsed rows: the whole batch at once, and row by row
/// when the batch is refused, so that each refused row is a failure of its
/// own line. Written rows join the segment when `define`.
pub(crate) async fn import_batch<S: ImportSink>(
    sink: &S,
    register: bool,
    define: bool,
    batch: Vec<(u64, EndpointBatchItem)>,
    p: &mut Progress,
) {
    if batch.is_empty() {
        return;
    }
    p.pieces += 1;
    p.processed += batch.len() as u64;
    let mut ok = Vec::with_capacity(batch.len());
    if register {
        let items: Vec<EndpointBatchItem> = batch.iter().map(|(_, i)| i.clone()).collect();
        if sink.write(&items).await.is_ok() {
            ok = batch;
        } else {
            for (line, item) in batch {
                match sink.write(std::slice::from_ref(&item)).await {
                    Ok(()) => ok.push((line, item)),
                    Err(e) => p.fail(line, &e),
                }
            }
        }
    } else {
        ok = batch;
    }
    if define && !ok.is_empty() {
        let ids: Vec<String> = ok
            .iter()
            .map(|(_, i)| i.id.clone().unwrap_or_default())
            .collect();
        if let Err(e) = sink.add_members(&ids).await {
            for (line, _) in std::mem::take(&mut ok) {
                p.fail(line, &format!("not added to the segment: {e}"));
            }
        }
    }
    for (_, item) in &ok {
        *p.channel_counts
            .entry(item.channel_type.clone().unwrap_or_default())
            .or_default() += 1;
    }
    p.imported += ok.len() as u64;
    p.completed_pieces += 1;
    if ok.is_empty() {
        p.failed_pieces += 1;
    }
}

struct HeraldSink<'a, E: KvEngine> {
    herald: &'a Herald<E>,
    app_id: &'a str,
    job_id: &'a str,
    segment_id: Option<&'a str>,
}

impl<E: KvEngine> ImportSink for HeraldSink<'_, E> {
    async fn write(&self, items: &[EndpointBatchItem]) -> std::result::Result<(), String> {
        let req = EndpointBatchRequest {
            item: Some(items.to_vec()),
        };
        self.herald
            .update_endpoints_batch(self.app_id, req, self.job_id)
            .await
            .map_err(|e| e.to_string())
    }

    async fn add_members(&self, ids: &[String]) -> std::result::Result<(), String> {
        let Some(segment_id) = self.segment_id else {
            return Ok(());
        };
        let host = self.herald.host();
        let mut by_group: BTreeMap<GroupId, Vec<String>> = BTreeMap::new();
        for id in ids {
            by_group
                .entry(host.group_of(self.app_id, id))
                .or_default()
                .push(id.clone());
        }
        let adds = by_group.into_iter().map(|(g, endpoint_ids)| {
            host.propose(
                g,
                Command::AddSegmentMembers {
                    app_id: self.app_id.to_owned(),
                    segment_id: segment_id.to_owned(),
                    endpoint_ids,
                },
            )
        });
        for r in futures::future::join_all(adds).await {
            match r {
                Ok(CmdResult::Rejected(why)) => return Err(why),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Sources and export files
// ---------------------------------------------------------------------------

/// An import file being read.
enum Source {
    File(tokio::fs::File, Vec<u8>),
    Http(reqwest::Response),
}

impl Source {
    async fn open(url: &str) -> std::result::Result<Source, String> {
        if let Some(path) = url.strip_prefix("file://") {
            let f = tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("cannot open {path}: {e}"))?;
            return Ok(Source::File(f, vec![0; READ_CHUNK_BYTES]));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let resp = tokio::time::timeout(HTTP_STALL, client.get(url).send())
            .await
            .map_err(|_| format!("GET {url}: no answer within {}s", HTTP_STALL.as_secs()))?
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: status {}", resp.status()));
        }
        Ok(Source::Http(resp))
    }

    /// The next chunk; `None` at the end.
    async fn next(&mut self) -> std::result::Result<Option<Vec<u8>>, String> {
        match self {
            Source::File(f, buf) => {
                let n = f
                    .read(buf)
                    .await
                    .map_err(|e| format!("reading the file: {e}"))?;
                Ok((n > 0).then(|| buf[..n].to_vec()))
            }
            Source::Http(resp) => {
                let chunk = tokio::time::timeout(HTTP_STALL, resp.chunk())
                    .await
                    .map_err(|_| format!("the download stalled for {}s", HTTP_STALL.as_secs()))?
                    .map_err(|e| format!("downloading: {e}"))?;
                Ok(chunk.map(|c| c.to_vec()))
            }
        }
    }
}

/// Export files of one job, [`EXPORT_PART_LINES`] lines each.
struct PartWriter {
    dir: PathBuf,
    job_id: String,
    next_part: u32,
    lines: usize,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
}

impl PartWriter {
    async fn write(&mut self, line: &str) -> std::io::Result<()> {
        if self.file.is_none() || self.lines >= EXPORT_PART_LINES {
            self.close().await?;
            let path = self
                .dir
                .join(imp::export_file_name(&self.job_id, self.next_part));
            self.next_part += 1;
            self.lines = 0;
            self.file = Some(tokio::io::BufWriter::new(
                tokio::fs::File::create(&path).await?,
            ));
        }
        let f = self.file.as_mut().expect("a part is open");
        f.write_all(line.as_bytes()).await?;
        f.write_all(b"\n").await?;
        self.lines += 1;
        Ok(())
    }

    async fn close(&mut self) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush().await?;
            f.into_inner().sync_all().await?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The service operations
// ---------------------------------------------------------------------------

fn job_not_found(kind: &str, app_id: &str, id: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "{} job {id} of application {app_id} not found",
        kind.to_ascii_lowercase()
    ))
}

fn import_response(app_id: &str, j: &JobRecord) -> ImportJobResponse {
    let req: ImportJobRequest = serde_json::from_value(j.request.clone()).unwrap_or_default();
    ImportJobResponse {
        application_id: app_id.to_owned(),
        completed_pieces: i32_of(j.completed_pieces),
        completion_date: j.completion_date.clone(),
        creation_date: j.creation_date.clone(),
        definition: ImportJobResource {
            define_segment: req.define_segment,
            external_id: req.external_id,
            format: req.format.unwrap_or_default(),
            register_endpoints: req.register_endpoints,
            role_arn: req.role_arn.unwrap_or_default(),
            s3_url: req.s3_url.unwrap_or_default(),
            segment_id: j.segment_id.clone(),
            segment_name: req.segment_name,
        },
        failed_pieces: i32_of(j.failed_pieces),
        failures: (!j.failures.is_empty()).then(|| j.failures.clone()),
        id: j.id.clone(),
        job_status: j.status.clone(),
        total_failures: i32_of(j.total_failures),
        total_pieces: i32_of(j.total_pieces),
        total_processed: i32_of(j.total_processed),
        job_type: job_kind::IMPORT.into(),
    }
}

fn export_response(app_id: &str, j: &JobRecord) -> ExportJobResponse {
    let req: ExportJobRequest = serde_json::from_value(j.request.clone()).unwrap_or_default();
    ExportJobResponse {
        application_id: app_id.to_owned(),
        completed_pieces: i32_of(j.completed_pieces),
        completion_date: j.completion_date.clone(),
        creation_date: j.creation_date.clone(),
        definition: ExportJobResource {
            role_arn: req.role_arn.unwrap_or_default(),
            s3_url_prefix: req.s3_url_prefix.unwrap_or_default(),
            segment_id: req.segment_id,
            segment_version: req.segment_version,
        },
        failed_pieces: i32_of(j.failed_pieces),
        failures: (!j.failures.is_empty()).then(|| j.failures.clone()),
        id: j.id.clone(),
        job_status: j.status.clone(),
        total_failures: i32_of(j.total_failures),
        total_pieces: i32_of(j.total_pieces),
        total_processed: i32_of(j.total_processed),
        job_type: job_kind::EXPORT.into(),
    }
}

/// Whether `path` lies under one of `roots` (empty: anywhere).
pub(crate) fn under_roots(path: &str, roots: &[String]) -> bool {
    roots.is_empty()
        || roots.iter().any(|r| {
            let r = r.trim_end_matches('/');
            path == r
                || path
                    .strip_prefix(r)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// A job page: newest first; the token is the last id of the previous page.
fn page<'a>(
    jobs: &'a [JobRecord],
    size: usize,
    token: Option<&str>,
) -> Result<(&'a [JobRecord], Option<String>)> {
    let start = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => {
            jobs.iter().position(|j| j.id == t).ok_or_else(|| {
                ServiceError::BadRequest(format!("{t:?} is not a valid pagination token"))
            })? + 1
        }
    };
    let rest = &jobs[start..];
    let items = &rest[..rest.len().min(size)];
    let next = (rest.len() > size).then(|| items[items.len() - 1].id.clone());
    Ok((items, next))
}

impl<E: KvEngine> Herald<E> {
    fn check_file_url(&self, member: &str, url: &str) -> Result<()> {
        if let Some(path) = url.strip_prefix("file://") {
            if !under_roots(path, &self.cfg.jobs.file_roots) {
                return Err(ServiceError::BadRequest(format!(
                    "{member}: {path} is not under a directory this server may use for jobs ({})",
                    self.cfg.jobs.file_roots.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn new_job(&self, id: String, kind: &str, request: serde_json::Value) -> JobRecord {
        let now = self.clock.now_ms();
        JobRecord {
            id,
            kind: kind.into(),
            node_id: self.host.node_id(),
            request,
            status: status::CREATED.into(),
            creation_ms: now,
            creation_date: time::format_iso8601_ms(now),
            ..JobRecord::default()
        }
    }

    /// Writes a job; `false` when its app is gone.
    async fn save_job(&self, app_id: &str, job: &JobRecord) -> Result<bool> {
        let cmd = Command::PutJob {
            app_id: app_id.to_owned(),
            job: job.clone(),
        };
        Ok(matches!(
            self.host.propose(META_GROUP, cmd).await?,
            CmdResult::Count(1)
        ))
    }

    /// `CreateImportJob`. `new_segment_id` names the segment a
    /// `DefineSegment` import without `SegmentId` creates.
    pub async fn create_import_job(
        self: &Arc<Self>,
        app_id: &str,
        job_id: String,
        new_segment_id: String,
        region: &str,
        req: ImportJobRequest,
    ) -> Result<ImportJobResponse> {
        imp::validate_import_request(&req)?;
        let url = req.s3_url.clone().unwrap_or_default();
        self.check_file_url("S3Url", &url)?;
        self.app(app_id).await?;
        let define = req.define_segment == Some(true);
        let mut segment = None;
        if define {
            let reader = self.host.reader();
            match req.segment_id.as_deref().filter(|s| !s.is_empty()) {
                Some(id) => {
                    let (_, v) = self.segment_record(app_id, id, None)?;
                    if crate::segments::import_definition(&v.body).is_none() {
                        return Err(ServiceError::BadRequest(format!(
                            "SegmentId: segment {id} is not an imported segment"
                        )));
                    }
                    segment = Some((id.to_owned(), None));
                }
                None => {
                    if reader.def_heads(app_id, def_kind::SEGMENT)?.len() >= SEGMENTS_MAX {
                        return Err(ServiceError::BadRequest(format!(
                            "an application may have at most {SEGMENTS_MAX} segments"
                        )));
                    }
                    let arn = ids::resource_arn(
                        region,
                        &self.cfg.account,
                        &format!("apps/{app_id}/segments/{new_segment_id}"),
                    );
                    segment = Some((new_segment_id, Some(arn)));
                }
            }
        }
        let body = serde_json::to_value(&req).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let mut job = self.new_job(job_id, job_kind::IMPORT, body);
        job.segment_id = segment.as_ref().map(|(id, _)| id.clone());
        if !self.save_job(app_id, &job).await? {
            return Err(ServiceError::NotFound(format!(
                "application {app_id} not found"
            )));
        }
        tracing::info!(app_id, job_id = %job.id, url = %url, "import job created");
        let this = self.clone();
        let (app, rec) = (app_id.to_owned(), job.clone());
        tokio::spawn(async move {
            let create_arn = segment.and_then(|(_, arn)| arn);
            this.run_import(app, rec, req, create_arn).await;
        });
        Ok(import_response(app_id, &job))
    }

    async fn run_import(
        &self,
        app_id: String,
        mut job: JobRecord,
        req: ImportJobRequest,
        create_arn: Option<String>,
    ) {
        let Ok(_slot) = self.job_slots.clone().acquire_owned().await else {
            return;
        };
        job.status = status::INITIALIZING.into();
        if !matches!(self.save_job(&app_id, &job).await, Ok(true)) {
            return;
        }
        let mut p = Progress::default();
        let outcome = self.import_file(&app_id, &mut job, &req, &mut p).await;
        p.save_to(&mut job);
        let outcome = match outcome {
            Ok(()) => {
                job.status = status::COMPLETING.into();
                let _ = self.save_job(&app_id, &job).await;
                self.define_import_segment(&app_id, &mut job, &req, &p, create_arn)
                    .await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => job.status = status::COMPLETED.into(),
            Err(reason) => {
                tracing::warn!(app_id, job_id = %job.id, reason = %reason, "import job failed");
                job.status = status::FAILED.into();
                job.failures.insert(0, reason);
                job.failures.truncate(FAILURES_KEPT);
            }
        }
        job.completion_date = Some(self.now_iso());
        if let Err(e) = self.save_job(&app_id, &job).await {
            tracing::warn!(app_id, job_id = %job.id, error = %e, "recording the end of an import job failed");
        }
        tracing::info!(app_id, job_id = %job.id, status = %job.status, processed = p.processed, failures = p.failures, "import job finished");
    }

    /// Reads, parses and writes the whole file. `Err`: the job fails.
    async fn import_file(
        &self,
        app_id: &str,
        job: &mut JobRecord,
        req: &ImportJobRequest,
        p: &mut Progress,
    ) -> std::result::Result<(), String> {
        let mut source = Source::open(req.s3_url.as_deref().unwrap_or_default()).await?;
        job.status = status::PROCESSING.into();
        self.save_job(app_id, job)
            .await
            .map_err(|e| format!("recording progress: {e}"))?;
        let job_id = job.id.clone();
        let segment_id = job
            .segment_id
            .clone()
            .filter(|_| req.define_segment == Some(true));
        let sink = HeraldSink {
            herald: self,
            app_id,
            job_id: &job_id,
            segment_id: segment_id.as_deref(),
        };
        let register = req.register_endpoints == Some(true);
        let define = sink.segment_id.is_some();
        let batch_max = BATCH_ROWS.min(self.cfg.limits.batch_items_max.max(1));
        let mut parser = RowParser::new(req.format.as_deref().unwrap_or_default());
        let mut rows = Vec::new();
        let mut batch: Vec<(u64, EndpointBatchItem)> = Vec::new();
        loop {
            let chunk = source.next().await?;
            match &chunk {
                Some(c) => parser.push(c, &mut rows)?,
                None => parser.finish(&mut rows)?,
            }
            for (line, row) in rows.drain(..) {
                match row {
                    Ok(item) => batch.push((line, item)),
                    Err(e) => p.bad_row(line, &e),
                }
                if batch.len() >= batch_max {
                    import_batch(&sink, register, define, std::mem::take(&mut batch), p).await;
                    p.save_to(job);
                    if !self
                        .save_job(app_id, job)
                        .await
                        .map_err(|e| format!("recording progress: {e}"))?
                    {
                        return Err(format!("application {app_id} was deleted"));
                    }
                }
            }
            if chunk.is_none() {
                break;
            }
        }
        import_batch(&sink, register, define, batch, p).await;
        Ok(())
    }

    /// Writes the imported segment's new version (or first one).
    async fn define_import_segment(
        &self,
        app_id: &str,
        job: &mut JobRecord,
        req: &ImportJobRequest,
        p: &Progress,
        create_arn: Option<String>,
    ) -> std::result::Result<(), String> {
        let Some(segment_id) = job
            .segment_id
            .clone()
            .filter(|_| req.define_segment == Some(true))
        else {
            return Ok(());
        };
        let def = SegmentImportResource {
            channel_counts: Some(p.channel_counts.clone()),
            external_id: req.external_id.clone().unwrap_or_default(),
            format: req.format.clone().unwrap_or_default(),
            role_arn: req.role_arn.clone().unwrap_or_default(),
            s3_url: req.s3_url.clone().unwrap_or_default(),
            size: i32::try_from(p.imported).unwrap_or(i32::MAX),
        };
        let name = match &create_arn {
            Some(_) => req.segment_name.clone(),
            None => self
                .segment_record(app_id, &segment_id, None)
                .ok()
                .and_then(|(_, v)| {
                    v.body
                        .get("Name")
                        .and_then(|n| n.as_str())
                        .map(str::to_owned)
                })
                .or_else(|| req.segment_name.clone()),
        };
        let mut body = serde_json::Map::new();
        if let Some(n) = name {
            body.insert("Name".into(), n.into());
        }
        body.insert(
            IMPORT_DEFINITION.into(),
            serde_json::to_value(&def).map_err(|e| e.to_string())?,
        );
        let write = match create_arn {
            Some(arn) => DefWrite::Create {
                arn,
                tags: BTreeMap::new(),
            },
            None => DefWrite::NewVersion,
        };
        let cmd = Command::PutDefinition {
            app_id: app_id.to_owned(),
            kind: def_kind::SEGMENT,
            id: segment_id.clone(),
            write,
            body: body.into(),
            now_iso: self.now_iso(),
        };
        let seg = self
            .put_segment(app_id, cmd)
            .await
            .map_err(|e| format!("defining segment {segment_id}: {e}"))?;
        job.segment_version = seg.version.and_then(|v| u32::try_from(v).ok());
        Ok(())
    }

    /// `CreateExportJob`.
    pub async fn create_export_job(
        self: &Arc<Self>,
        app_id: &str,
        job_id: String,
        req: ExportJobRequest,
    ) -> Result<ExportJobResponse> {
        imp::validate_export_request(&req)?;
        let prefix = req.s3_url_prefix.clone().unwrap_or_default();
        self.check_file_url("S3UrlPrefix", &prefix)?;
        self.app(app_id).await?;
        let version = req.segment_version.map(|v| u32::try_from(v).unwrap_or(0));
        if let Some(id) = &req.segment_id {
            self.resolve_segment(app_id, id, version)?;
        }
        let body = serde_json::to_value(&req).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let mut job = self.new_job(job_id, job_kind::EXPORT, body);
        job.segment_id = req.segment_id.clone();
        job.segment_version = version;
        if !self.save_job(app_id, &job).await? {
            return Err(ServiceError::NotFound(format!(
                "application {app_id} not found"
            )));
        }
        tracing::info!(app_id, job_id = %job.id, prefix = %prefix, "export job created");
        let this = self.clone();
        let (app, rec) = (app_id.to_owned(), job.clone());
        let dir = PathBuf::from(prefix.strip_prefix("file://").unwrap_or_default());
        tokio::spawn(async move { this.run_export(app, rec, dir).await });
        Ok(export_response(app_id, &job))
    }

    async fn run_export(&self, app_id: String, mut job: JobRecord, dir: PathBuf) {
        let Ok(_slot) = self.job_slots.clone().acquire_owned().await else {
            return;
        };
        job.status = status::PROCESSING.into();
        job.total_pieces = u32::try_from(self.host.data_groups().count()).unwrap_or(u32::MAX);
        if !matches!(self.save_job(&app_id, &job).await, Ok(true)) {
            return;
        }
        match self.export_endpoints(&app_id, &mut job, &dir).await {
            Ok(()) => job.status = status::COMPLETED.into(),
            Err(reason) => {
                tracing::warn!(app_id, job_id = %job.id, reason = %reason, "export job failed");
                job.status = status::FAILED.into();
                job.total_failures += 1;
                job.failures.push(reason);
            }
        }
        job.completion_date = Some(self.now_iso());
        if let Err(e) = self.save_job(&app_id, &job).await {
            tracing::warn!(app_id, job_id = %job.id, error = %e, "recording the end of an export job failed");
        }
        tracing::info!(app_id, job_id = %job.id, status = %job.status, exported = job.total_processed, "export job finished");
    }

    async fn export_endpoints(
        &self,
        app_id: &str,
        job: &mut JobRecord,
        dir: &Path,
    ) -> std::result::Result<(), String> {
        let segment = match &job.segment_id {
            Some(id) => Some(
                self.resolve_segment(app_id, id, job.segment_version)
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let out = dir.join(&job.id);
        tokio::fs::create_dir_all(&out)
            .await
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        let mut parts = PartWriter {
            dir: dir.to_owned(),
            job_id: job.id.clone(),
            next_part: 0,
            lines: 0,
            file: None,
        };
        let groups: Vec<GroupId> = self.host.data_groups().collect();
        for g in groups {
            self.host.read_barrier(g).await.map_err(|e| e.to_string())?;
            // One shard's lines at a time (a shard is 1/S of the app).
            let mut lines = Vec::new();
            let mut collect = |ep: herald_model::wire::EndpointResponse| {
                lines.push(imp::export_line(&ep));
                ControlFlow::Continue(())
            };
            match &segment {
                Some(seg) => {
                    let now = self.clock.now_ms();
                    self.for_each_member(app_id, seg, g, now, &mut collect)
                        .map_err(|e| e.to_string())?;
                }
                None => self
                    .host
                    .reader()
                    .for_each_app_endpoint(g, app_id, &mut collect)
                    .map_err(|e| e.to_string())?,
            }
            for line in &lines {
                parts
                    .write(line)
                    .await
                    .map_err(|e| format!("writing under {}: {e}", out.display()))?;
            }
            job.total_processed += lines.len() as u64;
            job.completed_pieces += 1;
            if !self
                .save_job(app_id, job)
                .await
                .map_err(|e| format!("recording progress: {e}"))?
            {
                return Err(format!("application {app_id} was deleted"));
            }
        }
        parts
            .close()
            .await
            .map_err(|e| format!("writing under {}: {e}", out.display()))
    }

    fn job_record(&self, app_id: &str, kind: &str, id: &str) -> Result<JobRecord> {
        self.host
            .reader()
            .job(app_id, id)?
            .filter(|j| j.kind == kind)
            .ok_or_else(|| job_not_found(kind, app_id, id))
    }

    fn jobs_of(
        &self,
        app_id: &str,
        kind: &str,
        segment_id: Option<&str>,
    ) -> Result<Vec<JobRecord>> {
        let mut jobs = self.host.reader().jobs(app_id)?;
        jobs.retain(|j| {
            j.kind == kind && segment_id.is_none_or(|s| j.segment_id.as_deref() == Some(s))
        });
        Ok(jobs)
    }

    /// `GetImportJob`.
    pub async fn import_job(&self, app_id: &str, id: &str) -> Result<ImportJobResponse> {
        self.app(app_id).await?;
        Ok(import_response(
            app_id,
            &self.job_record(app_id, job_kind::IMPORT, id)?,
        ))
    }

    /// `GetImportJobs` and (with a segment) `GetSegmentImportJobs`: newest first.
    pub async fn import_jobs(
        &self,
        app_id: &str,
        segment_id: Option<&str>,
        size: Option<&str>,
        token: Option<&str>,
    ) -> Result<ImportJobsResponse> {
        let size = page_size(size)?;
        self.app(app_id).await?;
        if let Some(s) = segment_id {
            self.segment_record(app_id, s, None)?;
        }
        let jobs = self.jobs_of(app_id, job_kind::IMPORT, segment_id)?;
        let (items, next_token) = page(&jobs, size, token)?;
        Ok(ImportJobsResponse {
            item: items.iter().map(|j| import_response(app_id, j)).collect(),
            next_token,
        })
    }

    /// `GetExportJob`.
    pub async fn export_job(&self, app_id: &str, id: &str) -> Result<ExportJobResponse> {
        self.app(app_id).await?;
        Ok(export_response(
            app_id,
            &self.job_record(app_id, job_kind::EXPORT, id)?,
        ))
    }

    /// `GetExportJobs` and (with a segment) `GetSegmentExportJobs`: newest first.
    pub async fn export_jobs(
        &self,
        app_id: &str,
        segment_id: Option<&str>,
        size: Option<&str>,
        token: Option<&str>,
    ) -> Result<ExportJobsResponse> {
        let size = page_size(size)?;
        self.app(app_id).await?;
        if let Some(s) = segment_id {
            self.segment_record(app_id, s, None)?;
        }
        let jobs = self.jobs_of(app_id, job_kind::EXPORT, segment_id)?;
        let (items, next_token) = page(&jobs, size, token)?;
        Ok(ExportJobsResponse {
            item: items.iter().map(|j| export_response(app_id, j)).collect(),
            next_token,
        })
    }

    /// Marks this node's unfinished jobs FAILED: their task died with the
    /// node. Called at start.
    pub async fn fail_interrupted_jobs(&self) -> Result<usize> {
        self.host.read_barrier(META_GROUP).await?;
        let me = self.host.node_id();
        let mut n = 0;
        let mut after: Option<String> = None;
        loop {
            let apps = self.host.reader().apps(after.as_deref(), 100, false)?;
            let Some(last) = apps.last() else { break };
            after = Some(last.id.clone());
            for a in &apps {
                for mut job in self.host.reader().jobs(&a.id)? {
                    if finished(&job.status) || job.node_id != me {
                        continue;
                    }
                    job.status = status::FAILED.into();
                    job.failures.insert(
                        0,
                        "the server stopped while the job ran; run it again".into(),
                    );
                    job.failures.truncate(FAILURES_KEPT);
                    job.completion_date = Some(self.now_iso());
                    self.save_job(&a.id, &job).await?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Refuses any batch holding an address starting with `bad`; records
    /// what it wrote and the members added.
    #[derive(Default)]
    struct FakeSink {
        writes: Mutex<Vec<usize>>,
        written: Mutex<Vec<String>>,
        members: Mutex<Vec<String>>,
        refuse_members: bool,
    }

    impl ImportSink for FakeSink {
        async fn write(&self, items: &[EndpointBatchItem]) -> std::result::Result<(), String> {
            self.writes.lock().unwrap().push(items.len());
            if let Some(bad) = items
                .iter()
                .find(|i| i.address.as_deref().unwrap_or("").starts_with("bad"))
            {
                return Err(format!(
                    "Item[0]: {} is refused",
                    bad.address.as_deref().unwrap_or("")
                ));
            }
            self.written
                .lock()
                .unwrap()
                .extend(items.iter().map(|i| i.id.clone().unwrap_or_default()));
            Ok(())
        }

        async fn add_members(&self, ids: &[String]) -> std::result::Result<(), String> {
            if self.refuse_members {
                return Err("segment gone".into());
            }
            self.members.lock().unwrap().extend(ids.iter().cloned());
            Ok(())
        }
    }

    fn item(id: &str, address: &str) -> EndpointBatchItem {
        EndpointBatchItem {
            id: Some(id.into()),
            address: Some(address.into()),
            channel_type: Some("EMAIL".into()),
            ..Default::default()
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn a_refused_batch_is_retried_row_by_row() {
        let sink = FakeSink::default();
        let mut p = Progress::default();
        let batch = vec![
            (2, item("a", "a@x.com")),
            (3, item("b", "bad@x.com")),
            (5, item("c", "c@x.com")),
        ];
        rt().block_on(import_batch(&sink, true, true, batch, &mut p));
        assert_eq!(*sink.writes.lock().unwrap(), vec![3, 1, 1, 1]);
        assert_eq!(*sink.written.lock().unwrap(), vec!["a", "c"]);
        assert_eq!(*sink.members.lock().unwrap(), vec!["a", "c"]);
        assert_eq!(p.processed, 3);
        assert_eq!(p.failures, 1);
        assert_eq!(
            p.failure_lines,
            vec!["line 3: Item[0]: bad@x.com is refused"]
        );
        assert_eq!(p.imported, 2);
        assert_eq!(p.channel_counts.get("EMAIL"), Some(&2));
        assert_eq!((p.pieces, p.completed_pieces, p.failed_pieces), (1, 1, 0));
    }

    #[test]
    fn a_good_batch_is_one_write_and_unregistered_rows_only_join_the_segment() {
        let sink = FakeSink::default();
        let mut p = Progress::default();
        let batch = vec![(2, item("a", "a@x.com")), (3, item("b", "b@x.com"))];
        rt().block_on(import_batch(&sink, true, false, batch.clone(), &mut p));
        assert_eq!(*sink.writes.lock().unwrap(), vec![2]);
        assert!(sink.members.lock().unwrap().is_empty());
        let sink = FakeSink::default();
        rt().block_on(import_batch(&sink, false, true, batch, &mut p));
        assert!(sink.writes.lock().unwrap().is_empty());
        assert_eq!(*sink.members.lock().unwrap(), vec!["a", "b"]);
        assert_eq!(p.pieces, 2);
    }

    #[test]
    fn rows_not_added_to_the_segment_are_failures_and_fail_the_piece() {
        let sink = FakeSink {
            refuse_members: true,
            ..Default::default()
        };
        let mut p = Progress::default();
        rt().block_on(import_batch(
            &sink,
            false,
            true,
            vec![(7, item("a", "a@x.com"))],
            &mut p,
        ));
        assert_eq!(
            p.failure_lines,
            vec!["line 7: not added to the segment: segment gone"]
        );
        assert_eq!((p.imported, p.failed_pieces), (0, 1));
    }

    #[test]
    fn failures_kept_are_bounded_but_counted() {
        let mut p = Progress::default();
        for line in 0..(FAILURES_KEPT as u64 + 10) {
            p.bad_row(line, "x");
        }
        assert_eq!(p.failures, FAILURES_KEPT as u64 + 10);
        assert_eq!(p.failure_lines.len(), FAILURES_KEPT);
    }

    fn parse(format: &str, input: &[u8], chunk: usize) -> std::result::Result<Vec<Row>, String> {
        let mut parser = RowParser::new(format);
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            parser.push(c, &mut out)?;
        }
        parser.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn csv_rows_carry_their_lines_whatever_the_chunking() {
        let input = b"ChannelType,Address,Attributes.Plan\r\nEMAIL,a@x.com,\"gold, plus\"\n\nEMAIL,,x\nEMAIL,c@x.com,\"two\nlines\"\nEMAIL,d@x.com,z";
        let whole = parse("CSV", input, input.len()).unwrap();
        for chunk in [1, 3, 7] {
            assert_eq!(parse("CSV", input, chunk).unwrap(), whole);
        }
        let lines: Vec<u64> = whole.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 4, 5, 7]);
        let first = whole[0].1.as_ref().unwrap();
        assert_eq!(
            first.attributes.as_ref().unwrap()["Plan"],
            vec!["gold, plus".to_string()]
        );
        assert!(whole[1].1.is_err(), "a row without Address fails");
        assert!(whole[2].1.is_ok() && whole[3].1.is_ok());
    }

    #[test]
    fn a_bad_or_missing_csv_header_fails_the_file() {
        assert!(parse("CSV", b"Nope,Address\nEMAIL,a@x.com\n", 4).is_err());
        assert!(parse("CSV", b"", 4).is_err());
        assert!(parse("CSV", b"ChannelType,Address\n", 4)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn json_lines_skip_blanks_and_bound_line_length() {
        let mut input =
            b"{\"ChannelType\":\"EMAIL\",\"Address\":\"a@x.com\"}\r\n\n{oops}\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', RECORD_BYTES_MAX + 5));
        input.extend(b"\n{\"ChannelType\":\"SMS\",\"Address\":\"+15550100\"}");
        let rows = parse("JSON", &input, 1000).unwrap();
        let lines: Vec<u64> = rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![1, 3, 4, 5]);
        assert!(rows[0].1.is_ok() && rows[1].1.is_err());
        assert!(rows[2].1.as_ref().unwrap_err().contains("longer than"));
        assert_eq!(
            rows[3].1.as_ref().unwrap().channel_type.as_deref(),
            Some("SMS")
        );
    }

    #[test]
    fn file_roots_are_directory_prefixes() {
        let roots = vec!["/srv/imports/".to_string()];
        assert!(under_roots("/srv/imports/a.csv", &roots));
        assert!(under_roots("/srv/imports", &roots));
        assert!(!under_roots("/srv/imports-other/a.csv", &roots));
        assert!(!under_roots("/etc/passwd", &roots));
        assert!(under_roots("/anything", &[]));
    }

    #[test]
    fn pages_run_newest_first_with_the_last_id_as_token() {
        let jobs: Vec<JobRecord> = ["c", "b", "a"]
            .iter()
            .map(|id| JobRecord {
                id: id.to_string(),
                ..Default::default()
            })
            .collect();
        let (items, next) = page(&jobs, 2, None).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(next.as_deref(), Some("b"));
        let (items, next) = page(&jobs, 2, Some("b")).unwrap();
        assert_eq!(items[0].id, "a");
        assert!(next.is_none());
        assert!(page(&jobs, 2, Some("zz")).is_err());
    }
}

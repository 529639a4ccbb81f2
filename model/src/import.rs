//! Import and export jobs: wire shapes, request checks and the file formats.
//!
//! **Wire shapes.** `ImportJobRequest`, `ImportJobResource`, `ImportJobResponse`,
//! `ImportJobsResponse` and their `Export*` counterparts, following the
//! conventions of [`crate::wire`]: enum-valued members (`Format`, `JobStatus`)
//! are strings checked here ([`FORMATS`], [`JOB_STATUSES`]); required members of
//! output-only shapes are plain values, everything else is `Option`.
//!
//! **Where herald reads and writes.** Herald has no S3. An import's `S3Url` is a
//! `file://` URL with an absolute path, or an `http://` / `https://` URL; an
//! export's `S3UrlPrefix` is a `file://` URL with an absolute path. `s3://` is
//! refused with a message saying so. A `file://` path is taken literally (no
//! percent-decoding) and `..` segments are refused, so that the server can
//! confine paths to its configured directories with a plain prefix check,
//! which it must do: these functions only check the shape.
//! `RoleArn` and `ExternalId` are accepted and ignored.
//!
//! **CSV import format.** RFC 4180: fields separated by `,`; a field that
//! starts with `"` is quoted, may contain `,`, `"` (written `""`) and line
//! breaks; a `"` inside an unquoted field is an ordinary character. Records end
//! at LF, CRLF or a lone CR outside quotes. The input must be UTF-8; one BOM at
//! the very start is skipped. Empty lines are skipped (a line holding `""` is a
//! record with one empty field). [`CsvRecords`] splits a byte stream fed in
//! chunks of any size into records; see it for the size bound and error rules.
//! The first record is the header: its column names are endpoint field paths
//! (see [`parse_header`]); each later record is one endpoint ([`row_to_item`]).
//! A cell holds a single value (for `Attributes.*` and
//! `User.UserAttributes.*` a one-element list); an empty cell means absent.
//!
//! **JSON import format.** Newline-delimited JSON, one endpoint per line in the
//! `EndpointBatchItem` shape ([`json_line_to_item`]).
//!
//! **Required fields.** Every imported endpoint needs a non-empty
//! `ChannelType` and `Address`. If `Id` is absent or empty it is
//! [`derived_endpoint_id`]`(ChannelType, Address)`, so re-importing the same
//! file updates the same endpoints. The conversion checks only the format;
//! callers run the usual endpoint validation (`validate`) on each item.
//!
//! **Errors.** A bad request is a [`ValidationError`] (`Member: message`). A bad
//! record or row is an [`ImportRowError`] that fails that row only; its message
//! carries no line number, which the caller adds (CSV: [`CsvRecords::record_line`]).
//!
//! **Export format.** Newline-delimited JSON, one endpoint per line in the
//! `EndpointResponse` shape ([`export_line`]), written to files named by
//! [`export_file_name`] under the `S3UrlPrefix` directory.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hash::xxh3;
use crate::time::quote_short;
use crate::validate::ValidationError;
use crate::wire::{
    EndpointBatchItem, EndpointDemographic, EndpointLocation, EndpointResponse, EndpointUser,
};

/// The `Format` enum of the service model.
pub const FORMATS: [&str; 2] = ["CSV", "JSON"];

/// The `JobStatus` enum of the service model.
pub const JOB_STATUSES: [&str; 9] = [
    "CREATED",
    "PREPARING_FOR_INITIALIZATION",
    "INITIALIZING",
    "PROCESSING",
    "PENDING_JOB",
    "COMPLETING",
    "COMPLETED",
    "FAILING",
    "FAILED",
];

// ---------------------------------------------------------------------------
// Wire shapes
// ---------------------------------------------------------------------------

/// Body of `CreateImportJob`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportJobRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub define_segment: Option<bool>,
    /// Deprecated by AWS; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Required: `CSV` or `JSON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_endpoints: Option<bool>,
    /// Required by the model; accepted and ignored by herald.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Required: `file:///abs/path`, `http://…` or `https://…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_name: Option<String>,
}

/// The settings of an import job, as returned in `ImportJobResponse.Definition`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportJobResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub define_segment: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default)]
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_endpoints: Option<bool>,
    #[serde(default)]
    pub role_arn: String,
    #[serde(default)]
    pub s3_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_name: Option<String>,
}

/// An import job, as `CreateImportJob`, `GetImportJob` and `GetImportJobs` return it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportJobResponse {
    #[serde(default)]
    pub application_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_pieces: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_date: Option<String>,
    #[serde(default)]
    pub creation_date: String,
    #[serde(default)]
    pub definition: ImportJobResource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_pieces: Option<i32>,
    /// At most the first 100 failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<Vec<String>>,
    #[serde(default)]
    pub id: String,
    /// One of [`JOB_STATUSES`].
    #[serde(default)]
    pub job_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_failures: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_pieces: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_processed: Option<i32>,
    /// `IMPORT`.
    #[serde(rename = "Type", default)]
    pub job_type: String,
}

/// Body of the `GetImportJobs` / `GetSegmentImportJobs` responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportJobsResponse {
    #[serde(default)]
    pub item: Vec<ImportJobResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Body of `CreateExportJob`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExportJobRequest {
    /// Required by the model; accepted and ignored by herald.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Required: `file:///abs/dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_url_prefix: Option<String>,
    /// Export only this segment's endpoints; all of the app's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_version: Option<i32>,
}

/// The settings of an export job, as returned in `ExportJobResponse.Definition`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExportJobResource {
    #[serde(default)]
    pub role_arn: String,
    #[serde(default)]
    pub s3_url_prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_version: Option<i32>,
}

/// An export job, as `CreateExportJob`, `GetExportJob` and `GetExportJobs` return it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExportJobResponse {
    #[serde(default)]
    pub application_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_pieces: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_date: Option<String>,
    #[serde(default)]
    pub creation_date: String,
    #[serde(default)]
    pub definition: ExportJobResource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_pieces: Option<i32>,
    /// At most the first 100 failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<Vec<String>>,
    #[serde(default)]
    pub id: String,
    /// One of [`JOB_STATUSES`].
    #[serde(default)]
    pub job_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_failures: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_pieces: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_processed: Option<i32>,
    /// `EXPORT`.
    #[serde(rename = "Type", default)]
    pub job_type: String,
}

/// Body of the `GetExportJobs` / `GetSegmentExportJobs` responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExportJobsResponse {
    #[serde(default)]
    pub item: Vec<ExportJobResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

// ---------------------------------------------------------------------------
// Request checks
// ---------------------------------------------------------------------------

type Res = Result<(), ValidationError>;

fn err(path: &str, msg: impl std::fmt::Display) -> ValidationError {
    ValidationError(format!("{path}: {msg}"))
}

/// `CreateImportJob`: `Format` is `CSV` or `JSON`; `S3Url` is a `file://` URL
/// with an absolute path, or an `http://` / `https://` URL (`s3://` is not
/// supported yet); when `DefineSegment` is true, `SegmentName` or `SegmentId`
/// names the segment. `RoleArn`, `ExternalId` and `RegisterEndpoints` need no check.
pub fn validate_import_request(r: &ImportJobRequest) -> Res {
    match r.format.as_deref() {
        None => return Err(err("Format", "required")),
        Some(f) if !FORMATS.contains(&f) => {
            return Err(err(
                "Format",
                format!("{} is not one of {}", quote_short(f), FORMATS.join(", ")),
            ))
        }
        Some(_) => {}
    }
    let url = r
        .s3_url
        .as_deref()
        .ok_or_else(|| err("S3Url", "required"))?;
    check_url("S3Url", url, true)?;
    if r.define_segment == Some(true) {
        let named = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        if !named(&r.segment_name) && !named(&r.segment_id) {
            return Err(err(
                "DefineSegment",
                "true requires SegmentName or SegmentId",
            ));
        }
    }
    Ok(())
}

/// `CreateExportJob`: `S3UrlPrefix` is a `file://` URL with an absolute path
/// (the directory to write to); `SegmentId`, when given, is not empty;
/// `SegmentVersion`, when given, is at least 1 and needs `SegmentId`.
pub fn validate_export_request(r: &ExportJobRequest) -> Res {
    let url = r
        .s3_url_prefix
        .as_deref()
        .ok_or_else(|| err("S3UrlPrefix", "required"))?;
    check_url("S3UrlPrefix", url, false)?;
    if r.segment_id.as_deref() == Some("") {
        return Err(err("SegmentId", "must not be empty"));
    }
    if let Some(v) = r.segment_version {
        if v < 1 {
            return Err(err("SegmentVersion", format!("{v} is less than 1")));
        }
        if r.segment_id.is_none() {
            return Err(err("SegmentVersion", "requires SegmentId"));
        }
    }
    Ok(())
}

/// Checks a job location: `file://` plus an absolute path without `..`
/// segments, or (when `http` is allowed) an `http://` / `https://` URL with a host.
fn check_url(path: &str, url: &str, http: bool) -> Res {
    let supported = if http {
        "file://, http:// or https://"
    } else {
        "file://"
    };
    if url.chars().any(char::is_control) {
        return Err(err(path, "must not contain control characters"));
    }
    if let Some(p) = url.strip_prefix("file://") {
        if !p.starts_with('/') {
            return Err(err(
                path,
                format!(
                    "{} must name an absolute path (file:///dir/file)",
                    quote_short(url)
                ),
            ));
        }
        if p.split('/').any(|seg| seg == "..") {
            return Err(err(
                path,
                format!("{} must not contain ..", quote_short(url)),
            ));
        }
        return Ok(());
    }
    if http {
        for scheme in ["http://", "https://"] {
            if let Some(rest) = url.strip_prefix(scheme) {
                if rest.is_empty() || rest.starts_with('/') {
                    return Err(err(path, format!("{} has no host", quote_short(url))));
                }
                return Ok(());
            }
        }
    }
    if url.starts_with("s3://") {
        return Err(err(
            path,
            format!("s3:// is not supported yet; use {supported}"),
        ));
    }
    Err(err(
        path,
        format!("{} must start with {supported}", quote_short(url)),
    ))
}

// ---------------------------------------------------------------------------
// Row errors
// ---------------------------------------------------------------------------

/// One record or row could not be imported; the rest of the file still is.
/// The message has no line number: the caller adds it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ImportRowError(pub String);

// ---------------------------------------------------------------------------
// Streaming CSV records
// ---------------------------------------------------------------------------

/// Where the parser is inside the current field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Nothing of the field read yet.
    Start,
    /// In a field that did not start with `"`.
    Unquoted,
    /// Inside `"…`.
    Quoted,
    /// Just read a `"` inside a quoted field: either `""` or the closing quote.
    QuoteInQuoted,
}

/// Splits a CSV byte stream into records; see the module doc for the syntax.
///
/// Feed bytes with [`push`](Self::push) in chunks of any size (a chunk may end
/// anywhere, even inside a UTF-8 sequence or between CR and LF), take records
/// with [`next_record`](Self::next_record) until it returns `None`, and call
/// [`finish`](Self::finish) at end of input to get the last record. The result
/// does not depend on how the input was chunked.
///
/// Each record is `(line, fields)` where `line` is the 1-based line on which
/// the record starts (CR, LF and CRLF each end one line, inside quotes too).
///
/// Errors fail one record and parsing goes on with the next:
/// - a record longer than `max_record_bytes` (counting its bytes as written,
///   quotes and embedded line breaks included, its terminator excluded). Its
///   bytes are dropped as they arrive, so memory stays bounded. **Resync
///   rule:** quote state is still tracked while dropping, and the next record
///   starts after the first line break outside quotes, exactly where it would
///   have without the limit. (A stray unmatched `"` therefore makes the rest
///   of the input one oversize record.)
/// - a character other than `,`, `"` or a line break right after a closing quote;
/// - a field that is not valid UTF-8;
/// - at end of input, a quoted field that was never closed.
///
/// An error is returned when the failed record ends, in input order.
#[derive(Debug, Clone)]
pub struct CsvRecords {
    max_record_bytes: usize,
    /// Bytes pushed and not yet parsed start at `input[pos]`.
    input: Vec<u8>,
    pos: usize,
    /// Whether the BOM check at the start of input is done.
    bom_checked: bool,
    finished: bool,
    /// Line of the next byte to parse.
    line: u64,
    prev_cr: bool,
    /// The record being read: its first line, its size so far, the bytes of
    /// its fields back to back and where each finished field ends.
    current_line: u64,
    record_bytes: usize,
    data: Vec<u8>,
    ends: Vec<usize>,
    field: Field,
    /// Set once the current record has failed; its bytes are then dropped.
    error: Option<String>,
    /// What [`CsvRecords::record_line`] reports.
    last_line: u64,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl CsvRecords {
    /// A reader that refuses records longer than `max_record_bytes`.
    pub fn new(max_record_bytes: usize) -> CsvRecords {
        CsvRecords {
            max_record_bytes,
            input: Vec::new(),
            pos: 0,
            bom_checked: false,
            finished: false,
            line: 1,
            prev_cr: false,
            current_line: 1,
            record_bytes: 0,
            data: Vec::new(),
            ends: Vec::new(),
            field: Field::Start,
            error: None,
            last_line: 0,
        }
    }

    /// Appends input. Bytes pushed after [`finish`](Self::finish) are ignored.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.finished {
            return;
        }
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        self.input.extend_from_slice(chunk);
    }

    /// Marks the end of input: the last record no longer needs a line break.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The line where the record most recently returned by
    /// [`next_record`](Self::next_record) starts, `Ok` or `Err`; 0 before any.
    pub fn record_line(&self) -> u64 {
        self.last_line
    }

    /// The next complete record, or `None` when more input (or
    /// [`finish`](Self::finish)) is needed, or the input is exhausted.
    pub fn next_record(&mut self) -> Option<Result<(u64, Vec<String>), ImportRowError>> {
        if !self.bom_checked {
            let rest = &self.input[self.pos..];
            if rest.len() < BOM.len() && BOM.starts_with(rest) && !self.finished {
                return None;
            }
            if rest.starts_with(BOM) {
                self.pos += BOM.len();
            }
            self.bom_checked = true;
        }
        while self.pos < self.input.len() {
            let b = self.input[self.pos];
            self.pos += 1;
            if let Some(record) = self.step(b) {
                return Some(record);
            }
        }
        if self.finished && self.record_bytes > 0 {
            if self.field == Field::Quoted && self.error.is_none() {
                self.fail("quoted field is not closed at end of input".to_string());
            }
            return Some(self.end_record());
        }
        None
    }

    /// Parses one byte; returns a record when `b` ends one.
    fn step(&mut self, b: u8) -> Option<Result<(u64, Vec<String>), ImportRowError>> {
        let line_of_b = self.line;
        if b == b'\r' || (b == b'\n' && !self.prev_cr) {
            self.line += 1;
        }
        self.prev_cr = b == b'\r';

        let line_break = b == b'\n' || b == b'\r';
        if line_break && self.field != Field::Quoted {
            // An empty line (or the LF of a CRLF) is no record.
            return (self.record_bytes > 0).then(|| self.end_record());
        }
        if self.record_bytes == 0 {
            self.current_line = line_of_b;
        }
        self.record_bytes += 1;
        if self.record_bytes > self.max_record_bytes && self.error.is_none() {
            self.fail(format!(
                "record is longer than {} bytes",
                self.max_record_bytes
            ));
        }
        self.field = match (self.field, b) {
            (Field::Start, b'"') => Field::Quoted,
            (Field::Start | Field::Unquoted | Field::QuoteInQuoted, b',') => {
                self.end_field();
                Field::Start
            }
            (Field::Start | Field::Unquoted, _) => {
                self.keep(b);
                Field::Unquoted
            }
            (Field::Quoted, b'"') => Field::QuoteInQuoted,
            (Field::Quoted, _) | (Field::QuoteInQuoted, b'"') => {
                self.keep(b);
                Field::Quoted
            }
            (Field::QuoteInQuoted, _) => {
                if self.error.is_none() {
                    self.fail(format!(
                        "field {}: unexpected character after the closing quote",
                        self.ends.len() + 1
                    ));
                }
                Field::Unquoted
            }
        };
        None
    }

    fn keep(&mut self, b: u8) {
        if self.error.is_none() {
            self.data.push(b);
        }
    }

    fn end_field(&mut self) {
        if self.error.is_none() {
            self.ends.push(self.data.len());
        }
    }

    /// Marks the current record failed and drops what was kept of it.
    fn fail(&mut self, message: String) {
        self.error = Some(message);
        self.data = Vec::new();
        self.ends = Vec::new();
    }

    /// Finishes the current record and resets for the next.
    fn end_record(&mut self) -> Result<(u64, Vec<String>), ImportRowError> {
        self.end_field();
        self.last_line = self.current_line;
        self.record_bytes = 0;
        self.field = Field::Start;
        let result = match self.error.take() {
            Some(message) => Err(ImportRowError(message)),
            None => self.fields().map(|fields| (self.current_line, fields)),
        };
        self.data.clear();
        self.ends.clear();
        result
    }

    /// The kept fields of the current record as text.
    fn fields(&self) -> Result<Vec<String>, ImportRowError> {
        let mut start = 0;
        self.ends
            .iter()
            .enumerate()
            .map(|(i, &end)| {
                let bytes = &self.data[start..end];
                start = end;
                std::str::from_utf8(bytes)
                    .map(str::to_string)
                    .map_err(|_| ImportRowError(format!("field {} is not valid UTF-8", i + 1)))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// CSV header and rows
// ---------------------------------------------------------------------------

/// A `Demographic.*` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Demo {
    AppVersion,
    Locale,
    Make,
    Model,
    ModelVersion,
    Platform,
    PlatformVersion,
    Timezone,
}

/// A `Location.*` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    City,
    Country,
    Latitude,
    Longitude,
    PostalCode,
    Region,
}

/// What one CSV column sets.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    ChannelType,
    Address,
    Id,
    EffectiveDate,
    EndpointStatus,
    OptOut,
    RequestId,
    Demographic(Demo),
    Location(Loc),
    Metric(String),
    Attribute(String),
    UserId,
    UserAttribute(String),
}

impl Column {
    fn parse(name: &str) -> Option<Column> {
        let keyed = |prefix: &str| {
            name.strip_prefix(prefix)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
        };
        Some(match name {
            "ChannelType" => Column::ChannelType,
            "Address" => Column::Address,
            "Id" => Column::Id,
            "EffectiveDate" => Column::EffectiveDate,
            "EndpointStatus" => Column::EndpointStatus,
            "OptOut" => Column::OptOut,
            "RequestId" => Column::RequestId,
            "Demographic.AppVersion" => Column::Demographic(Demo::AppVersion),
            "Demographic.Locale" => Column::Demographic(Demo::Locale),
            "Demographic.Make" => Column::Demographic(Demo::Make),
            "Demographic.Model" => Column::Demographic(Demo::Model),
            "Demographic.ModelVersion" => Column::Demographic(Demo::ModelVersion),
            "Demographic.Platform" => Column::Demographic(Demo::Platform),
            "Demographic.PlatformVersion" => Column::Demographic(Demo::PlatformVersion),
            "Demographic.Timezone" => Column::Demographic(Demo::Timezone),
            "Location.City" => Column::Location(Loc::City),
            "Location.Country" => Column::Location(Loc::Country),
            "Location.Latitude" => Column::Location(Loc::Latitude),
            "Location.Longitude" => Column::Location(Loc::Longitude),
            "Location.PostalCode" => Column::Location(Loc::PostalCode),
            "Location.Region" => Column::Location(Loc::Region),
            "User.UserId" => Column::UserId,
            _ => {
                if let Some(k) = keyed("Metrics.") {
                    Column::Metric(k)
                } else if let Some(k) = keyed("Attributes.") {
                    Column::Attribute(k)
                } else if let Some(k) = keyed("User.UserAttributes.") {
                    Column::UserAttribute(k)
                } else {
                    return None;
                }
            }
        })
    }
}

/// The columns of a CSV import, from its header record.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvHeader {
    names: Vec<String>,
    columns: Vec<Column>,
}

impl CsvHeader {
    /// The column names, trimmed, in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Parses the header record. Column names (surrounding whitespace ignored)
/// are `ChannelType`, `Address`, `Id`, `EffectiveDate`, `EndpointStatus`,
/// `OptOut`, `RequestId`, `Demographic.{AppVersion, Locale, Make, Model,
/// ModelVersion, Platform, PlatformVersion, Timezone}`, `Location.{City,
/// Country, Latitude, Longitude, PostalCode, Region}`, `Metrics.<name>`,
/// `Attributes.<name>`, `User.UserId` and `User.UserAttributes.<name>`.
/// `ChannelType` and `Address` are required; unknown or repeated names are
/// refused, all of them named in the message.
pub fn parse_header(fields: &[String]) -> Result<CsvHeader, ValidationError> {
    let names: Vec<String> = fields.iter().map(|f| f.trim().to_string()).collect();
    let mut columns = Vec::with_capacity(names.len());
    let mut unknown = Vec::new();
    let mut seen = BTreeSet::new();
    let mut repeated = BTreeSet::new();
    for name in &names {
        match Column::parse(name) {
            Some(c) => columns.push(c),
            None => unknown.push(name.as_str()),
        }
        if !seen.insert(name.as_str()) {
            repeated.insert(name.as_str());
        }
    }
    if !unknown.is_empty() {
        return Err(ValidationError(format!(
            "header: unknown {}; expected endpoint field paths such as ChannelType, Address, \
             Demographic.Platform, Metrics.<name>, Attributes.<name>",
            some_columns(&unknown)
        )));
    }
    if !repeated.is_empty() {
        let repeated: Vec<&str> = repeated.into_iter().collect();
        return Err(ValidationError(format!(
            "header: repeated {}",
            some_columns(&repeated)
        )));
    }
    for (required, column) in [
        ("ChannelType", Column::ChannelType),
        ("Address", Column::Address),
    ] {
        if !columns.contains(&column) {
            return Err(ValidationError(format!(
                "header: the {required} column is required"
            )));
        }
    }
    Ok(CsvHeader { names, columns })
}

/// `column "A", "B"` / `columns "A", "B", … and 3 more`: at most ten names, each cut short.
fn some_columns(names: &[&str]) -> String {
    const SHOWN: usize = 10;
    let mut text = format!(
        "column{} {}",
        if names.len() == 1 { "" } else { "s" },
        names
            .iter()
            .take(SHOWN)
            .map(|n| quote_short(n))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// The endpoint id given to an imported endpoint that has none: the XXH3-64
/// ([`crate::hash::xxh3`]) of `channel ‖ 0x00 ‖ address`, as 16 lowercase hex
/// digits. Channel and address are used exactly as written. **Fixed forever:**
/// re-importing a file must update the endpoints it created before.
pub fn derived_endpoint_id(channel: &str, address: &str) -> String {
    let mut bytes = Vec::with_capacity(channel.len() + 1 + address.len());
    bytes.extend_from_slice(channel.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(address.as_bytes());
    format!("{:016x}", xxh3(&bytes))
}

/// Parses a finite number in a CSV cell (surrounding whitespace ignored).
fn number(column: &str, value: &str) -> Result<f64, ImportRowError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| ImportRowError(format!("{column}: {} is not a number", quote_short(value))))
}

/// One data record of a CSV import as an endpoint. The record must have one
/// field per header column; empty cells are absent members. Fails on a wrong
/// field count, a `Metrics.*` or `Location.Latitude`/`Longitude` cell that is
/// not a finite number, or an empty `ChannelType` or `Address`. A missing `Id`
/// is derived ([`derived_endpoint_id`]).
pub fn row_to_item(h: &CsvHeader, fields: &[String]) -> Result<EndpointBatchItem, ImportRowError> {
    if fields.len() != h.columns.len() {
        return Err(ImportRowError(format!(
            "row has {} fields, the header has {}",
            fields.len(),
            h.columns.len()
        )));
    }
    let mut item = EndpointBatchItem::default();
    let mut demo = EndpointDemographic::default();
    let mut loc = EndpointLocation::default();
    let mut user = EndpointUser::default();
    let mut metrics = BTreeMap::new();
    let mut attributes = BTreeMap::new();
    let mut user_attributes = BTreeMap::new();
    for ((name, column), value) in h.names.iter().zip(&h.columns).zip(fields) {
        if value.is_empty() {
            continue;
        }
        let text = Some(value.clone());
        match column {
            Column::ChannelType => item.channel_type = text,
            Column::Address => item.address = text,
            Column::Id => item.id = text,
            Column::EffectiveDate => item.effective_date = text,
            Column::EndpointStatus => item.endpoint_status = text,
            Column::OptOut => item.opt_out = text,
            Column::RequestId => item.request_id = text,
            Column::Demographic(d) => match d {
                Demo::AppVersion => demo.app_version = text,
                Demo::Locale => demo.locale = text,
                Demo::Make => demo.make = text,
                Demo::Model => demo.model = text,
                Demo::ModelVersion => demo.model_version = text,
                Demo::Platform => demo.platform = text,
                Demo::PlatformVersion => demo.platform_version = text,
                Demo::Timezone => demo.timezone = text,
            },
            Column::Location(l) => match l {
                Loc::City => loc.city = text,
                Loc::Country => loc.country = text,
                Loc::Latitude => loc.latitude = Some(number(name, value)?),
                Loc::Longitude => loc.longitude = Some(number(name, value)?),
                Loc::PostalCode => loc.postal_code = text,
                Loc::Region => loc.region = text,
            },
            Column::Metric(k) => {
                metrics.insert(k.clone(), number(name, value)?);
            }
            Column::Attribute(k) => {
                attributes.insert(k.clone(), vec![value.clone()]);
            }
            Column::UserId => user.user_id = text,
            Column::UserAttribute(k) => {
                user_attributes.insert(k.clone(), vec![value.clone()]);
            }
        }
    }
    if demo != EndpointDemographic::default() {
        item.demographic = Some(demo);
    }
    if loc != EndpointLocation::default() {
        item.location = Some(loc);
    }
    if !metrics.is_empty() {
        item.metrics = Some(metrics);
    }
    if !attributes.is_empty() {
        item.attributes = Some(attributes);
    }
    if !user_attributes.is_empty() {
        user.user_attributes = Some(user_attributes);
    }
    if user != EndpointUser::default() {
        item.user = Some(user);
    }
    complete(item)
}

/// One line of a JSON import (surrounding whitespace, such as the CR of a
/// CRLF, ignored) as an endpoint: an object in the `EndpointBatchItem` shape.
/// Same rules as [`row_to_item`]: `ChannelType` and `Address` required, a
/// missing `Id` derived.
pub fn json_line_to_item(line: &str) -> Result<EndpointBatchItem, ImportRowError> {
    let line = line.trim();
    if line.is_empty() {
        return Err(ImportRowError("empty line".to_string()));
    }
    let item: EndpointBatchItem = serde_json::from_str(line)
        .map_err(|e| ImportRowError(format!("not an endpoint JSON object: {e}")))?;
    complete(item)
}

/// Checks the required members and derives a missing id.
fn complete(mut item: EndpointBatchItem) -> Result<EndpointBatchItem, ImportRowError> {
    let channel = match item.channel_type.as_deref() {
        None | Some("") => return Err(ImportRowError("ChannelType: required".to_string())),
        Some(c) => c,
    };
    let address = match item.address.as_deref() {
        None | Some("") => return Err(ImportRowError("Address: required".to_string())),
        Some(a) => a,
    };
    if item.id.as_deref().is_none_or(str::is_empty) {
        item.id = Some(derived_endpoint_id(channel, address));
    }
    Ok(item)
}

// ---------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------

/// One line of an export file: the endpoint as compact JSON in the
/// `EndpointResponse` shape, without the trailing newline.
pub fn export_line(ep: &EndpointResponse) -> String {
    // Strings, maps and numbers only (non-finite floats become `null`):
    // serialization cannot fail.
    serde_json::to_string(ep).unwrap_or_default()
}

/// The path, relative to the export's `S3UrlPrefix` directory, of part
/// `part` of job `job_id`: `{job_id}/part-{part:05}.json` (e.g.
/// `abc/part-00000.json`). Parts are numbered from 0; zero-padding keeps them
/// in order when listed by name.
pub fn export_file_name(job_id: &str, part: u32) -> String {
    format!("{job_id}/part-{part:05}.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Record = Result<(u64, Vec<String>), ImportRowError>;

    /// Feeds `chunks` one by one, draining records after each, then finishes;
    /// each record comes with `record_line()` as read right after it.
    fn read_lines(max: usize, chunks: &[&[u8]]) -> Vec<(u64, Record)> {
        let mut r = CsvRecords::new(max);
        let mut out = Vec::new();
        for c in chunks {
            r.push(c);
            while let Some(rec) = r.next_record() {
                out.push((r.record_line(), rec));
            }
        }
        r.finish();
        while let Some(rec) = r.next_record() {
            out.push((r.record_line(), rec));
        }
        out
    }

    fn read_chunks(max: usize, chunks: &[&[u8]]) -> Vec<Record> {
        read_lines(max, chunks)
            .into_iter()
            .map(|(_, rec)| rec)
            .collect()
    }

    fn read(input: &str) -> Vec<Record> {
        read_chunks(1 << 20, &[input.as_bytes()])
    }

    fn ok(line: u64, fields: &[&str]) -> Record {
        Ok((line, fields.iter().map(|f| f.to_string()).collect()))
    }

    fn strings(fields: &[&str]) -> Vec<String> {
        fields.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_newlines() {
        let got = read("a,\"b,c\",\"d \"\"e\"\"\",\"f\ng\"\nnext,\"\"\n");
        assert_eq!(
            got,
            vec![
                ok(1, &["a", "b,c", "d \"e\"", "f\ng"]),
                ok(3, &["next", ""])
            ]
        );
    }

    #[test]
    fn quote_inside_unquoted_field_is_literal() {
        assert_eq!(read("5\" screen,x\n"), vec![ok(1, &["5\" screen", "x"])]);
    }

    #[test]
    fn empty_fields_and_trailing_comma() {
        assert_eq!(read(",a,\n"), vec![ok(1, &["", "a", ""])]);
    }

    #[test]
    fn crlf_records_and_line_numbers() {
        let got = read("a,b\r\n\"x\r\ny\",z\r\nc,d\r\n");
        assert_eq!(
            got,
            vec![
                ok(1, &["a", "b"]),
                ok(2, &["x\r\ny", "z"]),
                ok(4, &["c", "d"])
            ]
        );
    }

    #[test]
    fn lone_cr_ends_a_record() {
        assert_eq!(read("a\rb\r"), vec![ok(1, &["a"]), ok(2, &["b"])]);
    }

    #[test]
    fn empty_lines_are_skipped_but_counted() {
        assert_eq!(
            read("\n\na\r\n\r\n\nb\n\n"),
            vec![ok(3, &["a"]), ok(6, &["b"])]
        );
    }

    #[test]
    fn bom_at_start_is_skipped_even_when_split() {
        let input = "\u{feff}Id,Address\n1,x\n";
        assert_eq!(
            read(input),
            vec![ok(1, &["Id", "Address"]), ok(2, &["1", "x"])]
        );
        let bytes = input.as_bytes();
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(read_chunks(1 << 20, &singles), read(input));
        // Only at the very start.
        assert_eq!(read("a\n\u{feff}b\n")[1], ok(2, &["\u{feff}b"]));
        // A short input that merely begins like a BOM is data.
        assert_eq!(
            read_chunks(100, &[b"\xEF"]),
            vec![Err(ImportRowError("field 1 is not valid UTF-8".into()))]
        );
    }

    #[test]
    fn last_record_needs_finish() {
        let mut r = CsvRecords::new(100);
        r.push(b"a,b\nc,d");
        assert_eq!(r.next_record(), Some(ok(1, &["a", "b"])));
        assert_eq!(r.next_record(), None);
        r.finish();
        assert_eq!(r.next_record(), Some(ok(2, &["c", "d"])));
        assert_eq!(r.record_line(), 2);
        assert_eq!(r.next_record(), None);
        r.push(b"ignored\n");
        assert_eq!(r.next_record(), None);
    }

    #[test]
    fn unterminated_quote_at_end_of_input() {
        let got = read("a\n\"open,b\nmore");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], ok(1, &["a"]));
        let e = got[1].clone().unwrap_err();
        assert_eq!(e.0, "quoted field is not closed at end of input");
        let mut r = CsvRecords::new(100);
        r.push(b"\"x");
        r.finish();
        assert!(r.next_record().is_some_and(|rec| rec.is_err()));
        assert_eq!(r.record_line(), 1);
    }

    #[test]
    fn oversize_record_fails_then_resyncs() {
        let long = "x".repeat(50);
        let input = format!("ok\n{long}\nnext\n");
        let got = read_chunks(10, &[input.as_bytes()]);
        assert_eq!(
            got,
            vec![
                ok(1, &["ok"]),
                Err(ImportRowError("record is longer than 10 bytes".into())),
                ok(3, &["next"]),
            ]
        );
        // Line breaks inside quotes do not end the dropped record.
        let input = "\"aaaaaaaaaaaa\nb,c\",d\nnext\n";
        let mut r = CsvRecords::new(10);
        r.push(input.as_bytes());
        assert!(r.next_record().is_some_and(|rec| rec.is_err()));
        assert_eq!(r.record_line(), 1);
        assert_eq!(r.next_record(), Some(ok(3, &["next"])));
        // Exactly at the limit is fine.
        assert_eq!(read_chunks(3, &[b"abc\n"]), vec![ok(1, &["abc"])]);
    }

    #[test]
    fn invalid_utf8_fails_that_record_only() {
        let got = read_chunks(100, &[b"a,\xFF\xFE\nb\n"]);
        assert_eq!(
            got,
            vec![
                Err(ImportRowError("field 2 is not valid UTF-8".into())),
                ok(2, &["b"])
            ]
        );
    }

    #[test]
    fn text_after_closing_quote_fails_that_record_only() {
        let got = read("\"ab\"c,\"x\ny\"\nnext\n");
        assert_eq!(got.len(), 2);
        assert!(got[0]
            .clone()
            .unwrap_err()
            .0
            .contains("after the closing quote"));
        assert_eq!(got[1], ok(3, &["next"]));
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_records(
            input in proptest::collection::vec(
                prop_oneof![
                    Just(b'a'), Just(b','), Just(b'"'), Just(b'\r'), Just(b'\n'),
                    Just(0xEF), Just(0xBB), Just(0xBF), Just(0xC3), Just(0xA9),
                ],
                0..80,
            ),
            cuts in proptest::collection::vec(0usize..80, 0..10),
            max in 1usize..20,
        ) {
            let whole = read_lines(max, &[&input]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for c in cuts {
                chunks.push(&input[start..c]);
                start = c;
            }
            chunks.push(&input[start..]);
            prop_assert_eq!(read_lines(max, &chunks), whole);
        }

        #[test]
        fn quoted_fields_round_trip(fields in proptest::collection::vec("[a-z,\"\r\n ]{0,8}", 1..6)) {
            let line: Vec<String> = fields
                .iter()
                .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
                .collect();
            let input = format!("{}\r\n", line.join(","));
            let got = read(&input);
            prop_assert_eq!(got, vec![Ok((1, fields))]);
        }
    }

    fn header(names: &[&str]) -> CsvHeader {
        parse_header(&strings(names)).unwrap()
    }

    #[test]
    fn header_columns_map_to_endpoint_fields() {
        let h = header(&[
            "ChannelType",
            "Address",
            "Id",
            "Attributes.Plan",
            "User.UserAttributes.Tier",
            "User.UserId",
            "Metrics.score",
            "Demographic.Platform",
            "Location.Latitude",
            "Location.Country",
            "OptOut",
        ]);
        let item = row_to_item(
            &h,
            &strings(&[
                "EMAIL",
                "a@example.com",
                "ep-1",
                "Gold",
                "Top",
                "u-1",
                " 4.5 ",
                "ios",
                "47.6",
                "US",
                "",
            ]),
        )
        .unwrap();
        let expected: EndpointBatchItem = serde_json::from_value(serde_json::json!({
            "ChannelType": "EMAIL",
            "Address": "a@example.com",
            "Id": "ep-1",
            "Attributes": {"Plan": ["Gold"]},
            "User": {"UserId": "u-1", "UserAttributes": {"Tier": ["Top"]}},
            "Metrics": {"score": 4.5},
            "Demographic": {"Platform": "ios"},
            "Location": {"Latitude": 47.6, "Country": "US"},
        }))
        .unwrap();
        assert_eq!(item, expected);
    }

    #[test]
    fn empty_cells_are_absent_and_missing_id_is_derived() {
        let h = header(&[
            "Address",
            "ChannelType",
            "Id",
            "Attributes.Plan",
            "User.UserAttributes.Tier",
            "Metrics.score",
            "Demographic.Make",
        ]);
        let item = row_to_item(&h, &strings(&["+15550100", "SMS", "", "", "", "", ""])).unwrap();
        assert_eq!(
            item,
            EndpointBatchItem {
                address: Some("+15550100".into()),
                channel_type: Some("SMS".into()),
                id: Some(derived_endpoint_id("SMS", "+15550100")),
                ..Default::default()
            }
        );
    }

    #[test]
    fn bad_numbers_name_the_column_and_value() {
        let h = header(&[
            "ChannelType",
            "Address",
            "Metrics.score",
            "Location.Longitude",
        ]);
        let e = row_to_item(&h, &strings(&["SMS", "+1", "abc", ""])).unwrap_err();
        assert_eq!(e.0, "Metrics.score: \"abc\" is not a number");
        let e = row_to_item(&h, &strings(&["SMS", "+1", "1", "NaN"])).unwrap_err();
        assert_eq!(e.0, "Location.Longitude: \"NaN\" is not a number");
        let e = row_to_item(&h, &strings(&["SMS", "+1", "inf", ""])).unwrap_err();
        assert!(e.0.starts_with("Metrics.score: "));
    }

    #[test]
    fn row_errors() {
        let h = header(&["ChannelType", "Address", "Id"]);
        let e = row_to_item(&h, &strings(&["SMS", "+1"])).unwrap_err();
        assert_eq!(e.0, "row has 2 fields, the header has 3");
        let e = row_to_item(&h, &strings(&["", "+1", "x"])).unwrap_err();
        assert_eq!(e.0, "ChannelType: required");
        let e = row_to_item(&h, &strings(&["SMS", "", "x"])).unwrap_err();
        assert_eq!(e.0, "Address: required");
    }

    #[test]
    fn header_errors() {
        let e =
            parse_header(&strings(&["ChannelType", "Address", "Foo", "Attributes."])).unwrap_err();
        assert!(
            e.0.starts_with("header: unknown columns \"Foo\", \"Attributes.\""),
            "{e}"
        );
        let many: Vec<String> = (0..1000).map(|i| format!("X{i}")).collect();
        let e = parse_header(&many).unwrap_err();
        assert!(e.0.contains("\"X9\" and 990 more;"), "{e}");
        let e = parse_header(&strings(&["ChannelType", "Address", "Id", " Id"])).unwrap_err();
        assert_eq!(e.0, "header: repeated column \"Id\"");
        let e = parse_header(&strings(&["Address", "Id"])).unwrap_err();
        assert_eq!(e.0, "header: the ChannelType column is required");
        let e = parse_header(&strings(&["ChannelType"])).unwrap_err();
        assert_eq!(e.0, "header: the Address column is required");
        let h = header(&[" ChannelType ", "Address"]);
        assert_eq!(h.names(), strings(&["ChannelType", "Address"]).as_slice());
    }

    #[test]
    fn csv_file_end_to_end() {
        let input = "\u{feff}ChannelType,Address,Attributes.Interests\r\n\
                     EMAIL,a@example.com,\"cats, dogs\"\r\n\
                     EMAIL,b@example.com\r\n";
        let records = read(input);
        let (_, names) = records[0].clone().unwrap();
        let h = parse_header(&names).unwrap();
        let (_, first) = records[1].clone().unwrap();
        let item = row_to_item(&h, &first).unwrap();
        assert_eq!(
            item.attributes.unwrap()["Interests"],
            vec!["cats, dogs".to_string()]
        );
        let (line, second) = records[2].clone().unwrap();
        assert_eq!(line, 3);
        assert!(row_to_item(&h, &second).is_err());
    }

    #[test]
    fn json_lines() {
        let item = json_line_to_item(
            r#"{"ChannelType":"EMAIL","Address":"a@example.com","Attributes":{"Plan":["Gold","Trial"]},"Metrics":{"score":2}}"#,
        )
        .unwrap();
        assert_eq!(item.id, Some(derived_endpoint_id("EMAIL", "a@example.com")));
        assert_eq!(
            item.attributes.unwrap()["Plan"],
            strings(&["Gold", "Trial"])
        );
        assert_eq!(item.metrics.unwrap()["score"], 2.0);

        let item =
            json_line_to_item("{\"Id\":\"ep\",\"ChannelType\":\"SMS\",\"Address\":\"+1\"}\r")
                .unwrap();
        assert_eq!(item.id.as_deref(), Some("ep"));

        let e = json_line_to_item(r#"{"ChannelType":"SMS"}"#).unwrap_err();
        assert_eq!(e.0, "Address: required");
        let e = json_line_to_item(r#"{"Address":"+1","ChannelType":""}"#).unwrap_err();
        assert_eq!(e.0, "ChannelType: required");
        let e = json_line_to_item("{\"ChannelType\":").unwrap_err();
        assert!(e.0.starts_with("not an endpoint JSON object: "), "{e}");
        let e = json_line_to_item(r#"{"ChannelType":"SMS","Address":"+1","Attributes":{"a":"b"}}"#)
            .unwrap_err();
        assert!(e.0.starts_with("not an endpoint JSON object: "), "{e}");
        assert_eq!(json_line_to_item("  ").unwrap_err().0, "empty line");
    }

    #[test]
    fn derived_ids_are_stable() {
        // Pinned: changing this would make re-imports create duplicate endpoints.
        assert_eq!(
            derived_endpoint_id("EMAIL", "a@example.com"),
            format!("{:016x}", xxh3(b"EMAIL\x00a@example.com"))
        );
        assert_eq!(
            derived_endpoint_id("EMAIL", "a@example.com"),
            "ce015e921ca27dc4"
        );
        assert_eq!(derived_endpoint_id("", "").len(), 16);
        // The separator keeps (channel, address) pairs apart.
        assert_ne!(
            derived_endpoint_id("a", "bc"),
            derived_endpoint_id("ab", "c")
        );
        assert_ne!(
            derived_endpoint_id("SMS", "+1"),
            derived_endpoint_id("EMAIL", "+1")
        );
    }

    fn import(json: serde_json::Value) -> Res {
        validate_import_request(&serde_json::from_value(json).unwrap())
    }

    fn export(json: serde_json::Value) -> Res {
        validate_export_request(&serde_json::from_value(json).unwrap())
    }

    #[test]
    fn import_request_checks() {
        use serde_json::json;
        let base =
            |url: &str| json!({"Format": "CSV", "S3Url": url, "RoleArn": "arn:aws:iam::1:role/x"});
        assert_eq!(import(base("file:///data/in.csv")), Ok(()));
        assert_eq!(import(base("https://example.com/e.json")), Ok(()));
        assert_eq!(
            import(json!({"Format": "JSON", "S3Url": "http://h/x"})),
            Ok(())
        );
        let msg = |j| import(j).unwrap_err().0;
        assert_eq!(msg(json!({"S3Url": "file:///x"})), "Format: required");
        assert_eq!(
            msg(json!({"Format": "XML", "S3Url": "file:///x"})),
            "Format: \"XML\" is not one of CSV, JSON"
        );
        assert_eq!(msg(json!({"Format": "CSV"})), "S3Url: required");
        assert_eq!(
            msg(base("s3://bucket/key")),
            "S3Url: s3:// is not supported yet; use file://, http:// or https://"
        );
        assert!(msg(base("file://data/in.csv")).contains("absolute path"));
        assert!(msg(base("file:///data/../etc/passwd")).contains("must not contain .."));
        assert!(msg(base("ftp://h/x")).ends_with("must start with file://, http:// or https://"));
        assert!(msg(base("https://")).ends_with("has no host"));
        assert!(msg(base("file:///a\nb")).contains("control characters"));

        let mut seg = base("file:///x");
        seg["DefineSegment"] = json!(true);
        assert_eq!(
            msg(seg.clone()),
            "DefineSegment: true requires SegmentName or SegmentId"
        );
        seg["SegmentName"] = json!("imported");
        assert_eq!(import(seg.clone()), Ok(()));
        seg["SegmentName"] = json!("");
        seg["SegmentId"] = json!("s-1");
        seg["RegisterEndpoints"] = json!(false);
        assert_eq!(import(seg), Ok(()));
    }

    #[test]
    fn export_request_checks() {
        use serde_json::json;
        assert_eq!(
            export(json!({"S3UrlPrefix": "file:///exports", "RoleArn": "r"})),
            Ok(())
        );
        assert_eq!(
            export(json!({"S3UrlPrefix": "file:///e", "SegmentId": "s", "SegmentVersion": 2})),
            Ok(())
        );
        let msg = |j| export(j).unwrap_err().0;
        assert_eq!(msg(json!({})), "S3UrlPrefix: required");
        assert_eq!(
            msg(json!({"S3UrlPrefix": "s3://b/p"})),
            "S3UrlPrefix: s3:// is not supported yet; use file://"
        );
        assert!(msg(json!({"S3UrlPrefix": "https://h/p"})).ends_with("must start with file://"));
        assert!(msg(json!({"S3UrlPrefix": "file://rel"})).contains("absolute path"));
        assert_eq!(
            msg(json!({"S3UrlPrefix": "file:///e", "SegmentId": ""})),
            "SegmentId: must not be empty"
        );
        assert_eq!(
            msg(json!({"S3UrlPrefix": "file:///e", "SegmentId": "s", "SegmentVersion": 0})),
            "SegmentVersion: 0 is less than 1"
        );
        assert_eq!(
            msg(json!({"S3UrlPrefix": "file:///e", "SegmentVersion": 1})),
            "SegmentVersion: requires SegmentId"
        );
    }

    #[test]
    fn job_shapes_use_model_names() {
        let job = ImportJobResponse {
            application_id: "app".into(),
            creation_date: "2024-01-01T00:00:00.000Z".into(),
            definition: ImportJobResource {
                format: "CSV".into(),
                role_arn: "r".into(),
                s3_url: "file:///x".into(),
                register_endpoints: Some(true),
                ..Default::default()
            },
            id: "job".into(),
            job_status: "CREATED".into(),
            job_type: "IMPORT".into(),
            total_processed: Some(0),
            ..Default::default()
        };
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "ApplicationId": "app",
                "CreationDate": "2024-01-01T00:00:00.000Z",
                "Definition": {"Format": "CSV", "RoleArn": "r", "S3Url": "file:///x", "RegisterEndpoints": true},
                "Id": "job",
                "JobStatus": "CREATED",
                "Type": "IMPORT",
                "TotalProcessed": 0,
            })
        );
        assert_eq!(serde_json::from_value::<ImportJobResponse>(v).unwrap(), job);
        let list: ExportJobsResponse = serde_json::from_value(serde_json::json!({
            "Item": [{"Id": "e", "Type": "EXPORT", "JobStatus": "COMPLETED",
                      "Definition": {"S3UrlPrefix": "file:///e", "RoleArn": "r", "SegmentVersion": 3}}],
            "NextToken": "t",
        }))
        .unwrap();
        assert_eq!(list.item[0].job_type, "EXPORT");
        assert_eq!(list.item[0].definition.segment_version, Some(3));
        assert!(JOB_STATUSES.contains(&list.item[0].job_status.as_str()));
    }

    #[test]
    fn export_lines_and_names() {
        let ep = EndpointResponse {
            id: Some("ep-1".into()),
            channel_type: Some("EMAIL".into()),
            attributes: Some(BTreeMap::from([("Plan".to_string(), strings(&["Gold"]))])),
            ..Default::default()
        };
        let line = export_line(&ep);
        assert_eq!(
            line,
            r#"{"Attributes":{"Plan":["Gold"]},"ChannelType":"EMAIL","Id":"ep-1"}"#
        );
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<EndpointResponse>(&line).unwrap(), ep);
        assert_eq!(export_file_name("abc", 0), "abc/part-00000.json");
        assert_eq!(export_file_name("abc", 123), "abc/part-00123.json");
    }
}

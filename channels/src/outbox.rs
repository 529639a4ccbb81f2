//! The dev outbox: where messages go when no real transport is configured,
//! so a newcomer can see what herald would have sent.
//!
//! Messages are NDJSON lines (one [`OutboxMessage`] per line, PascalCase keys
//! like Pinpoint) in segment files named `<first sequence number>.ndjson`
//! (20 digits) under the outbox directory. A line's sequence number is its
//! segment's first number plus its line index, so numbers survive restarts
//! without being stored in the lines. A segment holds at most `keep / 2`
//! lines (at least 1); when the newest is full a new one is started, and the
//! oldest segments are deleted so that at most `keep` messages stay on disk
//! (and, once that many were appended, at least `keep - keep / 2`).
//!
//! Each append is one `write(2)` of a whole line, made under a mutex, so
//! lines from concurrent senders never interleave; it is not fsynced: the
//! outbox is a developer's view, the send ledger is the record. A crash may
//! lose lines the OS had not written back, and a line torn by a crash is cut
//! off when the outbox is opened again. The writes are synchronous and
//! short; this is not a production transport.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::smtp::{OutgoingEmail, SendError};

/// A header of an outbox message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutboxHeader {
    pub name: String,
    pub value: String,
}

/// One message as the outbox records it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutboxMessage {
    /// herald's message id (the send ledger's id).
    pub message_id: String,
    /// Pinpoint's channel type: `EMAIL`, `SMS`, `PUSH`, `CUSTOM`, ...
    pub channel: String,
    pub application_id: String,
    /// When the message was handed to the outbox, ISO-8601 as the caller's
    /// clock formats it (the outbox reads no clock).
    pub timestamp: String,
    /// The recipient: an email address, a phone number, a device token, or
    /// the `DeliveryUri` of a custom channel.
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_part: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_part: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<OutboxHeader>,
    /// The payload of a non-email message (SMS text, push or webhook JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl OutboxMessage {
    /// The email as the SMTP transport would send it: channel `EMAIL`,
    /// `Reply-To`, the extra headers and the `List-Unsubscribe` pair among
    /// `Headers`. `timestamp` is the caller's ISO-8601 time of the send.
    pub fn from_email(email: &OutgoingEmail, timestamp: &str) -> Self {
        let header = |name: &str, value: &str| OutboxHeader {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        let mut headers = Vec::new();
        for r in &email.reply_to {
            headers.push(header("Reply-To", r));
        }
        for (name, value) in &email.headers {
            headers.push(header(name, value));
        }
        if let Some(u) = &email.list_unsubscribe {
            headers.push(header("List-Unsubscribe", u));
            headers.push(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click",
            ));
        }
        Self {
            message_id: email.message_id.clone(),
            channel: "EMAIL".to_owned(),
            application_id: email.app_id.clone(),
            timestamp: timestamp.to_owned(),
            to: email.to.clone(),
            from: Some(email.from.clone()),
            subject: Some(email.subject.clone()),
            text_part: email.text.clone(),
            html_part: email.html.clone(),
            headers,
            body: None,
        }
    }

    /// A custom-channel (webhook) message: the JSON body that would have
    /// been POSTed to `delivery_uri` (bytes that are not UTF-8 are replaced).
    pub fn custom(
        message_id: &str,
        application_id: &str,
        timestamp: &str,
        delivery_uri: &str,
        body: &[u8],
    ) -> Self {
        Self {
            message_id: message_id.to_owned(),
            channel: "CUSTOM".to_owned(),
            application_id: application_id.to_owned(),
            timestamp: timestamp.to_owned(),
            to: delivery_uri.to_owned(),
            body: Some(String::from_utf8_lossy(body).into_owned()),
            ..Self::default()
        }
    }
}

/// A listed message with its sequence number (pass it as `before` to page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutboxEntry {
    pub seq: u64,
    pub message: OutboxMessage,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    lines: usize,
}

#[derive(Debug)]
struct State {
    /// Oldest first; the last is the one appended to.
    segments: VecDeque<Segment>,
    /// The last segment, open for appending (opened lazily).
    file: Option<File>,
    /// Bytes in the last segment, to cut a failed write back off.
    file_len: u64,
    /// The last segment cannot take more lines (a failed write could not be
    /// cut off); the next append starts a new one.
    sealed: bool,
    next_seq: u64,
}

/// A bounded NDJSON outbox; see the module doc.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    keep: usize,
    segment_lines: usize,
    state: Mutex<State>,
}

const EXT: &str = "ndjson";

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.{EXT}"))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn io_error(e: io::Error) -> SendError {
    SendError::Temporary {
        code: None,
        message: format!("outbox: {e}"),
    }
}

impl Outbox {
    /// Opens (creating it if needed) the outbox in `dir`, keeping at most
    /// `keep` (at least 1) messages. Existing segments are counted, a torn
    /// last line is cut off, and segments beyond `keep` are deleted.
    pub fn open(dir: &Path, keep: usize) -> io::Result<Outbox> {
        if keep == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the outbox must keep at least 1 message",
            ));
        }
        fs::create_dir_all(dir)?;
        let mut firsts = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".ndjson")) else {
                continue;
            };
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(first) = stem.parse::<u64>() {
                    firsts.push(first);
                }
            }
        }
        firsts.sort_unstable();
        let mut segments = VecDeque::with_capacity(firsts.len());
        let mut file_len = 0;
        for (i, &first_seq) in firsts.iter().enumerate() {
            let path = segment_path(dir, first_seq);
            let bytes = fs::read(&path)?;
            let lines = bytes.iter().filter(|&&b| b == b'\n').count();
            let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            if i + 1 == firsts.len() {
                if whole < bytes.len() {
                    OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(whole as u64)?;
                }
                file_len = whole as u64;
            }
            segments.push_back(Segment { first_seq, lines });
        }
        let next_seq = segments.back().map_or(1, |s| s.first_seq + s.lines as u64);
        let mut total: usize = segments.iter().map(|s| s.lines).sum();
        while total > keep && segments.len() > 1 {
            let old = segments.pop_front().expect("more than one segment");
            remove_if_present(&segment_path(dir, old.first_seq))?;
            total -= old.lines;
        }
        Ok(Outbox {
            dir: dir.to_owned(),
            keep,
            segment_lines: (keep / 2).max(1),
            state: Mutex::new(State {
                segments,
                file: None,
                file_len,
                sealed: false,
                next_seq,
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records one message; answers its sequence number. Safe to call from
    /// many tasks; blocks the calling thread for one short write.
    pub fn append(&self, msg: &OutboxMessage) -> Result<u64, SendError> {
        let mut line = serde_json::to_vec(msg)
            .map_err(|e| SendError::Invalid(format!("outbox: cannot encode the message: {e}")))?;
        line.push(b'\n');
        let mut st = self.state.lock().expect("outbox lock");
        let st = &mut *st;
        let rotate = st.sealed
            || st
                .segments
                .back()
                .is_none_or(|s| s.lines >= self.segment_lines);
        // Make room for the new line: the oldest segments go first. The
        // segment appended to is only dropped when a new one replaces it.
        let mut total: usize = st.segments.iter().map(|s| s.lines).sum();
        while total + 1 > self.keep && (rotate || st.segments.len() > 1) {
            let Some(old) = st.segments.front() else {
                break;
            };
            remove_if_present(&segment_path(&self.dir, old.first_seq)).map_err(io_error)?;
            total -= old.lines;
            st.segments.pop_front();
            if st.segments.is_empty() {
                st.file = None;
            }
        }
        if rotate {
            st.file = None;
            let first_seq = st.next_seq;
            // A file of that name can only be an empty leftover of a crash.
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&self.dir, first_seq))
                .map_err(io_error)?;
            file.set_len(0).map_err(io_error)?;
            st.segments.push_back(Segment {
                first_seq,
                lines: 0,
            });
            st.file = Some(file);
            st.file_len = 0;
            st.sealed = false;
        }
        if st.file.is_none() {
            let first_seq = st.segments.back().expect("a segment").first_seq;
            let file = OpenOptions::new()
                .append(true)
                .open(segment_path(&self.dir, first_seq))
                .map_err(io_error)?;
            st.file = Some(file);
        }
        let file = st.file.as_mut().expect("an open segment");
        if let Err(e) = file.write_all(&line) {
            // A partial line would shift every later line's number: cut it
            // off, or if that fails too, leave this segment for a new one.
            if file.set_len(st.file_len).is_err() {
                st.sealed = true;
            }
            return Err(io_error(e));
        }
        st.file_len += line.len() as u64;
        st.segments.back_mut().expect("a segment").lines += 1;
        let seq = st.next_seq;
        st.next_seq += 1;
        Ok(seq)
    }

    /// Up to `limit` messages, newest first, only those numbered below
    /// `before` when given. Lines that cannot be parsed are skipped.
    pub fn list(&self, limit: usize, before: Option<u64>) -> io::Result<Vec<OutboxEntry>> {
        let st = self.state.lock().expect("outbox lock");
        let before = before.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for seg in st.segments.iter().rev() {
            if out.len() >= limit {
                break;
            }
            if seg.first_seq >= before || seg.lines == 0 {
                continue;
            }
            let bytes = match fs::read(segment_path(&self.dir, seg.first_seq)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                r => r?,
            };
            // Only whole lines count: a torn tail has no number.
            let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let lines: Vec<&[u8]> = bytes[..whole]
                .split(|&b| b == b'\n')
                .take(seg.lines)
                .collect();
            for (i, line) in lines.iter().enumerate().rev() {
                if out.len() >= limit {
                    break;
                }
                let seq = seg.first_seq + i as u64;
                if seq >= before {
                    continue;
                }
                match serde_json::from_slice::<OutboxMessage>(line) {
                    Ok(message) => out.push(OutboxEntry { seq, message }),
                    Err(e) => tracing::warn!(seq, error = %e, "outbox: skipping a bad line"),
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn msg(i: u64) -> OutboxMessage {
        OutboxMessage::custom(
            &format!("m-{i}"),
            "app",
            "2024-05-01T12:00:00.000Z",
            "http://127.0.0.1:9/hook",
            format!("{{\"n\":{i}}}").as_bytes(),
        )
    }

    fn ids(entries: &[OutboxEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| e.message.message_id.clone())
            .collect()
    }

    fn lines_on_disk(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let b = fs::read(e.unwrap().path()).unwrap();
                b.iter().filter(|&&c| c == b'\n').count()
            })
            .sum()
    }

    #[test]
    fn messages_list_newest_first_and_page_by_sequence() {
        let tmp = tempfile::tempdir().unwrap();
        let ob = Outbox::open(&tmp.path().join("outbox"), 100).unwrap();
        assert!(ob.list(10, None).unwrap().is_empty());
        for i in 1..=7 {
            assert_eq!(ob.append(&msg(i)).unwrap(), i);
        }
        let page = ob.list(3, None).unwrap();
        assert_eq!(ids(&page), ["m-7", "m-6", "m-5"]);
        assert_eq!(
            page.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [7, 6, 5],
            "sequence numbers"
        );
        let next = ob.list(3, Some(page[2].seq)).unwrap();
        assert_eq!(ids(&next), ["m-4", "m-3", "m-2"]);
        let last = ob.list(3, Some(next[2].seq)).unwrap();
        assert_eq!(ids(&last), ["m-1"]);
        assert!(ob.list(3, Some(1)).unwrap().is_empty());
        assert!(ob.list(0, None).unwrap().is_empty());
        assert_eq!(page[0].message, msg(7), "round trip");
    }

    #[test]
    fn email_lines_use_pinpoint_style_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let ob = Outbox::open(tmp.path(), 10).unwrap();
        let email = OutgoingEmail {
            message_id: "m-1".into(),
            app_id: "app-1".into(),
            from: "news@example.com".into(),
            to: "ada@example.org".into(),
            reply_to: vec!["help@example.com".into()],
            headers: vec![("X-Campaign".into(), "c1".into())],
            subject: "Hello".into(),
            text: Some("plain".into()),
            html: None,
            list_unsubscribe: Some("<https://h.example/u/t>".into()),
        };
        let m = OutboxMessage::from_email(&email, "2024-05-01T12:00:00.000Z");
        ob.append(&m).unwrap();
        let file = fs::read_dir(tmp.path()).unwrap().next().unwrap().unwrap();
        let line = fs::read_to_string(file.path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "MessageId": "m-1", "Channel": "EMAIL", "ApplicationId": "app-1",
                "Timestamp": "2024-05-01T12:00:00.000Z", "To": "ada@example.org",
                "From": "news@example.com", "Subject": "Hello", "TextPart": "plain",
                "Headers": [
                    {"Name": "Reply-To", "Value": "help@example.com"},
                    {"Name": "X-Campaign", "Value": "c1"},
                    {"Name": "List-Unsubscribe", "Value": "<https://h.example/u/t>"},
                    {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"}
                ]
            })
        );
        assert_eq!(ob.list(1, None).unwrap()[0].message, m);
    }

    #[test]
    fn the_bound_holds_across_rotations() {
        for keep in [1, 2, 5, 10] {
            let tmp = tempfile::tempdir().unwrap();
            let ob = Outbox::open(tmp.path(), keep).unwrap();
            for i in 1..=(5 * keep as u64 + 3) {
                ob.append(&msg(i)).unwrap();
                let on_disk = lines_on_disk(tmp.path());
                assert!(on_disk <= keep, "keep {keep}: {on_disk} lines after {i}");
                let least = (keep - keep / 2).min(i as usize);
                assert!(on_disk >= least, "keep {keep}: {on_disk} lines after {i}");
                let listed = ob.list(usize::MAX, None).unwrap();
                assert_eq!(listed.len(), on_disk);
                // What is kept is the newest, without gaps.
                let want: Vec<u64> = (0..on_disk as u64).map(|k| i - k).collect();
                assert_eq!(listed.iter().map(|e| e.seq).collect::<Vec<_>>(), want);
            }
            let segments = fs::read_dir(tmp.path()).unwrap().count();
            assert!(segments <= 3, "keep {keep}: {segments} segment files");
        }
    }

    #[test]
    fn a_reopened_outbox_keeps_its_messages_and_numbers() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let ob = Outbox::open(tmp.path(), 6).unwrap();
            for i in 1..=7 {
                ob.append(&msg(i)).unwrap();
            }
        }
        let before = {
            let ob = Outbox::open(tmp.path(), 6).unwrap();
            let listed = ob.list(100, None).unwrap();
            assert_eq!(listed[0].seq, 7);
            assert_eq!(ids(&listed[..2]), ["m-7", "m-6"]);
            assert_eq!(ob.append(&msg(8)).unwrap(), 8);
            ob.list(100, None).unwrap()
        };
        assert_eq!(before[0].seq, 8);
        // A crash mid-write leaves a torn line in the newest segment (which
        // has room for one more): it is cut off on open, and the next
        // message takes its place.
        let newest = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .max()
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&newest).unwrap();
        f.write_all(b"{\"MessageId\":\"m-9\",\"Chan").unwrap();
        drop(f);
        let ob = Outbox::open(tmp.path(), 6).unwrap();
        assert_eq!(ob.list(100, None).unwrap(), before);
        assert_eq!(ob.append(&msg(9)).unwrap(), 9);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2, "no rotation");
        let listed = ob.list(2, None).unwrap();
        assert_eq!(ids(&listed), ["m-9", "m-8"]);
        // Reopening with a smaller bound trims the oldest segments.
        drop(ob);
        let ob = Outbox::open(tmp.path(), 2).unwrap();
        let listed = ob.list(100, None).unwrap();
        assert!(!listed.is_empty() && listed.len() <= 3, "{listed:?}");
        assert_eq!(listed[0].seq, 9);
        ob.append(&msg(10)).unwrap();
        assert!(lines_on_disk(tmp.path()) <= 2);
        assert!(Outbox::open(tmp.path(), 0).is_err());
    }

    #[test]
    fn unrelated_files_and_bad_lines_are_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("README"), "hello").unwrap();
        let ob = Outbox::open(tmp.path(), 10).unwrap();
        ob.append(&msg(1)).unwrap();
        drop(ob);
        let seg = segment_path(tmp.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"not json\n").unwrap();
        drop(f);
        let ob = Outbox::open(tmp.path(), 10).unwrap();
        assert_eq!(ob.append(&msg(3)).unwrap(), 3);
        let listed = ob.list(10, None).unwrap();
        assert_eq!(listed.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 1]);
        assert!(tmp.path().join("README").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_from_tasks_all_land_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let ob = Arc::new(Outbox::open(tmp.path(), 1000).unwrap());
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let ob = ob.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..50u64 {
                    seqs.push(ob.append(&msg(t * 1000 + i)).unwrap());
                    tokio::task::yield_now().await;
                }
                seqs
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.extend(t.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
        let listed = ob.list(usize::MAX, None).unwrap();
        assert_eq!(listed.len(), 400);
        let mut got = ids(&listed);
        got.sort();
        let mut want: Vec<String> = (0..8u64)
            .flat_map(|t| (0..50u64).map(move |i| format!("m-{}", t * 1000 + i)))
            .collect();
        want.sort();
        assert_eq!(got, want);
        // Each task's messages are numbered in the order it sent them.
        for t in 0..8u64 {
            let mine: Vec<u64> = listed
                .iter()
                .rev()
                .map(|e| e.message.message_id[2..].parse::<u64>().unwrap())
                .filter(|n| n / 1000 == t)
                .map(|n| n % 1000)
                .collect();
            assert_eq!(mine, (0..50).collect::<Vec<u64>>());
        }
    }
}

//! Email engagement tracking: signed tokens for the open pixel, click
//! redirects and the one-click unsubscribe URL, and the HTML rewriting that
//! puts them into a message. Pure: the secret and every input are passed in.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(secret, payload)[..16])`
//! where the payload is the kind byte and the length-prefixed app id,
//! endpoint id, message id and (for clicks) target URL. Nobody without the
//! node's tracking secret can mint one, and a token names exactly one
//! endpoint and message, so it cannot be replayed against another.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a tracking URL records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Open,
    Click,
    Unsubscribe,
}

impl TrackKind {
    fn byte(self) -> u8 {
        match self {
            TrackKind::Open => b'o',
            TrackKind::Click => b'c',
            TrackKind::Unsubscribe => b'u',
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'o' => Some(TrackKind::Open),
            b'c' => Some(TrackKind::Click),
            b'u' => Some(TrackKind::Unsubscribe),
            _ => None,
        }
    }

    /// The event Pinpoint records for it.
    pub fn event_type(self) -> &'static str {
        match self {
            TrackKind::Open => "_email.open",
            TrackKind::Click => "_email.click",
            TrackKind::Unsubscribe => "_email.unsubscribe",
        }
    }
}

/// The contents of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub kind: TrackKind,
    pub app_id: String,
    pub endpoint_id: String,
    pub message_id: String,
    /// The click's target.
    pub url: Option<String>,
}

const MAC_BYTES: usize = 16;

fn mac(secret: &[u8], payload: &[u8]) -> [u8; MAC_BYTES] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(payload);
    let full = m.finalize().into_bytes();
    let mut out = [0u8; MAC_BYTES];
    out.copy_from_slice(&full[..MAC_BYTES]);
    out
}

fn push_part(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// A key for one purpose and subject derived from the node's secret:
/// hex(HMAC-SHA256(secret, purpose NUL subject)). Used to sign an app's
/// webhooks without storing a per-app secret.
pub fn derived_key(secret: &[u8], purpose: &str, subject: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(purpose.as_bytes());
    m.update(&[0]);
    m.update(subject.as_bytes());
    let out = m.finalize().into_bytes();
    out.iter().map(|b| format!("{b:02x}")).collect()
}

/// Mints a token (see the module doc).
pub fn token(
    secret: &[u8],
    kind: TrackKind,
    app_id: &str,
    endpoint_id: &str,
    message_id: &str,
    url: Option<&str>,
) -> String {
    let mut payload = vec![kind.byte()];
    for part in [app_id, endpoint_id, message_id, url.unwrap_or("")] {
        push_part(&mut payload, part);
    }
    let sig = mac(secret, &payload);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

/// Checks a token's signature and decodes it; `None` for anything forged,
/// truncated or malformed.
pub fn verify(secret: &[u8], token: &str) -> Option<Tracked> {
    let (p, s) = token.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(p).ok()?;
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    if sig.len() != MAC_BYTES {
        return None;
    }
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(&payload);
    m.verify_truncated_left(&sig).ok()?;
    let kind = TrackKind::from_byte(*payload.first()?)?;
    let mut rest = &payload[1..];
    let mut parts = Vec::with_capacity(4);
    for _ in 0..4 {
        if rest.len() < 4 {
            return None;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if rest.len() < len {
            return None;
        }
        parts.push(String::from_utf8(rest[..len].to_vec()).ok()?);
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return None;
    }
    let url = parts.pop().filter(|u| !u.is_empty());
    let message_id = parts.pop()?;
    let endpoint_id = parts.pop()?;
    let app_id = parts.pop()?;
    Some(Tracked {
        kind,
        app_id,
        endpoint_id,
        message_id,
        url,
    })
}

/// Replaces the target of the `href` of every `<a>` and `<area>` tag whose
/// value is quoted and starts with `http://` or `https://` with
/// `wrap(target)`. Other links (`mailto:`, anchors, `<link>` stylesheets,
/// `<base>`, unquoted values) are left alone.
pub fn rewrite_links(html: &str, mut wrap: impl FnMut(&str) -> String) -> String {
    let lower = html.to_ascii_lowercase();
    let bytes = html.as_bytes();
    let mut out = String::with_capacity(html.len() + 256);
    let mut pos = 0; // copied up to here
    let mut search = 0;
    while let Some(found) = lower[search..].find("href") {
        let at = search + found;
        search = at + 4;
        // An attribute name: preceded by whitespace, inside an <a> or <area> tag.
        if at == 0 || !bytes[at - 1].is_ascii_whitespace() || !in_link_tag(&lower[..at]) {
            continue;
        }
        let mut i = at + 4;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let Some(&quote) = bytes.get(i).filter(|q| **q == b'"' || **q == b'\'') else {
            continue;
        };
        let start = i + 1;
        let Some(len) = html[start..].find(quote as char) else {
            break;
        };
        let target = &html[start..start + len];
        let t = target.trim_start().to_ascii_lowercase();
        if t.starts_with("http://") || t.starts_with("https://") {
            out.push_str(&html[pos..start]);
            let unescaped = target.replace("&amp;", "&");
            out.push_str(&escape_attr(&wrap(&unescaped)));
            pos = start + len;
        }
        search = start + len;
    }
    out.push_str(&html[pos..]);
    out
}

/// Whether the text before a position ends inside an open `<a ...` or
/// `<area ...` tag (`before` is lower-cased).
fn in_link_tag(before: &str) -> bool {
    let Some(lt) = before.rfind('<') else {
        return false;
    };
    if before[lt..].contains('>') {
        return false;
    }
    let tag = &before[lt + 1..];
    let name: String = tag
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    name == "a" || name == "area"
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Adds the open-tracking pixel before `</body>` (or at the end).
pub fn append_pixel(html: &mut String, pixel_url: &str) {
    let img = format!(
        "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">",
        escape_attr(pixel_url)
    );
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(i) => html.insert_str(i, &img),
        None => html.push_str(&img),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokens_round_trip_and_refuse_forgeries() {
        let t = token(
            b"s3cret",
            TrackKind::Click,
            "app",
            "ep-1",
            "m1",
            Some("https://x.org/?a=1&b=2"),
        );
        let got = verify(b"s3cret", &t).unwrap();
        assert_eq!(got.kind, TrackKind::Click);
        assert_eq!(
            (
                got.app_id.as_str(),
                got.endpoint_id.as_str(),
                got.message_id.as_str()
            ),
            ("app", "ep-1", "m1")
        );
        assert_eq!(got.url.as_deref(), Some("https://x.org/?a=1&b=2"));
        assert_eq!(verify(b"other", &t), None);
        let (p, s) = t.split_once('.').unwrap();
        let other = token(b"s3cret", TrackKind::Open, "app", "ep-2", "m1", None);
        let (p2, _) = other.split_once('.').unwrap();
        assert_eq!(verify(b"s3cret", &format!("{p2}.{s}")), None);
        assert_eq!(verify(b"s3cret", p), None);
        assert_eq!(verify(b"s3cret", &format!("{p}.{}", &s[..4])), None);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    }

    #[test]
    fn links_are_wrapped_and_others_left_alone() {
        let html = r##"<a HREF="https://a.org/x?y=1&amp;z=2">A</a> <a href='mailto:x@y'>m</a> <a href="#top">t</a> <a class="x" href = 'http://b.org'>B</a>"##;
        let out = rewrite_links(html, |u| format!("https://t/{}", u.len()));
        assert!(out.contains(r#"HREF="https://t/23""#), "{out}");
        assert!(out.contains("href='mailto:x@y'"));
        assert!(out.contains(r##"href="#top""##));
        assert!(out.contains("href = 'https://t/12'"), "{out}");
        // Not links a reader clicks: left alone.
        let other = r#"<link rel="stylesheet" href="https://a.org/s.css"><base href="https://a.org/"><div data-href="https://a.org/d">x</div><area shape="rect" href="https://a.org/m">"#;
        let out = rewrite_links(other, |_| "W".into());
        assert!(out.contains(r#"href="https://a.org/s.css""#), "{out}");
        assert!(out.contains(r#"<base href="https://a.org/">"#), "{out}");
        assert!(out.contains(r#"data-href="https://a.org/d""#), "{out}");
        assert!(out.contains(r#"<area shape="rect" href="W">"#), "{out}");
    }

    #[test]
    fn pixel_goes_before_body_end() {
        let mut h = "<html><body><p>x</p></BODY></html>".to_owned();
        append_pixel(&mut h, "https://t/o/abc");
        assert!(h.contains(r#"<img src="https://t/o/abc" width="1""#));
        assert!(h.find("<img").unwrap() < h.find("</BODY>").unwrap());
        let mut plain = "<p>x</p>".to_owned();
        append_pixel(&mut plain, "u");
        assert!(plain.ends_with("display:none\">"));
    }

    proptest! {
        #[test]
        fn html_without_links_is_unchanged(s in "[^h]*") {
            prop_assert_eq!(rewrite_links(&s, |_| "X".into()), s);
        }

        #[test]
        fn any_ids_round_trip(app in ".{0,20}", ep in ".{0,40}", m in "[0-9a-f]{32}") {
            let t = token(b"k", TrackKind::Open, &app, &ep, &m, None);
            let got = verify(b"k", &t).unwrap();
            prop_assert_eq!(got.app_id, app);
            prop_assert_eq!(got.endpoint_id, ep);
            prop_assert_eq!(got.message_id, m);
        }
    }
}

//! SMS text encoding and segmentation (3GPP TS 23.038 and 23.040).
//!
//! A message is sent in the GSM 7-bit default alphabet when every character
//! is in it (the extension table's `^ { } \ [ ~ ] | €` and form feed take two
//! septets, an escape and the character), else in UCS-2 (UTF-16 code units,
//! big-endian; characters beyond the BMP take two). One part holds 160
//! septets or 70 units; a longer message is split into parts of 153 septets
//! or 67 units, leaving room for the concatenation header (6 octets), and
//! never between an escape and its character or the two halves of a
//! surrogate pair. Payloads here are unpacked septets (one per octet, as
//! SMPP's `short_message` carries them with `data_coding` 0) or UTF-16BE
//! (`data_coding` 8).
//!
//! Also here: Pinpoint's `SMSMessage` and its checks, phone numbers in
//! E.164, the keyword of an inbound message (STOP, START, HELP, custom),
//! and the text of SMPP delivery receipts.

use crate::validate::ValidationError;

/// The GSM 7-bit default alphabet, by septet value (0x1B is the escape to
/// the extension table).
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: (septet after the escape, character).
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

const ESCAPE: u8 = 0x1B;

/// Septets in one part of a single-part GSM message, and per part of a
/// concatenated one.
pub const GSM7_SINGLE_MAX: usize = 160;
pub const GSM7_PART_MAX: usize = 153;
/// UTF-16 units likewise for UCS-2.
pub const UCS2_SINGLE_MAX: usize = 70;
pub const UCS2_PART_MAX: usize = 67;
/// Parts of one message at most (a concatenated message numbers its parts
/// in one octet; operators accept far fewer).
pub const PARTS_MAX: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SmsEncoding {
    #[serde(rename = "GSM")]
    Gsm7,
    #[serde(rename = "UCS2")]
    Ucs2,
}

impl SmsEncoding {
    /// Its name in results and events (`GSM`, `UCS2`).
    pub fn name(self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "GSM",
            SmsEncoding::Ucs2 => "UCS2",
        }
    }

    /// SMPP's `data_coding`.
    pub fn data_coding(self) -> u8 {
        match self {
            SmsEncoding::Gsm7 => 0x00,
            SmsEncoding::Ucs2 => 0x08,
        }
    }
}

/// A message ready for an SMSC: its encoding and each part's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsParts {
    pub encoding: SmsEncoding,
    /// Each part's payload, without the concatenation header.
    pub parts: Vec<Vec<u8>>,
    /// Septets (GSM) or UTF-16 units (UCS-2) of the whole message.
    pub units: usize,
}

/// The septets of `c` in the default alphabet, if it has any.
fn gsm7(c: char) -> Option<Vec<u8>> {
    if c == '\u{1B}' {
        return None;
    }
    if let Some(i) = BASIC.iter().position(|&b| b == c) {
        return Some(vec![i as u8]);
    }
    EXTENSION
        .iter()
        .find(|(_, e)| *e == c)
        .map(|(code, _)| vec![ESCAPE, *code])
}

/// Septets `text` takes in the default alphabet, or `None` when some
/// character is not in it.
pub fn gsm7_septets(text: &str) -> Option<usize> {
    text.chars().map(|c| gsm7(c).map(|s| s.len())).sum()
}

/// Encodes and splits `text`.
pub fn encode(text: &str) -> Result<SmsParts, ValidationError> {
    let (encoding, units): (SmsEncoding, Vec<Vec<u8>>) =
        match text.chars().map(gsm7).collect::<Option<Vec<_>>>() {
            Some(septets) => (SmsEncoding::Gsm7, septets),
            None => (
                SmsEncoding::Ucs2,
                text.chars()
                    .map(|c| {
                        let mut buf = [0u16; 2];
                        c.encode_utf16(&mut buf)
                            .iter()
                            .flat_map(|u| u.to_be_bytes())
                            .collect()
                    })
                    .collect(),
            ),
        };
    // Each character's width in units (septets, or 2-octet UTF-16 units).
    let width = |bytes: &Vec<u8>| match encoding {
        SmsEncoding::Gsm7 => bytes.len(),
        SmsEncoding::Ucs2 => bytes.len() / 2,
    };
    let total: usize = units.iter().map(width).sum();
    let (single, per_part) = match encoding {
        SmsEncoding::Gsm7 => (GSM7_SINGLE_MAX, GSM7_PART_MAX),
        SmsEncoding::Ucs2 => (UCS2_SINGLE_MAX, UCS2_PART_MAX),
    };
    let limit = if total <= single { single } else { per_part };
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let (mut current, mut used) = (Vec::new(), 0usize);
    for ch in &units {
        let w = width(ch);
        if used + w > limit {
            parts.push(std::mem::take(&mut current));
            used = 0;
        }
        current.extend_from_slice(ch);
        used += w;
    }
    if !current.is_empty() || parts.is_empty() {
        parts.push(current);
    }
    if parts.len() > PARTS_MAX {
        return Err(ValidationError(format!(
            "the message takes {} SMS parts ({total} {}); at most {PARTS_MAX}",
            parts.len(),
            match encoding {
                SmsEncoding::Gsm7 => "GSM-7 septets",
                SmsEncoding::Ucs2 => "UCS-2 units",
            }
        )));
    }
    Ok(SmsParts {
        encoding,
        parts,
        units: total,
    })
}

/// Decodes one payload (the inverse of [`encode`]'s parts); characters
/// that do not decode become U+FFFD.
pub fn decode(encoding: SmsEncoding, payload: &[u8]) -> String {
    match encoding {
        SmsEncoding::Ucs2 => {
            let units: Vec<u16> = payload
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        SmsEncoding::Gsm7 => {
            let mut out = String::new();
            let mut it = payload.iter();
            while let Some(&s) = it.next() {
                if s == ESCAPE {
                    let next = it.next().copied().unwrap_or(0);
                    out.push(
                        EXTENSION
                            .iter()
                            .find(|(code, _)| *code == next)
                            .map_or('\u{FFFD}', |(_, c)| *c),
                    );
                } else {
                    out.push(*BASIC.get(s as usize).unwrap_or(&'\u{FFFD}'));
                }
            }
            out
        }
    }
}

/// The concatenation user data header of one part (3GPP TS 23.040
/// 9.2.3.24.1: information element 0x00, 8-bit reference): `reference`
/// is shared by a message's parts, `seq` counts from 1 to `total`.
pub fn concat_udh(reference: u8, total: u8, seq: u8) -> [u8; 6] {
    debug_assert!(seq >= 1 && seq <= total);
    [0x05, 0x00, 0x03, reference, total, seq]
}

/// Strips a user data header (UDHL and its elements) from a payload whose
/// `esm_class` has the UDHI bit; answers the payload unchanged when the
/// header's length runs past its end.
pub fn strip_udh(payload: &[u8]) -> &[u8] {
    match payload.first() {
        Some(&udhl) if (udhl as usize) < payload.len() => &payload[udhl as usize + 1..],
        _ => payload,
    }
}

/// `MessageType` of an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SmsMessageType {
    Transactional,
    Promotional,
}

/// Pinpoint's `SMSMessage` (direct sends and campaigns).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SmsMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origination_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitutions: Option<crate::message::Substitutions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
}

/// Characters of an SMS body before rendering, at most (Pinpoint's own
/// limit is 1,600; ten parts of 153 septets hold 1,530).
pub const BODY_CHARS_MAX: usize = 1_600;

/// Checks an `SMSMessage` as written (before rendering): a known
/// `MessageType`, no MMS (`MediaUrl`), an E.164 `OriginationNumber`, a
/// `SenderId` of 1–11 letters, digits or spaces with at least one letter,
/// and a body within [`BODY_CHARS_MAX`].
pub fn sms_check(m: &SmsMessage) -> Result<(), ValidationError> {
    let bad = |s: String| Err(ValidationError(s));
    if let Some(t) = m.message_type.as_deref() {
        if !matches!(t, "TRANSACTIONAL" | "PROMOTIONAL") {
            return bad(format!(
                "MessageType must be TRANSACTIONAL or PROMOTIONAL, not {t:?}"
            ));
        }
    }
    if m.media_url.as_deref().is_some_and(|u| !u.is_empty()) {
        return bad("MediaUrl: herald sends SMS only, not MMS".into());
    }
    if let Some(n) = m.origination_number.as_deref() {
        e164(n).map_err(|e| ValidationError(format!("OriginationNumber: {}", e.0)))?;
    }
    if let Some(id) = m.sender_id.as_deref() {
        sender_id_check(id)?;
    }
    if let Some(b) = m.body.as_deref() {
        let n = b.chars().count();
        if n > BODY_CHARS_MAX {
            return bad(format!("Body: {n} characters, more than {BODY_CHARS_MAX}"));
        }
    }
    Ok(())
}

/// An alphanumeric sender id: 1–11 characters of `A-Z a-z 0-9` and space,
/// at least one a letter (an all-digit sender is a phone number).
pub fn sender_id_check(id: &str) -> Result<(), ValidationError> {
    let ok = (1..=11).contains(&id.chars().count())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && id.chars().any(|c| c.is_ascii_alphabetic());
    if ok {
        Ok(())
    } else {
        Err(ValidationError(format!(
            "SenderId {id:?}: 1 to 11 letters, digits or spaces, at least one a letter"
        )))
    }
}

/// A phone number in E.164 (`+` and up to 15 digits), from what users and
/// SMSCs write: spaces, dashes, dots and parentheses are dropped, and the
/// country code must be given (`+1 (206) 555-0100` → `+12065550100`). The
/// number is parsed with libphonenumber's metadata, so an impossible
/// country code or length is refused.
pub fn e164(raw: &str) -> Result<String, ValidationError> {
    let bad = |why: &str| {
        Err(ValidationError(format!(
            "{raw:?} is not a phone number in E.164 format: {why}"
        )))
    };
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let Some(digits) = compact.strip_prefix('+') else {
        return bad("it must start with + and the country code");
    };
    if digits.is_empty() || digits.len() > 15 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return bad("+ then 1 to 15 digits");
    }
    let parsed = match phonenumber::parse(None, &compact) {
        Ok(p) => p,
        Err(e) => return bad(&e.to_string()),
    };
    let formatted = parsed.format().mode(phonenumber::Mode::E164).to_string();
    if !phonenumber::is_viable(&compact) {
        return bad("too short or too long for its country");
    }
    Ok(formatted)
}

/// The ISO 3166-1 alpha-2 region of an E.164 number (`US`, `GB`), if
/// libphonenumber's metadata places it.
pub fn country_of(e164: &str) -> Option<String> {
    let parsed = phonenumber::parse(None, e164).ok()?;
    let id = parsed.country().id()?;
    Some(format!("{id:?}"))
}

/// A number as an SMSC writes it (often without the `+` when its TON is
/// international), in E.164; `None` for a short code or an alphanumeric
/// address.
pub fn e164_of_smsc(addr: &str) -> Option<String> {
    let a = addr.trim();
    if a.starts_with('+') {
        return e164(a).ok();
    }
    if a.len() >= 8 && a.chars().all(|c| c.is_ascii_digit()) {
        return e164(&format!("+{a}")).ok();
    }
    None
}

/// What an inbound message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyword {
    /// Opt out of everything (`STOP`, `UNSUBSCRIBE`, ...).
    Stop,
    /// Opt back in (`START`, `UNSTOP`, ...).
    Start,
    /// The help text (`HELP`, `INFO`).
    Help,
    /// One of the origination number's own keywords (upper case).
    Custom(String),
    /// Anything else.
    None,
}

/// Opt-out keywords US carriers and CTIA expect, and their usual
/// equivalents.
pub const STOP_WORDS: [&str; 10] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "OPT-OUT",
    "REVOKE",
    "ARRET",
];
pub const START_WORDS: [&str; 4] = ["START", "UNSTOP", "SUBSCRIBE", "JOIN"];
pub const HELP_WORDS: [&str; 3] = ["HELP", "INFO", "AIDE"];

/// The keyword of an inbound message: its first word, case-insensitive,
/// without trailing punctuation; `custom` keywords (any case) are matched
/// after the standard ones, which they cannot override.
pub fn keyword_of(text: &str, custom: &[String]) -> Keyword {
    let Some(first) = text.split_whitespace().next() else {
        return Keyword::None;
    };
    let word = first
        .trim_end_matches(|c: char| c.is_ascii_punctuation() && c != '-')
        .to_uppercase();
    // "STOP" alone or with more words after it both count.
    if STOP_WORDS.contains(&word.as_str()) {
        Keyword::Stop
    } else if START_WORDS.contains(&word.as_str()) {
        Keyword::Start
    } else if HELP_WORDS.contains(&word.as_str()) {
        Keyword::Help
    } else if let Some(k) = custom.iter().find(|k| k.to_uppercase() == word) {
        Keyword::Custom(k.to_uppercase())
    } else {
        Keyword::None
    }
}

/// A delivery receipt's text (SMPP 3.4 Appendix B):
/// `id:IIII sub:SSS dlvrd:DDD submit date:... done date:... stat:SSSSSSS err:E text:...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptText {
    pub id: String,
    pub stat: String,
    pub err: String,
}

pub fn parse_receipt(text: &str) -> Option<ReceiptText> {
    // `text:` is last and free-form; fields before it are `name:value`.
    let head = text.split(" text:").next().unwrap_or(text);
    let field = |name: &str| {
        head.split_whitespace()
            .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
            .map(str::to_owned)
    };
    Some(ReceiptText {
        id: field("id")?,
        stat: field("stat").unwrap_or_default(),
        err: field("err").unwrap_or_default(),
    })
}

/// Whether a receipt's `stat` (or `message_state` TLV name) means the
/// handset has the message.
pub fn receipt_delivered(stat: &str) -> bool {
    stat.eq_ignore_ascii_case("DELIVRD") || stat.eq_ignore_ascii_case("DELIVERED")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn countries_of_numbers() {
        assert_eq!(country_of("+12025550143").as_deref(), Some("US"));
        assert_eq!(country_of("+33612345678").as_deref(), Some("FR"));
        assert_eq!(country_of("not a number"), None);
    }

    #[test]
    fn phone_numbers_become_e164() {
        assert_eq!(e164("+1 (206) 555-0100").unwrap(), "+12065550100");
        assert_eq!(e164("+44 20 7946 0958").unwrap(), "+442079460958");
        assert!(e164("2065550100").is_err());
        assert!(e164("+1").is_err());
        assert!(e164("+12065550100999999").is_err());
        assert!(e164("+1206abc").is_err());
        assert_eq!(e164_of_smsc("12065550100").as_deref(), Some("+12065550100"));
        assert_eq!(
            e164_of_smsc("+12065550100").as_deref(),
            Some("+12065550100")
        );
        assert_eq!(e164_of_smsc("22333"), None);
        assert_eq!(e164_of_smsc("HERALD"), None);
    }

    #[test]
    fn keywords_are_the_first_word_in_any_case() {
        let custom = vec!["deals".to_owned()];
        assert_eq!(keyword_of("stop", &custom), Keyword::Stop);
        assert_eq!(keyword_of("  Stop please ", &custom), Keyword::Stop);
        assert_eq!(keyword_of("STOP.", &custom), Keyword::Stop);
        assert_eq!(keyword_of("unsubscribe", &custom), Keyword::Stop);
        assert_eq!(keyword_of("start", &custom), Keyword::Start);
        assert_eq!(keyword_of("Help!", &custom), Keyword::Help);
        assert_eq!(
            keyword_of("DEALS today", &custom),
            Keyword::Custom("DEALS".into())
        );
        assert_eq!(keyword_of("don't stop", &custom), Keyword::None);
        assert_eq!(keyword_of("", &custom), Keyword::None);
    }

    #[test]
    fn receipts_parse() {
        let r = parse_receipt("id:1a2b sub:001 dlvrd:001 submit date:2612070101 done date:2612070101 stat:DELIVRD err:000 text:hello id:x").unwrap();
        assert_eq!(
            (r.id.as_str(), r.stat.as_str(), r.err.as_str()),
            ("1a2b", "DELIVRD", "000")
        );
        assert!(receipt_delivered(&r.stat));
        assert!(!receipt_delivered("UNDELIV"));
        assert!(parse_receipt("hello").is_none());
    }

    #[test]
    fn sms_messages_are_checked() {
        let ok = SmsMessage {
            body: Some("hi".into()),
            message_type: Some("PROMOTIONAL".into()),
            origination_number: Some("+12065550100".into()),
            sender_id: Some("Herald".into()),
            ..Default::default()
        };
        assert!(sms_check(&ok).is_ok());
        let bad_type = SmsMessage {
            message_type: Some("MARKETING".into()),
            ..ok.clone()
        };
        assert!(sms_check(&bad_type).unwrap_err().0.contains("MessageType"));
        let mms = SmsMessage {
            media_url: Some("https://x/y.png".into()),
            ..ok.clone()
        };
        assert!(sms_check(&mms).is_err());
        let sender = SmsMessage {
            sender_id: Some("123".into()),
            ..ok.clone()
        };
        assert!(sms_check(&sender).is_err());
        let long = SmsMessage {
            body: Some("x".repeat(BODY_CHARS_MAX + 1)),
            ..ok
        };
        assert!(sms_check(&long).is_err());
        assert_eq!(concat_udh(7, 3, 2), [5, 0, 3, 7, 3, 2]);
        assert_eq!(strip_udh(&[5, 0, 3, 7, 3, 2, b'h', b'i']), b"hi");
    }

    #[test]
    fn plain_text_is_gsm_and_fits_160_septets_in_one_part() {
        let p = encode(&"a".repeat(160)).unwrap();
        assert_eq!(
            (p.encoding, p.parts.len(), p.units),
            (SmsEncoding::Gsm7, 1, 160)
        );
        let p = encode(&"a".repeat(161)).unwrap();
        assert_eq!(p.parts.iter().map(Vec::len).collect::<Vec<_>>(), [153, 8]);
    }

    #[test]
    fn extension_characters_take_two_septets_and_are_never_split() {
        assert_eq!(gsm7_septets("€[x]"), Some(7));
        // 152 plain septets, then € (two): it moves whole to part two.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(20));
        let p = encode(&text).unwrap();
        assert_eq!(p.parts[0].len(), 152);
        assert_eq!(p.parts[1][..2], [ESCAPE, 0x65]);
        assert!(decode(p.encoding, &p.parts[1]).starts_with("€bb"));
    }

    #[test]
    fn other_scripts_are_ucs2_with_70_and_67_units() {
        let p = encode(&"П".repeat(70)).unwrap();
        assert_eq!((p.encoding, p.parts.len()), (SmsEncoding::Ucs2, 1));
        let p = encode(&"П".repeat(71)).unwrap();
        assert_eq!(
            p.parts.iter().map(|x| x.len() / 2).collect::<Vec<_>>(),
            [67, 4]
        );
        // An emoji is a surrogate pair: two units, kept together.
        let text = format!("{}😀", "П".repeat(66));
        let p = encode(&format!("{text}{}", "x".repeat(10))).unwrap();
        assert_eq!(p.parts[0].len() / 2, 66);
        assert!(decode(p.encoding, &p.parts[1]).starts_with('😀'));
        assert_eq!(SmsEncoding::Ucs2.data_coding(), 8);
    }

    #[test]
    fn too_long_a_message_is_refused() {
        assert!(encode(&"a".repeat(153 * 10)).is_ok());
        let e = encode(&"a".repeat(153 * 10 + 1)).unwrap_err();
        assert!(e.0.contains("SMS parts"), "{e:?}");
    }

    fn sms_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(vec!['a', 'Z', ' ', '0', '@', 'é', 'Ñ', '\n']),
                1 => prop::sample::select(vec!['€', '[', '^', '|', '~']),
                1 => prop::sample::select(vec!['П', '中', '😀', 'ő']),
            ],
            0..700,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn parts_fit_their_limits_and_join_back_to_the_text(text in sms_text()) {
            let Ok(p) = encode(&text) else {
                return Ok(());
            };
            let gsm = text.chars().all(|c| gsm7(c).is_some());
            prop_assert_eq!(p.encoding == SmsEncoding::Gsm7, gsm);
            let (single, part) = if gsm { (160, 153) } else { (70, 67) };
            let width = |x: &Vec<u8>| if gsm { x.len() } else { x.len() / 2 };
            if p.parts.len() == 1 {
                prop_assert!(width(&p.parts[0]) <= single);
            } else {
                for x in &p.parts {
                    prop_assert!(width(x) <= part);
                }
            }
            let joined: String = p.parts.iter().map(|x| decode(p.encoding, x)).collect();
            prop_assert_eq!(joined, text);
        }
    }
}

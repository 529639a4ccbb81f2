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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

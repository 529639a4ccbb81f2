//! Id and ARN formats.
//!
//! App, campaign and segment ids are 32 lowercase hex characters (a UUIDv4
//! without dashes at AWS). ARNs use the `mobiletargeting` namespace:
//! `arn:{partition}:mobiletargeting:{region}:{account}:{resource path}`, e.g.
//! `arn:aws:mobiletargeting:us-east-1:123456789012:apps/<id>/campaigns/<id>`.
//! Randomness for new ids is the caller's: pass 16 random bytes to
//! [`id_from_bytes`].

/// ARN of an app: `arn:aws:mobiletargeting:{region}:{account}:apps/{app_id}`.
pub fn app_arn(region: &str, account: &str, app_id: &str) -> String {
    resource_arn(region, account, &format!("apps/{app_id}"))
}

/// ARN of any Pinpoint resource given its path (`apps/x/campaigns/y`,
/// `templates/name/EMAIL`, ...).
pub fn resource_arn(region: &str, account: &str, resource_path: &str) -> String {
    format!("arn:aws:mobiletargeting:{region}:{account}:{resource_path}")
}

/// Splits a `mobiletargeting` ARN into `(region, account, resource path)`.
/// Any `aws*` partition (`aws`, `aws-cn`, `aws-us-gov`) is accepted. Returns
/// `None` for other services or when region, account or path is empty.
pub fn parse_resource_arn(arn: &str) -> Option<(String, String, String)> {
    let mut parts = arn.splitn(6, ':');
    let (scheme, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, path) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = scheme == "arn"
        && partition.starts_with("aws")
        && service == "mobiletargeting"
        && !region.is_empty()
        && !account.is_empty()
        && !path.is_empty()
        && !path.starts_with('/');
    ok.then(|| (region.to_string(), account.to_string(), path.to_string()))
}

/// Whether `s` has the app-id form: exactly 32 lowercase hex characters.
pub fn is_valid_app_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new 32-hex id (app, campaign, segment, journey) from 16 caller-supplied
/// random bytes.
pub fn id_from_bytes(bytes: [u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(32);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0x0f)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "810c7aab86d42fb2b56c8c966e0ab1e5";

    #[test]
    fn app_arn_format() {
        assert_eq!(
            app_arn("us-east-1", "123456789012", APP),
            format!("arn:aws:mobiletargeting:us-east-1:123456789012:apps/{APP}")
        );
    }

    #[test]
    fn parse_round_trips_and_keeps_nested_paths() {
        let arn = app_arn("eu-west-1", "123456789012", APP);
        assert_eq!(
            parse_resource_arn(&arn),
            Some((
                "eu-west-1".into(),
                "123456789012".into(),
                format!("apps/{APP}")
            ))
        );
        let nested = resource_arn("us-east-1", "1", &format!("apps/{APP}/campaigns/abc"));
        assert_eq!(
            parse_resource_arn(&nested).unwrap().2,
            format!("apps/{APP}/campaigns/abc")
        );
        let tpl = "arn:aws:mobiletargeting:us-east-1:1:templates/TestTemplate/SMS";
        assert_eq!(
            parse_resource_arn(tpl).unwrap().2,
            "templates/TestTemplate/SMS"
        );
        let cn = "arn:aws-cn:mobiletargeting:cn-north-1:1:apps/x";
        assert_eq!(parse_resource_arn(cn).unwrap().0, "cn-north-1");
        // A colon inside the path stays in the path.
        assert_eq!(
            parse_resource_arn("arn:aws:mobiletargeting:r:1:apps/a:b")
                .unwrap()
                .2,
            "apps/a:b"
        );
    }

    #[test]
    fn parse_rejects_other_arns() {
        for arn in [
            "",
            "arn",
            "arn:aws:mobiletargeting:us-east-1:123",
            "arn:aws:mobiletargeting::123:apps/x",
            "arn:aws:mobiletargeting:us-east-1::apps/x",
            "arn:aws:mobiletargeting:us-east-1:123:",
            "arn:aws:mobiletargeting:us-east-1:123:/apps/x",
            "arn:aws:ses:us-east-1:123:identity/x",
            "arn:gcp:mobiletargeting:us-east-1:123:apps/x",
            "urn:aws:mobiletargeting:us-east-1:123:apps/x",
        ] {
            assert_eq!(parse_resource_arn(arn), None, "{arn}");
        }
    }

    #[test]
    fn app_id_shape() {
        assert!(is_valid_app_id(APP));
        assert!(!is_valid_app_id(&APP.to_uppercase()));
        assert!(!is_valid_app_id(&APP[1..]));
        assert!(!is_valid_app_id(&format!("{APP}0")));
        assert!(!is_valid_app_id("810c7aab-86d4-2fb2-b56c-8c966e0ab1e5"));
        assert!(!is_valid_app_id("g10c7aab86d42fb2b56c8c966e0ab1e5"));
    }

    #[test]
    fn ids_from_bytes_are_valid() {
        let id = id_from_bytes([0xab; 16]);
        assert_eq!(id, "ab".repeat(16));
        assert!(is_valid_app_id(&id));
        assert!(is_valid_app_id(&id_from_bytes([0; 16])));
        let mut b = [0u8; 16];
        b[0] = 0x0f;
        b[15] = 0xf0;
        assert_eq!(id_from_bytes(b), format!("0f{}f0", "0".repeat(28)));
    }
}

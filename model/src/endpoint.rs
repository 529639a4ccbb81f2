//! Endpoint upsert and attribute-removal semantics.
//!
//! [`merge_update`] implements `UpdateEndpoint` / `UpdateEndpointsBatch` /
//! the endpoint side effect of `PutEvents`. Pinpoint documents it as an upsert
//! where "if an update includes one or more values for a custom attribute,
//! Amazon Pinpoint replaces (overwrites) any existing values with the new
//! values", and where `EndpointStatus` is set to ACTIVE on every create or
//! update. The rules, per top-level member of `EndpointRequest`:
//!
//! | member | rule |
//! |---|---|
//! | `Address`, `ChannelType` | present → replaces; absent → kept. `""` clears `Address`. |
//! | `Attributes` | merged **per key**: a given key's list replaces the stored list; an empty list removes the key; keys not mentioned are kept. |
//! | `Metrics` | merged per key: a given key's value replaces the stored value. |
//! | `Demographic`, `Location` | merged **per field**: each present field replaces the stored one; `""` clears a string field. |
//! | `User.UserId` | present → replaces; `""` removes the user association. |
//! | `User.UserAttributes` | merged per key, like `Attributes`. |
//! | `EffectiveDate` | the request's value (normalized to `YYYY-MM-DDTHH:MM:SS.sssZ`), else `now`. |
//! | `EndpointStatus` | the request's value, else `ACTIVE` — even when the stored endpoint was INACTIVE (documented). |
//! | `OptOut` | the request's value, else the stored one, else `NONE`. |
//! | `RequestId` | always `None` in the result: the caller stamps the current request id. |
//!
//! Server-owned members: `ApplicationId` and `Id` are set from the arguments,
//! `CreationDate` is kept (or `now` on create), `CohortId` is kept (or
//! `hash::cohort_of(endpoint_id)` on create). Empty maps are kept as `{}`,
//! matching AWS, which returns `"Attributes": {}`.
//!
//! Cross-endpoint rules are the caller's: marking another endpoint with the
//! same `Address` INACTIVE, the 15-endpoints-per-user limit, and total-size
//! checks after the merge (`validate::stored_endpoint`).

use std::collections::BTreeMap;

use crate::hash::cohort_of;
use crate::time::{format_iso8601_ms, parse_iso8601_ms};
use crate::wire::{
    AttributeMap, EndpointDemographic, EndpointLocation, EndpointRequest, EndpointResponse,
    EndpointUser,
};

/// The endpoint after applying `req` to `existing` (or creating it). See the
/// module doc for the per-member rules. `now_iso` is the server's current time
/// as ISO-8601 (normally `time::format_iso8601_ms`). Expects a request that
/// passed `validate::endpoint_request`; an unparsable `EffectiveDate` falls
/// back to `now_iso`.
pub fn merge_update(
    existing: Option<&EndpointResponse>,
    app_id: &str,
    endpoint_id: &str,
    req: &EndpointRequest,
    now_iso: &str,
) -> EndpointResponse {
    let mut ep = existing.cloned().unwrap_or_default();
    ep.application_id = Some(app_id.to_string());
    ep.id = Some(endpoint_id.to_string());
    if ep.creation_date.is_none() {
        ep.creation_date = Some(now_iso.to_string());
    }
    if ep.cohort_id.is_none() {
        ep.cohort_id = Some(cohort_of(endpoint_id).to_string());
    }

    set_text(&mut ep.address, &req.address);
    if let Some(ct) = &req.channel_type {
        ep.channel_type = Some(ct.clone());
    }
    if let Some(attrs) = &req.attributes {
        merge_attributes(ep.attributes.get_or_insert_with(BTreeMap::new), attrs);
    }
    if let Some(metrics) = &req.metrics {
        let stored = ep.metrics.get_or_insert_with(BTreeMap::new);
        for (k, v) in metrics {
            stored.insert(k.clone(), *v);
        }
    }
    if let Some(d) = &req.demographic {
        merge_demographic(ep.demographic.get_or_insert_with(Default::default), d);
    }
    if let Some(l) = &req.location {
        merge_location(ep.location.get_or_insert_with(Default::default), l);
    }
    if let Some(u) = &req.user {
        merge_user(ep.user.get_or_insert_with(Default::default), u);
    }

    ep.effective_date = Some(
        req.effective_date
            .as_deref()
            .and_then(|d| parse_iso8601_ms(d).ok())
            .map_or_else(|| now_iso.to_string(), format_iso8601_ms),
    );
    ep.endpoint_status = Some(
        req.endpoint_status
            .clone()
            .unwrap_or_else(|| "ACTIVE".into()),
    );
    if let Some(o) = &req.opt_out {
        ep.opt_out = Some(o.clone());
    } else if ep.opt_out.is_none() {
        ep.opt_out = Some("NONE".into());
    }
    ep.request_id = None;
    ep
}

/// A present value replaces the stored one; `""` clears it.
fn set_text(stored: &mut Option<String>, given: &Option<String>) {
    match given.as_deref() {
        None => {}
        Some("") => *stored = None,
        Some(v) => *stored = Some(v.to_string()),
    }
}

fn merge_attributes(stored: &mut AttributeMap, given: &AttributeMap) {
    for (k, values) in given {
        if values.is_empty() {
            stored.remove(k);
        } else {
            stored.insert(k.clone(), values.clone());
        }
    }
}

fn merge_demographic(stored: &mut EndpointDemographic, d: &EndpointDemographic) {
    set_text(&mut stored.app_version, &d.app_version);
    set_text(&mut stored.locale, &d.locale);
    set_text(&mut stored.make, &d.make);
    set_text(&mut stored.model, &d.model);
    set_text(&mut stored.model_version, &d.model_version);
    set_text(&mut stored.platform, &d.platform);
    set_text(&mut stored.platform_version, &d.platform_version);
    set_text(&mut stored.timezone, &d.timezone);
}

fn merge_location(stored: &mut EndpointLocation, l: &EndpointLocation) {
    set_text(&mut stored.city, &l.city);
    set_text(&mut stored.country, &l.country);
    if l.latitude.is_some() {
        stored.latitude = l.latitude;
    }
    if l.longitude.is_some() {
        stored.longitude = l.longitude;
    }
    set_text(&mut stored.postal_code, &l.postal_code);
    set_text(&mut stored.region, &l.region);
}

fn merge_user(stored: &mut EndpointUser, u: &EndpointUser) {
    set_text(&mut stored.user_id, &u.user_id);
    if let Some(attrs) = &u.user_attributes {
        merge_attributes(
            stored.user_attributes.get_or_insert_with(BTreeMap::new),
            attrs,
        );
    }
}

/// Removes from `ep` the attributes of `attribute_type` (one of
/// `validate::ATTRIBUTE_TYPES`) whose names match any of `names`, each an exact
/// name or a glob pattern (`*` any run of characters, `?` one character; see
/// [`glob_match`]). Returns whether anything was removed; an unknown type or an
/// empty `names` removes nothing.
///
/// Note: Pinpoint's `RemoveAttributes` removes the attributes from the *app's*
/// attribute registry and documents that existing endpoints keep their values.
/// herald applies this function to stored endpoints so removed attributes stop
/// matching segments; whether to do so is the caller's decision.
pub fn remove_attributes(
    ep: &mut EndpointResponse,
    attribute_type: &str,
    names: &[String],
) -> bool {
    let matches = |k: &String| names.iter().any(|p| glob_match(p, k));
    match attribute_type {
        "endpoint-custom-attributes" => ep
            .attributes
            .as_mut()
            .is_some_and(|m| retain_not(m, matches)),
        "endpoint-metric-attributes" => ep.metrics.as_mut().is_some_and(|m| retain_not(m, matches)),
        "endpoint-user-attributes" => ep
            .user
            .as_mut()
            .and_then(|u| u.user_attributes.as_mut())
            .is_some_and(|m| retain_not(m, matches)),
        _ => false,
    }
}

fn retain_not<V>(map: &mut BTreeMap<String, V>, matches: impl Fn(&String) -> bool) -> bool {
    let before = map.len();
    map.retain(|k, _| !matches(k));
    map.len() != before
}

/// Glob match over characters: `*` matches any run (also empty), `?` exactly
/// one character, everything else itself (case-sensitive, like attribute names).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    // Iterative matcher with single-star backtracking: O(|p| * |s|) worst case.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == s[si])) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The endpoint's user id, if it has a non-empty one.
pub fn user_id(ep: &EndpointResponse) -> Option<&str> {
    ep.user
        .as_ref()?
        .user_id
        .as_deref()
        .filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const APP: &str = "0f3a2b1c4d5e6f708192a3b4c5d6e7f8";
    const NOW: &str = "2024-05-01T12:00:00.000Z";
    const LATER: &str = "2024-05-02T08:00:00.000Z";

    fn req(v: serde_json::Value) -> EndpointRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn create_sets_server_members_and_defaults() {
        let ep = merge_update(
            None,
            APP,
            "ep-1",
            &req(json!({"ChannelType": "SMS", "Address": "+1"})),
            NOW,
        );
        assert_eq!(ep.application_id.as_deref(), Some(APP));
        assert_eq!(ep.id.as_deref(), Some("ep-1"));
        assert_eq!(ep.creation_date.as_deref(), Some(NOW));
        assert_eq!(ep.effective_date.as_deref(), Some(NOW));
        assert_eq!(ep.endpoint_status.as_deref(), Some("ACTIVE"));
        assert_eq!(ep.opt_out.as_deref(), Some("NONE"));
        assert_eq!(ep.cohort_id, Some(cohort_of("ep-1").to_string()));
        assert_eq!(ep.request_id, None);
        assert_eq!(ep.channel_type.as_deref(), Some("SMS"));
        assert_eq!(ep.address.as_deref(), Some("+1"));
    }

    #[test]
    fn update_is_partial() {
        let first = merge_update(
            None,
            APP,
            "ep-1",
            &req(json!({
                "Address": "a@example.com", "ChannelType": "EMAIL", "OptOut": "ALL",
                "Attributes": {"Interests": ["cooking", "travel"], "Tier": ["1"]},
                "Metrics": {"purchases": 3.0, "visits": 1.0},
                "Demographic": {"Platform": "ios", "Timezone": "America/Los_Angeles"},
                "Location": {"City": "Seattle", "Latitude": 47.6, "Longitude": -122.3},
                "User": {"UserId": "u-1", "UserAttributes": {"Plan": ["gold"], "Age": ["30"]}}
            })),
            NOW,
        );
        let second = merge_update(
            Some(&first),
            "ignored-app-id-is-reset",
            "ep-1",
            &req(json!({
                "Attributes": {"Interests": ["music"], "Tier": []},
                "Metrics": {"purchases": 4.0},
                "Demographic": {"Platform": "android", "Timezone": ""},
                "Location": {"Latitude": 1.0},
                "User": {"UserAttributes": {"Plan": ["free"]}},
                "EffectiveDate": "2024-05-02T10:00:00+02:00"
            })),
            LATER,
        );
        assert_eq!(second.address.as_deref(), Some("a@example.com"));
        assert_eq!(second.channel_type.as_deref(), Some("EMAIL"));
        assert_eq!(
            second.opt_out.as_deref(),
            Some("ALL"),
            "OptOut is kept when absent"
        );
        assert_eq!(
            second.attributes,
            Some(BTreeMap::from([(
                "Interests".to_string(),
                vec!["music".to_string()]
            )]))
        );
        assert_eq!(
            second.metrics,
            Some(BTreeMap::from([
                ("purchases".to_string(), 4.0),
                ("visits".to_string(), 1.0)
            ]))
        );
        let d = second.demographic.as_ref().unwrap();
        assert_eq!(d.platform.as_deref(), Some("android"));
        assert_eq!(d.timezone, None, "empty string clears");
        let l = second.location.as_ref().unwrap();
        assert_eq!(
            (l.city.as_deref(), l.latitude, l.longitude),
            (Some("Seattle"), Some(1.0), Some(-122.3))
        );
        let u = second.user.as_ref().unwrap();
        assert_eq!(u.user_id.as_deref(), Some("u-1"));
        assert_eq!(
            u.user_attributes,
            Some(BTreeMap::from([
                ("Age".to_string(), vec!["30".to_string()]),
                ("Plan".to_string(), vec!["free".to_string()])
            ]))
        );
        assert_eq!(second.creation_date.as_deref(), Some(NOW));
        assert_eq!(
            second.effective_date.as_deref(),
            Some("2024-05-02T08:00:00.000Z")
        );
        assert_eq!(second.cohort_id, first.cohort_id);
        assert_eq!(
            second.application_id.as_deref(),
            Some("ignored-app-id-is-reset")
        );
    }

    #[test]
    fn status_reactivates_and_user_can_be_cleared() {
        let mut ep = merge_update(None, APP, "e", &req(json!({"User": {"UserId": "u"}})), NOW);
        ep.endpoint_status = Some("INACTIVE".into());
        ep.request_id = Some("old".into());
        let ep = merge_update(Some(&ep), APP, "e", &req(json!({"Address": "x"})), LATER);
        assert_eq!(ep.endpoint_status.as_deref(), Some("ACTIVE"));
        assert_eq!(ep.request_id, None);
        assert_eq!(user_id(&ep), Some("u"));
        let ep = merge_update(
            Some(&ep),
            APP,
            "e",
            &req(json!({"EndpointStatus": "INACTIVE"})),
            LATER,
        );
        assert_eq!(ep.endpoint_status.as_deref(), Some("INACTIVE"));
        let ep = merge_update(
            Some(&ep),
            APP,
            "e",
            &req(json!({"User": {"UserId": ""}})),
            LATER,
        );
        assert_eq!(user_id(&ep), None);
        assert_eq!(ep.user.as_ref().unwrap().user_id, None);
    }

    #[test]
    fn stored_cohort_and_creation_date_are_kept() {
        let existing = EndpointResponse {
            cohort_id: Some("63".into()),
            creation_date: Some("2019-01-28T23:55:11.534Z".into()),
            ..Default::default()
        };
        let ep = merge_update(
            Some(&existing),
            APP,
            "testendpoint",
            &EndpointRequest::default(),
            NOW,
        );
        assert_eq!(ep.cohort_id.as_deref(), Some("63"));
        assert_eq!(
            ep.creation_date.as_deref(),
            Some("2019-01-28T23:55:11.534Z")
        );
    }

    #[test]
    fn empty_attribute_list_on_create_adds_nothing() {
        let ep = merge_update(None, APP, "e", &req(json!({"Attributes": {"a": []}})), NOW);
        assert_eq!(ep.attributes, Some(BTreeMap::new()));
        assert_eq!(serde_json::to_value(&ep).unwrap()["Attributes"], json!({}));
    }

    #[test]
    fn remove_by_type_and_glob() {
        let mut ep = merge_update(
            None,
            APP,
            "e",
            &req(json!({
                "Attributes": {"Interests": ["a"], "InterestLevel": ["b"], "Tier": ["c"]},
                "Metrics": {"visits": 1.0, "purchases": 2.0},
                "User": {"UserAttributes": {"Plan": ["gold"]}}
            })),
            NOW,
        );
        assert!(!remove_attributes(
            &mut ep,
            "endpoint-custom-attributes",
            &[]
        ));
        assert!(!remove_attributes(
            &mut ep,
            "endpoint-custom-attributes",
            &["Nope".into()]
        ));
        assert!(!remove_attributes(&mut ep, "bogus", &["*".into()]));
        assert!(remove_attributes(
            &mut ep,
            "endpoint-custom-attributes",
            &["Interest*".into()]
        ));
        assert_eq!(
            ep.attributes.as_ref().unwrap().keys().collect::<Vec<_>>(),
            ["Tier"]
        );
        assert!(remove_attributes(
            &mut ep,
            "endpoint-metric-attributes",
            &["visits".into()]
        ));
        assert_eq!(
            ep.metrics.as_ref().unwrap().keys().collect::<Vec<_>>(),
            ["purchases"]
        );
        assert!(remove_attributes(
            &mut ep,
            "endpoint-user-attributes",
            &["*".into()]
        ));
        assert_eq!(
            ep.user.as_ref().unwrap().user_attributes,
            Some(BTreeMap::new())
        );
        assert!(!remove_attributes(
            &mut ep,
            "endpoint-user-attributes",
            &["*".into()]
        ));
        let mut bare = EndpointResponse::default();
        assert!(!remove_attributes(
            &mut bare,
            "endpoint-user-attributes",
            &["*".into()]
        ));
    }

    #[test]
    fn globs() {
        for (p, s, want) in [
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("abc", "abc", true),
            ("abc", "Abc", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*c", "ac", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*.start", "_session.start", true),
            ("_session.*", "_session.stop", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxcyyb", false),
            ("**", "x", true),
            ("é?", "éü", true),
        ] {
            assert_eq!(glob_match(p, s), want, "{p:?} vs {s:?}");
        }
    }

    // --- property tests -------------------------------------------------

    fn text() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![Just(String::new()), "[a-z]{1,6}"])
    }

    fn attr_map() -> impl Strategy<Value = Option<AttributeMap>> {
        prop::option::of(prop::collection::btree_map(
            "[a-d]",
            prop::collection::vec("[a-z]{0,3}", 0..3),
            0..4,
        ))
    }

    prop_compose! {
        fn arb_request()(
            address in text(),
            channel_type in prop::option::of(prop::sample::select(crate::validate::CHANNEL_TYPES.to_vec())),
            attributes in attr_map(),
            metrics in prop::option::of(prop::collection::btree_map("[a-d]", -1e6f64..1e6, 0..4)),
            platform in text(),
            timezone in text(),
            city in text(),
            latitude in prop::option::of(-90f64..=90.0),
            user in prop::option::of((text(), attr_map())),
            effective_ms in prop::option::of(0i64..4_000_000_000_000),
            status in prop::option::of(prop::sample::select(vec!["ACTIVE", "INACTIVE"])),
            opt_out in prop::option::of(prop::sample::select(vec!["ALL", "NONE"])),
        ) -> EndpointRequest {
            EndpointRequest {
                address,
                attributes,
                channel_type: channel_type.map(str::to_string),
                demographic: Some(EndpointDemographic { platform, timezone, ..Default::default() }),
                effective_date: effective_ms.map(format_iso8601_ms),
                endpoint_status: status.map(str::to_string),
                location: Some(EndpointLocation { city, latitude, ..Default::default() }),
                metrics,
                opt_out: opt_out.map(str::to_string),
                request_id: Some("client-supplied".into()),
                user: user.map(|(user_id, user_attributes)| EndpointUser { user_id, user_attributes }),
            }
        }
    }

    proptest! {
        #[test]
        fn merge_is_idempotent(a in arb_request(), b in arb_request()) {
            let first = merge_update(None, APP, "ep", &a, NOW);
            let once = merge_update(Some(&first), APP, "ep", &b, LATER);
            let twice = merge_update(Some(&once), APP, "ep", &b, LATER);
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn empty_request_changes_only_status_and_dates(a in arb_request()) {
            let before = merge_update(None, APP, "ep", &a, NOW);
            let after = merge_update(Some(&before), APP, "ep", &EndpointRequest::default(), LATER);
            let mut expect = before.clone();
            expect.effective_date = Some(LATER.to_string());
            expect.endpoint_status = Some("ACTIVE".into());
            prop_assert_eq!(after, expect);
        }

        #[test]
        fn server_members_hold(a in arb_request(), b in arb_request(), id in "[a-zA-Z0-9-]{1,12}") {
            let first = merge_update(None, APP, &id, &a, NOW);
            let second = merge_update(Some(&first), APP, &id, &b, LATER);
            for ep in [&first, &second] {
                prop_assert_eq!(ep.id.as_deref(), Some(id.as_str()));
                prop_assert_eq!(ep.application_id.as_deref(), Some(APP));
                prop_assert_eq!(ep.creation_date.as_deref(), Some(NOW));
                let cohort: u32 = ep.cohort_id.as_deref().unwrap().parse().unwrap();
                prop_assert!(cohort < 100);
                prop_assert!(ep.request_id.is_none());
                prop_assert!(ep.endpoint_status.is_some() && ep.opt_out.is_some());
                prop_assert!(parse_iso8601_ms(ep.effective_date.as_deref().unwrap()).is_ok());
            }
            prop_assert_eq!(&first.cohort_id, &second.cohort_id);
        }

        #[test]
        fn request_keys_win_and_others_survive(a in arb_request(), b in arb_request()) {
            let first = merge_update(None, APP, "ep", &a, NOW);
            let merged = merge_update(Some(&first), APP, "ep", &b, LATER);
            let stored = merged.attributes.clone().unwrap_or_default();
            let old = first.attributes.clone().unwrap_or_default();
            let given = b.attributes.clone().unwrap_or_default();
            for (k, v) in &given {
                if v.is_empty() {
                    prop_assert!(!stored.contains_key(k));
                } else {
                    prop_assert_eq!(stored.get(k), Some(v));
                }
            }
            for (k, v) in &old {
                if !given.contains_key(k) {
                    prop_assert_eq!(stored.get(k), Some(v));
                }
            }
            for k in stored.keys() {
                prop_assert!(old.contains_key(k) || given.contains_key(k));
            }
            // Stored attribute lists are never empty.
            prop_assert!(stored.values().all(|v| !v.is_empty()));
            // Metrics: union, request wins.
            let m = merged.metrics.clone().unwrap_or_default();
            for (k, v) in b.metrics.iter().flatten() {
                prop_assert_eq!(m.get(k), Some(v));
            }
            for (k, v) in first.metrics.iter().flatten() {
                if !b.metrics.as_ref().is_some_and(|bm| bm.contains_key(k)) {
                    prop_assert_eq!(m.get(k), Some(v));
                }
            }
        }

        #[test]
        fn scalar_fields_follow_the_table(a in arb_request(), b in arb_request()) {
            let first = merge_update(None, APP, "ep", &a, NOW);
            let merged = merge_update(Some(&first), APP, "ep", &b, LATER);
            let want_addr = match b.address.as_deref() {
                None => first.address.clone(),
                Some("") => None,
                Some(v) => Some(v.to_string()),
            };
            prop_assert_eq!(merged.address, want_addr);
            prop_assert_eq!(merged.channel_type, b.channel_type.clone().or(first.channel_type.clone()));
            prop_assert_eq!(
                merged.endpoint_status.as_deref(),
                Some(b.endpoint_status.as_deref().unwrap_or("ACTIVE"))
            );
            prop_assert_eq!(merged.opt_out, b.opt_out.clone().or(first.opt_out.clone()));
            let want_eff = b.effective_date.clone().unwrap_or_else(|| LATER.to_string());
            prop_assert_eq!(merged.effective_date, Some(want_eff));
        }

        #[test]
        fn glob_star_matches_everything_and_literal_matches_itself(s in "\\PC{0,12}") {
            prop_assert!(glob_match("*", &s));
            if !s.contains(['*', '?']) {
                prop_assert!(glob_match(&s, &s));
                let with_suffix = format!("{s}x");
                prop_assert!(!glob_match(&s, &with_suffix));
            }
        }
    }
}

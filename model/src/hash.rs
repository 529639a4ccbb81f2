//! Data-placement and cohort hashes.
//!
//! **These functions are FIXED FOREVER.** `shard_of` decides which shard (Raft
//! group) owns a key, and shards never re-hash: S is chosen at cluster creation
//! and never changes; shards move between nodes instead. `cohort_of` decides
//! an endpoint's `CohortId`, which drives holdouts and A/B splits. Changing
//! either silently moves data or re-assigns users. The pinned-value tests below
//! must never be edited to make a change pass.
//!
//! Definition: `shard_of(app, key, S) = xxh3_64(app ‖ 0x00 ‖ key) mod S` with
//! seed 0 (XXH3-64, xxHash v0.8). App ids are hex, so the 0x00 separator keeps
//! `(app, key)` pairs unambiguous.

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// Default number of shards per cluster; fixed at cluster creation.
pub const DEFAULT_SHARDS: u32 = 64;

/// Number of cohorts (`CohortId` is `"0"`..=`"99"`).
pub const COHORTS: u32 = 100;

/// The shard that owns `key` (an endpoint id, or a user id for the user index)
/// of app `app_id`, in `0..shards`. Panics if `shards == 0`.
pub fn shard_of(app_id: &str, key: &str, shards: u32) -> u32 {
    assert!(shards > 0, "shard count must be positive");
    let mut h = Xxh3::new();
    h.update(app_id.as_bytes());
    h.update(&[0x00]);
    h.update(key.as_bytes());
    (h.digest() % u64::from(shards)) as u32
}

/// The cohort, `0..100`, of an endpoint: `xxh3_64("cohort" ‖ 0x00 ‖ endpoint_id) mod 100`.
/// Depends on the endpoint id only, so it is stable across updates and apps.
pub fn cohort_of(endpoint_id: &str) -> u32 {
    let mut h = Xxh3::new();
    h.update(b"cohort\x00");
    h.update(endpoint_id.as_bytes());
    (h.digest() % u64::from(COHORTS)) as u32
}

/// Plain XXH3-64 (seed 0) of `bytes`; exposed so other crates hash the same way.
pub fn xxh3(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh3_reference_vectors() {
        // Published XXH3-64 test vectors (seed 0), so the library itself is pinned.
        assert_eq!(xxh3(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(xxh3(b"a"), 0xE6C6_32B6_1E96_4E1F);
        assert_eq!(xxh3(b"abc"), 0x78AF_5F94_892F_3950);
    }

    #[test]
    fn shard_of_is_the_documented_definition() {
        for (app, key) in [
            ("a", "b"),
            ("0f3a2b1c4d5e6f708192a3b4c5d6e7f8", "ep-1"),
            ("", ""),
        ] {
            let mut bytes = app.as_bytes().to_vec();
            bytes.push(0);
            bytes.extend_from_slice(key.as_bytes());
            let expect = (xxh3_64(&bytes) % 64) as u32;
            assert_eq!(shard_of(app, key, 64), expect);
        }
    }

    #[test]
    fn pinned_placements_never_change() {
        let app = "0f3a2b1c4d5e6f708192a3b4c5d6e7f8";
        let got: Vec<u32> = ["ep-1", "ep-2", "user-42", "", "Ünïcødé"]
            .iter()
            .map(|k| shard_of(app, k, DEFAULT_SHARDS))
            .collect();
        assert_eq!(got, PINNED_SHARDS);
        assert_eq!(shard_of(app, "ep-1", 1), 0);
        assert_eq!(shard_of(app, "ep-1", 7), PINNED_EP1_MOD7);
        assert_eq!(shard_of(app, "ep-1", u32::MAX), PINNED_EP1_MODMAX);
    }

    #[test]
    fn pinned_cohorts_never_change() {
        let got: Vec<u32> = ["ep-1", "ep-2", "testendpoint", ""]
            .iter()
            .map(|e| cohort_of(e))
            .collect();
        assert_eq!(got, PINNED_COHORTS);
    }

    #[test]
    fn separator_disambiguates() {
        // ("ab", "c") and ("a", "bc") hash different byte strings.
        let x = shard_of("ab", "c", u32::MAX);
        let y = shard_of("a", "bc", u32::MAX);
        assert_ne!(x, y);
    }

    #[test]
    fn spreads_keys_over_shards() {
        let mut counts = [0u32; DEFAULT_SHARDS as usize];
        for i in 0..64_000 {
            counts[shard_of("app", &format!("endpoint-{i}"), DEFAULT_SHARDS) as usize] += 1;
        }
        // Expected 1000 per shard; a broken hash would be far off.
        assert!(
            counts.iter().all(|&c| (850..=1150).contains(&c)),
            "{counts:?}"
        );
        let mut cohorts = [0u32; COHORTS as usize];
        for i in 0..100_000 {
            cohorts[cohort_of(&format!("endpoint-{i}")) as usize] += 1;
        }
        assert!(
            cohorts.iter().all(|&c| (850..=1150).contains(&c)),
            "{cohorts:?}"
        );
    }

    #[test]
    #[should_panic(expected = "shard count must be positive")]
    fn zero_shards_is_a_bug() {
        shard_of("a", "b", 0);
    }

    // Values recorded from the first implementation. Never edit.
    const PINNED_SHARDS: [u32; 5] = [3, 30, 27, 18, 28];
    const PINNED_EP1_MOD7: u32 = 1;
    const PINNED_EP1_MODMAX: u32 = 3_418_778_107;
    const PINNED_COHORTS: [u32; 4] = [7, 40, 22, 74];
}

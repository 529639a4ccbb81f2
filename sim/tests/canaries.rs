//! The simulator catches planted bugs within 50 seeds: each canary run
//! must end in a violation of the invariant that bug breaks.

use herald_sim::canary::Canary;
use herald_sim::run::{run, Options};

/// The first seed below 50 whose run breaks `invariant` with `canary`
/// planted.
fn first_catch(canary: Canary, invariants: &[&str]) -> Option<(u64, String)> {
    let opts = Options {
        canary: Some(canary),
        ..Options::default()
    };
    (0..50).find_map(|seed| {
        let r = run(seed, &opts);
        r.violations
            .iter()
            .find(|v| invariants.contains(&v.invariant))
            .map(|v| (seed, v.to_string()))
    })
}

#[test]
fn acknowledging_appends_before_they_are_durable_is_caught() {
    let caught = first_catch(
        Canary::AckBeforeDurable,
        &[
            "acknowledged writes survive",
            "endpoint reads are linearizable",
            "committed entries never change",
            "no node panics",
        ],
    );
    assert!(
        caught.is_some(),
        "no seed below 50 caught ack-before-durable"
    );
    eprintln!("ack-before-durable caught: {caught:?}");
}

#[cfg(feature = "canaries")]
#[test]
fn sending_before_the_intent_is_committed_is_caught() {
    let caught = first_catch(Canary::SendBeforeIntent, &["sent at most once"]);
    assert!(
        caught.is_some(),
        "no seed below 50 caught send-before-intent"
    );
    eprintln!("send-before-intent caught: {caught:?}");
}

#[cfg(feature = "canaries")]
#[test]
fn applying_an_opt_out_after_the_send_decision_is_caught() {
    let caught = first_catch(
        Canary::OptOutAfterDecision,
        &["opted-out endpoints receive no campaign"],
    );
    assert!(
        caught.is_some(),
        "no seed below 50 caught opt-out-after-decision"
    );
    eprintln!("opt-out-after-decision caught: {caught:?}");
}

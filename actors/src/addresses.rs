//! Handing an address over to the endpoint that claims it.
//!
//! Pinpoint's rule: when an endpoint is created or updated with an address
//! another endpoint has, the other becomes INACTIVE. The endpoint write
//! reports a claim (and keeps it as a pending row in its own shard, in the
//! same atomic apply). [`hand_over`] then records the claimant as the holder
//! in the address's shard and deactivates the endpoints it displaces. The
//! request path calls it before answering; each shard's sweep calls it again
//! for pending rows and then clears them, which finishes a hand-over that a
//! stopped node left half done. Both steps are idempotent, and claims carry
//! their write time, so a late hand-over never displaces a newer endpoint.

use std::collections::BTreeMap;

use futures::future::join_all;
use herald_cluster::RaftHost;
use herald_storage::{keys, AddressClaim, CmdResult, Command, GroupId, KvEngine};

use crate::service::{Result, ServiceError};

fn refused(r: CmdResult) -> Result<CmdResult> {
    match r {
        CmdResult::Rejected(reason) => Err(ServiceError::Internal(format!(
            "address hand-over refused: {reason}"
        ))),
        other => Ok(other),
    }
}

/// Makes each claiming endpoint of `app_id` the holder of its address (in
/// order) and sets the endpoints it displaces INACTIVE.
pub async fn hand_over<E: KvEngine>(
    host: &RaftHost<E>,
    app_id: &str,
    claims: Vec<AddressClaim>,
) -> Result<()> {
    if claims.is_empty() {
        return Ok(());
    }
    let mut by_group: BTreeMap<GroupId, Vec<AddressClaim>> = BTreeMap::new();
    for c in claims {
        let g = host.group_of(app_id, &keys::address_shard_key(&c.channel, &c.address));
        by_group.entry(g).or_default().push(c);
    }
    let proposals = by_group.into_iter().map(|(g, claims)| {
        let cmd = Command::ClaimAddresses {
            app_id: app_id.to_owned(),
            claims,
        };
        host.propose(g, cmd)
    });
    let mut displaced: BTreeMap<GroupId, Vec<AddressClaim>> = BTreeMap::new();
    for r in join_all(proposals).await {
        if let CmdResult::Displaced(d) = refused(r?)? {
            for c in d {
                displaced
                    .entry(host.group_of(app_id, &c.endpoint_id))
                    .or_default()
                    .push(c);
            }
        }
    }
    let proposals = displaced.into_iter().map(|(g, displaced)| {
        let cmd = Command::DeactivateDisplaced {
            app_id: app_id.to_owned(),
            displaced,
        };
        host.propose(g, cmd)
    });
    for r in join_all(proposals).await {
        refused(r?)?;
    }
    Ok(())
}

/// Pending claims handed over per sweep at most.
pub const PENDING_PER_SWEEP: usize = 128;

/// Hands over the pending claims of `group` written before `before_ms`, then
/// clears them. Returns how many were cleared.
pub async fn finish_pending<E: KvEngine>(
    host: &RaftHost<E>,
    group: GroupId,
    before_ms: i64,
) -> Result<u64> {
    let pending: Vec<(String, AddressClaim)> = host
        .reader()
        .pending_claims(group, PENDING_PER_SWEEP)?
        .into_iter()
        .filter(|(_, c)| c.at_ms < before_ms)
        .collect();
    if pending.is_empty() {
        return Ok(0);
    }
    let mut by_app: BTreeMap<&str, Vec<AddressClaim>> = BTreeMap::new();
    for (app, c) in &pending {
        by_app.entry(app).or_default().push(c.clone());
    }
    for (app, claims) in by_app {
        hand_over(host, app, claims).await?;
    }
    match refused(
        host.propose(group, Command::ClearPendingClaims { claims: pending })
            .await?,
    )? {
        CmdResult::Count(n) => Ok(n),
        _ => Ok(0),
    }
}

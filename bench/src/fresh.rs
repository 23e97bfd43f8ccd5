//! Does every server hold the newest record of every client? Asked the only way a client
//! can: WHATSAT each client at each server, comparing the AT line's client time with the
//! newest check-in the server acknowledged.

use std::time::Duration;

use futures::future::try_join_all;
use tokio::time::Instant;

use super::conn::Conn;
use super::targets::Target;

/// Connections per server for the check, so a slow places provider does not serialise it.
const CHECKERS_PER_SERVER: usize = 8;

/// Pause between passes over the records not yet fresh.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The outcome of a check over clients x servers.
pub(crate) struct Freshness {
    /// Client-server pairs checked.
    pub(crate) pairs: u64,
    /// Pairs whose server still held an older record (or none) after the time allowed.
    pub(crate) stale: u64,
    /// How long until every pair was fresh (or the check gave up).
    pub(crate) took: Duration,
}

/// Checks that each server in `targets` holds, for each `(client, time)` of `newest`, a
/// record at least that new. Pairs not yet fresh are asked again until `allowed` has passed;
/// a pair counts as stale only if it is still stale when asked after that.
pub(crate) async fn check(
    targets: &[Target],
    newest: &[(String, i64)],
    allowed: Duration,
) -> Result<Freshness, String> {
    let start = Instant::now();
    let deadline = start + allowed;
    let checkers = targets.iter().flat_map(|t| {
        (0..CHECKERS_PER_SERVER.min(newest.len())).map(move |k| {
            let mine: Vec<(String, i64)> = newest
                .iter()
                .skip(k)
                .step_by(CHECKERS_PER_SERVER)
                .cloned()
                .collect();
            checker(t.clone(), mine, deadline)
        })
    });
    let stale: u64 = try_join_all(checkers).await?.into_iter().sum();
    Ok(Freshness {
        pairs: (newest.len() * targets.len()) as u64,
        stale,
        took: start.elapsed(),
    })
}

/// One connection's share of the check; returns how many of its pairs stayed stale.
async fn checker(
    target: Target,
    mut pending: Vec<(String, i64)>,
    deadline: Instant,
) -> Result<u64, String> {
    let mut conn = Conn::open(target.addr, 32 * 1024).await?;
    loop {
        let last_pass = Instant::now() >= deadline;
        let mut still = Vec::new();
        for (client, time) in pending {
            let held = conn.held_time(&client).await?;
            if held.is_none_or(|held| held < time) {
                still.push((client, time));
            }
        }
        pending = still;
        if pending.is_empty() || last_pass {
            return Ok(pending.len() as u64);
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

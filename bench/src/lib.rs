//! `herd bench SCENARIO`: a load generator for any herd that speaks the herd protocol
//! (docs/protocol.md).
//!
//! Layout:
//! - `iamat` scenario: check-ins at full speed, each one a flood; then no record may be stale.
//! - `whatsat` scenario: WHATSAT for one seeded client at full speed; upstream calls per ask.
//! - `flood` scenario: time from an IAMAT at one server until every other server holds it.
//! - `conns` scenario: many idle connections to one server; memory per connection, RTT.
//! - `startup` scenario: time from exec of a server command until it accepts connections.
//! - `resync` scenario (proxy-herd only): two servers with large stores that differ,
//!   reconciling on link-up; time, bytes, memory and CPU of the sync.
//! - `check_in`: one client checking in, each time later than before; the run's client ids.
//! - `closed_loop`: C connections each keeping D requests in flight, timed into a histogram.
//! - `fresh`: whether every server holds the newest record of every client.
//! - `conn`: one client connection: send lines, read whole replies.
//! - `targets`: which servers to load (`--servers`, `--config`, `--at`), on loopback only.
//! - `limits`: the bounds on connections and seconds that keep a run a benchmark.
//! - `procfs`: CPU time, resident memory and open files of a process, from `/proc`.
//! - `progress`: the once-a-second line on stderr.
//! - `report`: the summary, for people or as one JSON line.
//!
//! Imports run down this list: scenarios use the parts below them, never one another, and
//! nothing imports a scenario but this root.
//!
//! It talks to servers only as a client would (IAMAT and WHATSAT over TCP), so the same
//! figures can be taken of proxy-herd and of any other herd, such as a Python baseline. It
//! runs on a tokio runtime of its own, apart from the actix server code, and every run is
//! bounded: in connections, in time, and to loopback targets unless `--allow-remote`.
//!
//! The `herd` binary needs only [`Scenario`], the clap subcommand, and [`run`]; everything
//! else is private to this crate. (Each scenario's `Args` is `pub` only because it is the
//! payload of a `Scenario` variant; outside this crate it cannot be named or built.)

#![warn(missing_docs, unreachable_pub)]

mod check_in;
mod closed_loop;
mod conn;
mod conns;
mod flood;
mod fresh;
mod iamat;
mod limits;
mod procfs;
mod progress;
mod report;
mod resync;
mod startup;
mod targets;
mod whatsat;

use clap::Subcommand;

/// One way to load a herd.
#[derive(Subcommand, Debug)]
pub enum Scenario {
    /// Check-ins at full speed, each newer than the last for its client, so each one floods.
    Iamat(iamat::Args),
    /// WHATSAT for one seeded client at full speed; optionally counts upstream calls.
    Whatsat(whatsat::Args),
    /// Time from an IAMAT at one server until every other server answers WHATSAT with it.
    Flood(flood::Args),
    /// Many idle connections to one server: memory per connection, and RTT while they are open.
    Conns(conns::Args),
    /// Time from exec of a server command until its address accepts connections.
    Startup(startup::Args),
    /// Two proxy-herd servers with large stores that differ: the link-up reconciliation.
    Resync(resync::Args),
}

/// Runs one scenario and prints its summary.
pub fn run(scenario: Scenario) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the load generator's runtime: {e}"))?;
    let (report, json) = match scenario {
        Scenario::Iamat(args) => {
            let json = args.common.json;
            (runtime.block_on(iamat::run(args))?, json)
        }
        Scenario::Whatsat(args) => {
            let json = args.common.json;
            (runtime.block_on(whatsat::run(args))?, json)
        }
        Scenario::Flood(args) => {
            let json = args.common.json;
            (runtime.block_on(flood::run(args))?, json)
        }
        Scenario::Conns(args) => {
            let json = args.common.json;
            (runtime.block_on(conns::run(args))?, json)
        }
        Scenario::Startup(args) => {
            let json = args.common.json;
            (startup::run(args)?, json)
        }
        Scenario::Resync(args) => {
            let json = args.json;
            (resync::run(args)?, json)
        }
    };
    report.print(json);
    Ok(())
}

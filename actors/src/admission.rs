//! Which connections a server takes.
//!
//! Client connections are capped in all and, optionally, per address. A connection past a
//! cap is closed at once and counted, never left waiting: the accept loop always takes it,
//! so the listen backlog never fills with connections nobody answers.
//!
//! Neighbours dial in through the same door, and must get in even when clients have taken
//! every place: a few connections past the cap (two per neighbour) are let in *on
//! probation*. Their first line must be a peer hello, within the handshake time-out, or
//! they are closed; so a flood of clients cannot cut a server off from its herd.
//!
//! Each admitted connection holds a [`Ticket`] for as long as it is open; dropping the
//! ticket gives its place back, so the counts cannot drift from the connections held.
//!
//! The accept loop admits on the server's home thread, and a ticket is dropped on the
//! worker thread its connection lives on (`workers`), so the counts sit behind a mutex:
//! taken twice in a connection's life, at its accept and at its close, never per line.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    /// Client connections open at once.
    pub(crate) total: usize,
    /// Client connections open at once from one address.
    pub(crate) per_ip: Option<usize>,
    /// Connections let in on probation past the caps, for neighbours.
    pub(crate) probation: usize,
    /// The worker threads the connections are spread over (at least 1).
    pub(crate) workers: usize,
    /// Whether the home thread (worker 0) takes connections too; when not, workers 1 to
    /// `workers` do (see `listener::workers`).
    pub(crate) home_serves: bool,
}

/// The counts, shared with the tickets.
#[derive(Debug, Default)]
struct Counts {
    open: usize,
    on_probation: usize,
    by_ip: HashMap<IpAddr, usize>,
    /// Connections open on each worker, clients' and those on probation.
    by_worker: Vec<usize>,
}

/// Counts open connections against the caps.
#[derive(Debug)]
pub(crate) struct Admission {
    caps: Caps,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection's place.
#[derive(Debug)]
pub(crate) struct Ticket {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
    probation: bool,
    worker: usize,
}

impl Admission {
    pub(crate) fn new(caps: Caps) -> Self {
        let slots = caps.workers.max(1) + usize::from(!caps.home_serves);
        let counts = Counts {
            by_worker: vec![0; slots],
            ..Counts::default()
        };
        Admission {
            caps,
            counts: Arc::new(Mutex::new(counts)),
        }
    }

    /// A place for a connection from `ip` (past the caps, one on probation: it may only
    /// become a peer link), or which cap was reached: close it now.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Ticket, &'static str> {
        let mut counts = lock(&self.counts);
        let from_ip = counts.by_ip.get(&ip).copied().unwrap_or(0);
        let full = if counts.open >= self.caps.total {
            Some("too many connections")
        } else if self.caps.per_ip.is_some_and(|cap| from_ip >= cap) {
            Some("too many connections from this address")
        } else {
            None
        };
        let Some(why) = full else {
            counts.open += 1;
            counts.by_ip.insert(ip, from_ip + 1);
            return Ok(self.ticket(&mut counts, ip, false));
        };
        if counts.on_probation < self.caps.probation {
            counts.on_probation += 1;
            return Ok(self.ticket(&mut counts, ip, true));
        }
        Err(why)
    }

    /// A ticket for a connection from `ip`, on the worker with the fewest connections open:
    /// connections live long and end unevenly, so taking turns would let the workers drift
    /// apart.
    fn ticket(&self, counts: &mut Counts, ip: IpAddr, probation: bool) -> Ticket {
        let (worker, open) = counts
            .by_worker
            .iter_mut()
            .enumerate()
            .skip(usize::from(!self.caps.home_serves))
            .min_by_key(|(_, open)| **open)
            .expect("there is at least one worker besides a home that serves none");
        *open += 1;
        Ticket {
            counts: Arc::clone(&self.counts),
            ip,
            probation,
            worker,
        }
    }
}

impl Ticket {
    /// Whether this connection was let in past the caps, to become a peer link or go.
    pub(crate) fn on_probation(&self) -> bool {
        self.probation
    }

    /// The worker thread this connection is to live on, counting from 0.
    pub(crate) fn worker(&self) -> usize {
        self.worker
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(open) = counts.by_worker.get_mut(self.worker) {
            *open -= 1;
        }
        if self.probation {
            counts.on_probation -= 1;
            return;
        }
        counts.open -= 1;
        if let Some(n) = counts.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.by_ip.remove(&self.ip);
            }
        }
    }
}

/// The counts, whichever thread held them last: no code under the lock panics (plain
/// arithmetic and a map), so a poisoned lock still holds true counts.
fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The client connections a server can hold with `open_files` descriptors, keeping
/// `reserved` for everything else (its links, the inbound links of its neighbours, calls
/// to the places provider, the event log and the listener), and within `configured`.
pub(crate) fn connection_cap(configured: Option<usize>, open_files: u64, reserved: usize) -> usize {
    let by_files = usize::try_from(open_files)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserved)
        .max(1);
    configured.map_or(by_files, |n| n.min(by_files))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    fn client(admit: Result<Ticket, &'static str>) -> Ticket {
        match admit {
            Ok(ticket) if !ticket.on_probation() => ticket,
            other => panic!("expected a client's place, got {other:?}"),
        }
    }

    #[test]
    fn tickets_give_their_place_back_when_dropped() {
        let admission = Admission::new(Caps {
            total: 2,
            per_ip: None,
            probation: 0,
            workers: 1,
            home_serves: true,
        });
        let a = client(admission.admit(A));
        let b = client(admission.admit(A));
        assert!(matches!(admission.admit(A), Err("too many connections")));
        drop(a);
        let c = client(admission.admit(A));
        assert!(admission.admit(B).is_err());
        drop((b, c));
        client(admission.admit(A));
    }

    #[test]
    fn one_address_is_capped_without_capping_the_others() {
        let admission = Admission::new(Caps {
            total: 10,
            per_ip: Some(2),
            probation: 0,
            workers: 1,
            home_serves: true,
        });
        let _a = [client(admission.admit(A)), client(admission.admit(A))];
        assert!(matches!(
            admission.admit(A),
            Err("too many connections from this address")
        ));
        client(admission.admit(B));
    }

    #[test]
    fn past_the_caps_a_few_connections_are_let_in_on_probation() {
        let admission = Admission::new(Caps {
            total: 1,
            per_ip: None,
            probation: 2,
            workers: 1,
            home_serves: true,
        });
        let _held = client(admission.admit(A));
        let first = admission.admit(A);
        assert!(matches!(&first, Ok(t) if t.on_probation()));
        let _second = admission.admit(B);
        assert!(admission.admit(A).is_err());
        drop(first);
        assert!(matches!(admission.admit(A), Ok(t) if t.on_probation()));
    }

    #[test]
    fn each_connection_goes_to_the_worker_with_the_fewest_open() {
        let admission = Admission::new(Caps {
            total: 10,
            per_ip: None,
            probation: 0,
            workers: 3,
            home_serves: true,
        });
        let mut held: Vec<Ticket> = (0..6).map(|_| client(admission.admit(A))).collect();
        let on = |held: &[Ticket]| held.iter().map(Ticket::worker).collect::<Vec<_>>();
        assert_eq!(on(&held), [0, 1, 2, 0, 1, 2]);
        // Worker 1's two connections close: the next two go there, then the turns resume.
        held.retain(|t| t.worker() != 1);
        let more: Vec<Ticket> = (0..3).map(|_| client(admission.admit(B))).collect();
        assert_eq!(on(&more), [1, 1, 0]);
    }

    #[test]
    fn a_home_that_serves_no_sessions_gets_no_connection() {
        let admission = Admission::new(Caps {
            total: 10,
            per_ip: None,
            probation: 1,
            workers: 2,
            home_serves: false,
        });
        let mut held: Vec<Ticket> = (0..4).map(|_| client(admission.admit(A))).collect();
        held.extend(admission.admit(A));
        let on: Vec<usize> = held.iter().map(Ticket::worker).collect();
        assert_eq!(on, [1, 2, 1, 2, 1]);
    }

    #[test]
    fn the_cap_follows_the_open_files_limit_less_a_reserve() {
        assert_eq!(connection_cap(None, 1024, 100), 924);
        assert_eq!(connection_cap(Some(500), 1024, 100), 500);
        assert_eq!(connection_cap(Some(5000), 1024, 100), 924);
        assert_eq!(connection_cap(None, 50, 100), 1);
    }
}

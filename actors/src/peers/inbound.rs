//! The listening side of a peer link: who may become a peer, and how they prove it.
//!
//! A connection whose first line is a `HERD-PEER` hello asks to become a peer link. It
//! becomes one only if it names a configured neighbour and this server, and, when the herd
//! has a secret, answers a fresh challenge with the right HMAC. Until then (and on every
//! other connection) `AT` lines are just invalid client input: a client can never inject a
//! record.

use std::sync::Arc;

use super::wire;

/// Who may dial this server.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    pub me: Arc<str>,
    pub neighbours: Vec<Arc<str>>,
    pub secret: Option<Arc<[u8]>>,
}

/// What the listener answers to a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Accepted without a secret: the connection is now a link from this neighbour.
    Welcome(Arc<str>),
    /// The dialler must prove it holds the secret for this nonce.
    Challenge { from: Arc<str>, nonce: String },
    /// Not a peer: say why and close.
    Refuse(String),
}

impl PeerPolicy {
    pub fn answer_hello(&self, line: &str) -> Answer {
        let Some((from, to)) = wire::parse_hello(line) else {
            return Answer::Refuse("malformed hello, expected HERD-PEER 1 <from> <to>".into());
        };
        if to != &*self.me {
            return Answer::Refuse(format!("this is {}, not {to}", self.me));
        }
        let Some(from) = self.neighbours.iter().find(|n| ***n == *from) else {
            return Answer::Refuse(format!("{from} is not a neighbour of {}", self.me));
        };
        if self.secret.is_none() {
            return Answer::Welcome(from.clone());
        }
        match wire::nonce() {
            Ok(nonce) => Answer::Challenge {
                from: from.clone(),
                nonce,
            },
            Err(e) => Answer::Refuse(format!("no randomness for a challenge: {e}")),
        }
    }

    /// Checks the dialler's `HERD-PROOF` line for the challenge it was sent.
    pub fn check_proof(&self, from: &str, nonce: &str, line: &str) -> Result<(), String> {
        let secret = self.secret.as_deref().ok_or("no secret to check against")?;
        let proof = wire::argument(line, wire::PROOF).ok_or("expected HERD-PROOF <hmac>")?;
        if wire::verify(secret, from, &self.me, nonce, proof) {
            Ok(())
        } else {
            Err(format!("wrong secret from {from}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(secret: Option<&[u8]>) -> PeerPolicy {
        PeerPolicy {
            me: "Smith".into(),
            neighbours: vec!["Hill".into(), "Campbell".into()],
            secret: secret.map(Arc::from),
        }
    }

    #[test]
    fn without_a_secret_only_neighbours_naming_this_server_get_in() {
        let p = policy(None);
        assert_eq!(
            p.answer_hello("HERD-PEER 1 Hill Smith"),
            Answer::Welcome("Hill".into())
        );
        assert!(matches!(
            p.answer_hello("HERD-PEER 1 Jaquez Smith"),
            Answer::Refuse(_)
        ));
        assert!(matches!(
            p.answer_hello("HERD-PEER 1 Hill Campbell"),
            Answer::Refuse(_)
        ));
        assert!(matches!(
            p.answer_hello("HERD-PEER 1 hill Smith"),
            Answer::Refuse(_)
        ));
        assert!(matches!(
            p.answer_hello("HERD-PEER Hill Smith"),
            Answer::Refuse(_)
        ));
    }

    #[test]
    fn with_a_secret_the_dialler_must_answer_the_challenge() {
        let p = policy(Some(b"k"));
        let Answer::Challenge { from, nonce } = p.answer_hello("HERD-PEER 1 Hill Smith") else {
            panic!("expected a challenge");
        };
        let good = format!("HERD-PROOF {}", wire::proof(b"k", "Hill", "Smith", &nonce));
        let bad = format!("HERD-PROOF {}", wire::proof(b"x", "Hill", "Smith", &nonce));
        assert_eq!(p.check_proof(&from, &nonce, &good), Ok(()));
        assert!(p.check_proof(&from, &nonce, &bad).is_err());
        assert!(p.check_proof("Campbell", &nonce, &good).is_err());
        assert!(p.check_proof(&from, &nonce, "IAMAT a +1+1 1").is_err());
    }
}

//! A scripted transport for unit tests: each message's tries are answered
//! from a script kept per recipient, so the retry, breaker and ledger logic
//! is tested without a socket.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::email::compose::Outgoing;

use super::{Attempt, Session, Transport};

/// One scripted answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `250 OK`.
    Accept,
    /// A 5xx for this recipient.
    Refuse,
    /// A 4xx ("try again later").
    Later,
    /// No connection at all (refused, like a server that is down).
    Drop,
    /// Nothing will work (a refused login).
    Fatal,
    /// Accepted after two seconds: a server far slower than the others.
    Slow,
}

/// Answers each try at a message to `address` with the next answer of that
/// address's script, then with `otherwise` once the script runs out; keeps
/// every try.
pub struct Scripted {
    scripts: Mutex<HashMap<String, Vec<Answer>>>,
    otherwise: Answer,
    /// Every try, in order: (recipient, answer given).
    pub tries: Mutex<Vec<(String, Answer)>>,
}

impl Scripted {
    /// Every message answered with `otherwise`.
    pub fn new(otherwise: Answer) -> Scripted {
        Scripted {
            scripts: Mutex::default(),
            otherwise,
            tries: Mutex::default(),
        }
    }

    /// The first tries at `address` answered with `answers`, in order.
    pub fn script(self, address: &str, answers: &[Answer]) -> Scripted {
        let mut reversed = answers.to_vec();
        reversed.reverse();
        self.scripts
            .lock()
            .expect("not poisoned")
            .insert(address.to_string(), reversed);
        self
    }

    /// The tries made at `address`.
    pub fn tries_at(&self, address: &str) -> usize {
        let tries = self.tries.lock().expect("not poisoned");
        tries.iter().filter(|(a, _)| a == address).count()
    }
}

impl Transport for Scripted {
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(self)
    }
}

/// Shared, so a test can hand it to a run as a relay and look at it after.
impl Transport for std::sync::Arc<Scripted> {
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(self.as_ref())
    }
}

impl Session for &Scripted {
    fn send(&mut self, message: &Outgoing) -> Attempt {
        let to = message
            .envelope()
            .to()
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        let answer = self
            .scripts
            .lock()
            .expect("not poisoned")
            .get_mut(&to)
            .and_then(Vec::pop)
            .unwrap_or(self.otherwise);
        self.tries
            .lock()
            .expect("not poisoned")
            .push((to.clone(), answer));
        match answer {
            Answer::Accept => Attempt::Sent("250 OK".into()),
            Answer::Refuse => Attempt::Permanent(format!("550 5.1.1 <{to}>: no such user")),
            Answer::Later => Attempt::Transient {
                reason: "451 4.3.0 try again later".into(),
                connection: false,
                reached: true,
            },
            Answer::Drop => Attempt::Transient {
                reason: "connection refused".into(),
                connection: true,
                reached: false,
            },
            Answer::Fatal => Attempt::Fatal(anyhow::anyhow!("535 login refused")),
            Answer::Slow => {
                std::thread::sleep(std::time::Duration::from_secs(2));
                Attempt::Sent("250 OK, at last".into())
            }
        }
    }
}

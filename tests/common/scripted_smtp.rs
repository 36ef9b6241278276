//! An SMTP server on loopback that answers what a test tells it to: a
//! reply of its own (multi-line or not) to `RCPT TO` for chosen addresses,
//! or to every `MAIL FROM` once it has taken so many messages (a sending
//! limit), which `tests/smtp_server.py`'s fixed faults cannot give.
//! Everything else is accepted and each message's recipient is counted.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A running server; it stops taking connections when dropped (the
/// listening thread ends with the test process).
pub struct ScriptedSmtp {
    pub port: u16,
    accepted: Arc<Mutex<Vec<String>>>,
}

/// What the server answers.
#[derive(Default, Clone)]
struct Script {
    /// `(address, reply)`: the reply to `RCPT TO` for that address.
    rcpt: Vec<(String, String)>,
    /// `(n, reply)`: the reply to every `MAIL FROM` once n messages are taken.
    limit: Option<(usize, String)>,
}

impl ScriptedSmtp {
    /// Starts a server that answers `RCPT TO:<address>` with the reply
    /// given for it in `rcpt` (each line ending CRLF, as sent), and `250`
    /// to every other command.
    pub fn start(rcpt: &[(&str, &str)]) -> ScriptedSmtp {
        ScriptedSmtp::run(Script {
            rcpt: rcpt
                .iter()
                .map(|(a, r)| (a.to_ascii_lowercase(), r.to_string()))
                .collect(),
            limit: None,
        })
    }

    /// Starts a server that takes `n` messages, then answers every `MAIL
    /// FROM` with `reply` (as a relay does once a sending limit is reached).
    pub fn with_limit(n: usize, reply: &str) -> ScriptedSmtp {
        ScriptedSmtp::run(Script {
            rcpt: Vec::new(),
            limit: Some((n, reply.to_string())),
        })
    }

    fn run(script: Script) -> ScriptedSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let seen = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (script, seen) = (script.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &script, &seen);
                });
            }
        });
        ScriptedSmtp { port, accepted }
    }

    /// The `[smtp]` table for a config pointing at this server.
    pub fn config(&self, extra: &str) -> String {
        super::smtp::loopback_config(self.port, &format!("timeout = 10\n{extra}"))
    }

    /// The envelope recipient of each message accepted, in order.
    pub fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, script: &Script, accepted: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    out.write_all(b"220 scripted ESMTP\r\n")?;
    let mut recipient = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply = if command.starts_with("EHLO") {
            "250-scripted\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".to_string()
        } else if command.starts_with("MAIL") {
            match &script.limit {
                Some((n, reply)) if accepted.lock().unwrap().len() >= *n => reply.clone(),
                _ => "250 2.1.0 ok\r\n".to_string(),
            }
        } else if command.starts_with("RCPT") {
            recipient = line
                .split_once(':')
                .map(|(_, a)| a.trim().trim_start_matches('<'))
                .and_then(|a| a.split('>').next())
                .unwrap_or_default()
                .to_ascii_lowercase();
            script
                .rcpt
                .iter()
                .find(|(address, _)| *address == recipient)
                .map_or_else(|| "250 2.1.5 ok\r\n".to_string(), |(_, r)| r.clone())
        } else if command == "DATA" {
            out.write_all(b"354 go on\r\n")?;
            loop {
                line.clear();
                if lines.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
            }
            accepted.lock().unwrap().push(recipient.clone());
            "250 2.0.0 queued\r\n".to_string()
        } else if command == "QUIT" {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            "250 ok\r\n".to_string()
        };
        out.write_all(reply.as_bytes())?;
    }
}

//! An SMTP server on loopback that answers what a test tells it to: a
//! reply of its own (multi-line or not) to `RCPT TO` for chosen addresses,
//! which `tests/smtp_server.py`'s fixed faults cannot give. Everything
//! else is accepted and each message's recipient is counted.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A running server; it stops taking connections when dropped (the
/// listening thread ends with the test process).
pub struct ScriptedSmtp {
    pub port: u16,
    accepted: Arc<Mutex<Vec<String>>>,
}

impl ScriptedSmtp {
    /// Starts a server that answers `RCPT TO:<address>` with the reply
    /// given for it in `rcpt` (each line ending CRLF, as sent), and `250`
    /// to every other command.
    pub fn start(rcpt: &[(&str, &str)]) -> ScriptedSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let rules: Arc<Vec<(String, String)>> = Arc::new(
            rcpt.iter()
                .map(|(a, r)| (a.to_ascii_lowercase(), r.to_string()))
                .collect(),
        );
        let seen = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (rules, seen) = (rules.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &rules, &seen);
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

fn serve(
    stream: TcpStream,
    rules: &[(String, String)],
    accepted: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
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
        } else if command.starts_with("RCPT") {
            recipient = line
                .split_once(':')
                .map(|(_, a)| a.trim().trim_start_matches('<'))
                .and_then(|a| a.split('>').next())
                .unwrap_or_default()
                .to_ascii_lowercase();
            rules
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

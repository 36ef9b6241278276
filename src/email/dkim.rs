//! DKIM signatures (RFC 6376; Ed25519 by RFC 8463), made with mail-auth
//! over the bytes of the message exactly as they are sent.
//!
//! Not lettre's signer: it signs each header name once (no over-signing),
//! with one key, and before lettre writes the top `Content-Type`, so that
//! header could not be covered. Here the whole message is formatted first,
//! then each key of `[email.dkim]` signs it and its `DKIM-Signature` header
//! goes on top.

use std::path::{Path, PathBuf};

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::config::Config;

/// The headers signed. Every name is listed twice in `h=`: the second
/// entry of a header the message has once matches no instance, so a
/// verifier hashes it as empty, and a second `From`, `Subject` or `To`
/// added in transit (which a reader's client may show instead) breaks the
/// signature (over-signing, RFC 6376 §8.15). A name the message lacks
/// (`Reply-To` without `email.reply_to`, `Auto-Submitted` in a digest, the
/// `List-*` headers in a confirmation request) is signed as absent, so it
/// cannot be added either.
const SIGNED: [&str; 23] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    // Never in our mail: signed as absent (RFC 6376 §5.4.1 lists them),
    // so none can be added.
    "Cc",
    "Sender",
    "In-Reply-To",
    "References",
    "List-Post",
    "List-Help",
    "List-Subscribe",
    "List-Owner",
    "List-Archive",
    "Resent-From",
];

/// A warning when no key signs for the domain of `email.from` (or one it
/// is under, or one under it): receivers check DMARC against the From
/// domain, and a signature for another domain does not count for it.
pub fn alignment_warning(config: &Config) -> Option<String> {
    if config.email.dkim.is_empty() {
        return None;
    }
    let from = config.email.from.email.domain().to_ascii_lowercase();
    let aligned = config.email.dkim.iter().any(|key| {
        let d = key.domain.to_ascii_lowercase();
        d == from || from.ends_with(&format!(".{d}")) || d.ends_with(&format!(".{from}"))
    });
    (!aligned).then(|| {
        format!(
            "no [email.dkim] key signs for {from}, the domain of email.from: receivers that check DMARC \
             find no aligned signature; sign with domain = \"{from}\""
        )
    })
}

/// Why the keys of `[email.dkim]` cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot read the DKIM key {path}: {source} (check email.dkim.key_file)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: {message} (email.dkim.key_file must be an unencrypted PEM RSA or Ed25519 private key)"
    )]
    Key { path: PathBuf, message: String },
    #[error("cannot sign with the DKIM key {path}: {message}")]
    Sign { path: PathBuf, message: String },
}

/// One key, ready to sign as its selector of its domain.
enum Key {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// The keys of `[email.dkim]`, read once (parsing a key per message would
/// cost more than sending it).
pub struct Signer {
    keys: Vec<(PathBuf, Key)>,
}

impl Signer {
    /// The keys of `config`, or `None` when it has none.
    pub fn load(config: &Config) -> Result<Option<Signer>, DkimError> {
        let mut keys = Vec::with_capacity(config.email.dkim.len());
        for dkim in &config.email.dkim {
            let text = read_key_file(&dkim.key_file)?;
            let key = match read_key(&text, &dkim.key_file)? {
                Parsed::Rsa(key) => Key::Rsa(
                    DkimSigner::from_key(key)
                        .domain(&dkim.domain)
                        .selector(&dkim.selector)
                        .headers(SIGNED.iter().chain(&SIGNED).copied()),
                ),
                Parsed::Ed25519(key) => Key::Ed25519(
                    DkimSigner::from_key(key)
                        .domain(&dkim.domain)
                        .selector(&dkim.selector)
                        .headers(SIGNED.iter().chain(&SIGNED).copied()),
                ),
            };
            keys.push((dkim.key_file.clone(), key));
        }
        Ok((!keys.is_empty()).then_some(Signer { keys }))
    }

    /// `message` (CRLF lines, as formatted to be sent) with a
    /// `DKIM-Signature` header on top for each key, the first key's first.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let mut headers = String::new();
        for (path, key) in &self.keys {
            let signature = match key {
                Key::Rsa(signer) => signer.sign(message),
                Key::Ed25519(signer) => signer.sign(message),
            }
            .map_err(|e| DkimError::Sign {
                path: path.clone(),
                message: e.to_string(),
            })?;
            headers.push_str(&signature.to_header());
        }
        let mut signed = Vec::with_capacity(headers.len() + message.len());
        signed.extend_from_slice(headers.as_bytes());
        signed.extend_from_slice(message);
        Ok(signed)
    }
}

/// Key files are small: a 4096-bit RSA key in PEM is about 3.3 KB.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The key file's bytes: a regular file (not a FIFO that never ends, nor
/// `/dev/zero`) of at most [`MAX_KEY_FILE`] bytes.
fn read_key_file(path: &Path) -> Result<Vec<u8>, DkimError> {
    use std::io::Read;
    let read = |source| DkimError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bad = |message: &str| DkimError::Key {
        path: path.to_path_buf(),
        message: message.into(),
    };
    let metadata = std::fs::metadata(path).map_err(read)?;
    if !metadata.is_file() {
        return Err(bad("not a regular file"));
    }
    let mut text = Vec::new();
    std::fs::File::open(path)
        .map_err(read)?
        .take(MAX_KEY_FILE + 1)
        .read_to_end(&mut text)
        .map_err(read)?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(bad("larger than 64 KiB, which no private key is"));
    }
    Ok(text)
}

enum Parsed {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

/// The PKCS#8 header of an Ed25519 private key (RFC 8410), before its
/// 32-byte seed: what a key file holding only the base64 seed lacks.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Reads a key file: PEM PKCS#8 (`BEGIN PRIVATE KEY`, RSA or Ed25519, as
/// `openssl genpkey` writes), PEM PKCS#1 (`BEGIN RSA PRIVATE KEY`), or an
/// Ed25519 seed alone in base64 (what lettre's signer took).
fn read_key(text: &[u8], path: &Path) -> Result<Parsed, DkimError> {
    let bad = |message: String| DkimError::Key {
        path: path.to_path_buf(),
        message,
    };
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let as_text = String::from_utf8_lossy(text);
    let private_keys = as_text
        .lines()
        .filter(|l| l.starts_with("-----BEGIN ") && l.contains("PRIVATE KEY"))
        .count();
    if private_keys > 1 {
        return Err(bad(
            "more than one private key in it: give each key a file and an [[email.dkim]] table of its own"
                .into(),
        ));
    }
    if as_text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || as_text.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(bad(
            "the key is encrypted; decrypt it with `openssl pkey -in KEY -out KEY.pem`".into(),
        ));
    }
    if as_text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        return Err(bad(
            "an OpenSSH key; convert it with `ssh-keygen -p -m PEM -f KEY`".into(),
        ));
    }
    if !as_text.contains("-----BEGIN ") {
        return match seed(as_text.trim()) {
            Some(der) => Ed25519Key::from_pkcs8_der(&der)
                .map(Parsed::Ed25519)
                .map_err(|e| bad(format!("not an Ed25519 key ({e})"))),
            None => Err(bad(
                "no PEM block (-----BEGIN ...-----) in it, nor a base64 Ed25519 seed".into(),
            )),
        };
    }
    let der = PrivateKeyDer::from_pem_slice(text).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            bad("no private key in it (a public key or a certificate?)".into())
        }
        e => bad(format!("not a readable PEM private key ({e})")),
    })?;
    match der {
        PrivateKeyDer::Pkcs1(_) => rsa_key(der, &bad),
        PrivateKeyDer::Pkcs8(ref pkcs8) => {
            match Ed25519Key::from_pkcs8_der(pkcs8.secret_pkcs8_der()) {
                Ok(key) => Ok(Parsed::Ed25519(key)),
                Err(_) => rsa_key(der, &bad),
            }
        }
        PrivateKeyDer::Sec1(_) => Err(bad(
            "an EC key; DKIM signs with RSA (rsa-sha256) or Ed25519 (ed25519-sha256)".into(),
        )),
        _ => Err(bad("neither an RSA nor an Ed25519 private key".into())),
    }
}

/// An RSA key of 1024 to 4096 bits: receivers refuse smaller ones (RFC
/// 8301), and larger ones take seconds per signature and do not fit a DNS
/// record.
fn rsa_key(der: PrivateKeyDer, bad: &dyn Fn(String) -> DkimError) -> Result<Parsed, DkimError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let parsed = match &der {
        PrivateKeyDer::Pkcs1(key) => rsa::RsaPrivateKey::from_pkcs1_der(key.secret_pkcs1_der())
            .map_err(|e| bad(format!("not a valid RSA private key ({e})")))?,
        PrivateKeyDer::Pkcs8(key) => rsa::RsaPrivateKey::from_pkcs8_der(key.secret_pkcs8_der())
            .map_err(|_| {
                bad("neither an RSA nor an Ed25519 private key (EC, DSA and other keys cannot sign DKIM here)".into())
            })?,
        _ => return Err(bad("not an RSA private key".into())),
    };
    let bits = parsed.size() * 8;
    if bits < 1024 {
        return Err(bad(format!(
            "a {bits}-bit RSA key: receivers refuse keys under 1024 bits (RFC 8301); make a 2048-bit one \
             with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`"
        )));
    }
    if bits > 4096 {
        return Err(bad(format!(
            "a {bits}-bit RSA key: over 4096 bits each signature takes seconds and the public key does \
             not fit a DNS record; use 2048 bits"
        )));
    }
    RsaKey::<Sha256>::from_key_der(der)
        .map(Parsed::Rsa)
        .map_err(|e| bad(format!("not a valid RSA private key ({e})")))
}

/// A base64 Ed25519 seed as the PKCS#8 DER mail-auth reads.
fn seed(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let seed = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .filter(|seed| seed.len() == 32)?;
    Some([&ED25519_PKCS8_PREFIX[..], &seed].concat())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SITE: &str = "[site]\ntitle = \"Blog\"\nbase_url = \"https://prometheus.io/blog/\"\n";

    /// A message as lettre formats one: CRLF, headers then the body.
    const MESSAGE: &[u8] = b"From: Blog <blog@prometheus.io>\r\nTo: ann@example.org\r\n\
Subject: Hi\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <a@prometheus.io>\r\n\
List-Unsubscribe: <https://prometheus.io/u/x>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n";

    const ED25519_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIFUFKTcu9u/TwJeyQr2EXiL2ZRwznEiS5Hu38oRbwmU4
-----END PRIVATE KEY-----
";

    /// Test keys only (1024 bits to keep the tests fast); the same key as
    /// PKCS#8 and as PKCS#1.
    const RSA_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBANoflwnducm3u/zW
hx1XomjM0imYI4SnvrucTsXcVjrv17DEqDC/SCw4OMn1i6h3b/0XevTUYwpzhTth
zQiwq4SyVoA4Fhf1r4E3kcYs9ZckB2ZaVuVeJ0cSTOO47XJfdSXHmMWzPvbPsfao
gk7fczgLrEO2Mf0Ap63VXAiwPhYBAgMBAAECgYA9qnCo+WZtAOTEtmG8ieoAdudz
mu9vsXzazXX3ujMmtmfkMbTbEzj0R3DGqASzvBCNHPZGAUV+zun7v8qXilryw1Fx
KiM/VyH6NmmiITbc7tP13+0KamydhExrZ0QLny72ZHF5h4iIWGvuteLKyBT4ulLk
7KIq2UjCNY4pAQ8oAQJBAPIV5QC4XeXsQLWaa2lzEaUSfwY6BpNamFCRF6V0HaO/
Hpd/4NpLZp1aXZ2fjrYzF7G8ASbNyoQ1V+NqJ/H9JckCQQDmqRxh+MmdOtUsIzrH
lgBVKXQY01T2QNst68YOZZ2kWjTnCQE9uzEfffcxjWh3g1IaHArbV34nugZiBctP
Ymp5AkA5evth/WTGOB9xP1YrtpfE8yxYBSUUjdlGn/zWW0jCXZnc7Q8tpeOajx9V
UtJm7qC8oeBAH3Lri2Lv63/KlIoJAkBts2Y1Tj6NEcsKx+KPw856slFt8SyKRcQ4
LdcvR7LW1LQuYUD+3AV75cvn/En/9SvaERY0xYLRYA7jFcBhC/x5AkEAkmuqjRuX
7Qgewf1PzUb1ZryjlK24bQzc87Y2ghJQacvOi75eYnWxv72wSEGk+1Xt4vsfI6bf
fze1lG3zAa3ypA==
-----END PRIVATE KEY-----
";

    const RSA_PKCS1: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXAIBAAKBgQDaH5cJ3bnJt7v81ocdV6JozNIpmCOEp767nE7F3FY679ewxKgw
v0gsODjJ9Yuod2/9F3r01GMKc4U7Yc0IsKuEslaAOBYX9a+BN5HGLPWXJAdmWlbl
XidHEkzjuO1yX3Ulx5jFsz72z7H2qIJO33M4C6xDtjH9AKet1VwIsD4WAQIDAQAB
AoGAPapwqPlmbQDkxLZhvInqAHbnc5rvb7F82s1197ozJrZn5DG02xM49EdwxqgE
s7wQjRz2RgFFfs7p+7/Kl4pa8sNRcSojP1ch+jZpoiE23O7T9d/tCmpsnYRMa2dE
C58u9mRxeYeIiFhr7rXiysgU+LpS5OyiKtlIwjWOKQEPKAECQQDyFeUAuF3l7EC1
mmtpcxGlEn8GOgaTWphQkReldB2jvx6Xf+DaS2adWl2dn462MxexvAEmzcqENVfj
aifx/SXJAkEA5qkcYfjJnTrVLCM6x5YAVSl0GNNU9kDbLevGDmWdpFo05wkBPbsx
H333MY1od4NSGhwK21d+J7oGYgXLT2JqeQJAOXr7Yf1kxjgfcT9WK7aXxPMsWAUl
FI3ZRp/81ltIwl2Z3O0PLaXjmo8fVVLSZu6gvKHgQB9y64ti7+t/ypSKCQJAbbNm
NU4+jRHLCsfij8POerJRbfEsikXEOC3XL0ey1tS0LmFA/twFe+XL5/xJ//Ur2hEW
NMWC0WAO4xXAYQv8eQJBAJJrqo0bl+0IHsH9T81G9Wa8o5StuG0M3PO2NoISUGnL
zou+XmJ1sb+9sEhBpPtV7eL7HyOm3383tZRt8wGt8qQ=
-----END RSA PRIVATE KEY-----
";

    /// Test keys only: too small to sign with, and a key of a kind DKIM
    /// (here) does not sign with.
    const RSA_512: &str = "-----BEGIN PRIVATE KEY-----
MIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEAoePYei49gaLEgMeo
lVdwcr4Bx5WCl5aWwfam5f1Iu2HckjiA4wbUFukRvKhopx++xK+ct5Dz0z5/NTMX
qjujhwIDAQABAkBo2RUiBIKnTBCySx0/I7NbTP4AEi/TF5+qHaH4QHNzj6UUgYXK
Wcp3OEcc9HMwX928G7gBeEr9LzbbLEzdXq8RAiEA030li4hGFUFeiTE0T++y81Ew
57sxpKl+FTzsgmObwV8CIQDD9lpTTiyQDIxoOK6eIv/hVsoB658ZkmHJwEkwPCOG
2QIhAIOd9Mm7i3Ia9oyG9LlywXmv47GzzBdf7DmnasFS4FIdAiAo/D56C/CgFC/N
oIVNB87yx18qtagqBgaz1qa4EuvvSQIgUxEWIC56HquIvknNVPdNGUJharOR0SUs
Mdj7+mtHHIw=
-----END PRIVATE KEY-----
";

    const EC_P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgvXvT3mDrS+CXyPkq
gGd+C5VxaKTcXMzb++qVdQJSadahRANCAAQahQFedvim+/J8L9TzspDUzRaWYK5k
cnQ9G8wvebjCngI99vOuHwLgBzykwFzQ1ruwMzCkqWFKZDOFAO/0qhqM
-----END PRIVATE KEY-----
";

    /// A config with `[email.dkim]` as `dkim` (TOML), its key files
    /// written from `files`, in a folder of its own.
    fn config(dkim: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let c = Config::parse(
            &format!("{SITE}[email]\nfrom = \"Blog <blog@prometheus.io>\"\n{dkim}"),
            Path::new("config.toml"),
            dir.path(),
        )
        .unwrap();
        (dir, c)
    }

    const ONE: &str =
        "[email.dkim]\nselector = \"mail\"\ndomain = \"prometheus.io\"\nkey_file = \"dkim.pem\"\n";

    /// The `DKIM-Signature` headers on top of `signed`, unfolded, as
    /// `{tag: value}` with white space taken out.
    fn signatures(signed: &[u8]) -> Vec<std::collections::BTreeMap<String, String>> {
        let text = std::str::from_utf8(signed).unwrap();
        let mut found = Vec::new();
        let mut current: Option<String> = None;
        for line in text.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(c) = current.as_mut() {
                    c.push_str(line);
                }
                continue;
            }
            found.extend(current.take());
            match line.split_once(':') {
                Some((name, value)) if name.eq_ignore_ascii_case("DKIM-Signature") => {
                    current = Some(value.to_string())
                }
                _ => {}
            }
        }
        found
            .iter()
            .map(|value| {
                value
                    .split(';')
                    .filter_map(|tag| tag.split_once('='))
                    .map(|(k, v)| {
                        (
                            k.trim().to_string(),
                            v.split_whitespace().collect::<String>(),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn every_key_format_signs_and_over_signs() {
        for (key, algorithm) in [
            (RSA_PKCS8, "rsa-sha256"),
            (RSA_PKCS1, "rsa-sha256"),
            (ED25519_PKCS8, "ed25519-sha256"),
            (
                "VQUpNy72799Al7JCvYReIvZlHDOcSJLke7fyhFvCZTg=\n",
                "ed25519-sha256",
            ),
        ] {
            let (_dir, c) = config(ONE, &[("dkim.pem", key)]);
            let signed = Signer::load(&c).unwrap().unwrap().sign(MESSAGE).unwrap();
            assert!(signed.ends_with(MESSAGE), "the message follows untouched");
            let found = signatures(&signed);
            assert_eq!(found.len(), 1);
            let tags = &found[0];
            assert_eq!(tags["a"], algorithm);
            assert_eq!(
                (tags["d"].as_str(), tags["s"].as_str()),
                ("prometheus.io", "mail")
            );
            assert_eq!(tags["c"], "relaxed/relaxed");
            let h: Vec<String> = tags["h"].split(':').map(str::to_ascii_lowercase).collect();
            // Each header the message has once is listed twice (the second
            // entry over-signs it); one it lacks is listed as absent.
            for name in [
                "from",
                "to",
                "subject",
                "date",
                "message-id",
                "list-unsubscribe",
                "mime-version",
                "content-type",
                "reply-to",
                "list-unsubscribe-post",
            ] {
                let times = h.iter().filter(|n| *n == name).count();
                assert!(times >= 2, "{name} listed {times} times in h={}", tags["h"]);
            }
        }
    }

    #[test]
    fn two_keys_sign_the_same_message() {
        let (_dir, c) = config(
            "[[email.dkim]]\nselector = \"rsa\"\ndomain = \"prometheus.io\"\nkey_file = \"rsa.pem\"\n\
             [[email.dkim]]\nselector = \"ed\"\ndomain = \"prometheus.io\"\nkey_file = \"ed.pem\"\n",
            &[("rsa.pem", RSA_PKCS8), ("ed.pem", ED25519_PKCS8)],
        );
        let signed = Signer::load(&c).unwrap().unwrap().sign(MESSAGE).unwrap();
        let found = signatures(&signed);
        let made: Vec<(&str, &str)> = found
            .iter()
            .map(|t| (t["s"].as_str(), t["a"].as_str()))
            .collect();
        assert_eq!(made, [("rsa", "rsa-sha256"), ("ed", "ed25519-sha256")]);
        assert_eq!(found[0]["bh"], found[1]["bh"], "one body, one body hash");
    }

    #[test]
    fn a_key_file_that_never_ends_is_refused_at_once() {
        // /dev/zero would fill memory; a FIFO nobody writes would hang.
        let (dir, _) = config("", &[]);
        let fifo = dir.path().join("fifo.pem");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        for file in [Path::new("/dev/zero"), fifo.as_path()] {
            let (_d, c) = config(
                &format!(
                    "[email.dkim]\nselector = \"s\"\ndomain = \"prometheus.io\"\nkey_file = {:?}\n",
                    file.display().to_string()
                ),
                &[],
            );
            let err = Signer::load(&c).err().unwrap().to_string();
            assert!(
                err.contains("not a regular file"),
                "{}: {err}",
                file.display()
            );
        }
        let (_d, c) = config(ONE, &[("dkim.pem", &"A".repeat(70_000))]);
        let err = Signer::load(&c).err().unwrap().to_string();
        assert!(err.contains("larger than 64 KiB"), "{err}");
    }

    #[test]
    fn no_keys_no_signer() {
        let (_dir, c) = config("", &[]);
        assert!(Signer::load(&c).unwrap().is_none());
    }

    #[test]
    fn key_problems_name_the_file_and_the_fix() {
        let (dir, c) = config(ONE, &[("dkim.pem", RSA_PKCS8)]);
        std::fs::remove_file(dir.path().join("dkim.pem")).unwrap();
        let err = Signer::load(&c).err().unwrap().to_string();
        assert!(
            err.contains("dkim.pem") && err.contains("email.dkim.key_file"),
            "{err}"
        );
        for (key, says) in [
            ("not a key", "no PEM block"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "neither an RSA nor an Ed25519",
            ),
            (RSA_512, "under 1024 bits"),
            (EC_P256, "neither an RSA nor an Ed25519"),
            (
                &format!("{RSA_PKCS8}{ED25519_PKCS8}"),
                "more than one private key",
            ),
            (&format!("\u{FEFF}{ED25519_PKCS8}"), ""),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "encrypted",
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
                "ssh-keygen",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "no private key",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK==\n-----END RSA PRIVATE KEY-----\n",
                "RSA",
            ),
            ("c2hvcnQ=\n", "no PEM block"),
        ] {
            let (_dir, c) = config(ONE, &[("dkim.pem", key)]);
            if says.is_empty() {
                // A byte-order mark before the PEM is no problem.
                assert!(Signer::load(&c).unwrap().is_some());
                continue;
            }
            let err = Signer::load(&c).err().unwrap().to_string();
            assert!(
                err.contains("dkim.pem") && err.contains(says),
                "{key}: {err}"
            );
        }
    }
}

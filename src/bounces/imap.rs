//! Reading bounces from an IMAP mailbox (`bounces.imap`): what
//! `bounces read --imap`, `publish` and `serve` (every `bounces.poll`) do.
//!
//! One pass: every message of the folder not flagged yet is read, 200 at
//! a time; once what they report is recorded (committed), the handled ones
//! (bounces, complaints, requests to leave, auto-replies, delivery
//! reports) are moved to `bounces.processed`, and the ones that are none of
//! these are flagged (`\Flagged`) and left where they are, for a person to
//! look at. Nothing is ever deleted. A pass cut short between the record
//! and the move reads those messages again next time, and counts nothing
//! twice (see [`crate::store::Incoming`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::intake::{Run, Tally};
use super::parse::Kind;
use crate::config::{Config, Imap};
use crate::store::Store;

/// Messages fetched (and recorded, and moved) at a time: at most this
/// many, and at most `CHUNK_BYTES` of them.
const CHUNK: usize = 200;
const CHUNK_BYTES: u64 = 16 * 1024 * 1024;

/// Larger messages are flagged and left without being fetched.
use super::intake::MAX_MESSAGE;

/// How long one connection, login or command may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A message's UID and size.
type Sized = (u32, u64);

/// What a pass over the mailbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub tally: Tally,
    /// Moved to `bounces.processed`.
    pub moved: usize,
    /// Flagged and left in place: not understood.
    pub flagged: usize,
}

impl Pass {
    /// The pass in one paragraph.
    pub fn summary(&self, config: &Config) -> String {
        let (folder, processed) = config
            .bounces
            .imap
            .as_ref()
            .map_or(("", ""), |i| (i.folder.as_str(), i.processed.as_str()));
        format!(
            "{folder}: {}; moved {} to {processed}, flagged {} and left them",
            self.tally.summary(),
            self.moved,
            self.flagged
        )
    }
}

/// One pass over `bounces.imap` on a runtime of its own: for a command
/// (`bounces read --imap`, `publish`) rather than `serve`.
pub fn read_mailbox_once(store: &mut Store, config: &Config, now: DateTime<Utc>) -> Result<Pass> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    read_mailbox(store, config, now, runtime.handle())
}

/// One pass over `bounces.imap`, driven on `runtime` (a multi-threaded
/// runtime, or the one `serve` runs on, from a blocking thread).
pub fn read_mailbox(
    store: &mut Store,
    config: &Config,
    now: DateTime<Utc>,
    runtime: &tokio::runtime::Handle,
) -> Result<Pass> {
    let Some(imap) = &config.bounces.imap else {
        bail!("there is no bounces.imap in the config: nothing to read");
    };
    let password = config
        .secrets
        .imap_password
        .as_deref()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            anyhow!(
                "bounces.imap is set but NEWSLETTER_IMAP_PASSWORD is not: set it to the password of {}",
                imap.user
            )
        })?;
    let place = format!("imap://{}/{}", imap.host, imap.folder);
    let mut session = runtime.block_on(connect(imap, password))?;
    let mut run = Run::new(store, config, now)?;
    let mut pass = Pass::default();
    let mut skipped = Vec::new();
    let result = (|| -> Result<()> {
        let uids = runtime.block_on(session.unread())?;
        let sizes = runtime.block_on(session.sizes(&uids))?;
        let (too_large, uids): (Vec<Sized>, Vec<Sized>) =
            sizes.into_iter().partition(|(_, size)| *size > MAX_MESSAGE);
        if !too_large.is_empty() {
            let too_large: Vec<u32> = too_large.iter().map(|(uid, _)| *uid).collect();
            runtime.block_on(session.flag(&too_large))?;
            pass.flagged += too_large.len();
            for uid in &too_large {
                skipped.push(format!(
                    "{place} UID {uid} (over {} MB: not read)",
                    MAX_MESSAGE >> 20
                ));
            }
        }
        let mut chunks: Vec<Vec<u32>> = Vec::new();
        let mut bytes = 0;
        for (uid, size) in uids {
            match chunks.last_mut() {
                Some(chunk) if chunk.len() < CHUNK && bytes + size <= CHUNK_BYTES => {
                    chunk.push(uid);
                    bytes += size;
                }
                _ => {
                    chunks.push(vec![uid]);
                    bytes = size;
                }
            }
        }
        let mut processed_ready = false;
        for chunk in &chunks {
            let messages = runtime.block_on(session.fetch(chunk))?;
            let (mut handled, mut unreadable) = (Vec::new(), Vec::new());
            for (uid, raw) in &messages {
                match run.message(raw, &format!("{place} UID {uid}"))? {
                    Kind::Other => unreadable.push(*uid),
                    _ => handled.push(*uid),
                }
            }
            // Recorded before anything moves: a pass cut short here reads
            // them again and counts nothing twice.
            run.flush()?;
            if !handled.is_empty() {
                if !processed_ready {
                    runtime.block_on(session.ensure_folder(&imap.processed))?;
                    processed_ready = true;
                }
                runtime.block_on(session.move_to(&handled, &imap.processed))?;
                pass.moved += handled.len();
            }
            if !unreadable.is_empty() {
                runtime.block_on(session.flag(&unreadable))?;
                pass.flagged += unreadable.len();
            }
        }
        Ok(())
    })();
    runtime.block_on(session.logout());
    result.with_context(|| format!("reading {place}"))?;
    pass.tally = run.finish()?;
    pass.tally.not_understood.extend(skipped);
    Ok(pass)
}

/// A stream to the server, TLS or not.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Stream for T {}

struct Session {
    inner: async_imap::Session<Box<dyn Stream>>,
    host: String,
    moves: bool,
}

async fn within<T>(what: &str, future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(TIMEOUT, future).await.map_err(|_| {
        anyhow!(
            "no answer from the IMAP server within {} s ({what})",
            TIMEOUT.as_secs()
        )
    })?
}

/// Connects, logs in and selects the folder.
async fn connect(imap: &Imap, password: &str) -> Result<Session> {
    let address = format!("{}:{}", imap.host, imap.port);
    let tcp = within("connecting", async {
        TcpStream::connect((imap.host.as_str(), imap.port))
            .await
            .with_context(|| format!("cannot connect to the IMAP server {address}"))
    })
    .await?;
    let stream: Box<dyn Stream> = if imap.tls {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(imap.host.clone())
            .with_context(|| format!("{} is not a host name TLS can check", imap.host))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        Box::new(
            within("TLS", async {
                connector
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS with the IMAP server {address} failed"))
            })
            .await?,
        )
    } else {
        Box::new(tcp)
    };
    let mut client = async_imap::Client::new(stream);
    within("the greeting", async {
        client
            .read_response()
            .await
            .context("the IMAP server sent no greeting")?
            .ok_or_else(|| anyhow!("the IMAP server closed the connection"))
    })
    .await?;
    let mut inner = within("login", async {
        client
            .login(&imap.user, password)
            .await
            .map_err(|(e, _)| {
                anyhow!(
                    "the IMAP server {address} refused the login of {} ({e}): check bounces.imap and NEWSLETTER_IMAP_PASSWORD",
                    imap.user
                )
            })
    })
    .await?;
    let moves = within("capabilities", async {
        Ok(inner.capabilities().await?.has_str("MOVE"))
    })
    .await?;
    within("select", async {
        inner
            .select(&imap.folder)
            .await
            .with_context(|| format!("cannot open the folder {:?} (bounces.imap)", imap.folder))
    })
    .await?;
    Ok(Session {
        inner,
        host: imap.host.clone(),
        moves,
    })
}

/// `1,5,7`: a UID set.
fn set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Session {
    /// The UIDs of the messages not flagged yet, oldest first.
    async fn unread(&mut self) -> Result<Vec<u32>> {
        let mut uids: Vec<u32> = within("search", async {
            Ok(self
                .inner
                .uid_search("NOT FLAGGED")
                .await?
                .into_iter()
                .collect())
        })
        .await?;
        uids.sort_unstable();
        Ok(uids)
    }

    /// The size of each message of `uids`.
    async fn sizes(&mut self, uids: &[u32]) -> Result<Vec<(u32, u64)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sizes = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(1000) {
            let fetches = within("size", self.uid_fetch(chunk, "(UID RFC822.SIZE)")).await?;
            sizes.extend(
                fetches
                    .iter()
                    .filter_map(|f| Some((f.uid?, u64::from(f.size?)))),
            );
        }
        sizes.sort_unstable();
        Ok(sizes)
    }

    /// Each message of `uids` whole, without marking it read.
    async fn fetch(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        let fetches = within("fetch", self.uid_fetch(uids, "(UID BODY.PEEK[])")).await?;
        Ok(fetches
            .iter()
            .filter_map(|f| Some((f.uid?, f.body()?.to_vec())))
            .collect())
    }

    /// UID FETCH of `query` for `uids`, every answer read.
    async fn uid_fetch(
        &mut self,
        uids: &[u32],
        query: &str,
    ) -> Result<Vec<async_imap::types::Fetch>> {
        Ok(self
            .inner
            .uid_fetch(set(uids), query)
            .await?
            .try_collect()
            .await?)
    }

    /// UID STORE of `flags` on `uids`, every answer read.
    async fn uid_store(&mut self, uids: &[u32], flags: &str) -> Result<()> {
        let _: Vec<_> = self
            .inner
            .uid_store(set(uids), flags)
            .await?
            .try_collect()
            .await?;
        Ok(())
    }

    /// Creates `folder` unless it is there.
    async fn ensure_folder(&mut self, folder: &str) -> Result<()> {
        within("create", async {
            let found: Vec<_> = self
                .inner
                .list(None, Some(folder))
                .await?
                .try_collect()
                .await?;
            if found.is_empty() {
                self.inner.create(folder).await.with_context(|| {
                    format!("cannot create the folder {folder:?} (bounces.processed)")
                })?;
            }
            Ok(())
        })
        .await
    }

    /// Moves `uids` to `folder`: MOVE where the server has it, else COPY,
    /// then mark deleted and expunge those (and only those) messages.
    async fn move_to(&mut self, uids: &[u32], folder: &str) -> Result<()> {
        within("move", async {
            if self.moves {
                self.inner.uid_mv(set(uids), folder).await?;
            } else {
                self.inner.uid_copy(set(uids), folder).await?;
                self.uid_store(uids, "+FLAGS.SILENT (\\Deleted)").await?;
                let _: Vec<_> = self
                    .inner
                    .uid_expunge(set(uids))
                    .await?
                    .try_collect()
                    .await?;
            }
            Ok(())
        })
        .await
        .with_context(|| format!("cannot move messages to {folder:?} on {}", self.host))
    }

    /// Flags `uids`: not understood, left for a person.
    async fn flag(&mut self, uids: &[u32]) -> Result<()> {
        within("store", self.uid_store(uids, "+FLAGS.SILENT (\\Flagged)")).await
    }

    async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.logout()).await;
    }
}

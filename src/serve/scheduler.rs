//! The server's scheduler: it sleeps until the next thing to do — a
//! scheduled post coming due, a digest slot, a retry — or until a content
//! file changes, and never polls.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use notify::Watcher;
use tokio::sync::{mpsc, watch};

use super::App;
use crate::email::deliver::Quiet;
use crate::email::send::{SendOptions, SendReport};
use crate::publish::{self, Scheduled};

/// After a failed send, or one that left deliveries pending, try again this much later.
const RETRY: Duration = Duration::from_secs(300);
/// Changes to content files within this time make one rebuild.
const SETTLE: Duration = Duration::from_millis(250);
/// The longest sleep, so a wall-clock jump is noticed within the hour.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Runs until `stopped` turns true. `first` is the outcome of the build
/// made before the server started listening.
pub async fn run(
    app: Arc<App>,
    mut stopped: watch::Receiver<bool>,
    first: Built,
    mut changed: Changes,
) {
    let mut rebuild = false;
    let (mut next_post, mut build_retry) = match first {
        Ok(next) => (next, None),
        Err(()) => (None, Some(app.clock.now() + retry_delay())),
    };
    let mut retry_at: Option<DateTime<Utc>> = None;
    // Welcomes left pending by a crash or an outage go out now, on their
    // own thread (they never wait for a digest).
    app.confirmations.welcome(app.clock.now());
    loop {
        if *stopped.borrow() {
            return;
        }
        let now = app.clock.now();
        // After a failed build, only the retry (or a change) builds again,
        // never the post that is already due: that would spin.
        let build_due = match build_retry {
            Some(t) => t <= now,
            None => next_post.is_some_and(|t| t <= now),
        };
        if rebuild || build_due {
            rebuild = false;
            match build(&app, now).await {
                Ok(next) => (next_post, build_retry) = (next, None),
                Err(()) => build_retry = Some(app.clock.now() + retry_delay()),
            }
        }
        if retry_at.is_none_or(|t| t <= now) {
            retry_at = send_if_due(&app, now).await;
        }
        let next_slot = publish::slots(&app.config).and_then(|s| s.next_after(now));
        let next_build = build_retry.or(next_post);
        let wake = [next_build, next_slot, retry_at]
            .into_iter()
            .flatten()
            .min();
        let sleep = wake
            .map(|t| (t - app.clock.now()).to_std().unwrap_or_default())
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tracing::debug!(?wake, "scheduler sleeping");
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {
                // A slot time: let the schedule decide at once.
                if next_slot.is_some_and(|t| t <= app.clock.now()) {
                    retry_at = None;
                }
            }
            Some(path) = changed.recv() => {
                tokio::time::sleep(SETTLE).await;
                while changed.try_recv().is_ok() {}
                // The first file changed (others may have changed with it).
                // A value, not `%` (Display): the plain log writes it quoted,
                // a newline or an escape in a file's name escaped.
                tracing::info!(
                    path = path.display().to_string(),
                    "content changed: rebuilding"
                );
                rebuild = true;
            }
            _ = stopped.changed() => return,
        }
    }
}

fn retry_delay() -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(RETRY).expect("a few minutes")
}

/// A build's outcome: when the next scheduled post comes due, or failure
/// (already logged; the feeds served are unchanged).
pub type Built = Result<Option<DateTime<Utc>>, ()>;

/// Builds the feeds and loads them; the next scheduled post's time.
pub async fn build(app: &Arc<App>, now: DateTime<Utc>) -> Built {
    let worker = app.clone();
    let result = tokio::task::spawn_blocking(move || {
        let rebuilt = publish::rebuild(&worker.config, &worker.config.feeds.output_dir, now)?;
        if let Some(e) = &rebuilt.hub_warning {
            tracing::warn!("{e:#}");
        }
        let report = rebuilt.report;
        if let Some(warning) = &report.archive_warning {
            tracing::warn!("{warning}");
        }
        let served = worker.reload_files()?;
        anyhow::Ok((report, served))
    })
    .await;
    match result {
        Ok(Ok((report, served))) => {
            tracing::info!(
                published = report.published,
                scheduled = report.scheduled,
                expired = report.expired,
                written = report.written,
                served,
                next_scheduled = ?report.next_scheduled,
                "feeds built"
            );
            Ok(report.next_scheduled)
        }
        Ok(Err(e)) => {
            if let Some(crate::build::BuildError::Content(problems)) = e.downcast_ref() {
                for problem in &problems.0 {
                    tracing::error!("{problem}");
                }
            }
            tracing::error!(
                "build failed, the feeds served are unchanged; trying again in {} s or when content changes: {e:#}",
                RETRY.as_secs()
            );
            Err(())
        }
        Err(e) => {
            tracing::error!("build panicked: {e}");
            Err(())
        }
    }
}

/// Sends (or resumes) a digest if the schedule says so; when to try again.
async fn send_if_due(app: &Arc<App>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let worker = app.clone();
    let options = SendOptions {
        cancel: Some(app.cancel.clone()),
        ..SendOptions::default()
    };
    let result = tokio::task::spawn_blocking(move || {
        publish::send_if_due(&worker.config, &options, now, false, &Quiet)
    })
    .await;
    // Counted from the end of this run, however long it took.
    let retry = Some(app.clock.now() + retry_delay());
    match result {
        Ok(Ok(Scheduled::Ran { slot, report })) => {
            log_report(slot, &report);
            log_alerts(app, now);
            match report {
                SendReport::Delivered(_) if report.pending() > 0 => retry,
                _ => None,
            }
        }
        Ok(Ok(Scheduled::Skipped { slot })) => {
            tracing::warn!(%slot, "digest slot missed by more than schedule.catch_up: skipped");
            None
        }
        Ok(Ok(Scheduled::NotDue { next })) => {
            // Each time the scheduler looks: an operator sees it did, and
            // when it will look again for a digest.
            tracing::info!(next_slot = next.map(|t| t.to_rfc3339()), "no digest due");
            None
        }
        Ok(Ok(Scheduled::NoSchedule)) => None,
        Ok(Ok(Scheduled::Busy)) => {
            tracing::info!(
                "another send is delivering; checking again in {} s",
                RETRY.as_secs()
            );
            retry
        }
        Ok(Err(e)) => {
            tracing::error!("digest: {e:#}; trying again in {} s", RETRY.as_secs());
            retry
        }
        Err(e) => {
            tracing::error!("digest panicked: {e}");
            retry
        }
    }
}

/// The bounce and complaint warnings of recent digests, in the log.
fn log_alerts(app: &Arc<App>, now: DateTime<Utc>) {
    let alerts = crate::store::Store::open_existing(&app.config.store.path)
        .map_err(anyhow::Error::from)
        .and_then(|store| match store {
            Some(store) => crate::bounces::report::alerts(&store, &app.config, now),
            None => Ok(Vec::new()),
        });
    match alerts {
        Ok(alerts) => {
            for alert in alerts {
                tracing::warn!("{alert}");
            }
        }
        Err(e) => tracing::warn!("cannot check the bounce rates: {e:#}"),
    }
}

fn log_report(slot: Option<DateTime<Utc>>, report: &SendReport) {
    match report {
        SendReport::Delivered(mailings) => {
            for m in mailings {
                tracing::info!(
                    ?slot,
                    digest = m.digest_id,
                    kind = m.kind.as_str(),
                    subject = m.subject.as_str(),
                    sent = m.counts.sent,
                    failed = m.counts.failed,
                    pending = m.counts.pending,
                    cancelled = m.counts.cancelled,
                    skipped = m.counts.skipped,
                    seconds = m.elapsed.as_secs_f64(),
                    "{} delivered",
                    m.kind.as_str()
                );
            }
        }
        SendReport::NothingToSend => tracing::info!(?slot, "digest: no new posts"),
        SendReport::NoSubscribers => tracing::info!(?slot, "digest: no active subscribers"),
        other => tracing::info!(?slot, ?other, "digest"),
    }
}

/// Content changes, each as a file changed, from [`watch_content`]; the
/// watcher lives as long as this.
pub struct Changes {
    receiver: mpsc::Receiver<std::path::PathBuf>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Changes {
    async fn recv(&mut self) -> Option<std::path::PathBuf> {
        self.receiver.recv().await
    }

    fn try_recv(&mut self) -> Result<std::path::PathBuf, mpsc::error::TryRecvError> {
        self.receiver.try_recv()
    }
}

/// Starts watching the content folder (before the first build, so no
/// change is missed).
pub fn watch(app: &App) -> Changes {
    let (sender, receiver) = mpsc::channel(1);
    Changes {
        _watcher: watch_content(app, sender),
        receiver,
    }
}

/// Watches the content folder; each change sends a file it touched to
/// `changed` (one waiting at most: the first wins). Changes to
/// hidden files (editors' swap files, a build's temporary files) and to
/// anything under the output folder or the store are not content: without
/// this, an output folder inside the content folder would rebuild forever.
/// Without a watcher (an unsupported file system) the server still
/// rebuilds when scheduled posts come due.
fn watch_content(
    app: &App,
    changed: mpsc::Sender<std::path::PathBuf>,
) -> Option<notify::RecommendedWatcher> {
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let dir = absolute(&app.config.content.dir);
    let output = absolute(&app.config.feeds.output_dir);
    let store = absolute(&app.config.store.path);
    let is_content = move |path: &std::path::Path| {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        // The output folder by whole components (`public/` is not
        // `publications.md`); the store with its `-wal` and `-journal` files.
        let generated = path.starts_with(&output)
            || path
                .to_string_lossy()
                .starts_with(&*store.to_string_lossy());
        !hidden && !generated
    };
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
            && let Some(path) = event.paths.iter().find(|p| is_content(p))
        {
            let _ = changed.try_send(path.clone());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(
                "cannot watch {}: {e}; rebuilds happen only when posts come due",
                dir.display()
            );
            return None;
        }
    };
    if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::Recursive) {
        tracing::warn!(
            "cannot watch {}: {e}; rebuilds happen only when posts come due",
            dir.display()
        );
        return None;
    }
    Some(watcher)
}

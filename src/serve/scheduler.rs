//! The server's scheduler: it sleeps until the next thing to do — a
//! scheduled post coming due, a digest slot, a retry — or until a content
//! file changes, and never polls.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use notify::Watcher;
use tokio::sync::{mpsc, watch};

use super::App;
use crate::publish::{self, Scheduled};
use crate::send::{Quiet, SendOptions, SendReport};

/// After a failed send, or one that left deliveries pending, try again this much later.
const RETRY: Duration = Duration::from_secs(300);
/// Changes to content files within this time make one rebuild.
const SETTLE: Duration = Duration::from_millis(250);
/// The longest sleep, so a wall-clock jump is noticed within the hour.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Runs until `stopped` turns true.
/// `next_post` comes from the build made before the server started listening.
pub async fn run(
    app: Arc<App>,
    mut stopped: watch::Receiver<bool>,
    mut next_post: Option<DateTime<Utc>>,
) {
    let (changed_tx, mut changed) = mpsc::channel::<()>(1);
    let _watcher = watch_content(&app, changed_tx);
    let mut rebuild = false;
    let mut retry_at: Option<DateTime<Utc>> = None;
    loop {
        if *stopped.borrow() {
            return;
        }
        let now = app.clock.now();
        if rebuild || next_post.is_some_and(|t| t <= now) {
            rebuild = false;
            next_post = build(&app, now).await.or(next_post.filter(|t| *t > now));
        }
        if retry_at.is_none_or(|t| t <= now) {
            retry_at = send_if_due(&app, now).await;
        }
        let next_slot = publish::slots(&app.config).and_then(|s| s.next_after(now));
        let wake = [next_post, next_slot, retry_at].into_iter().flatten().min();
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
            Some(()) = changed.recv() => {
                tokio::time::sleep(SETTLE).await;
                while changed.try_recv().is_ok() {}
                tracing::info!("content changed: rebuilding");
                rebuild = true;
            }
            _ = stopped.changed() => return,
        }
    }
}

/// Builds the feeds and loads them; the next scheduled post's time.
pub async fn build(app: &Arc<App>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let worker = app.clone();
    let result = tokio::task::spawn_blocking(move || {
        let report = publish::rebuild(&worker.config, now)?;
        let served = worker.reload_files()?;
        anyhow::Ok((report, served))
    })
    .await;
    match result {
        Ok(Ok((report, served))) => {
            tracing::info!(
                published = report.published,
                scheduled = report.scheduled,
                written = report.written,
                served,
                next_scheduled = ?report.next_scheduled,
                "feeds built"
            );
            report.next_scheduled
        }
        Ok(Err(e)) => {
            if let Some(crate::build::BuildError::Content(problems)) = e.downcast_ref() {
                for problem in problems {
                    tracing::error!("{problem}");
                }
            }
            tracing::error!("build failed, the feeds served are unchanged: {e:#}");
            None
        }
        Err(e) => {
            tracing::error!("build panicked: {e}");
            None
        }
    }
}

/// Sends (or resumes) a digest if the schedule says so; when to try again.
async fn send_if_due(app: &Arc<App>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let worker = app.clone();
    let options = SendOptions {
        smtp_password: app.smtp_password.clone(),
        secret: app.secret_from_env.clone(),
        cancel: Some(app.cancel.clone()),
        ..SendOptions::default()
    };
    let result = tokio::task::spawn_blocking(move || {
        publish::send_if_due(&worker.config, &options, now, false, &Quiet)
    })
    .await;
    let retry = Some(now + chrono::TimeDelta::from_std(RETRY).expect("small"));
    match result {
        Ok(Ok(Scheduled::Ran { slot, report })) => {
            log_report(slot, &report);
            match report {
                SendReport::Delivered { counts, .. } if counts.pending > 0 => retry,
                _ => None,
            }
        }
        Ok(Ok(Scheduled::Skipped { slot })) => {
            tracing::warn!(%slot, "digest slot missed by more than schedule.catch_up: skipped");
            None
        }
        Ok(Ok(Scheduled::NotDue { .. } | Scheduled::NoSchedule)) => None,
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

fn log_report(slot: Option<DateTime<Utc>>, report: &SendReport) {
    match report {
        SendReport::Delivered {
            digest_id,
            subject,
            counts,
            elapsed,
        } => tracing::info!(
            ?slot,
            digest = digest_id,
            subject = subject.as_str(),
            sent = counts.sent,
            failed = counts.failed,
            pending = counts.pending,
            cancelled = counts.cancelled,
            seconds = elapsed.as_secs_f64(),
            "digest delivered"
        ),
        SendReport::NothingToSend => tracing::info!(?slot, "digest: no new posts"),
        SendReport::NoSubscribers => tracing::info!(?slot, "digest: no active subscribers"),
        other => tracing::info!(?slot, ?other, "digest"),
    }
}

/// Watches the content folder; each change pokes `changed`. Without a
/// watcher (an unsupported file system) the server still rebuilds when
/// scheduled posts come due.
fn watch_content(app: &App, changed: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = changed.try_send(());
        }
    };
    let dir = &app.config.content.dir;
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
    if let Err(e) = watcher.watch(dir, notify::RecursiveMode::Recursive) {
        tracing::warn!(
            "cannot watch {}: {e}; rebuilds happen only when posts come due",
            dir.display()
        );
        return None;
    }
    Some(watcher)
}

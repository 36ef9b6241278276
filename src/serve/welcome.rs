//! The server's welcome thread: it delivers the pending welcome mails
//! ([`crate::email::welcome::deliver_pending`]) when a confirmation has
//! queued one, when the server starts, and again a while after a run that
//! left some pending. The confirmation's answer never waits for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, TimeDelta, Utc};

use crate::config::Config;
use crate::email::welcome::{self, Welcomed};

/// After a run that left welcomes pending (a temporary failure, the
/// server unreachable), the next one starts this much later.
const RETRY: Duration = Duration::from_secs(300);
/// While another process (a cron `send`) delivers the welcomes, look again
/// this soon: it may have read the pending ones before the latest came.
const BUSY_RETRY: Duration = Duration::from_secs(10);
/// How long shutdown waits for the run in progress (it stops between two
/// messages); what is left stays pending for the next start or `send`.
const DRAIN: Duration = Duration::from_secs(10);

/// The welcome thread's handle.
pub struct Welcomer {
    wake: Mutex<Option<mpsc::Sender<DateTime<Utc>>>>,
    done: Mutex<Option<mpsc::Receiver<()>>>,
    stopping: Arc<AtomicBool>,
}

impl Welcomer {
    /// Checks the welcome templates (a broken one stops the server at
    /// start, not at the first confirmation) and starts the thread; it
    /// waits for the first [`Welcomer::wake`].
    pub fn start(config: &Config) -> Result<Welcomer> {
        welcome::check_templates(config)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let (wake, woken) = mpsc::channel::<DateTime<Utc>>();
        let (finished, done) = mpsc::channel();
        let config = config.clone();
        let stop = stopping.clone();
        std::thread::Builder::new()
            .name("welcomes".into())
            .spawn(move || {
                run(&config, &woken, &stop);
                let _ = finished.send(());
            })?;
        Ok(Welcomer {
            wake: Mutex::new(Some(wake)),
            done: Mutex::new(Some(done)),
            stopping,
        })
    }

    /// Asks for a run at `now` (the server's clock), without waiting for it.
    pub fn wake(&self, now: DateTime<Utc>) {
        if let Some(wake) = &*self.wake.lock().expect("not poisoned") {
            let _ = wake.send(now);
        }
    }

    /// Stops the thread: a run in progress ends after the message in flight.
    pub fn finish(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.wake.lock().expect("not poisoned").take();
        if let Some(done) = self.done.lock().expect("not poisoned").take()
            && done.recv_timeout(DRAIN) == Err(mpsc::RecvTimeoutError::Timeout)
        {
            tracing::warn!("the welcome mails in progress did not finish: the rest stay pending");
        }
    }
}

/// The thread: a run per wake-up (several waiting make one), and a retry
/// when one is due, until the sender is dropped.
fn run(config: &Config, woken: &mpsc::Receiver<DateTime<Utc>>, stopping: &AtomicBool) {
    // The server's time as last given, and when: its clock runs on from there.
    let mut clock: Option<(DateTime<Utc>, Instant)> = None;
    let mut retry: Option<Duration> = None;
    loop {
        let received = match retry {
            Some(wait) => woken.recv_timeout(wait),
            None => woken
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(now) => {
                clock = Some((now, Instant::now()));
                while let Ok(now) = woken.try_recv() {
                    clock = Some((now, Instant::now()));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let Some((then, at)) = clock else { continue };
        let now = then + TimeDelta::from_std(at.elapsed()).unwrap_or_default();
        // A bug met by one run must not stop the welcomes for good.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            welcome::deliver_pending(config, now, Some(stopping))
        }));
        retry = match ran {
            Ok(Ok(welcomed)) => {
                if welcomed.worth_saying() {
                    tracing::info!("{welcomed}");
                }
                match welcomed {
                    Welcomed::Busy => Some(BUSY_RETRY),
                    w if w.left_pending() => Some(RETRY),
                    _ => None,
                }
            }
            Ok(Err(e)) => {
                tracing::error!(
                    "welcome mails: {e:#}; trying again in {} s",
                    RETRY.as_secs()
                );
                Some(RETRY)
            }
            Err(_) => {
                tracing::error!("welcome mails: the run panicked; trying again later");
                Some(RETRY)
            }
        };
        if stopping.load(Ordering::Relaxed) {
            return;
        }
    }
}

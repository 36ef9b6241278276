//! Sign-up with double opt-in, confirmation, and unsubscribe (with the
//! RFC 8058 one-click POST).
//!
//! The answer to a sign-up is the same whether the address is new, pending,
//! active or gone, and it does not wait for the confirmation email (which
//! a background thread sends), so neither its words nor its timing tell
//! anyone who is on the list.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::Result;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use minijinja::context;
use minijinja::value::Value;

use super::App;
use super::form::Fields;
use crate::config::Config;
use crate::email::compose::{build_notice, recipient, trial_message_id};
use crate::email::dkim::Signer;
use crate::email::transport::OneOff;
use crate::links;
use crate::store::{self, Added, Changed, Status, StatusChange, Store};
use crate::subscribers::clean_name;
use crate::token::{self, Purpose, TokenError};
use crate::topics::{ChoiceError, Topics};

/// The longest name the forms take (the pages say so too, with `maxlength`).
pub const NAME_MAX: usize = 100;

/// Why a name typed into a form is refused (too long), if it is.
pub(super) fn name_error(name: &str) -> Option<String> {
    (name.chars().count() > NAME_MAX)
        .then(|| format!("Please keep the name to {NAME_MAX} characters."))
}

/// What the forms say when no topic, or an unknown one, is ticked.
pub(super) fn topics_error(error: &ChoiceError) -> &'static str {
    match error {
        ChoiceError::Empty => "Please choose at least one topic. To get nothing, don't subscribe.",
        ChoiceError::Unknown { .. } | ChoiceError::NoTopics => {
            "One of the topics sent is not one of this site's. Please choose again."
        }
    }
}

/// `GET /subscribe`.
pub async fn form(State(app): State<Arc<App>>) -> Response {
    let every = Topics::all(&app.config);
    render_form(&app, StatusCode::OK, "", "", every, None)
}

/// `POST /subscribe`: the fields `email`, `name`, `topics` (one per box
/// ticked, with `topics_offered`) and `website`, a trap for bots: it is
/// hidden from people, so a value in it means a script filled the form in.
pub async fn subscribe(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Fields, StatusCode>,
) -> Response {
    let client = client_address(&app, peer, &headers);
    if let Err(wait) = app.per_client.check_key(&client) {
        let retry = wait.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        tracing::info!(%client, "sign-up refused: too many from this client");
        return too_many(&app, retry);
    }
    let form = match form {
        Ok(form) => form,
        Err(status) => {
            let every = Topics::all(&app.config);
            let message = "The form could not be read. Please try again.";
            return render_form(&app, unreadable(status), "", "", every, Some(("", message)));
        }
    };
    let (typed_email, typed_name) = (form.get("email"), form.get("name"));
    let ticked = form.ticked(&app.config);
    if let Some(message) = name_error(typed_name) {
        let error = Some(("name", message.as_str()));
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return render_form(&app, status, typed_email, "", ticked, error);
    }
    let topics = match form.topics(&app.config) {
        Ok(topics) => topics,
        Err(e) => {
            let error = Some(("topics", topics_error(&e)));
            let status = StatusCode::BAD_REQUEST;
            return render_form(&app, status, typed_email, typed_name, ticked, error);
        }
    };
    let email = match store::normalize_email(typed_email) {
        Ok(email) if store::is_public_address(&email) => email,
        _ => {
            let message = "Please enter a valid email address, like name@example.org.";
            let error = Some(("email", message));
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return render_form(&app, status, typed_email, typed_name, ticked, error);
        }
    };
    if !form.get("website").is_empty() {
        tracing::info!(%client, "sign-up ignored: the hidden field was filled in");
        return check_inbox(&app);
    }
    if let Err(wait) = app.per_email.check_key(&email.to_ascii_lowercase()) {
        let retry = wait.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        tracing::info!(%client, "sign-up refused: too many for this address");
        return too_many(&app, retry);
    }
    // The store and the email are the background thread's work: the
    // answer is the same, and as fast, for an address new or known.
    app.confirmations.queue(SignUpRequest {
        email,
        name: clean_name(typed_name),
        topics: topics.and_then(|t| t.stored(&app.config)),
        now: app.clock.now(),
    });
    tracing::info!(%client, "sign-up queued");
    check_inbox(&app)
}

/// `GET /confirm/{token}`: a page with one button; nothing changes yet
/// (mail scanners such as Outlook's Safe Links open every link).
pub async fn confirm_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let now = app.clock.now();
    if let Err(refused) = verify_confirm(&app, &token, now) {
        return *refused;
    }
    match app.pages.render("confirm_page.html", context! {}) {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(e) => server_error(&app, &e),
    }
}

/// The subscriber key a confirmation token names, or the page that says
/// why it does not work.
fn verify_confirm(app: &App, token: &str, now: DateTime<Utc>) -> Result<String, Box<Response>> {
    // A link made under a longer `confirm_ttl` than today's (with an hour
    // to spare for sign-ups that share a second) has expired.
    let longest = now.timestamp() + app.config.server.confirm_ttl.as_secs() as i64 + 3600;
    let verified = match token::verify(&app.secret, Purpose::Confirm, token, now.timestamp()) {
        Ok(_) if token::expiry(token).is_some_and(|e| e > longest) => Err(TokenError::Expired),
        other => other,
    };
    match verified {
        Ok(key) => Ok(key),
        Err(TokenError::Expired) => Err(Box::new(page(
            app,
            StatusCode::GONE,
            "This link has expired",
            "Confirmation links work for a limited time. Sign up again and we will send you a new one.",
            Some(("../subscribe", "Sign up again")),
        ))),
        Err(TokenError::Invalid) => Err(Box::new(invalid_link(app))),
    }
}

/// How many times a confirmation or a saved preference tries a busy
/// store (50 ms apart).
const BUSY_TRIES: u32 = 20;

/// `write`, tried again for a moment while it fails: this server's own
/// short writes (a welcome recorded, a queued unsubscribe applied) keep
/// the store busy for milliseconds. `write` takes the store's lock itself,
/// so it is not held in between.
pub(super) fn retry_busy<T>(
    mut write: impl FnMut() -> Result<T, store::StoreError>,
) -> Result<T, store::StoreError> {
    let mut tries = 0;
    loop {
        let result = write();
        tries += 1;
        if result.is_ok() || tries == BUSY_TRIES {
            return result;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Records a confirmation: the subscriber active and their welcome queued.
fn confirm_in_store(
    app: &App,
    key: &str,
    expires: i64,
    now: DateTime<Utc>,
) -> Result<(Changed, i64), store::StoreError> {
    let store = app.store.lock().expect("not poisoned");
    let Some(s) = store.subscriber_by_key(key)? else {
        return Ok((Changed::Unknown, 0));
    };
    // Weighed against when that sign-up was made, as kept; a sign-up not
    // kept (confirmed already, or from before) can confirm a pending
    // subscriber but undo no later unsubscribe.
    let asked = store
        .signup_asked(s.id, expires)?
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    // Active and welcome queued together, or neither (see `store::welcomes`).
    let welcome = app.config.welcome.enabled;
    let change = store.confirm_and_welcome(s.id, asked, now, welcome)?;
    if matches!(change, Changed::Done | Changed::Already) {
        store.apply_signup_name(s.id, expires)?;
    }
    Ok((change, s.id))
}

/// `POST /confirm/{token}`: the confirm page's button.
pub async fn confirm(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let now = app.clock.now();
    let key = match verify_confirm(&app, &token, now) {
        Ok(key) => key,
        Err(refused) => return *refused,
    };
    let worker = app.clone();
    let expires = token::expiry(&token).unwrap_or_default();
    let result = tokio::task::spawn_blocking(move || {
        retry_busy(|| confirm_in_store(&worker, &key, expires, now))
    })
    .await;
    match result {
        Ok(Ok((change @ (Changed::Done | Changed::Already), id))) => {
            tracing::info!(subscriber = id, "subscription confirmed");
            if change == Changed::Done && app.config.welcome.enabled {
                // In the background: the page does not wait for SMTP.
                app.confirmations.welcome(now);
            }
            page(
                &app,
                StatusCode::OK,
                "Thank you for subscribing",
                "Your subscription is confirmed. The next digest will be in your inbox.",
                None,
            )
        }
        Ok(Ok((Changed::Stale | Changed::Unknown, _))) => page(
            &app,
            StatusCode::GONE,
            "This link is no longer valid",
            "Your subscription changed after this link was sent. Sign up again if you want the digest.",
            Some(("../subscribe", "Sign up again")),
        ),
        // The store busy in another process: the reader can press again.
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "confirmation not recorded: the store is busy");
            page(
                &app,
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment",
                "We could not record your confirmation just now. Go back and press the button again in a minute.",
                None,
            )
        }
        Err(e) => server_error(&app, &anyhow::Error::new(e)),
    }
}

/// `GET /unsubscribe/{token}`: a page with one button; nothing changes
/// yet (mail scanners follow links).
pub async fn unsubscribe_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    if token::verify(&app.secret, Purpose::Unsubscribe, &token, 0).is_err() {
        return invalid_link(&app);
    }
    match app.pages.render("unsubscribe.html", context! {}) {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(e) => server_error(&app, &e),
    }
}

/// `POST /unsubscribe/{token}`: the page's button, and the one-click POST a
/// mail client makes from `List-Unsubscribe` (body `List-Unsubscribe=One-Click`).
/// Idempotent; a forged token gets 400 and changes nothing.
pub async fn unsubscribe(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let Ok(key) = token::verify(&app.secret, Purpose::Unsubscribe, &token, 0) else {
        return invalid_link(&app);
    };
    unsubscribe_key(&app, key).await
}

/// Unsubscribes the subscriber `key` and answers "You are unsubscribed":
/// at once, or, when the store is busy, queued on disk (see
/// `store::queue`) and applied as soon as it allows. Idempotent.
pub(super) async fn unsubscribe_key(app: &Arc<App>, key: String) -> Response {
    let now = app.clock.now();
    let worker = app.clone();
    let queued_key = key.clone();
    let result = tokio::task::spawn_blocking(move || {
        let store = worker.store.lock().expect("not poisoned");
        match store.subscriber_by_key(&key)? {
            Some(s) => store
                .change_status(s.id, StatusChange::Unsubscribe, now)
                .map(|change| (change == Changed::Done, s.id)),
            None => Ok((false, 0)),
        }
    })
    .await;
    let done = page(
        app,
        StatusCode::OK,
        "You are unsubscribed",
        "You will not get the digest any more. You can sign up again at any time.",
        Some(("../subscribe", "Sign up again")),
    );
    match result {
        Ok(Ok((changed, id))) => {
            tracing::info!(subscriber = id, changed, "unsubscribed");
            done
        }
        // The store is busy (a long import in another process): the
        // unsubscribe waits on disk, applied before any later delivery.
        Ok(Err(e)) => match store::queue::push(&app.config.store.path, &queued_key, now) {
            Ok(()) => {
                tracing::warn!(error = %e, "unsubscribe queued: the store could not record it at once");
                done
            }
            Err(queue) => server_error(
                app,
                &anyhow::Error::new(queue).context(format!("the store failed too: {e}")),
            ),
        },
        Err(e) => server_error(app, &anyhow::Error::new(e)),
    }
}

/// The client's address, as the rate limit counts it: the peer, or behind
/// a proxy the last `X-Forwarded-For` entry (the one the proxy added;
/// earlier ones can be forged; an entry that is not an address stops the
/// search, so it cannot uncover a forged one). IPv6 clients are counted
/// by /64, the block one user usually has.
pub(super) fn client_address(app: &App, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let mut address = peer.ip();
    if app.config.server.behind_proxy {
        let last = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|a| a.trim().parse::<IpAddr>().ok());
        if let Some(forwarded) = last {
            address = forwarded;
        }
    }
    match address {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
        v4 => v4,
    }
}

/// A duration as a reader would say it: "48 hours", "2 days", "30 minutes".
fn in_words(duration: Duration) -> String {
    let minutes = duration.as_secs() / 60;
    let (n, unit) = if minutes.is_multiple_of(24 * 60) && minutes >= 3 * 24 * 60 {
        (minutes / (24 * 60), "day")
    } else if minutes.is_multiple_of(60) {
        (minutes / 60, "hour")
    } else {
        (minutes, "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The status for a form that could not be read: 413 for a body over the
/// limit, else 400.
pub(super) fn unreadable(status: StatusCode) -> StatusCode {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => status,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// What `_signup_form.html` shows: `email` and `name` as typed, the
/// `topics` boxes as ticked, and an `error` with the field it is about
/// (`error_field`: `email`, `name`, `topics`, or empty for none).
pub(super) fn form_values(
    app: &App,
    email: &str,
    name: &str,
    ticked: Topics,
    error: Option<(&str, &str)>,
) -> Value {
    context! {
        email,
        name,
        topics => super::pages::topic_boxes(&app.config, ticked),
        error => error.map(|e| e.1),
        error_field => error.map(|e| e.0),
    }
}

fn render_form(
    app: &App,
    status: StatusCode,
    email: &str,
    name: &str,
    ticked: Topics,
    error: Option<(&str, &str)>,
) -> Response {
    let values = form_values(app, email, name, ticked, error);
    match app.pages.render("subscribe.html", values) {
        Ok(html) => html_response(status, html),
        Err(e) => server_error(app, &e),
    }
}

fn check_inbox(app: &App) -> Response {
    page(
        app,
        StatusCode::OK,
        "Check your inbox",
        "If the address can receive the digest, a message with a confirmation link is on its way. Open it to finish signing up.",
        None,
    )
}

fn too_many(app: &App, retry: Duration) -> Response {
    let mut response = page(
        app,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-ups",
        "There have been too many sign-ups from here or for this address. Please try again later.",
        None,
    );
    let seconds = retry.as_secs().max(1);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

pub(super) fn invalid_link(app: &App) -> Response {
    page(
        app,
        StatusCode::BAD_REQUEST,
        "This link is not valid",
        "The link may have been cut short or changed. Copy the whole link from the email and try again.",
        None,
    )
}

pub(super) fn page(
    app: &App,
    status: StatusCode,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> Response {
    match app.pages.page(title, message, link) {
        Ok(html) => html_response(status, html),
        Err(e) => server_error(app, &e),
    }
}

pub(super) fn server_error(_app: &App, error: &anyhow::Error) -> Response {
    tracing::error!("{error:#}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side. Please try again later.\n",
    )
        .into_response()
}

/// An HTML page that is never cached, framed, or sent on as a referrer
/// (the URL may hold a token).
pub(super) fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

/// A sign-up to store and confirm.
pub struct SignUpRequest {
    email: String,
    name: String,
    /// The topics ticked, as the store keeps them (`None`: every topic).
    topics: Option<String>,
    now: DateTime<Utc>,
}

/// How long shutdown waits for queued sign-ups; what is left is dropped
/// (the reader gets no email and can sign up again).
const DRAIN: Duration = Duration::from_secs(10);

/// Stores sign-ups and sends confirmation emails on a thread of its own,
/// one at a time, with a few retries for a server that says "try again
/// later" (none once the server is stopping).
pub struct Confirmations {
    queue: Mutex<Option<mpsc::Sender<SignUpRequest>>>,
    done: Mutex<Option<mpsc::Receiver<()>>>,
    stopping: Arc<AtomicBool>,
    /// False once the thread is gone (it is never meant to go before the
    /// server stops): `/healthz` then says so.
    alive: Arc<AtomicBool>,
    /// The welcome mails, on a thread of their own.
    welcomes: super::welcome::Welcomer,
}

/// What the sign-up thread needs.
struct Worker {
    config: Config,
    pages: super::pages::Pages,
    transport: OneOff,
    dkim: Option<Signer>,
    secret: Vec<u8>,
    stopping: Arc<AtomicBool>,
}

impl Confirmations {
    /// Sets up the transport now, so a bad SMTP setting stops the server at start.
    pub fn start(config: &Config, secret: &[u8]) -> Result<Confirmations> {
        let stopping = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            transport: OneOff::new(config)?,
            dkim: Signer::load(config)?,
            pages: super::pages::Pages::load(config)?,
            config: config.clone(),
            secret: secret.to_vec(),
            stopping: stopping.clone(),
        };
        let store = Store::open(&config.store.path)?;
        let (queue, jobs) = mpsc::channel::<SignUpRequest>();
        let (finished, done) = mpsc::channel();
        let alive = Arc::new(AtomicBool::new(true));
        let living = alive.clone();
        std::thread::Builder::new()
            .name("sign-ups".into())
            .spawn(move || {
                // Marks the thread gone however it ends, a panic included.
                struct Gone(Arc<AtomicBool>);
                impl Drop for Gone {
                    fn drop(&mut self) {
                        self.0.store(false, Ordering::Relaxed);
                    }
                }
                let _gone = Gone(living);
                for job in jobs {
                    // A bug met by one sign-up must not stop the others.
                    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        worker.handle(&store, &job)
                    }));
                    match handled {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::error!("sign-up not completed: {e:#}"),
                        Err(_) => tracing::error!(
                            "sign-up not completed: the sign-up thread panicked; it goes on with the next"
                        ),
                    }
                }
                let _ = finished.send(());
            })?;
        Ok(Confirmations {
            queue: Mutex::new(Some(queue)),
            done: Mutex::new(Some(done)),
            stopping,
            alive,
            welcomes: super::welcome::Welcomer::start(config)?,
        })
    }

    /// Has the welcome thread deliver the pending welcome mails at `now`
    /// (the server's clock), in the background.
    pub fn welcome(&self, now: DateTime<Utc>) {
        self.welcomes.wake(now);
    }

    /// True while the sign-up thread runs.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    fn queue(&self, job: SignUpRequest) {
        if let Some(queue) = &*self.queue.lock().expect("not poisoned") {
            let _ = queue.send(job);
        }
    }

    /// Finishes what is queued (without retries), for at most [`DRAIN`],
    /// and stops the welcome thread.
    pub fn finish(&self) {
        self.welcomes.finish();
        self.stopping.store(true, Ordering::Relaxed);
        self.queue.lock().expect("not poisoned").take();
        if let Some(done) = self.done.lock().expect("not poisoned").take()
            && done.recv_timeout(DRAIN) == Err(mpsc::RecvTimeoutError::Timeout)
        {
            tracing::warn!("gave up sending the queued confirmation emails");
        }
    }
}

impl Worker {
    fn handle(&self, store: &Store, job: &SignUpRequest) -> Result<()> {
        // The name waits for the confirmation (see below); nothing typed
        // into the form goes into mail to an address that has not confirmed.
        let id = match store.add_subscriber(&job.email, "", Status::Pending, job.now)? {
            Added::New(id) => id,
            Added::Exists(s) if s.status == Status::Active => {
                tracing::info!(
                    subscriber = s.id,
                    "sign-up of an active address: nothing to do"
                );
                return Ok(());
            }
            Added::Exists(s) => s.id,
        };
        let ttl = self.config.server.confirm_ttl;
        let expires =
            job.now + chrono::TimeDelta::from_std(ttl).unwrap_or(chrono::TimeDelta::hours(48));
        let expires = store.remember_signup_name(
            id,
            expires.timestamp(),
            &job.name,
            job.topics.as_deref(),
            job.now,
        )?;
        let name = String::new();
        let key = store
            .subscriber_by_id(id)?
            .map(|s| s.key)
            .ok_or_else(|| anyhow::anyhow!("subscriber {id} vanished while signing up"))?;
        let token = token::sign(&self.secret, Purpose::Confirm, &key, Some(expires));
        let confirm_url = links::confirm_url(&self.config, &token);
        let (subject, html, text) =
            self.pages
                .confirmation(&job.email, &name, &confirm_url, &in_words(ttl))?;
        let address = job.email.parse()?;
        let to = recipient(address, &name);
        let message_id = trial_message_id(&self.config, "confirm");
        let message = build_notice(
            &self.config,
            &to,
            &subject,
            text,
            html,
            message_id,
            job.now,
            self.dkim.as_ref(),
        )?;
        let mut wait = Duration::from_secs(2);
        for attempt in 1..=4 {
            match self.transport.send(&message) {
                Ok(reply) => {
                    tracing::info!(subscriber = id, %reply, "confirmation sent");
                    return Ok(());
                }
                Err((true, e)) if attempt < 4 && !self.stopping.load(Ordering::Relaxed) => {
                    tracing::warn!(
                        subscriber = id,
                        "confirmation: {e:#}; trying again in {wait:?}"
                    );
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                Err((_, e)) => {
                    return Err(e.context(format!("the confirmation to subscriber {id}")));
                }
            }
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        assert_eq!(in_words(Duration::from_secs(48 * 3600)), "48 hours");
        assert_eq!(in_words(Duration::from_secs(7 * 86400)), "7 days");
        assert_eq!(in_words(Duration::from_secs(3600)), "1 hour");
        assert_eq!(in_words(Duration::from_secs(90 * 60)), "90 minutes");
    }
}

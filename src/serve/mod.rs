//! `newsletter serve`: the feeds over HTTP, sign-up with double opt-in,
//! one-click unsubscribe, the preference page, and a scheduler that publishes posts when they
//! come due and sends digests on the schedule.
//!
//! One process, axum on a small tokio runtime. Everything that touches the
//! disk, the store or SMTP runs on blocking threads; the request path for
//! feeds touches only memory.

mod files;
mod form;
mod home;
mod pages;
mod preferences;
mod scheduler;
mod signup;
mod welcome;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use chrono::{DateTime, TimeDelta, Utc};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::watch;

use crate::config::Config;
use crate::links;
use crate::store::Store;

pub use files::Files;

/// Request bodies larger than this are refused (413): a sign-up form is tiny.
const BODY_LIMIT: usize = 16 * 1024;

/// How long requests in progress may take to finish after SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// What `newsletter serve` was asked to do.
pub struct ServeOptions {
    /// Where to listen, unless a socket is passed in (`LISTEN_FDS`).
    pub listen: SocketAddr,
    /// Whether `listen` was given on the command line (`--listen`): a
    /// socket passed in wins, and the log says so.
    pub listen_given: bool,
    /// The moment the server's clock starts at (`--now`); it runs on from there.
    pub start: Option<DateTime<Utc>>,
    pub json_logs: bool,
}

/// The server's clock: the real one, or one started at `--now` that runs
/// at the real rate from there.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    offset: TimeDelta,
}

impl Clock {
    pub fn starting_at(start: Option<DateTime<Utc>>) -> Clock {
        Clock {
            offset: start.map_or(TimeDelta::zero(), |s| s - Utc::now()),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

/// State shared by the handlers and the scheduler.
pub struct App {
    config: Config,
    clock: Clock,
    files: RwLock<Arc<Files>>,
    store: Mutex<Store>,
    secret: Vec<u8>,
    pages: pages::Pages,
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    per_email: DefaultKeyedRateLimiter<String>,
    /// Behind a proxy: every request, per forwarded client.
    per_request: DefaultKeyedRateLimiter<IpAddr>,
    confirmations: signup::Confirmations,
    /// Set on shutdown: a delivery in progress stops after its messages in flight.
    cancel: Arc<AtomicBool>,
}

impl App {
    /// The current table of output files.
    fn files(&self) -> Arc<Files> {
        self.files.read().expect("not poisoned").clone()
    }

    /// Reads the output folder again (after a build).
    fn reload_files(&self) -> std::io::Result<usize> {
        let files = Files::load(&self.config, &self.config.feeds.output_dir)?;
        let count = files.len();
        *self.files.write().expect("not poisoned") = Arc::new(files);
        Ok(count)
    }
}

/// Renders each page template and the confirmation email once with sample
/// values: `newsletter check` and the server's start.
pub fn check_templates(config: &Config) -> Result<()> {
    pages::Pages::load(config).map(|_| ())
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn serve(config: Config, options: ServeOptions) -> Result<()> {
    // First, while this is the only thread: the variables are taken out
    // of the environment.
    let inherited = inherited_listener()?;
    let _log = init_logging(options.json_logs);
    if let Some((_, count @ 2..)) = &inherited {
        tracing::warn!(
            count,
            "{count} sockets were passed in (LISTEN_FDS): only the first is served"
        );
    }
    if inherited.is_some() && options.listen_given {
        tracing::warn!(
            "--listen {} is not used: a socket was passed in (LISTEN_FDS), and it is served",
            options.listen
        );
    }
    // Each connection is a file descriptor: the soft limit (often 1,024)
    // goes up to the hard one, so `server.max_connections` can be met.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < config.server.max_connections as u64 + 64 => tracing::warn!(
            limit,
            max_connections = config.server.max_connections,
            "the open-file limit is below server.max_connections: raise the hard limit (LimitNOFILE= for systemd)"
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(
        config,
        options,
        inherited.map(|(listener, _)| listener),
    ))
}

/// The listening socket passed in the systemd way (socket activation):
/// `LISTEN_FDS` sockets from file descriptor 3, for this process if
/// `LISTEN_PID` says so or is not set (a parent that binds the socket
/// before it starts us cannot know our pid). Also how many were passed.
/// `None` without them: then the server binds `--listen` itself.
fn inherited_listener() -> Result<Option<(std::net::TcpListener, usize)>> {
    check_activation_variables()?;
    let mut passed = listenfd::ListenFd::from_env();
    let count = passed.len();
    let Some(listener) = passed
        .take_tcp_listener(0)
        .context("the socket passed in (LISTEN_FDS, file descriptor 3) is not a TCP socket")?
    else {
        return Ok(None);
    };
    if !socket2::SockRef::from(&listener).is_listener()? {
        anyhow::bail!(
            "the socket passed in (LISTEN_FDS, file descriptor 3) is not listening: pass a listening socket (ListenStream= in a systemd .socket unit)"
        );
    }
    listener.set_nonblocking(true)?;
    Ok(Some((listener, count)))
}

/// The socket-activation variables, checked before `listenfd` reads them:
/// it makes a list as long as `LISTEN_FDS` says (gigabytes for an absurd
/// count), adds its own `LISTEN_FDS_FIRST_FD` to each without a check, and
/// quietly ignores a value it cannot read. Each descriptor said to be
/// passed must be open, which bounds the count by what really was.
fn check_activation_variables() -> Result<()> {
    let var = |name: &str| std::env::var(name).ok();
    let Some(fds) = var("LISTEN_FDS") else {
        return Ok(());
    };
    let as_systemd =
        "pass sockets as systemd does (LISTEN_FDS=1 and the socket as file descriptor 3)";
    match var("LISTEN_PID").as_deref() {
        None | Some("") => {}
        Some(pid) => match pid.parse::<u32>() {
            Ok(pid) if pid == std::process::id() => {}
            // For another process: not ours to read.
            Ok(_) => return Ok(()),
            Err(_) => anyhow::bail!(
                "LISTEN_PID={pid:?} is not a process id: unset LISTEN_PID and LISTEN_FDS, or {as_systemd}"
            ),
        },
    }
    let first_fd = var("LISTEN_FDS_FIRST_FD");
    let first = match &first_fd {
        None => 3,
        Some(first) => match first.parse::<i32>() {
            Ok(n) if n >= 0 => n,
            _ => anyhow::bail!(
                "LISTEN_FDS_FIRST_FD={first:?} is not a file descriptor: unset it and {as_systemd}"
            ),
        },
    };
    let Some(count) = fds.parse::<i32>().ok().filter(|&n| n >= 0) else {
        anyhow::bail!("LISTEN_FDS={fds:?} is not a number of sockets: unset it, or {as_systemd}");
    };
    for offset in 0..count {
        let open = first
            .checked_add(offset)
            // SAFETY: F_GETFD only reads the descriptor's flags.
            .is_some_and(|fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1);
        if !open {
            let fd = i64::from(first) + i64::from(offset);
            let said = match &first_fd {
                None => format!("LISTEN_FDS={fds:?} says"),
                Some(first_fd) => {
                    format!("LISTEN_FDS={fds:?} and LISTEN_FDS_FIRST_FD={first_fd:?} say")
                }
            };
            anyhow::bail!(
                "{said} {} from file descriptor {first}, but descriptor {fd} is not open: unset them, or {as_systemd}",
                crate::text::count(count.unsigned_abs() as usize, "socket")
            );
        }
    }
    Ok(())
}

async fn run(
    config: Config,
    options: ServeOptions,
    inherited: Option<std::net::TcpListener>,
) -> Result<()> {
    // Every template renders, or the server does not start: a broken digest
    // template would otherwise show only at the first digest slot.
    crate::email::digest::check_templates(&config)?;
    let store = Store::open(&config.store.path)?;
    // Again now that the store exists: a link that led nowhere at load
    // leads somewhere now.
    crate::config::layout::check_output_dir(&config, &config.feeds.output_dir, "feeds.output_dir")?;
    let secret = store.secret(config.secrets.token_secret.as_deref())?;
    // Requests share this one connection: none waits for another process's
    // write lock while holding it (a busy store queues unsubscribes, see
    // `store::queue`, and makes a confirmation say "try again").
    store.set_busy_timeout(std::time::Duration::ZERO)?;
    store.apply_queued_unsubscribes()?;
    let pages = pages::Pages::load(&config)?;
    let files = Files::load(&config, &config.feeds.output_dir).with_context(|| {
        format!(
            "cannot read the output folder {}",
            config.feeds.output_dir.display()
        )
    })?;
    let confirmations = signup::Confirmations::start(&config, &secret)?;
    let quota = |n: u32| Quota::per_hour(NonZeroU32::new(n).expect("config checks it is not 0"));
    let app = Arc::new(App {
        clock: Clock::starting_at(options.start),
        files: RwLock::new(Arc::new(files)),
        store: Mutex::new(store),
        secret,
        pages,
        per_client: governor::RateLimiter::keyed(quota(config.server.signups_per_client)),
        per_email: governor::RateLimiter::keyed(quota(config.server.signups_per_email)),
        per_request: governor::RateLimiter::keyed(
            Quota::per_second(
                NonZeroU32::new(config.server.requests_per_client).expect("config checks it"),
            )
            .allow_burst(
                NonZeroU32::new(config.server.requests_per_client.saturating_mul(2))
                    .expect("config checks it"),
            ),
        ),
        confirmations,
        cancel: Arc::new(AtomicBool::new(false)),
        config,
    });

    // The first build comes before the first request, so the server never
    // answers from an output folder that is about to change.
    let changes = scheduler::watch(&app);
    let first = scheduler::build(&app, app.clock.now()).await;
    let passed_in = inherited.is_some();
    let listener = match inherited {
        Some(listener) => tokio::net::TcpListener::from_std(listener)?,
        None => tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (see --listen and server.listen)",
                    options.listen
                )
            })?,
    };
    // The address served, as the socket has it (a port 0 made real, a
    // socket passed in).
    let address = listener.local_addr()?;
    tracing::info!(%address, passed_in, public_url = %app.config.server.public_url, "listening");
    for warning in crate::links::link_warnings(&app.config) {
        tracing::warn!("{warning}");
    }
    if !app.config.delivers_mail() {
        tracing::warn!(
            outbox = %app.config.email.outbox.display(),
            "there is no [smtp] section: confirmation emails are written to the outbox and reach no one"
        );
    }

    let (stop, stopped) = watch::channel(false);
    let scheduler = tokio::spawn(scheduler::run(app.clone(), stopped.clone(), first, changes));
    let limits = ConnectionLimits::new(&app.config.server);
    let server = accept(
        listener,
        router(app.clone()),
        app.config.server.request_timeout,
        limits,
        stopped.clone(),
    );
    let signals = tokio::spawn(shutdown_signal(stop, app.cancel.clone()));
    let pruning = tokio::spawn(prune_rate_limits(app.clone()));
    let queued = tokio::spawn(apply_queued_unsubscribes(app.clone()));
    let bounces = tokio::spawn(read_bounces(app.clone()));

    // Open requests get a grace period after the signal; a client that
    // holds a connection open must not keep the process alive.
    let grace = async {
        wait_for(stopped.clone()).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = server => {}
        () = grace => tracing::warn!(
            "requests still open {} s after the signal: closing them",
            SHUTDOWN_GRACE.as_secs()
        ),
    }
    signals.abort();
    pruning.abort();
    queued.abort();
    bounces.abort();
    scheduler.await.context("the scheduler panicked")?;
    app.confirmations.finish();
    tracing::info!("stopped");
    Ok(())
}

/// Serves HTTP/1.1 connections until `stopped`, then lets the open ones
/// finish. Unlike `axum::serve`, each connection has a timer: a client must
/// send a request's headers within `timeout`, so a slow or idle connection
/// cannot be held open forever. (The answer's own deadline is the router's
/// timeout layer.)
async fn accept(
    listener: tokio::net::TcpListener,
    router: Router,
    timeout: std::time::Duration,
    limits: Arc<ConnectionLimits>,
    stopped: watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeout);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(wait_for(stopped));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // Over the caps: closed at once, so one client cannot hold every
        // connection (or file descriptor) and keep others out.
        let Some(slot) = limits.take(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: too many open");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // A client that reads the answer too slowly is dropped too.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(timeout));
        let stream = Box::pin(stream);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            tower::Service::call(&mut router.clone(), request)
        });
        let connection =
            connections.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection closed");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// Open connections, in all and per client address, within
/// `server.max_connections` and `server.connections_per_client`.
struct ConnectionLimits {
    total: usize,
    /// `None` behind a proxy: every connection comes from it.
    per_client: Option<usize>,
    open: Mutex<(usize, std::collections::HashMap<std::net::IpAddr, usize>)>,
}

/// One open connection's place; given back when dropped.
struct Slot {
    limits: Arc<ConnectionLimits>,
    client: std::net::IpAddr,
}

impl ConnectionLimits {
    fn new(server: &crate::config::Server) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            total: server.max_connections,
            per_client: (!server.behind_proxy).then_some(server.connections_per_client),
            open: Mutex::new((0, std::collections::HashMap::new())),
        })
    }

    fn take(self: &Arc<Self>, client: std::net::IpAddr) -> Option<Slot> {
        let client = client_network(client);
        let mut open = self.open.lock().expect("not poisoned");
        let (total, per_client) = &mut *open;
        let mine = per_client.entry(client).or_insert(0);
        if *total >= self.total || self.per_client.is_some_and(|cap| *mine >= cap) {
            if *mine == 0 {
                per_client.remove(&client);
            }
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(Slot {
            limits: self.clone(),
            client,
        })
    }
}

/// A client as the caps count it: an IPv4 address, or an IPv6 /64 (one
/// host usually holds a whole /64).
fn client_network(address: std::net::IpAddr) -> std::net::IpAddr {
    match address {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.into(),
            None => std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)).into(),
        },
        v4 => v4,
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().expect("not poisoned");
        let (total, per_client) = &mut *open;
        *total -= 1;
        if let Some(mine) = per_client.get_mut(&self.client) {
            *mine -= 1;
            if *mine == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route(links::HOME, get(home::home))
        .route(links::HEALTHZ, get(healthz))
        .route(links::SUBSCRIBE, get(signup::form).post(signup::subscribe))
        .route(
            links::CONFIRM,
            get(signup::confirm_page).post(signup::confirm),
        )
        .route(
            links::UNSUBSCRIBE,
            get(signup::unsubscribe_page).post(signup::unsubscribe),
        )
        .route(
            links::PREFERENCES,
            get(preferences::show).post(preferences::save),
        );
    // `/subscribe/` and the like: to the route's own path, whatever the method.
    for route in [
        links::HEALTHZ,
        links::SUBSCRIBE,
        links::CONFIRM,
        links::UNSUBSCRIBE,
        links::PREFERENCES,
    ] {
        router = router.route(&format!("{route}/"), any(to_route));
    }
    router
        .fallback(static_file)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            app.config.server.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            limit_requests,
        ))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(app)
}

/// Behind a proxy, where every connection comes from it, each forwarded
/// client may make `server.requests_per_client` requests a second (twice
/// that in a burst); more get 429. Without a proxy the connection caps do
/// this job.
async fn limit_requests(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if app.config.server.behind_proxy {
        let peer = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0);
        if let Some(peer) = peer {
            let client = signup::client_address(&app, peer, request.headers());
            if app.per_request.check_key(&client).is_err() {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(axum::http::header::RETRY_AFTER, "1")],
                    "too many requests\n",
                )
                    .into_response();
            }
        }
    }
    next.run(request).await
}

/// One log line per request: method, path, status, time taken. An event,
/// not a span: feed readers' polls are most of the traffic, and a span per
/// request would cost more than answering it.
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = redact(request.uri().path());
    let response = next.run(request).await;
    tracing::info!(
        target: "newsletter::request",
        %method,
        path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// The path for the log, without the token of a confirm or unsubscribe
/// link (it works like a key), wherever in the path it is (`//confirm/…`,
/// `/x/../unsubscribe/…`, percent-encoded): everything from the first
/// segment that names a token route on is left out; a token elsewhere,
/// however encoded, is left out of the decoded path.
fn redact(path: &str) -> String {
    // Decoded until it no longer changes (`%2563` is `%63` is `c`), and
    // compared without regard to letter case.
    let mut decoded = path.to_owned();
    for _ in 0..4 {
        let next = percent_encoding::percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let lower = decoded.to_ascii_lowercase();
    let earliest = links::TOKEN_PREFIXES
        .iter()
        .map(|prefix| prefix.trim_matches('/'))
        .filter_map(|name| {
            lower
                .match_indices(name)
                .map(|(at, _)| at)
                .find(|&at| at == 0 || lower[..at].ends_with('/'))
                .map(|at| at + name.len())
        })
        .min();
    match earliest {
        Some(end) => format!("{}…", &lower[..end]),
        // A token elsewhere, encoded (`KEY%2EEXPIRES%2EMAC`), is one the
        // token routes would take once decoded: the decoded path, without it.
        None => match crate::token::redact(decoded.as_bytes()) {
            std::borrow::Cow::Borrowed(_) => path.to_owned(),
            std::borrow::Cow::Owned(clean) => String::from_utf8_lossy(&clean).into_owned(),
        },
    }
}

/// The log filter: `NEWSLETTER_LOG` (default `info`). `debug` or `trace`
/// alone is this tool's own level: other crates stay at `info`, since
/// some log what they parse (html5ever a confirmation mail, links and all).
/// Directives naming a crate (`html5ever=debug`) are taken as written.
fn log_filter(setting: Option<&str>) -> tracing_subscriber::EnvFilter {
    let setting = setting
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("info");
    let chatty = ["debug", "trace"].contains(&setting.to_ascii_lowercase().as_str());
    let directives = if chatty {
        format!("info,newsletter={setting}")
    } else {
        setting.to_string()
    };
    tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// A file of the output folder, for GET and HEAD: from memory when the
/// last build wrote it, else from the disk (the archive, or a file put
/// there since), `/dir/` being `dir/index.html`; a folder or a file named
/// with the wrong ending is redirected, and anything else is the 404 page.
async fn static_file(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [("allow", "GET, HEAD")]).into_response();
    }
    let files = app.files();
    if let Some(file) = files.get(uri.path()) {
        return file.respond(&method, &headers);
    }
    let worker = app.clone();
    let path = uri.path().to_owned();
    let found = tokio::task::spawn_blocking(move || {
        files.find(&worker.config, &worker.config.feeds.output_dir, &path)
    })
    .await;
    match found {
        Ok(files::Found::File(file)) => file.respond(&method, &headers),
        Ok(files::Found::AddSlash) => add_slash(&uri),
        Ok(files::Found::DropSlash) => drop_slash(&uri),
        Ok(files::Found::Missing) => home::not_found(&app),
        Err(e) => {
            tracing::error!("a file lookup panicked: {e}");
            home::not_found(&app)
        }
    }
}

/// `/subscribe/`, `/confirm/{token}/`…: to the route.
async fn to_route(uri: Uri) -> Response {
    drop_slash(&uri)
}

/// `/a/b/` to `/a/b` (308: a POST stays a POST), the query kept. The
/// `Location` is relative (`../b`), so it holds behind a proxy that
/// serves the server under a path of its own.
fn drop_slash(uri: &Uri) -> Response {
    let path = uri.path().strip_suffix('/').unwrap_or(uri.path());
    let last = path.rsplit('/').next().unwrap_or("");
    moved(&format!("../{last}"), uri.query())
}

/// `/a/b` to `/a/b/`, the query kept: a folder's `index.html` is at the
/// folder's path with its slash, which its relative links need. `./`
/// keeps a name with a colon from reading as a scheme.
fn add_slash(uri: &Uri) -> Response {
    let last = uri.path().rsplit('/').next().unwrap_or("");
    moved(&format!("./{last}/"), uri.query())
}

/// A permanent redirect (308) to `location` with `query`.
fn moved(location: &str, query: Option<&str>) -> Response {
    let location = match query {
        Some(query) => format!("{location}?{query}"),
        None => location.to_owned(),
    };
    match axum::http::HeaderValue::try_from(location) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(axum::http::header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad request\n").into_response(),
    }
}

/// For monitoring: 200 while the store answers.
async fn healthz(State(app): State<Arc<App>>) -> Response {
    if !app.confirmations.alive() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "sign-up thread stopped" })),
        )
            .into_response();
    }
    let files = app.files().len();
    let app2 = app.clone();
    // Never waits on the store: a request holding it is work, not a fault.
    let store = tokio::task::spawn_blocking(move || match app2.store.try_lock() {
        Ok(store) => store.setting("schema").map(|_| ()),
        Err(std::sync::TryLockError::WouldBlock) => Ok(()),
        Err(std::sync::TryLockError::Poisoned(_)) => Err(crate::store::StoreError::Poisoned),
    })
    .await;
    match store {
        Ok(Ok(())) => axum::Json(serde_json::json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "files": files,
        }))
        .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "store unavailable" })),
        )
            .into_response(),
    }
}

/// Forgets the rate-limit state of clients and addresses whose limits
/// have refilled, so the tables do not grow for as long as the server runs.
async fn prune_rate_limits(app: Arc<App>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        app.per_client.retain_recent();
        app.per_client.shrink_to_fit();
        app.per_email.retain_recent();
        app.per_email.shrink_to_fit();
        app.per_request.retain_recent();
        app.per_request.shrink_to_fit();
    }
}

/// Applies the unsubscribes queued while the store was busy, as soon as it
/// allows (checked every second; a `stat` when there are none).
async fn apply_queued_unsubscribes(app: Arc<App>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        every.tick().await;
        let worker = app.clone();
        let applied = tokio::task::spawn_blocking(move || {
            let store = worker.store.lock().expect("not poisoned");
            store.apply_queued_unsubscribes()
        })
        .await;
        if let Ok(Err(e)) = applied {
            tracing::debug!(error = %e, "queued unsubscribes wait: the store is still busy");
        }
    }
}

/// Reads the `bounces.imap` mailbox at start and every `bounces.poll`,
/// over a store connection of its own (which may wait for the write lock,
/// unlike the one the handlers share), logging what each pass did.
async fn read_bounces(app: Arc<App>) {
    if app.config.bounces.imap.is_none() {
        return;
    }
    let mut every = tokio::time::interval(app.config.bounces.poll);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let worker = app.clone();
        let handle = tokio::runtime::Handle::current();
        let pass = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut store = Store::open(&worker.config.store.path)?;
            let now = worker.clock.now();
            let pass =
                crate::bounces::imap::read_mailbox(&mut store, &worker.config, now, &handle)?;
            let alerts = crate::bounces::report::alerts(&store, &worker.config, now)?;
            Ok((pass, alerts))
        })
        .await;
        match pass {
            Ok(Ok((pass, alerts))) => {
                if pass.tally.messages > 0 {
                    tracing::info!("bounces: {}", pass.summary(&app.config));
                }
                for place in &pass.tally.not_understood {
                    tracing::warn!("bounces: not understood, flagged and left: {place}");
                }
                for alert in alerts {
                    tracing::warn!("{alert}");
                }
            }
            Ok(Err(e)) => tracing::warn!("bounces: {e:#}"),
            Err(e) => tracing::error!("bounces: the reader panicked: {e}"),
        }
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Waits for Ctrl-C or SIGTERM, then tells everything to stop.
async fn shutdown_signal(stop: watch::Sender<bool>, cancel: Arc<AtomicBool>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing the messages in flight");
    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = stop.send(true);
}

/// Logs to stderr through a background thread that writes whole batches,
/// so a request never waits on a `write` to the log. Nothing is dropped:
/// when the queue is full, logging waits. Keep the guard until exit; its
/// drop writes what is queued.
fn init_logging(json: bool) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = log_filter(std::env::var("NEWSLETTER_LOG").ok().as_deref());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(Redacting(writer));
    // A second call (in tests) finds a logger already set: keep it.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    guard
}

/// The log's writer, with every token taken out of each line (see
/// [`crate::token::redact`]), whichever crate logged it: a directive such
/// as `html5ever=trace` is taken as written, and that parser traces the
/// text of the confirmation mails it reads.
struct Redacting<W>(W);

impl<'a, W: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for Redacting<W>
{
    type Writer = Redacting<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacting(self.0.make_writer())
    }
}

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    /// Takes the whole buffer at once: the formatter writes each line with
    /// one `write_all`, so a token is never split between two calls.
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&crate::token::redact(line))?;
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn connection_caps_count_an_ipv6_client_by_its_64() {
        let net = |a: &str| client_network(a.parse().unwrap());
        assert_eq!(
            net("2001:db8:1:2::1"),
            net("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(
            net("2001:db8:1:2::1"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:203.0.113.5"), net("203.0.113.5"));
        assert_ne!(net("203.0.113.5"), net("203.0.113.6"));
        // The loopback is one client, whichever way it is written.
        assert_eq!(net("::ffff:127.0.0.1"), net("127.0.0.1"));
    }

    #[test]
    fn tokens_are_redacted_wherever_the_route_is() {
        for path in [
            "/confirm/abc.0.def",
            "//confirm/abc.0.def",
            "/x/../unsubscribe/abc.0.def",
            "/%63onfirm/abc.0.def",
            "/unsubscribe/abc.0.def/extra",
            "/CONFIRM/abc.0.def",
            "/Unsubscribe/abc.0.def",
            "/%2563onfirm/abc.0.def",
            "/unsubscribe/abc.0.def/confirm",
        ] {
            let logged = redact(path);
            assert!(!logged.contains("abc"), "{path} logged as {logged}");
        }
        let mac = "0".repeat(64);
        assert_eq!(redact(&format!("/x/a%2E1%2E{mac}")), "/x/…");
        assert_eq!(redact("/a%20b/"), "/a%20b/");
        assert_eq!(redact("/atom.xml"), "/atom.xml");
        assert_eq!(redact("/reconfirm-notes/"), "/reconfirm-notes/");
    }

    #[test]
    fn debug_is_ours_alone() {
        let filter = log_filter(Some("debug")).to_string();
        assert!(
            filter.contains("newsletter=debug") && filter.contains("info"),
            "{filter}"
        );
        assert_eq!(log_filter(Some("warn")).to_string(), "warn");
        assert_eq!(
            log_filter(Some("html5ever=debug")).to_string(),
            "html5ever=debug"
        );
        assert_eq!(log_filter(None).to_string(), "info");
    }
}

//! The preference page, `/preferences/{token}`: a reader's topics and name
//! in a form, and a button to unsubscribe from everything.
//!
//! The token is the reader's own (purpose `preferences`, never expiring),
//! checked like an unsubscribe token: a forged one gets 400 and is never
//! logged (see `links::TOKEN_PREFIXES`). Only an active subscriber gets
//! the form, and saving changes only an active subscriber, so the page
//! subscribes no one again; unsubscribing takes the one-click path.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;

use super::App;
use super::form::Fields;
use super::pages::topic_boxes;
use super::signup::{
    html_response, invalid_link, name_error, page, retry_busy, server_error, topics_error,
    unreadable, unsubscribe_key,
};
use crate::store::{Status, StoreError, Subscriber};
use crate::subscribers::clean_name;
use crate::token::{self, Purpose};
use crate::topics::{ChoiceError, Topics};

/// What the page says when no topic is ticked: the way out is below.
const NO_TOPIC: &str =
    "Please choose at least one topic. To get nothing, unsubscribe from everything below.";

/// `GET /preferences/{token}`; `?saved` (where a save leads) says so.
pub async fn show(State(app): State<Arc<App>>, Path(token): Path<String>, uri: Uri) -> Response {
    let Ok(key) = token::verify(&app.secret, Purpose::Preferences, &token, 0) else {
        return invalid_link(&app);
    };
    let saved = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "saved"));
    let subscriber = match load(&app, key).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let ticked = Topics::of_reader(&app.config, subscriber.topics.as_deref());
    let shown = Shown {
        name: &subscriber.name,
        ticked,
        saved,
        error: None,
    };
    render(&app, StatusCode::OK, &subscriber, &shown)
}

/// `POST /preferences/{token}`: the field `action` is `unsubscribe` (from
/// everything, as the one-click unsubscribe does) or else a save of `name`
/// and the `topics` ticked; a save leads back to the page (303).
pub async fn save(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    form: Result<Fields, StatusCode>,
) -> Response {
    let Ok(key) = token::verify(&app.secret, Purpose::Preferences, &token, 0) else {
        return invalid_link(&app);
    };
    let form = match form {
        Ok(form) => form,
        Err(status) => return unreadable_form(&app, status),
    };
    if form.get("action") == "unsubscribe" {
        return unsubscribe_key(&app, key).await;
    }
    let subscriber = match load(&app, key).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    if subscriber.status != Status::Active {
        return not_subscribed(&app, &subscriber);
    }
    // A form without the field (not the page's own) leaves the name alone.
    let name = match form.has("name") {
        true => form.get("name"),
        false => subscriber.name.as_str(),
    };
    let refused = |status, field, message: &str| {
        let shown = Shown {
            name,
            ticked: form.ticked(&app.config),
            saved: false,
            error: Some((field, message)),
        };
        render(&app, status, &subscriber, &shown)
    };
    if let Some(message) = name_error(name) {
        return refused(StatusCode::UNPROCESSABLE_ENTITY, "name", &message);
    }
    let topics = match form.topics(&app.config) {
        // A form that offered no topics leaves them as they are.
        Ok(None) => subscriber.topics.clone(),
        Ok(Some(topics)) => topics.stored(&app.config),
        Err(ChoiceError::Empty) => return refused(StatusCode::BAD_REQUEST, "topics", NO_TOPIC),
        Err(e) => return refused(StatusCode::BAD_REQUEST, "topics", topics_error(&e)),
    };
    let (worker, id, name) = (app.clone(), subscriber.id, clean_name(name));
    let written = tokio::task::spawn_blocking(move || {
        retry_busy(|| {
            let store = worker.store.lock().expect("not poisoned");
            store.set_preferences(id, &name, topics.as_deref())
        })
    })
    .await;
    match written {
        Ok(Ok(true)) => {
            tracing::info!(subscriber = id, "preferences saved");
            see_saved(&app, &token)
        }
        // Unsubscribed (or bounced) since the page was read.
        Ok(Ok(false)) => not_subscribed(&app, &subscriber),
        Ok(Err(e)) => busy(&app, &e),
        Err(e) => server_error(&app, &anyhow::Error::new(e)),
    }
}

/// What the page shows besides the subscriber: the name and topics (as
/// stored, or as sent with a mistake), and what happened.
struct Shown<'a> {
    name: &'a str,
    ticked: Topics,
    saved: bool,
    /// The field a message is about (`name`, `topics`), and the message.
    error: Option<(&'a str, &'a str)>,
}

fn render(app: &App, status: StatusCode, subscriber: &Subscriber, shown: &Shown) -> Response {
    let active = subscriber.status == Status::Active;
    let topics = if active {
        topic_boxes(&app.config, shown.ticked)
    } else {
        Vec::new()
    };
    let values = context! {
        email => &subscriber.email,
        name => shown.name,
        active,
        topics,
        saved => shown.saved,
        error => shown.error.map(|e| e.1),
        error_field => shown.error.map(|e| e.0),
    };
    match app.pages.render("preferences.html", values) {
        Ok(html) => html_response(status, html),
        Err(e) => server_error(app, &e),
    }
}

/// The page for a subscriber who is not active: it says so, with no form.
fn not_subscribed(app: &App, subscriber: &Subscriber) -> Response {
    let shown = Shown {
        name: "",
        ticked: Topics::default(),
        saved: false,
        error: None,
    };
    render(app, StatusCode::OK, subscriber, &shown)
}

/// The subscriber a genuine token names, or the page that says why there
/// is none to show.
async fn load(app: &Arc<App>, key: String) -> Result<Subscriber, Response> {
    let worker = app.clone();
    let found = tokio::task::spawn_blocking(move || {
        let store = worker.store.lock().expect("not poisoned");
        store.subscriber_by_key(&key)
    })
    .await;
    match found {
        Ok(Ok(Some(subscriber))) => Ok(subscriber),
        // Erased (`subscribers remove --forget`) since the link was sent.
        Ok(Ok(None)) => Err(page(
            app,
            StatusCode::GONE,
            "You are not subscribed",
            "This address is not on the list any more.",
            Some(("../subscribe", "Sign up again")),
        )),
        Ok(Err(e)) => Err(busy(app, &e)),
        Err(e) => Err(server_error(app, &anyhow::Error::new(e))),
    }
}

/// 503: the store is busy in another process; the reader can try again.
fn busy(app: &App, error: &StoreError) -> Response {
    tracing::warn!(%error, "preference page: the store is busy");
    page(
        app,
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again in a moment",
        "We could not read or save your choices just now. Go back and try again in a minute.",
        None,
    )
}

fn unreadable_form(app: &App, status: StatusCode) -> Response {
    page(
        app,
        unreadable(status),
        "The form could not be read",
        "Please go back and try again.",
        None,
    )
}

/// 303 to the page itself (`{token}?saved`, relative, so it holds behind a
/// proxy under a path), which then says the choices are saved; a reload
/// there sends nothing again.
fn see_saved(app: &App, token: &str) -> Response {
    // A verified token is hex digits and dots: a valid header value.
    match HeaderValue::try_from(format!("{token}?saved")) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(e) => server_error(app, &anyhow::Error::new(e)),
    }
}

//! The home page (`/`) and the page for every address the server has
//! nothing at (404), both in the look of the sign-up pages.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;

use super::App;
use super::signup::{form_values, html_response, server_error};
use crate::topics::Topics;

/// How long a 404 may be kept: a scanner's requests can be answered by a
/// cache, and a page written since (an archive page) shows within a minute.
const NOT_FOUND_MAX_AGE: &str = "public, max-age=60";

/// `GET /`: the site's name, the sign-up form, the feeds and the archive.
pub async fn home(State(app): State<Arc<App>>) -> Response {
    let every = Topics::all(&app.config);
    match app
        .pages
        .render("home.html", form_values(&app, "", "", every, None))
    {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(e) => server_error(&app, &e),
    }
}

/// The 404 page; plain text if its template fails (the error is logged).
pub fn not_found(app: &App) -> Response {
    let mut response = match app.pages.render("not_found.html", context! {}) {
        Ok(html) => html_response(StatusCode::NOT_FOUND, html),
        Err(e) => {
            tracing::error!("{e:#}");
            (StatusCode::NOT_FOUND, "not found\n").into_response()
        }
    };
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(NOT_FOUND_MAX_AGE),
    );
    response
}

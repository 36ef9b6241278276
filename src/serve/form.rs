//! A URL-encoded form body, read field by field so that a field sent more
//! than once (a checkbox per topic, all named `topics`) keeps every value:
//! axum's `Form` (serde) keeps one or refuses the repeat.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};

use crate::config::Config;
use crate::topics::{self, ChoiceError, Topics};

/// The fields of a form, in the order sent.
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

/// The media type a form is sent as; anything else is refused, as axum's
/// `Form` does.
const FORM_TYPE: &str = "application/x-www-form-urlencoded";

impl<S: Send + Sync> FromRequest<S> for Fields {
    /// 413 for a body over the limit, 415 for another media type, else 400.
    type Rejection = StatusCode;

    async fn from_request(request: Request, state: &S) -> Result<Fields, StatusCode> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(FORM_TYPE));
        if !is_form {
            return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| rejection.status())?;
        Ok(Fields(
            url::form_urlencoded::parse(&body).into_owned().collect(),
        ))
    }
}

impl Fields {
    /// The first value of the field `name`; empty when it was not sent.
    pub fn get(&self, name: &str) -> &str {
        self.all(name).next().unwrap_or("")
    }

    /// Every value of the field `name`, in the order sent.
    pub fn all<'f>(&'f self, name: &str) -> impl Iterator<Item = &'f str> {
        let name = name.to_owned();
        self.0
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when the field `name` was sent, even empty.
    pub fn has(&self, name: &str) -> bool {
        self.all(name).next().is_some()
    }
}

/// Sent with a form's topic checkboxes, so a form that offers none (a
/// template copied out before the site had topics) is told apart from
/// one in which none is ticked.
pub const TOPICS_OFFERED: &str = "topics_offered";

impl Fields {
    /// The topics ticked (fields `topics`): `None` when the form offered
    /// none, or the site has none; none ticked or an unknown key is refused.
    pub fn topics(&self, config: &Config) -> Result<Option<Topics>, ChoiceError> {
        if config.topics.is_empty() || !self.has(TOPICS_OFFERED) {
            return Ok(None);
        }
        topics::parse_keys(config, self.all("topics")).map(Some)
    }

    /// The topics ticked, to show the form again as it was sent (keys
    /// that are not topics passed over; every topic when it offered none).
    pub fn ticked(&self, config: &Config) -> Topics {
        if !self.has(TOPICS_OFFERED) {
            return Topics::all(config);
        }
        let keys: Vec<&str> = self.all("topics").collect();
        Topics::of_reader(config, Some(&keys.join(",")))
    }
}

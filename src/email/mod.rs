//! The mail side: posts → the digest → one message per subscriber → the
//! transport, with the ledger in the store recording every delivery.
//!
//! - [`digest`]: which posts the next digest carries, rendered once from
//!   the templates, with merge tokens ([`merge`]) where each subscriber's
//!   values go; [`body`] makes excerpts fit for mail clients.
//! - [`compose`]: one subscriber's message: headers, parts; [`dkim`]
//!   signs it.
//! - [`deliver`]: workers, retries, throttles, and the ledger.
//! - [`transport`]: the SMTP server or the outbox folder, behind a seam
//!   that tests fill with a scripted stub.
//! - [`lock`]: one delivering process per store (and one for welcomes).
//! - [`welcome`]: the welcome mail a new subscriber gets, with its own
//!   ledger and lock.
//! - [`send`] and [`preview`]: the commands that put these together.

pub mod body;
pub mod compose;
pub mod deliver;
pub mod digest;
pub mod dkim;
pub mod lock;
pub mod merge;
pub mod preview;
pub mod send;
pub mod transport;
pub mod welcome;

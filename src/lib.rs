//! `newsletter`: a folder of Markdown posts → Atom, RSS and JSON feeds.
//!
//! Data flows one way: content files → [`content::Post`] → rendered HTML
//! ([`render`], made feed-safe by [`html`]) → [`feed`] documents, written by [`build`].

pub mod build;
pub mod cli;
pub mod config;
pub mod content;
pub mod digest;
pub mod feed;
pub mod html;
pub mod mail;
pub mod publish;
pub mod render;
pub mod schedule;
pub mod send;
pub mod serve;
pub mod smtp;
pub mod store;
pub mod subscribers;
pub mod token;
pub mod websub;

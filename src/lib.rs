//! `newsletter`: a folder of Markdown posts → Atom, RSS and JSON feeds.
//!
//! Data flows one way: content files → [`content::Post`] → rendered HTML
//! ([`render`], made feed-safe by [`html`]) → [`feed`] documents, written by [`build`].

pub mod archive;
pub mod atomic;
pub mod bounces;
pub mod build;
pub mod cli;
pub mod config;
pub mod content;
pub mod email;
pub mod feed;
pub mod html;
pub mod init;
pub mod links;
pub mod publish;
pub mod render;
pub mod schedule;
pub mod serve;
pub mod store;
pub mod subscribers;
pub mod templates;
pub mod text;
pub mod token;
pub mod topics;
pub mod websub;

//! Mail that comes back: bounces, spam complaints, auto-replies and mailed
//! unsubscribe requests, read ([`parse`]) and acted on.

pub mod imap;
pub mod intake;
pub mod parse;
pub mod report;
pub mod verp;

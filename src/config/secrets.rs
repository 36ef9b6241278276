//! Secrets: values that never belong in `config.toml`, read from the
//! environment once, by `Config::load`.

use std::fmt;

/// Secrets from the environment. Its `Debug` says only whether each is set,
/// so a logged or printed `Config` never shows them.
#[derive(Clone, Default)]
pub struct Secrets {
    /// `NEWSLETTER_SMTP_PASSWORD`: the password for `smtp.username`.
    pub smtp_password: Option<String>,
    /// `NEWSLETTER_SECRET`: the key that signs confirm and unsubscribe links;
    /// unset or empty, the store makes one and keeps it.
    pub token_secret: Option<String>,
    /// `NEWSLETTER_IMAP_PASSWORD`: the password for the `bounces.imap` user.
    pub imap_password: Option<String>,
}

impl Secrets {
    /// Reads `NEWSLETTER_SMTP_PASSWORD` and `NEWSLETTER_SECRET`; a variable
    /// that is unset or not UTF-8 gives `None`, as `std::env::var` does.
    pub fn from_env() -> Secrets {
        Secrets {
            smtp_password: std::env::var("NEWSLETTER_SMTP_PASSWORD").ok(),
            token_secret: std::env::var("NEWSLETTER_SECRET").ok(),
            imap_password: std::env::var("NEWSLETTER_IMAP_PASSWORD").ok(),
        }
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `format_args!` prints without quotes: <set>, not "<set>".
        let shown = |value: &Option<String>| match value {
            Some(_) => format_args!("<set>"),
            None => format_args!("<unset>"),
        };
        f.debug_struct("Secrets")
            .field("smtp_password", &shown(&self.smtp_password))
            .field("token_secret", &shown(&self.token_secret))
            .field("imap_password", &shown(&self.imap_password))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_says_whether_a_secret_is_set_but_never_what_it_is() {
        let secrets = Secrets {
            smtp_password: Some("hunter2-smtp".into()),
            token_secret: None,
            imap_password: Some("imap-hunter2".into()),
        };
        let shown = format!("{secrets:?}");
        assert_eq!(
            shown,
            "Secrets { smtp_password: <set>, token_secret: <unset>, imap_password: <set> }"
        );
        let pretty = format!("{secrets:#?}");
        assert!(!pretty.contains("hunter2"), "{pretty}");
        let secrets = Secrets {
            smtp_password: None,
            token_secret: Some("s3cret-token-value".into()),
            imap_password: None,
        };
        let shown = format!("{secrets:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("token_secret: <set>"),
            "{shown}"
        );
    }
}

//! Secrets: values that never belong in `config.toml`, read from the
//! environment once, by `Config::load`.

use std::collections::BTreeMap;
use std::fmt;

/// Secrets from the environment. Its `Debug` says only whether each is set,
/// so a logged or printed `Config` never shows them.
#[derive(Clone, Default)]
pub struct Secrets {
    /// The SMTP passwords by the variable that holds each: each relay's
    /// `password_env`, `NEWSLETTER_SMTP_PASSWORD` unless it names another.
    /// Only the variables that are set are here.
    pub smtp_passwords: BTreeMap<String, String>,
    /// `NEWSLETTER_SECRET`: the key that signs confirm and unsubscribe links;
    /// unset or empty, the store makes one and keeps it.
    pub token_secret: Option<String>,
    /// `NEWSLETTER_IMAP_PASSWORD`: the password for the `bounces.imap` user.
    pub imap_password: Option<String>,
}

impl Secrets {
    /// Reads the relays' password variables (`password_envs`),
    /// `NEWSLETTER_SECRET` and `NEWSLETTER_IMAP_PASSWORD`; a variable that
    /// is unset or not UTF-8 counts as unset, as `std::env::var` has it.
    pub fn from_env(password_envs: &[&str]) -> Secrets {
        Secrets {
            smtp_passwords: password_envs
                .iter()
                .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
                .collect(),
            token_secret: std::env::var("NEWSLETTER_SECRET").ok(),
            imap_password: std::env::var("NEWSLETTER_IMAP_PASSWORD").ok(),
        }
    }

    /// The password in the variable `name`, if it is set.
    pub fn smtp_password(&self, name: &str) -> Option<&str> {
        self.smtp_passwords.get(name).map(String::as_str)
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
            .field(
                "smtp_passwords",
                &self
                    .smtp_passwords
                    .keys()
                    .map(|k| (k, format_args!("<set>")))
                    .collect::<BTreeMap<_, _>>(),
            )
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
            smtp_passwords: [("RELAY_PASSWORD".to_string(), "hunter2-smtp".to_string())].into(),
            token_secret: None,
            imap_password: Some("imap-hunter2".into()),
        };
        let shown = format!("{secrets:?}");
        assert_eq!(
            shown,
            "Secrets { smtp_passwords: {\"RELAY_PASSWORD\": <set>}, token_secret: <unset>, imap_password: <set> }"
        );
        let pretty = format!("{secrets:#?}");
        assert!(!pretty.contains("hunter2"), "{pretty}");
        let secrets = Secrets {
            smtp_passwords: BTreeMap::new(),
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

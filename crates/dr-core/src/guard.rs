//! The domain's safety rules in one place: every control-plane adapter asks
//! these before it acts, so the local platform and RDS refuse the same things
//! with the same words.

use secrecy::{ExposeSecret, SecretString};

use crate::error::{DrError, DrResult};
use crate::model::{InstanceId, Tags, EPHEMERAL_TAG};
use crate::ports::DeleteOptions;

/// Whether tags mark an instance as throw-away (`ephemeral=true`, any case).
pub fn is_ephemeral(tags: &Tags) -> bool {
    tags.get(EPHEMERAL_TAG)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// How an allowed deletion goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deletion {
    /// A throw-away instance goes without a final snapshot; anything else
    /// (deleted with `force`) keeps one.
    pub final_snapshot: bool,
}

/// Only an instance tagged `ephemeral=true` may be deleted, unless the
/// caller forces it (and then a final snapshot is kept).
pub fn deletion(id: &InstanceId, tags: &Tags, options: DeleteOptions) -> DrResult<Deletion> {
    let ephemeral = is_ephemeral(tags);
    if !ephemeral && !options.force {
        return Err(DrError::Unsafe(format!(
            "DB instance {id} is not tagged {EPHEMERAL_TAG}=true; refusing to delete it without force"
        )));
    }
    Ok(Deletion {
        final_snapshot: !ephemeral,
    })
}

/// RDS's rule for a PostgreSQL master password: 8 to 128 printable ASCII
/// characters, none of `/`, `"`, `@` or a space. Checked before any change,
/// so a password RDS would refuse is refused locally too.
pub fn master_password(password: &SecretString) -> DrResult<()> {
    let text = password.expose_secret();
    let length = text.chars().count();
    let problem = if !(8..=128).contains(&length) {
        Some(format!("must have 8 to 128 characters (it has {length})"))
    } else if !text.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        Some("may contain only printable ASCII characters".to_owned())
    } else if text.contains(['/', '"', '@', ' ']) {
        Some("must not contain /, \", @ or a space".to_owned())
    } else {
        None
    };
    match problem {
        // The message never quotes the password.
        Some(why) => Err(DrError::InvalidInput(format!(
            "the new master password {why}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_ephemeral_instances_are_deleted_unless_forced_and_forced_ones_keep_a_snapshot() {
        let id = InstanceId::parse("drill-1").expect("id");
        // (tags, force, Some(final snapshot) when allowed)
        type Case<'a> = (&'a [(&'a str, &'a str)], bool, Option<bool>);
        let cases: [Case; 7] = [
            (&[("ephemeral", "true")], false, Some(false)),
            (&[("ephemeral", "TRUE")], false, Some(false)),
            (&[("ephemeral", "true")], true, Some(false)),
            (&[("ephemeral", "false")], false, None),
            (&[("Ephemeral", "true")], false, None),
            (&[], false, None),
            (&[], true, Some(true)),
        ];
        for (pairs, force, expected) in cases {
            let got = deletion(&id, &tags(pairs), DeleteOptions { force });
            match expected {
                Some(final_snapshot) => {
                    assert_eq!(
                        got.expect("allowed"),
                        Deletion { final_snapshot },
                        "{pairs:?} {force}"
                    )
                }
                None => {
                    let error = got.expect_err("refused");
                    assert_eq!(error.name(), "Unsafe", "{pairs:?}");
                    assert!(error.to_string().contains("drill-1"));
                }
            }
        }
    }

    #[test]
    fn master_passwords_follow_the_rds_rules_and_are_never_quoted() {
        let long = "a".repeat(129);
        let cases = [
            ("correct-horse-9", true),
            ("12345678", true),
            (&"a".repeat(128)[..], true),
            ("short", false),
            (&long[..], false),
            ("has space1", false),
            ("has@sign1", false),
            ("has/slash1", false),
            ("has\"quote1", false),
            ("naïve-pass", false),
            ("tab\tinside", false),
        ];
        for (password, ok) in cases {
            let got = master_password(&SecretString::from(password.to_owned()));
            assert_eq!(got.is_ok(), ok, "{password:?}: {got:?}");
            if let Err(error) = got {
                assert_eq!(error.name(), "InvalidInput");
                assert!(!error.to_string().contains(password), "{error}");
            }
        }
    }
}

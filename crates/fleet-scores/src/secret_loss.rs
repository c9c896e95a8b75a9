//! What to do when a write-once Secret we generated is gone (or lost a
//! key): generate it again, or refuse and say so
//! (docs/adr/0016-lost-write-once-secrets.md).
//!
//! Most generated values can be replaced: their consumers are rolled onto
//! the new values ([`crate::write_once::CREDENTIALS_HASH`]) or re-read them.
//! Some cannot, because something already encrypted or stored data with
//! the old value and a new one cannot open it:
//!
//! * the Zitadel masterkey: `zitadel setup` encrypts the instance's keys
//!   with it; a new masterkey cannot decrypt them;
//! * the bundled PostgreSQL passwords: PostgreSQL takes the admin password
//!   only on its first start (initdb) and `zitadel init` creates the
//!   Zitadel user with the user password; new passwords are never set.
//!
//! For those, [`decide`] refuses once there is evidence the old values
//! were used, and the caller must then not call
//! [`crate::write_once::ensure_secret`] (which would create the Secret).

use std::collections::BTreeSet;

use crate::zitadel::ZitadelNames;
use crate::zitadel::objects::{DB_ADMIN_PASSWORD_KEY, DB_USER_PASSWORD_KEY, MASTERKEY_KEY};

/// Generated values that something may already depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// `<stack>-zitadel-masterkey`, key `masterkey`.
    ZitadelMasterkey,
    /// `<stack>-zitadel-db` (bundled database), admin and user passwords.
    ZitadelDatabasePasswords,
}

impl Guarded {
    pub fn secret_name(self, names: &ZitadelNames) -> &str {
        match self {
            Guarded::ZitadelMasterkey => &names.masterkey_secret,
            Guarded::ZitadelDatabasePasswords => &names.db_secret,
        }
    }

    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Guarded::ZitadelMasterkey => &[MASTERKEY_KEY],
            Guarded::ZitadelDatabasePasswords => &[DB_ADMIN_PASSWORD_KEY, DB_USER_PASSWORD_KEY],
        }
    }
}

/// What the cluster shows about a managed Zitadel's past, read by the
/// caller before it ensures the guarded Secrets. Each field names the
/// object found, for the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZitadelHistory {
    /// The bundled database's data volume claim
    /// (`data-<stack>-zitadel-db-0`); it outlives its StatefulSet.
    pub database_volume: Option<String>,
    /// The bundled database's StatefulSet.
    pub database_statefulset: Option<String>,
    /// The init or setup Job (they ran, or run, with the current values).
    pub job: Option<String>,
    /// The provisioner Secret: setup completed at least once.
    pub provisioner_secret: Option<String>,
}

impl ZitadelHistory {
    /// The names of the objects to look for (the caller GETs each).
    pub fn volume_claim_name(names: &ZitadelNames) -> String {
        format!("data-{}-0", names.db_statefulset)
    }

    /// The first object proving `guarded`'s values were used, if any.
    fn evidence(&self, guarded: Guarded) -> Option<&str> {
        let candidates = match guarded {
            // Setup encrypts with the masterkey; a finished setup left the
            // provisioner Secret. A bundled database that exists may hold
            // an encrypted instance even after the Jobs were deleted.
            Guarded::ZitadelMasterkey => [
                &self.provisioner_secret,
                &self.job,
                &self.database_volume,
                &self.database_statefulset,
            ],
            // Only the database itself holds the passwords; the Jobs only
            // used them. An external database is not ours to look at.
            Guarded::ZitadelDatabasePasswords => [
                &self.database_volume,
                &self.database_statefulset,
                &None,
                &None,
            ],
        };
        candidates.into_iter().flatten().map(String::as_str).next()
    }
}

/// Whether missing keys of a guarded Secret may be generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is missing, or nothing used the old values yet: ensure the
    /// Secret as usual.
    Generate,
    /// Do not write the Secret; report [`Refusal`] (Stalled, it needs a
    /// person: the values are gone and no new value can work).
    Refuse(Refusal),
}

/// Why a lost Secret is not generated again. Names objects and keys, never
/// a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Secret {secret} lost {keys} after {evidence} used them: new values cannot open what the \
     old ones protect, so they are not generated. Restore the Secret from a backup, or delete \
     {reset} to start Zitadel over"
)]
pub struct Refusal {
    pub secret: String,
    /// The missing keys, comma separated.
    pub keys: String,
    /// The object that proves the old values were used (`Job demo-zitadel-setup`).
    pub evidence: String,
    /// What to delete for a fresh start.
    pub reset: String,
}

impl Refusal {
    /// CamelCase reason for the condition.
    pub const REASON: &'static str = "SecretLost";
}

/// The decision for one guarded Secret (pure). `stored` is the key set of
/// the live Secret (`None`: the Secret does not exist), as
/// [`crate::secret::key_names`] returns it.
pub fn decide(
    guarded: Guarded,
    names: &ZitadelNames,
    stored: Option<&BTreeSet<String>>,
    history: &ZitadelHistory,
) -> Decision {
    let missing: Vec<&str> = guarded
        .keys()
        .iter()
        .copied()
        .filter(|k| !stored.is_some_and(|s| s.contains(*k)))
        .collect();
    if missing.is_empty() {
        return Decision::Generate;
    }
    match history.evidence(guarded) {
        None => Decision::Generate,
        Some(evidence) => Decision::Refuse(Refusal {
            secret: guarded.secret_name(names).to_string(),
            keys: missing.join(", "),
            evidence: evidence.to_string(),
            reset: format!(
                "the Jobs {} and {}, the Secret {} and, with the bundled database, the \
                 StatefulSet {} and its claim {}",
                names.init_job,
                names.setup_job,
                names.provisioner_secret,
                names.db_statefulset,
                ZitadelHistory::volume_claim_name(names)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> BTreeSet<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_first_start_generates_everything() {
        let names = ZitadelNames::new("demo");
        let nothing = ZitadelHistory::default();
        for g in [Guarded::ZitadelMasterkey, Guarded::ZitadelDatabasePasswords] {
            assert_eq!(decide(g, &names, None, &nothing), Decision::Generate);
        }
    }

    #[test]
    fn a_complete_secret_is_never_refused() {
        let names = ZitadelNames::new("demo");
        let used = ZitadelHistory {
            provisioner_secret: Some("Secret demo-zitadel-provisioner".into()),
            database_volume: Some("PersistentVolumeClaim data-demo-zitadel-db-0".into()),
            ..Default::default()
        };
        let stored = keys(&[MASTERKEY_KEY]);
        assert_eq!(
            decide(Guarded::ZitadelMasterkey, &names, Some(&stored), &used),
            Decision::Generate
        );
    }

    #[test]
    fn a_lost_masterkey_after_setup_is_refused_naming_the_evidence() {
        let names = ZitadelNames::new("demo");
        let history = ZitadelHistory {
            job: Some("Job demo-zitadel-setup".into()),
            ..Default::default()
        };
        let Decision::Refuse(r) = decide(Guarded::ZitadelMasterkey, &names, None, &history) else {
            panic!("must refuse");
        };
        assert_eq!(r.secret, "demo-zitadel-masterkey");
        assert_eq!(r.keys, "masterkey");
        let text = r.to_string();
        assert!(text.contains("Job demo-zitadel-setup used them"), "{text}");
        assert!(text.contains("data-demo-zitadel-db-0"), "{text}");
        // A Secret that exists but lost the key is the same loss.
        let emptied = keys(&["other"]);
        assert!(matches!(
            decide(Guarded::ZitadelMasterkey, &names, Some(&emptied), &history),
            Decision::Refuse(_)
        ));
    }

    #[test]
    fn database_passwords_are_refused_only_while_the_database_exists() {
        let names = ZitadelNames::new("demo");
        // The Jobs used the passwords, but a new database takes new ones.
        let jobs_only = ZitadelHistory {
            job: Some("Job demo-zitadel-init".into()),
            ..Default::default()
        };
        assert_eq!(
            decide(Guarded::ZitadelDatabasePasswords, &names, None, &jobs_only),
            Decision::Generate
        );
        let volume = ZitadelHistory {
            database_volume: Some("PersistentVolumeClaim data-demo-zitadel-db-0".into()),
            ..Default::default()
        };
        let stored = keys(&[DB_ADMIN_PASSWORD_KEY]);
        let Decision::Refuse(r) = decide(
            Guarded::ZitadelDatabasePasswords,
            &names,
            Some(&stored),
            &volume,
        ) else {
            panic!("must refuse");
        };
        assert_eq!(r.keys, DB_USER_PASSWORD_KEY);
        assert_eq!(r.secret, "demo-zitadel-db");
        assert_eq!(
            ZitadelHistory::volume_claim_name(&names),
            "data-demo-zitadel-db-0"
        );
    }
}

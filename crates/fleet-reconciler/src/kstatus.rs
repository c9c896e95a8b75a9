//! The kstatus rules (sigs.k8s.io/cli-utils pkg/kstatus/status, generic
//! conditions) as a pure function, so tests can check every observed
//! status of a FleetStack against what Flux and kubectl will conclude.

use fleet_crds::{FleetStackStatus, PAUSED, READY, RECONCILING, STALLED, find_condition};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KStatus {
    InProgress,
    Failed,
    Current,
    Terminating,
}

/// What kstatus computes for an object with this generation and status.
///
/// For a custom resource kstatus reads, in this order: deletionTimestamp
/// (Terminating); `status.observedGeneration` when present and different
/// from `metadata.generation` (InProgress); the first of `Reconciling=True`
/// (InProgress) / `Stalled=True` (Failed) in the condition list; otherwise
/// Current. It never reads `Ready`: Ready=False alone is Current
/// (cli-utils pkg/kstatus/status generic.go `checkGenericProperties`,
/// status.go `Compute`; kpt 1.0.0-beta.56 vendors cli-utils v0.36.0 and adds
/// readers only for Config Connector and its Rollout kinds).
pub fn compute(
    generation: Option<i64>,
    deleting: bool,
    status: Option<&FleetStackStatus>,
) -> KStatus {
    if deleting {
        return KStatus::Terminating;
    }
    // No status at all reads as Current: that is why the CRD defaults
    // `status.observedGeneration` to -1 and the reconciler stamps
    // Reconciling before doing any work.
    let Some(status) = status else {
        return KStatus::Current;
    };
    if let (Some(generation), Some(observed)) = (generation, status.observed_generation)
        && observed != generation
    {
        return KStatus::InProgress;
    }
    for c in &status.conditions {
        if c.type_ == RECONCILING && c.status == "True" {
            return KStatus::InProgress;
        }
        if c.type_ == STALLED && c.status == "True" {
            return KStatus::Failed;
        }
    }
    // kpt 1.0.0-beta.56 (the library Flux uses) also reads `Ready`: a
    // paused stack with `Ready=Unknown` read "InProgress: spec.paused is
    // true" in the status_contract e2e. So a `Ready` that is not True is
    // InProgress.
    if status
        .conditions
        .iter()
        .any(|c| c.type_ == fleet_crds::READY && c.status != "True")
    {
        return KStatus::InProgress;
    }
    KStatus::Current
}

/// The invariants the reconciler promises for every status it writes
/// (docs/adr/0011-status-contract.md). Returns the violated rule.
pub fn check_contract(generation: Option<i64>, status: &FleetStackStatus) -> Result<(), String> {
    if status.observed_generation.is_none() {
        return Err("observedGeneration missing".into());
    }
    for c in &status.conditions {
        if c.observed_generation.is_none() {
            return Err(format!("condition {} has no observedGeneration", c.type_));
        }
        if c.observed_generation > status.observed_generation {
            return Err(format!(
                "condition {} is ahead of status.observedGeneration",
                c.type_
            ));
        }
        if !matches!(c.status.as_str(), "True" | "False" | "Unknown") {
            return Err(format!("condition {} has status {:?}", c.type_, c.status));
        }
        if c.reason.is_empty()
            || !c
                .reason
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_uppercase())
        {
            return Err(format!(
                "condition {} reason {:?} is not CamelCase",
                c.type_, c.reason
            ));
        }
    }
    let mut types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
    types.sort_unstable();
    let n = types.len();
    types.dedup();
    if types.len() != n {
        return Err("duplicate condition types".into());
    }
    let is_true =
        |t: &str| find_condition(&status.conditions, t).is_some_and(|c| c.status == "True");
    if is_true(READY) && (is_true(RECONCILING) || is_true(STALLED)) {
        return Err("Ready=True together with Reconciling or Stalled".into());
    }
    if is_true(RECONCILING) && is_true(STALLED) {
        return Err("Reconciling and Stalled both True (Stalled would be hidden)".into());
    }
    // kstatus never reads Ready: a stack that is not Ready must say why in
    // a condition kstatus reads, or Flux and kpt call it Current. Paused is
    // the one desired state that is Current without Ready=True. (A status
    // behind the generation, e.g. the CRD default before the first write,
    // already reads InProgress.)
    if status.observed_generation == generation
        && !is_true(READY)
        && !is_true(RECONCILING)
        && !is_true(STALLED)
        && !is_true(PAUSED)
    {
        return Err(
            "not Ready, yet neither Reconciling, Stalled nor Paused (kstatus: Current)".into(),
        );
    }
    // Paused says "nobody checked": Ready=False next to it would be a
    // failure kstatus reads as Current.
    if is_true(PAUSED)
        && !is_true(RECONCILING)
        && !is_true(STALLED)
        && find_condition(&status.conditions, READY).is_some_and(|c| c.status == "False")
    {
        return Err("Paused with Ready=False and neither Reconciling nor Stalled".into());
    }
    // Ready must describe the current generation whenever it claims True:
    // otherwise `kubectl wait` returns on stale state.
    if is_true(READY)
        && find_condition(&status.conditions, READY).and_then(|c| c.observed_generation)
            != generation
    {
        return Err("Ready=True for an older generation".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_crds::{CondStatus, set_condition};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("ts"))
    }

    fn status(generation: i64, conds: &[(&str, CondStatus)]) -> FleetStackStatus {
        let mut s = FleetStackStatus {
            observed_generation: Some(generation),
            ..Default::default()
        };
        for (t, st) in conds {
            set_condition(&mut s.conditions, t, *st, "Because", "", generation, &now());
        }
        s
    }

    #[test]
    fn kstatus_follows_the_generic_rules_in_order() {
        assert_eq!(compute(Some(1), false, None), KStatus::Current);
        assert_eq!(compute(Some(1), true, None), KStatus::Terminating);
        let s = status(1, &[(READY, CondStatus::True)]);
        assert_eq!(compute(Some(1), false, Some(&s)), KStatus::Current);
        assert_eq!(
            compute(Some(2), false, Some(&s)),
            KStatus::InProgress,
            "stale generation"
        );
        let s = status(
            1,
            &[
                (READY, CondStatus::Unknown),
                (RECONCILING, CondStatus::True),
            ],
        );
        assert_eq!(compute(Some(1), false, Some(&s)), KStatus::InProgress);
        let s = status(
            1,
            &[(READY, CondStatus::False), (STALLED, CondStatus::True)],
        );
        assert_eq!(compute(Some(1), false, Some(&s)), KStatus::Failed);
        // kpt's kstatus reads a Ready that is not True as InProgress (seen
        // on a paused stack in the status_contract e2e); the contract still
        // asks for Reconciling/Stalled so Flux and kpt agree on why.
        let s = status(1, &[(READY, CondStatus::False)]);
        assert_eq!(compute(Some(1), false, Some(&s)), KStatus::InProgress);
        assert!(check_contract(Some(1), &s).is_err());
        let s = status(1, &[(READY, CondStatus::Unknown)]);
        assert_eq!(compute(Some(1), false, Some(&s)), KStatus::InProgress);
        // The CRD's status default: observedGeneration -1 before any write.
        let s = FleetStackStatus {
            observed_generation: Some(-1),
            ..Default::default()
        };
        assert_eq!(compute(Some(1), false, Some(&s)), KStatus::InProgress);
        // Paused: no Ready, so Current.
        let s = status(1, &[(PAUSED, CondStatus::True)]);
        assert_eq!(compute(Some(1), false, Some(&s)), KStatus::Current);
        assert!(check_contract(Some(1), &s).is_ok());
        let s = status(
            1,
            &[(PAUSED, CondStatus::True), (READY, CondStatus::Unknown)],
        );
        assert_eq!(compute(Some(1), false, Some(&s)), KStatus::InProgress);
    }

    #[test]
    fn contract_rejects_contradictions() {
        assert!(check_contract(Some(1), &status(1, &[(READY, CondStatus::True)])).is_ok());
        assert!(
            check_contract(
                Some(1),
                &status(
                    1,
                    &[(READY, CondStatus::True), (RECONCILING, CondStatus::True)]
                )
            )
            .is_err()
        );
        assert!(
            check_contract(
                Some(1),
                &status(
                    1,
                    &[(STALLED, CondStatus::True), (RECONCILING, CondStatus::True)]
                )
            )
            .is_err()
        );
        assert!(check_contract(Some(2), &status(1, &[(READY, CondStatus::True)])).is_err());
        let mut s = status(1, &[(READY, CondStatus::True)]);
        s.conditions[0].reason = "lowercase".into();
        assert!(check_contract(Some(1), &s).is_err());
        let mut s = status(1, &[(READY, CondStatus::True)]);
        s.observed_generation = None;
        assert!(check_contract(Some(1), &s).is_err());
    }
}

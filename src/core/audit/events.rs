//! Stable audit event codes, one per [`ActionKind`], in a success form
//! (`...I`) and a failure form (`...E`), like Teleport's `T1001I`/`T1001E`.
//! Codes are never reused or renumbered: a SIEM rule written today must still
//! match next year. The table lives in docs/audit-events.md (a test checks
//! that every code is documented there).
//!
//! Ranges: CH1xxx console and session, CH2xxx tenant lookup and records,
//! CH3xxx redaction, CH4xxx erasure, CH5xxx audit log, CH6xxx restore tests,
//! CH7xxx operators, keys and MFA.

use crate::core::action::ActionKind;
use crate::core::audit::Outcome;

/// The code of a kind without its suffix, e.g. `CH2001`.
pub fn base_code(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::OpenConsole => "CH1001",
        ActionKind::GateStatus => "CH7001",
        ActionKind::Authenticate => "CH7002",
        ActionKind::Bootstrap => "CH7003",
        ActionKind::StepUp => "CH7004",
        ActionKind::OperatorList => "CH7010",
        ActionKind::OperatorAdd => "CH7011",
        ActionKind::OperatorSetRole => "CH7012",
        ActionKind::OperatorLock => "CH7013",
        ActionKind::OperatorUnlock => "CH7014",
        ActionKind::OperatorRemove => "CH7015",
        ActionKind::KeyEnroll => "CH7020",
        ActionKind::KeyList => "CH7021",
        ActionKind::KeyRevoke => "CH7022",
        ActionKind::KeyVerify => "CH7023",
        ActionKind::SearchTenants => "CH2001",
        ActionKind::OpenTenant => "CH2002",
        ActionKind::RecordsList => "CH2003",
        ActionKind::RecordShow => "CH2004",
        ActionKind::TripRoute => "CH2005",
        ActionKind::Reveal => "CH2006",
        ActionKind::RedactPreview => "CH3001",
        ActionKind::RedactApply => "CH3002",
        ActionKind::RedactSweepPreview => "CH3003",
        ActionKind::RedactSweepApply => "CH3004",
        ActionKind::AuditList => "CH5001",
        ActionKind::AuditShow => "CH5002",
        ActionKind::AuditVerify => "CH5003",
        ActionKind::AuditExport => "CH5004",
        ActionKind::AuditCheckpoint => "CH5005",
        ActionKind::ErasureCreate => "CH4001",
        ActionKind::ErasurePlan => "CH4002",
        ActionKind::ErasureApprove => "CH4003",
        ActionKind::ErasureExecute => "CH4004",
        ActionKind::ErasureShow => "CH4005",
        ActionKind::ErasureList => "CH4006",
        ActionKind::ErasureRunQueue => "CH4007",
        ActionKind::ErasureCertificate => "CH4008",
        ActionKind::RestoreTestRun => "CH6001",
        ActionKind::RestoreTestHistory => "CH6002",
        ActionKind::BackupsList => "CH6003",
        ActionKind::BackupSources => "CH6004",
    }
}

/// The event code of an entry: `I` when the action was allowed (written
/// before it runs), `E` when it was denied or failed (the `outcome` column
/// says which).
pub fn event_code(kind: ActionKind, outcome: Outcome) -> String {
    let suffix = match outcome {
        Outcome::Allowed => 'I',
        Outcome::Denied | Outcome::Failed => 'E',
    };
    format!("{}{suffix}", base_code(kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_kind_has_a_unique_well_formed_code() {
        let mut seen = HashSet::new();
        for kind in ActionKind::ALL {
            let c = base_code(kind);
            assert!(
                c.len() == 6 && c.starts_with("CH") && c[2..].chars().all(|d| d.is_ascii_digit()),
                "{c}"
            );
            assert!(seen.insert(c), "code {c} used twice");
        }
        let names: HashSet<_> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names.len(),
            ActionKind::ALL.len(),
            "action names must be unique"
        );
    }

    #[test]
    fn success_and_failure_forms_differ() {
        for kind in ActionKind::ALL {
            let i = event_code(kind, Outcome::Allowed);
            let e = event_code(kind, Outcome::Failed);
            assert!(i.ends_with('I') && e.ends_with('E'));
            assert_eq!(e, event_code(kind, Outcome::Denied));
            assert_eq!(i[..6], e[..6]);
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../../docs/audit-events.md");
        for kind in ActionKind::ALL {
            let row = format!("| `{}` | `{}` |", base_code(kind), kind.as_str());
            assert!(
                doc.contains(&row),
                "docs/audit-events.md lacks the row {row}"
            );
        }
    }
}

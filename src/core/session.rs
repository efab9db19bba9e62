//! Who is at the console. For now the session is the built-in demo operator
//! (clearly marked); the operators-and-MFA work replaces `Session::demo` with
//! an operator resolved from the console database.

use std::fmt;

use uuid::Uuid;

/// The roles of charon's operators (DESIGN.md, "Who uses it").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Support,
    Compliance,
    Sre,
    Auditor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Support,
        Role::Compliance,
        Role::Sre,
        Role::Auditor,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Support => "support",
            Role::Compliance => "compliance",
            Role::Sre => "sre",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operator's session at the console.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: Uuid,
    pub operator: String,
    pub role: Role,
    /// The hardware key the operator opened the session with (recorded in
    /// every audit entry); `None` until the MFA work sets it.
    pub key_id: Option<String>,
    /// True for the demo: software keys, synthetic data, `DEMO` on screen.
    pub demo: bool,
}

impl Session {
    /// The built-in demo operator used until operators and MFA exist.
    pub fn demo(role: Role) -> Session {
        Session {
            id: Uuid::new_v4(),
            operator: "demo".to_string(),
            role,
            key_id: None,
            demo: true,
        }
    }
}

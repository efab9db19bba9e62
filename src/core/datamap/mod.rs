//! The data map: one TOML file that tells charon, for every Pluto table, its
//! primary key, its tenant key, how a row reaches a data subject, and for
//! every column whether it is personal, how it is masked and what erasure
//! does to it. Lookup, inspection, redaction, erasure and restore validation
//! all read it. The format is described in `docs/datamap.md`.
//!
//! Loading is two steps: [`DataMap::parse`] checks the file on its own
//! (every error names the file, the line and the key), then
//! [`validate_against_catalog`] checks it against the live PostgreSQL
//! catalog. [`check`] lists what the live schema has and the map does not
//! classify.

mod catalog;
mod check;
mod parse;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use catalog::{Catalog, CatalogColumn, CatalogTable, Ident, validate_against_catalog};
pub use check::{CheckReport, Hint, HintSource, Unclassified, check, check_with_catalog};

use crate::core::{Error, Result, detect, mask};

/// The data map of the synthetic Pluto schema, shipped with charon.
pub const PLUTO_MAP: &str = include_str!("../../../datamap/pluto.toml");
/// Where the shipped map lives in the source tree (for messages).
pub const PLUTO_MAP_PATH: &str = "datamap/pluto.toml";

/// A validated data map. Every table and column is named as in the file;
/// [`validate_against_catalog`] proves they exist in the live database.
#[derive(Debug, Clone, Serialize)]
pub struct DataMap {
    /// Where it was read from (for messages).
    pub source: PathBuf,
    /// External systems that columns point into, by name.
    pub systems: Vec<System>,
    /// Tables, sorted by name.
    pub tables: Vec<Table>,
}

impl DataMap {
    /// The shipped map of the synthetic Pluto schema.
    pub fn bundled() -> Result<DataMap> {
        DataMap::parse(PLUTO_MAP, Path::new(PLUTO_MAP_PATH))
    }

    /// Reads and parses a map file.
    pub fn load(path: &Path) -> Result<DataMap> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: cannot read: {e}", path.display())))?;
        DataMap::parse(&text, path)
    }

    /// Parses a map's text. `source` names it in errors. Every problem is
    /// reported (one per line of the error), not only the first.
    pub fn parse(text: &str, source: &Path) -> Result<DataMap> {
        parse::parse(text, source)
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn system(&self, name: &str) -> Option<&System> {
        self.systems.iter().find(|s| s.name == name)
    }
}

/// A system outside the Pluto database that columns point into.
#[derive(Debug, Clone, Serialize)]
pub struct System {
    pub name: String,
    pub kind: SystemKind,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemKind {
    /// Object storage (S3 or compatible); erasure deletes the object.
    ObjectStore,
    /// Plaid; erasure removes the item (`/item/remove`).
    Plaid,
}

impl SystemKind {
    pub const NAMES: &'static [&'static str] = &["object_store", "plaid"];

    pub fn parse(s: &str) -> Option<SystemKind> {
        match s {
            "object_store" => Some(SystemKind::ObjectStore),
            "plaid" => Some(SystemKind::Plaid),
            _ => None,
        }
    }
}

/// One table of the Pluto database.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub name: String,
    /// Line of the table's header in the map file.
    pub line: usize,
    /// Primary key columns, in order.
    pub primary_key: Vec<String>,
    /// Where the row's tenant (business id) is.
    pub tenant: KeyPath,
    /// How a row reaches a data subject; empty when no row ever does.
    pub subjects: Vec<SubjectLink>,
    /// What erasing a subject does to their rows here.
    pub erasure: RowErasure,
    /// Every column the map classifies, personal or not, in name order.
    pub columns: Vec<Column>,
    pub note: String,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Columns whose category is not [`Category::None`].
    pub fn personal_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.category.is_personal())
    }

    /// Columns that point at an object in an external system.
    pub fn external_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.erasure.system().is_some())
    }
}

/// A column reached from a table, directly or through joins: the tenant key
/// or a subject link. `column` lives in [`KeyPath::target_table`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyPath {
    /// Joins from the table, in order; empty when the column is the table's own.
    pub via: Vec<JoinStep>,
    pub column: String,
    pub line: usize,
}

impl KeyPath {
    /// The table that holds `column`: the last join's table, or `own`.
    pub fn target_table<'a>(&'a self, own: &'a str) -> &'a str {
        self.via.last().map(|s| s.table.as_str()).unwrap_or(own)
    }

    /// True when the column is on the table itself.
    pub fn is_direct(&self) -> bool {
        self.via.is_empty()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.via {
            write!(f, "{} → {}.{} → ", s.from_column, s.table, s.to_column)?;
        }
        f.write_str(&self.column)
    }
}

/// One join: `from_column` of the previous table (or of the table itself,
/// for the first step) equals `table.to_column`. Written `"a -> t.b"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JoinStep {
    pub from_column: String,
    pub table: String,
    pub to_column: String,
}

/// How a row reaches a data subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectLink {
    pub kind: SubjectKind,
    pub path: KeyPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// The column holds the subject's user id.
    UserId,
    /// The column holds the subject's e-mail address (compared case-insensitively).
    Email,
    /// The column holds the subject's phone number (compared on digits only).
    Phone,
}

impl SubjectKind {
    pub const NAMES: &'static [&'static str] = &["user_id", "email", "phone"];

    pub fn parse(s: &str) -> Option<SubjectKind> {
        match s {
            "user_id" => Some(SubjectKind::UserId),
            "email" => Some(SubjectKind::Email),
            "phone" => Some(SubjectKind::Phone),
            _ => None,
        }
    }

    /// The category the linked column must have.
    pub fn category(self) -> Category {
        match self {
            SubjectKind::UserId => Category::Identifier,
            SubjectKind::Email => Category::ContactEmail,
            SubjectKind::Phone => Category::ContactPhone,
        }
    }
}

/// What erasing a subject does to the rows of a table that reach them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rows", rename_all = "snake_case")]
pub enum RowErasure {
    /// No subject link: erasure never reaches these rows.
    Unlinked,
    /// The rows are deleted (external objects first). With
    /// `keep_if_referenced`, a row that rows retained elsewhere still
    /// reference (foreign key) is kept instead, with its columns' actions
    /// applied.
    Delete { keep_if_referenced: bool },
    /// The rows are kept under a legal hold; personal columns get their
    /// column action (pseudonymise, null, redact, retain).
    Retain(Hold),
}

/// A legal hold: why rows are kept, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub reason: String,
    pub retention_years: u32,
}

/// One classified column.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    pub line: usize,
    pub category: Category,
    pub mask: Mask,
    pub erasure: ColumnErasure,
    pub note: String,
}

/// What kind of personal data a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Classified as not personal.
    None,
    /// An internal id that points at a data subject (a user id).
    Identifier,
    ContactEmail,
    ContactPhone,
    Name,
    Address,
    GovernmentId,
    BirthDate,
    FinancialAccount,
    FinancialCard,
    LocationPrecise,
    /// Text typed by people or read by OCR: may hold anything.
    FreeText,
    /// A reference to an object in an external system (S3 key, Plaid item).
    ExternalRef,
    /// A secret that grants access to an external system (an API access
    /// token): never shown, read only by the erasure that revokes it.
    Credential,
}

impl Category {
    pub const ALL: [Category; 14] = [
        Category::None,
        Category::Identifier,
        Category::ContactEmail,
        Category::ContactPhone,
        Category::Name,
        Category::Address,
        Category::GovernmentId,
        Category::BirthDate,
        Category::FinancialAccount,
        Category::FinancialCard,
        Category::LocationPrecise,
        Category::FreeText,
        Category::ExternalRef,
        Category::Credential,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::None => "none",
            Category::Identifier => "identifier",
            Category::ContactEmail => "contact.email",
            Category::ContactPhone => "contact.phone",
            Category::Name => "name",
            Category::Address => "address",
            Category::GovernmentId => "government_id",
            Category::BirthDate => "birth_date",
            Category::FinancialAccount => "financial.account",
            Category::FinancialCard => "financial.card",
            Category::LocationPrecise => "location.precise",
            Category::FreeText => "free_text",
            Category::ExternalRef => "external_ref",
            Category::Credential => "credential",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn is_personal(self) -> bool {
        self != Category::None
    }

    /// The masks that fit this category; the first is the usual one.
    pub fn masks(self) -> &'static [Mask] {
        use Mask as M;
        match self {
            Category::None => &[M::None],
            Category::Identifier => &[M::None, M::Hidden],
            Category::ContactEmail => &[M::Email, M::Hidden],
            Category::ContactPhone => &[M::PhoneLast2, M::Hidden],
            Category::Name => &[M::Initials, M::Hidden],
            Category::Address => &[M::Hidden, M::FreeText],
            Category::GovernmentId => &[M::Hidden],
            Category::BirthDate => &[M::Hidden],
            Category::FinancialAccount | Category::FinancialCard => &[M::Last4, M::Hidden],
            Category::LocationPrecise => &[M::Round1km, M::Hidden],
            Category::FreeText => &[M::FreeText, M::Hidden],
            Category::ExternalRef => &[M::None, M::Last4, M::Hidden],
            Category::Credential => &[M::Hidden],
        }
    }

    /// True when a column of this category may have that PostgreSQL type
    /// (`format_type` of the base type, without modifiers).
    pub fn fits_type(self, data_type: &str) -> bool {
        match self {
            Category::None => true,
            Category::Identifier => {
                matches!(
                    data_type,
                    "uuid" | "bigint" | "integer" | "smallint" | "numeric"
                ) || is_text_type(data_type)
            }
            Category::LocationPrecise => {
                matches!(data_type, "double precision" | "real" | "numeric" | "point")
            }
            Category::BirthDate => {
                matches!(
                    data_type,
                    "date" | "timestamp without time zone" | "timestamp with time zone"
                ) || is_text_type(data_type)
            }
            Category::FreeText => is_text_type(data_type) || matches!(data_type, "json" | "jsonb"),
            _ => is_text_type(data_type),
        }
    }

    /// The types [`Category::fits_type`] accepts, for messages.
    pub fn expected_types(self) -> &'static str {
        match self {
            Category::None => "any type",
            Category::Identifier => "uuid, an integer type or text",
            Category::LocationPrecise => "double precision, real, numeric or point",
            Category::BirthDate => "date, timestamp or text",
            Category::FreeText => "text, varchar, json or jsonb",
            _ => "text or varchar",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// True for PostgreSQL's character types.
pub fn is_text_type(data_type: &str) -> bool {
    matches!(
        data_type,
        "text" | "character varying" | "character" | "citext" | "name"
    )
}

/// How a column's value is shown on screen by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mask {
    /// Shown as is (not personal, or an internal id).
    None,
    /// `j***@g***.com`.
    Email,
    /// Every digit but the last two hidden.
    PhoneLast2,
    /// `J. M. D.`
    Initials,
    /// Every letter and digit but the last four hidden.
    Last4,
    /// Coordinates rounded to two decimals (about 1 km).
    Round1km,
    /// Fully hidden.
    Hidden,
    /// Free text with detected values (cards, IBANs, e-mails, phones) masked.
    FreeText,
}

impl Mask {
    pub const ALL: [Mask; 8] = [
        Mask::None,
        Mask::Email,
        Mask::PhoneLast2,
        Mask::Initials,
        Mask::Last4,
        Mask::Round1km,
        Mask::Hidden,
        Mask::FreeText,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mask::None => "none",
            Mask::Email => "email",
            Mask::PhoneLast2 => "phone_last2",
            Mask::Initials => "initials",
            Mask::Last4 => "last4",
            Mask::Round1km => "round_1km",
            Mask::Hidden => "hidden",
            Mask::FreeText => "free_text",
        }
    }

    pub fn parse(s: &str) -> Option<Mask> {
        Mask::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The value as it is shown under this mask. `value` is the column's
    /// text form (`::text` in PostgreSQL).
    pub fn apply(self, value: &str) -> String {
        match self {
            Mask::None => value.to_string(),
            Mask::Email => mask::email(value),
            Mask::PhoneLast2 => mask::phone(value),
            Mask::Initials => mask::name(value),
            Mask::Last4 => last4(value),
            Mask::Round1km => round_1km(value),
            Mask::Hidden => "•••".to_string(),
            Mask::FreeText => detect::mask_free_text(value),
        }
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Mask {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn last4(value: &str) -> String {
    let kept: Vec<char> = value.chars().filter(char::is_ascii_alphanumeric).collect();
    if kept.len() <= 4 {
        return format!("••{}", kept.iter().collect::<String>());
    }
    let tail: String = kept[kept.len() - 4..].iter().collect();
    format!("••••{tail}")
}

/// `37.774929` → `37.77`; a point `(x,y)` gets both rounded; anything
/// else is hidden (never shown at full precision).
fn round_1km(value: &str) -> String {
    let round = |s: &str| s.trim().parse::<f64>().ok().map(|v| format!("{v:.2}"));
    if let Some(inner) = value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
        if let Some((x, y)) = inner.split_once(',')
            && let (Some(x), Some(y)) = (round(x), round(y))
        {
            return format!("({x},{y})");
        }
        return "•••".to_string();
    }
    round(value).unwrap_or_else(|| "•••".to_string())
}

/// What erasure does to one column of a subject's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ColumnErasure {
    /// Nothing of its own: the value goes with its row (the table's rows are
    /// deleted). The default for personal columns of `delete` tables.
    DeleteRow,
    /// Set to NULL (the column must be nullable).
    Null,
    /// Replaced with a stable pseudonym that identifies nobody.
    Pseudonymise,
    /// Free text: detected values (cards, IBANs, e-mails, phones) and the
    /// subject's own identifiers are replaced with `[REDACTED:…]` markers.
    Redact,
    /// Kept as is (e.g. an id that retained rows reference).
    Retain,
    /// A generated column: it follows the columns it is computed from.
    Generated,
    /// The object the column names is deleted from the object store.
    DeleteObject { system: String },
    /// The Plaid item the column names is removed.
    RevokeItem {
        system: String,
        /// The column of the same row holding the credential the removal
        /// needs (a Plaid access token); read at execution, sealed in the
        /// queue, never shown or planned.
        credential: Option<String>,
    },
}

impl ColumnErasure {
    pub const NAMES: &'static [&'static str] = &[
        "delete_row",
        "null",
        "pseudonymise",
        "redact",
        "retain",
        "generated",
        "delete_object",
        "revoke_item",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            ColumnErasure::DeleteRow => "delete_row",
            ColumnErasure::Null => "null",
            ColumnErasure::Pseudonymise => "pseudonymise",
            ColumnErasure::Redact => "redact",
            ColumnErasure::Retain => "retain",
            ColumnErasure::Generated => "generated",
            ColumnErasure::DeleteObject { .. } => "delete_object",
            ColumnErasure::RevokeItem { .. } => "revoke_item",
        }
    }

    /// The external system, for `delete_object` and `revoke_item`.
    pub fn system(&self) -> Option<&str> {
        match self {
            ColumnErasure::DeleteObject { system } | ColumnErasure::RevokeItem { system, .. } => {
                Some(system)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_apply() {
        assert_eq!(Mask::Email.apply("jane.doe@gmail.com"), "j***@g***.com");
        assert_eq!(Mask::PhoneLast2.apply("+1 415-555-0134"), "•••••••••34");
        assert_eq!(Mask::Initials.apply("Jane Doe"), "J. D.");
        assert_eq!(Mask::Last4.apply("GB82WEST12345698765432"), "••••5432");
        assert_eq!(Mask::Last4.apply("1234"), "••1234");
        assert_eq!(Mask::Round1km.apply("37.774929"), "37.77");
        assert_eq!(
            Mask::Round1km.apply("(37.774929,-122.419416)"),
            "(37.77,-122.42)"
        );
        assert_eq!(Mask::Round1km.apply("nowhere"), "•••");
        assert_eq!(Mask::Hidden.apply("123-45-6789"), "•••");
        assert_eq!(
            Mask::FreeText.apply("card 4111111111111111"),
            "card ••••••••••••1111"
        );
        assert_eq!(Mask::None.apply("x"), "x");
    }

    #[test]
    fn every_category_has_a_mask_and_names_round_trip() {
        for c in Category::ALL {
            assert!(!c.masks().is_empty());
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
        for m in Mask::ALL {
            assert_eq!(Mask::parse(m.as_str()), Some(m));
        }
    }
}

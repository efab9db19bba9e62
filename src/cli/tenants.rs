//! `charon tenants search|show`.

use clap::Subcommand;
use uuid::Uuid;

use super::output;
use crate::core::action::{Action, Reply};
use crate::core::console::Console;
use crate::core::tenants::Matched;

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Find tenants by name, business id, member e-mail or phone number.
    Search {
        query: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant's overview.
    Show {
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(console: &Console, cmd: TenantsCommand) -> anyhow::Result<i32> {
    match cmd {
        TenantsCommand::Search { query, json } => {
            let Reply::Tenants(hits) = console.dispatch(Action::SearchTenants { query }).await?
            else {
                anyhow::bail!("unexpected reply to a search");
            };
            if json {
                output::json(&hits)?;
            } else {
                for h in &hits {
                    let why = match &h.matched {
                        Matched::Recent => "recent".to_string(),
                        Matched::Id => "id".to_string(),
                        Matched::Name { similarity } => format!("name {similarity:.2}"),
                        Matched::MemberEmail { masked } => format!("member {masked}"),
                        Matched::MemberPhone { masked } => format!("member {masked}"),
                    };
                    output::line(&format!(
                        "{}  {:<40}  {:<10}  {}  {}  {}",
                        h.id,
                        h.name,
                        h.plan,
                        h.country,
                        h.created_at.format("%Y-%m-%d"),
                        why
                    ));
                }
            }
            Ok(if hits.is_empty() { 1 } else { 0 })
        }
        TenantsCommand::Show { id, json } => {
            let Reply::Tenant(t) = console
                .dispatch(Action::OpenTenant { business_id: id })
                .await?
            else {
                anyhow::bail!("unexpected reply to opening a tenant");
            };
            if json {
                output::json(&t)?;
            } else {
                output::line(&format!("{}  {}", t.name, t.id));
                output::line(&format!(
                    "plan {}  country {}  created {}",
                    t.plan,
                    t.country,
                    t.created_at.format("%Y-%m-%d")
                ));
                println!("members:");
                for m in &t.members {
                    output::line(&format!("  {:<10} {:<12} {}", m.role, m.name, m.email));
                }
                println!("banks:");
                for b in &t.banks {
                    output::line(&format!(
                        "  {} ({}, {} accounts)",
                        b.institution, b.status, b.accounts
                    ));
                }
                println!("records:");
                for r in &t.records {
                    let latest = r
                        .latest
                        .map(|d| d.format("%Y-%m-%d").to_string())
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "  {:<16} {:>8}  latest {latest}",
                        r.kind.label(),
                        r.display()
                    );
                }
            }
            Ok(0)
        }
    }
}

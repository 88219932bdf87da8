//! The privilege views of `information_schema`: USER_PRIVILEGES, SCHEMA_PRIVILEGES,
//! TABLE_PRIVILEGES and COLUMN_PRIVILEGES, generated from the accounts and grants of the
//! cluster catalog (`cairn_common::accounts`).
//!
//! As in MySQL 8, each row is one privilege of one grantee (`'user'@'host'`) at one level, the
//! privileges in MySQL's order; `GRANT OPTION` is not a row of its own but makes IS_GRANTABLE
//! `YES` on the rows of its level; an account with no global privilege has one USER_PRIVILEGES
//! row `USAGE`. Roles are grantees like accounts (MySQL lists them too).
//!
//! Visibility, as MySQL filters these views: a session sees the rows of its own account
//! (CURRENT_USER()) only, unless it may read the grant tables, which for Cairn (which has no
//! `mysql` schema of grant tables) means SELECT globally or on the `mysql` database.
//!
//! Left out: MySQL 8's dynamic privileges (BACKUP_ADMIN, …), which Cairn does not have, and
//! routine-level grants, which MySQL shows in no information_schema view either.

use cairn_common::accounts::{AccountName, Accounts, Authorization, PrivSet, Privilege, level};
use cairn_common::catalog::ColumnDef;
use cairn_common::types::ColumnType;
use cairn_common::Value;

use crate::outcome::Row;

/// The names of the views this module generates.
pub(crate) const VIEWS: &[&str] = &["COLUMN_PRIVILEGES", "SCHEMA_PRIVILEGES", "TABLE_PRIVILEGES", "USER_PRIVILEGES"];

/// Column 0 of every view: the grantee the visibility rule compares with CURRENT_USER().
pub(crate) const GRANTEE_COLUMN: usize = 0;

fn varchar(name: &str, length: u32) -> ColumnDef {
    let mut c = ColumnDef::new(name, ColumnType::VarChar { length, binary: false });
    c.nullable = false;
    c
}

/// The columns of a view, with MySQL 8's names and types, or `None` for another name.
pub(crate) fn columns(view: &str) -> Option<Vec<ColumnDef>> {
    let mut columns = vec![varchar("GRANTEE", 292), varchar("TABLE_CATALOG", 512)];
    match view {
        "USER_PRIVILEGES" => {}
        "SCHEMA_PRIVILEGES" => columns.push(varchar("TABLE_SCHEMA", 64)),
        "TABLE_PRIVILEGES" => columns.extend([varchar("TABLE_SCHEMA", 64), varchar("TABLE_NAME", 64)]),
        "COLUMN_PRIVILEGES" => {
            columns.extend([varchar("TABLE_SCHEMA", 64), varchar("TABLE_NAME", 64), varchar("COLUMN_NAME", 64)])
        }
        _ => return None,
    }
    columns.extend([varchar("PRIVILEGE_TYPE", 64), varchar("IS_GRANTABLE", 3)]);
    Some(columns)
}

/// An account as the GRANTEE column writes it: `'user'@'host'`.
pub(crate) fn grantee(name: &AccountName) -> String {
    format!("'{}'@'{}'", name.user, name.host)
}

/// The grantee of a session's CURRENT_USER() text (`user@host`, split at the last `@`).
pub(crate) fn grantee_of_current_user(account: &str) -> String {
    match account.rsplit_once('@') {
        Some((user, host)) => format!("'{user}'@'{host}'"),
        None => format!("'{account}'@''"),
    }
}

/// Whether a session sees every grantee's rows (it may read the grant tables).
pub(crate) fn sees_all_grantees(authorization: &Authorization) -> bool {
    authorization.on_database("mysql").has(Privilege::Select)
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// One row per privilege of `set` (GRANT OPTION excepted), each with `prefix` before it.
fn privilege_rows(rows: &mut Vec<Row>, prefix: Vec<Value>, set: PrivSet, level_bit: u8) {
    let grantable = if set.has(Privilege::GrantOption) { "YES" } else { "NO" };
    for p in set.iter().filter(|&p| p != Privilege::GrantOption && p.levels() & level_bit != 0) {
        let mut row = prefix.clone();
        row.extend([text(p.name()), text(grantable)]);
        rows.push(row);
    }
}

/// Every row of a view, for every grantee (the caller applies the visibility rule).
pub(crate) fn rows(view: &str, accounts: &Accounts) -> Vec<Row> {
    let mut rows = Vec::new();
    for name in accounts.accounts.keys() {
        let grants = accounts.grants.get(name).cloned().unwrap_or_default();
        let who = || vec![text(grantee(name)), text("def")];
        match view {
            "USER_PRIVILEGES" => {
                let before = rows.len();
                privilege_rows(&mut rows, who(), grants.global, level::GLOBAL);
                if rows.len() == before {
                    let grantable = if grants.global.has(Privilege::GrantOption) { "YES" } else { "NO" };
                    let mut row = who();
                    row.extend([text("USAGE"), text(grantable)]);
                    rows.push(row);
                }
            }
            "SCHEMA_PRIVILEGES" => {
                for (database, set) in &grants.databases {
                    let mut prefix = who();
                    prefix.push(text(database));
                    privilege_rows(&mut rows, prefix, *set, level::DATABASE);
                }
            }
            "TABLE_PRIVILEGES" => {
                for ((database, table), set) in &grants.tables {
                    let mut prefix = who();
                    prefix.extend([text(database), text(table)]);
                    privilege_rows(&mut rows, prefix, *set, level::TABLE);
                }
            }
            "COLUMN_PRIVILEGES" => {
                for ((database, table), columns) in &grants.columns {
                    // A column grant is grantable when the table-level grant carries GRANT
                    // OPTION, as MySQL keeps it per table.
                    let table_grant = grants.tables.get(&(database.clone(), table.clone())).copied().unwrap_or_default();
                    for (column, set) in columns {
                        let mut prefix = who();
                        prefix.extend([text(database), text(table), text(column)]);
                        let set = if table_grant.has(Privilege::GrantOption) { set.union(PrivSet::of(&[Privilege::GrantOption])) } else { *set };
                        privilege_rows(&mut rows, prefix, set, level::COLUMN);
                    }
                }
            }
            _ => {}
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_common::accounts::{Account, Credential, AuthPlugin, Grants};

    fn accounts() -> Accounts {
        let mut a = Accounts::default();
        let exim = AccountName::new("exim", "127.0.0.%");
        let admin = AccountName::new("admin", "localhost");
        for name in [&exim, &admin] {
            a.accounts.insert(name.clone(), Account::new(name.clone(), Credential::none(AuthPlugin::CachingSha2Password)));
        }
        let mut g = Grants::default();
        g.databases.insert("calmail".into(), PrivSet::of(&[Privilege::Select, Privilege::Insert]));
        g.tables.insert(("calmail".into(), "account".into()), PrivSet::of(&[Privilege::Update, Privilege::GrantOption]));
        let mut cols = std::collections::BTreeMap::new();
        cols.insert("state".to_string(), PrivSet::of(&[Privilege::Select]));
        g.columns.insert(("calmail".into(), "domain".into()), cols);
        a.grants.insert(exim, g);
        let mut g = Grants::default();
        g.global = PrivSet::of(&[Privilege::Select, Privilege::Process, Privilege::GrantOption]);
        a.grants.insert(admin, g);
        a
    }

    fn render(rows: Vec<Row>) -> Vec<String> {
        rows.into_iter().map(|r| r.iter().map(|v| v.to_text().into_owned()).collect::<Vec<_>>().join(" | ")).collect()
    }

    #[test]
    fn rows_are_mysqls() {
        let a = accounts();
        assert_eq!(
            render(rows("USER_PRIVILEGES", &a)),
            [
                "'admin'@'localhost' | def | SELECT | YES",
                "'admin'@'localhost' | def | PROCESS | YES",
                "'exim'@'127.0.0.%' | def | USAGE | NO",
            ]
        );
        assert_eq!(
            render(rows("SCHEMA_PRIVILEGES", &a)),
            ["'exim'@'127.0.0.%' | def | calmail | SELECT | NO", "'exim'@'127.0.0.%' | def | calmail | INSERT | NO"]
        );
        assert_eq!(render(rows("TABLE_PRIVILEGES", &a)), ["'exim'@'127.0.0.%' | def | calmail | account | UPDATE | YES"]);
        assert_eq!(render(rows("COLUMN_PRIVILEGES", &a)), ["'exim'@'127.0.0.%' | def | calmail | domain | state | SELECT | NO"]);
        for view in VIEWS {
            let width = columns(view).map(|c| c.len());
            assert!(rows(view, &a).iter().all(|r| Some(r.len()) == width), "{view}");
        }
        assert_eq!(grantee_of_current_user("exim@127.0.0.%"), "'exim'@'127.0.0.%'");
    }
}

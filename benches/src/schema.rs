//! Every piece of SQL the load generator sends, in one place: each workload's schema, the data it
//! loads and the statement it measures.
//!
//! This is the file to edit when a server (Cairn early in its life) cannot yet run a definition as
//! written. The measured statement can also be replaced at run time with `--query` (same
//! placeholders, same order); the report then says so and prints the text that ran, so a changed
//! measurement is never silent.
//!
//! The data is a pure function of the row number: setup and the load loop agree on which rows
//! exist and what each lookup must return without sharing any state, and every run (against
//! MariaDB or Cairn) sees the same data.

use crate::rng::mix;

/// The database that holds the generic tables (point-select, insert, update).
pub const BENCH_DATABASE: &str = "bench";

/// The table of `--rows` rows read by `point-select` and written by `update`.
pub const KEY_VALUE_TABLE_DDL: &str = "CREATE TABLE bench.t (\
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY, \
    n BIGINT NOT NULL DEFAULT 0, \
    k INT UNSIGNED NOT NULL, \
    c VARCHAR(64) NOT NULL)";

/// The table that `insert` fills; same shape as `bench.t`, created empty.
pub const INSERT_TABLE_DDL: &str = "CREATE TABLE bench.t_insert (\
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY, \
    n BIGINT NOT NULL DEFAULT 0, \
    k INT UNSIGNED NOT NULL, \
    c VARCHAR(64) NOT NULL)";

/// `point-select`: one row by primary key.
pub const POINT_SELECT_SQL: &str = "SELECT id, n, k, c FROM bench.t WHERE id = ?";

/// `update`: a single-row read-modify-write by primary key (the fast path the design singles out).
pub const UPDATE_SQL: &str = "UPDATE bench.t SET n = n + 1 WHERE id = ?";

/// `insert`: one new row per autocommit statement.
pub const INSERT_SQL: &str = "INSERT INTO bench.t_insert (id, n, k, c) VALUES (?, 0, ?, ?)";

/// Finds the first free key of `bench.t_insert`, so that runs with `--no-setup` never collide
/// with rows inserted by an earlier run. Not measured.
pub const INSERT_NEXT_KEY_SQL: &str = "SELECT COALESCE(MAX(id), 0) + 1 FROM bench.t_insert";

/// The CalMail domain table, exactly as the brief gives it.
pub const CALMAIL_DOMAIN_DDL: &str = "CREATE TABLE calmail.domain (\
    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
    name VARCHAR(255) NOT NULL, \
    UNIQUE KEY (name))";

/// The CalMail account table, exactly as the brief gives it.
pub const CALMAIL_ACCOUNT_DDL: &str = "CREATE TABLE calmail.account (\
    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
    domain_id INT UNSIGNED NOT NULL, \
    localpart VARCHAR(64) NOT NULL, \
    host VARCHAR(64) NOT NULL, \
    state VARCHAR(16) NOT NULL DEFAULT 'active', \
    UNIQUE KEY (domain_id, localpart))";

/// `exim-join`: Exim's recipient lookup, as CalMail's Exim configuration sends it (with literals
/// in the text protocol; the placeholders are the local part and the domain).
pub const EXIM_JOIN_SQL: &str = "select a.* from calmail.account a, calmail.domain d \
    where a.domain_id=d.id and a.localpart=? and d.name=? and a.state='active'";

/// The greylisting state: one row per (client /24 network, sender, recipient) triplet, as
/// Postgrey keeps it.
pub const GREYLIST_TABLE_DDL: &str = "CREATE TABLE greylist.triplet (\
    client_net VARCHAR(45) NOT NULL, \
    sender VARCHAR(160) NOT NULL, \
    recipient VARCHAR(160) NOT NULL, \
    first_seen BIGINT NOT NULL, \
    last_seen BIGINT NOT NULL, \
    hits INT UNSIGNED NOT NULL DEFAULT 1, \
    PRIMARY KEY (client_net, sender, recipient))";

/// A Postgrey-style greylisting decision as a stored function: returns 1 when the delivery must
/// be deferred, 0 when it may pass.
///
/// A triplet seen for the first time (or not seen for longer than `p_lifetime_s`) is recorded and
/// deferred; one first seen less than `p_delay_s` ago is deferred; any other passes. Every call
/// refreshes `last_seen`. The lookup uses aggregates so that a missing triplet yields one row of
/// NULLs instead of a NOT FOUND condition, which keeps the body to DECLARE, SET, IF, SELECT INTO
/// and RETURN (the subset Cairn plans to support first). The INSERT's ON DUPLICATE KEY UPDATE
/// covers two connections meeting the same new triplet at once.
///
/// This is our own function written for the benchmark; CalMail's original was not available.
pub const GREYLIST_FUNCTION_DDL: &str = "CREATE FUNCTION greylist.greylist_defer_p(\
    p_sender VARCHAR(160), p_recipient VARCHAR(160), p_client_ip VARCHAR(45), \
    p_delay_s INT, p_lifetime_s INT) RETURNS INT
MODIFIES SQL DATA
BEGIN
  DECLARE v_now BIGINT DEFAULT UNIX_TIMESTAMP();
  DECLARE v_net VARCHAR(45) DEFAULT SUBSTRING_INDEX(p_client_ip, '.', 3);
  DECLARE v_seen INT DEFAULT 0;
  DECLARE v_first BIGINT DEFAULT NULL;
  DECLARE v_last BIGINT DEFAULT NULL;
  SELECT COUNT(*), MIN(first_seen), MIN(last_seen) INTO v_seen, v_first, v_last
    FROM greylist.triplet
    WHERE client_net = v_net AND sender = p_sender AND recipient = p_recipient;
  IF v_seen = 0 OR v_now - v_last > p_lifetime_s THEN
    INSERT INTO greylist.triplet (client_net, sender, recipient, first_seen, last_seen, hits)
      VALUES (v_net, p_sender, p_recipient, v_now, v_now, 1)
      ON DUPLICATE KEY UPDATE first_seen = v_now, last_seen = v_now, hits = 1;
    RETURN 1;
  END IF;
  UPDATE greylist.triplet SET last_seen = v_now, hits = hits + 1
    WHERE client_net = v_net AND sender = p_sender AND recipient = p_recipient;
  IF v_now - v_first < p_delay_s THEN
    RETURN 1;
  END IF;
  RETURN 0;
END";

/// `greylist`: one greylisting decision per statement, as Exim's ACL asks for it. The
/// placeholders are sender, recipient, client IP, delay and lifetime.
pub const GREYLIST_SQL: &str = "SELECT greylist.greylist_defer_p(?, ?, ?, ?, ?)";

/// Postgrey's default delay before a retry is accepted, in seconds.
pub const GREYLIST_DELAY_S: i64 = 300;
/// Postgrey's default `max-age`: a triplet unseen for 35 days is forgotten.
pub const GREYLIST_LIFETIME_S: i64 = 35 * 24 * 3600;

// ---- Generated data ----------------------------------------------------------------------------

/// Row `id` of `bench.t` (and of `bench.t_insert`): `(k, c)`.
pub fn key_value_row(id: u64) -> (u64, String) {
    let k = mix(id) % 1_000_000;
    let c = format!(
        "{:016x}{:016x}",
        mix(id ^ 0x5bd1_e995),
        mix(id.wrapping_add(0x9e37))
    );
    (k, c)
}

/// How many domains the CalMail data set has for `rows` accounts: one per hundred accounts.
pub fn calmail_domain_count(rows: u64) -> u64 {
    rows.div_ceil(100).max(1)
}

/// The name of domain number `index` (0-based; its id is `index + 1`).
pub fn calmail_domain_name(index: u64) -> String {
    format!("dept{index}.example.edu")
}

/// Account number `index` (0-based; its id is `index + 1`) of a data set of `rows` accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalmailAccount {
    /// 0-based index of the account's domain.
    pub domain_index: u64,
    pub localpart: String,
    pub host: String,
    /// One account in twenty is suspended, so the Exim lookup also exercises its "no such active
    /// recipient" answer (an empty result).
    pub active: bool,
}

/// Account number `index` of a data set of `rows` accounts.
pub fn calmail_account(index: u64, rows: u64) -> CalmailAccount {
    CalmailAccount {
        domain_index: index % calmail_domain_count(rows),
        localpart: format!("user{index}"),
        host: format!("mailhost{}.example.edu", index % 8),
        active: index % 20 != 19,
    }
}

/// A greylisting triplet as the client presents it: `(sender, recipient, client_ip)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreylistTriplet {
    pub sender: String,
    pub recipient: String,
    pub client_ip: String,
}

impl GreylistTriplet {
    /// The /24 network the function keys on, computed the way the function computes it.
    pub fn client_net(&self) -> &str {
        match self.client_ip.rfind('.') {
            Some(position) => &self.client_ip[..position],
            None => &self.client_ip,
        }
    }
}

/// Preloaded triplet number `index`: known for a day, last seen an hour ago, so it passes.
pub fn greylist_known_triplet(index: u64) -> GreylistTriplet {
    GreylistTriplet {
        sender: format!("sender{index}@example.org"),
        recipient: format!("rcpt{index}@example.edu"),
        client_ip: ip_for(index),
    }
}

/// A triplet no earlier call can have seen: `run_nonce` separates runs, `connection` and
/// `sequence` separate calls within a run.
pub fn greylist_new_triplet(run_nonce: u64, connection: u64, sequence: u64) -> GreylistTriplet {
    GreylistTriplet {
        sender: format!("new{run_nonce:x}-{connection}-{sequence}@example.org"),
        recipient: format!("rcpt{}@example.edu", sequence % 1000),
        client_ip: ip_for(mix(run_nonce ^ (connection << 40) ^ sequence)),
    }
}

/// An IPv4 address in text form derived from `value` (only ever stored as a string).
fn ip_for(value: u64) -> String {
    format!(
        "10.{}.{}.{}",
        (value >> 16) & 0xff,
        (value >> 8) & 0xff,
        value & 0xff
    )
}

/// Escapes `text` as a single-quoted SQL string literal under the default SQL mode (backslash is
/// an escape character), so generated text can never change a statement's meaning.
pub fn quote_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for character in text.chars() {
        match character {
            '\'' => quoted.push_str("''"),
            '\\' => quoted.push_str("\\\\"),
            '\0' => quoted.push_str("\\0"),
            other => quoted.push(other),
        }
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote_string("plain"), "'plain'");
        assert_eq!(quote_string("o'brien"), "'o''brien'");
        assert_eq!(quote_string("a\\b"), "'a\\\\b'");
        assert_eq!(quote_string("nul\0"), "'nul\\0'");
    }

    #[test]
    fn accounts_are_unique_per_domain_and_one_in_twenty_is_suspended() {
        let rows = 1_000;
        let mut seen = std::collections::HashSet::new();
        let mut suspended = 0;
        for index in 0..rows {
            let account = calmail_account(index, rows);
            assert!(account.domain_index < calmail_domain_count(rows));
            assert!(seen.insert((account.domain_index, account.localpart.clone())));
            if !account.active {
                suspended += 1;
            }
        }
        assert_eq!(suspended, 50);
    }

    #[test]
    fn triplet_network_drops_the_last_octet() {
        let triplet = greylist_known_triplet(0x01_02_03);
        assert_eq!(triplet.client_ip, "10.1.2.3");
        assert_eq!(triplet.client_net(), "10.1.2");
    }

    #[test]
    fn new_triplets_differ_from_known_ones_and_each_other() {
        let known = greylist_known_triplet(5);
        let first = greylist_new_triplet(99, 0, 5);
        let second = greylist_new_triplet(99, 1, 5);
        assert_ne!(known.sender, first.sender);
        assert_ne!(first.sender, second.sender);
    }
}

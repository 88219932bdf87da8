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

/// The greylisting state of `examples/greylist/greylist.sql`, in the `greylist` database: one
/// row per triplet, keyed by the client's /24 network (4 bytes, `INET_ATON`) and the key Exim
/// builds from the envelope sender and recipient.
pub const GREYLIST_TRIPLET_DDL: &str = "CREATE TABLE greylist.greylist_triplet (\
    net INT UNSIGNED NOT NULL, \
    k VARCHAR(255) NOT NULL, \
    first_seen INT UNSIGNED NOT NULL, \
    last_seen INT UNSIGNED NOT NULL, \
    attempts INT UNSIGNED NOT NULL DEFAULT 1, \
    PRIMARY KEY (net, k))";

/// The auto-whitelist: accepted attempts per client address (4 bytes).
pub const GREYLIST_CLIENT_DDL: &str = "CREATE TABLE greylist.greylist_client (\
    ip INT UNSIGNED NOT NULL PRIMARY KEY, \
    passes INT UNSIGNED NOT NULL, \
    last_seen INT UNSIGNED NOT NULL)";

/// The Postgrey-style greylisting function of `examples/greylist/greylist.sql`, created in the
/// `greylist` database (its unqualified tables are that database's):
/// `greylist_defer_p(key, ip, awl_count, delay, timestamp_update)` returns 1 (defer) or 0
/// (accept). `examples/greylist/README.md` explains the algorithm; the text is the example's
/// (a test checks that they stay the same).
pub const GREYLIST_FUNCTION_DDL: &str = "CREATE FUNCTION greylist.greylist_defer_p(p_key VARCHAR(255), p_ip VARCHAR(45), p_awl_count INT,
                                 p_delay INT, p_timestamp_update INT)
RETURNS INT
MODIFIES SQL DATA
COMMENT 'Postgrey greylisting: 1 = defer, 0 = accept'
BEGIN
  DECLARE v_now INT UNSIGNED DEFAULT UNIX_TIMESTAMP();
  DECLARE v_ip INT UNSIGNED DEFAULT INET_ATON(p_ip);
  DECLARE v_net INT UNSIGNED;
  DECLARE v_passes INT UNSIGNED DEFAULT 0;
  DECLARE v_first INT UNSIGNED;

  -- Not an IPv4 address (an IPv6 client, a malformed value): nothing to key it by, accept.
  IF v_ip IS NULL THEN
    RETURN 0;
  END IF;
  SET v_net = v_ip - v_ip % 256;

  -- A client whose attempts were accepted awl_count times is whitelisted.
  IF p_awl_count > 0 THEN
    SELECT passes INTO v_passes FROM greylist_client WHERE ip = v_ip;
    IF v_passes >= p_awl_count THEN
      IF p_timestamp_update <> 0 THEN
        UPDATE greylist_client SET last_seen = v_now WHERE ip = v_ip;
      END IF;
      RETURN 0;
    END IF;
  END IF;

  -- Record the attempt: one atomic single-row upsert, whoever else calls at the same moment.
  INSERT INTO greylist_triplet (net, k, first_seen, last_seen, attempts)
    VALUES (v_net, p_key, v_now, v_now, 1)
    ON DUPLICATE KEY UPDATE attempts = attempts + 1,
                            last_seen = IF(p_timestamp_update <> 0, v_now, last_seen);
  -- One row inserted: the triplet was new.
  IF ROW_COUNT() = 1 THEN
    RETURN 1;
  END IF;

  -- A retry: deferred until `delay` seconds after the first attempt.
  SELECT first_seen INTO v_first FROM greylist_triplet WHERE net = v_net AND k = p_key;
  IF v_now < v_first + p_delay THEN
    RETURN 1;
  END IF;

  -- Accepted: the client earns a pass towards the auto-whitelist.
  IF p_awl_count > 0 THEN
    INSERT INTO greylist_client (ip, passes, last_seen) VALUES (v_ip, 1, v_now)
      ON DUPLICATE KEY UPDATE passes = passes + 1,
                              last_seen = IF(p_timestamp_update <> 0, v_now, last_seen);
  END IF;
  RETURN 0;
END";

/// `greylist`: one greylisting decision per statement, as Exim's ACL asks for it:
/// `greylist_defer_p(key, ip, awl_count, delay, timestamp_update)`.
pub const GREYLIST_SQL: &str = "SELECT greylist.greylist_defer_p(?, ?, ?, ?, ?)";

/// Postgrey's default `--auto-whitelist-clients`: accepted attempts before a client is
/// whitelisted.
pub const GREYLIST_AWL_COUNT: i64 = 5;

/// Postgrey's default delay before a retry is accepted, in seconds.
pub const GREYLIST_DELAY_S: i64 = 300;

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

/// A greylisting call's triplet as Exim presents it: the key it builds from the envelope
/// sender and recipient, and the client's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreylistTriplet {
    pub key: String,
    pub client_ip: String,
}

/// Preloaded triplet number `index`: first seen a day ago from `10.x.y.z`, so a call passes.
/// Its client has `greylist_client_passes(index)` accepted attempts on record: half the clients
/// are whitelisted already (most mail comes from senders seen before).
pub fn greylist_known_triplet(index: u64) -> GreylistTriplet {
    GreylistTriplet {
        key: format!("sender{index}@example.org/rcpt{index}@example.edu"),
        client_ip: format!("10.{}.{}.{}", (index >> 16) & 0xff, (index >> 8) & 0xff, index & 0xff),
    }
}

/// Accepted attempts preloaded for the client of known triplet `index`.
pub fn greylist_client_passes(index: u64) -> u64 {
    index % 10
}

/// A triplet no earlier call can have seen, from a client in 172.16.0.0/12, which the preloaded
/// whitelist never holds (and which never earns passes, as new triplets are always deferred):
/// `run_nonce` separates runs, `connection` and `sequence` separate calls within a run.
pub fn greylist_new_triplet(run_nonce: u64, connection: u64, sequence: u64) -> GreylistTriplet {
    let v = mix(run_nonce ^ (connection << 40) ^ sequence);
    GreylistTriplet {
        key: format!("new{run_nonce:x}-{connection}-{sequence}@example.org/rcpt{}@example.edu", sequence % 1000),
        client_ip: format!("172.{}.{}.{}", 16 + ((v >> 16) & 0xf), (v >> 8) & 0xff, v & 0xff),
    }
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
    fn new_triplets_differ_from_known_ones_and_each_other() {
        let known = greylist_known_triplet(5);
        let first = greylist_new_triplet(99, 0, 5);
        let second = greylist_new_triplet(99, 1, 5);
        assert_ne!(known.key, first.key);
        assert_ne!(first.key, second.key);
        assert!(known.client_ip.starts_with("10."));
        assert!(first.client_ip.starts_with("172."), "new triplets come from outside the whitelist");
    }

    #[test]
    fn the_function_is_the_example_one() {
        let example = include_str!("../../examples/greylist/greylist.sql");
        let unqualified = GREYLIST_FUNCTION_DDL.replacen("greylist.greylist_defer_p", "greylist_defer_p", 1);
        assert!(
            example.contains(&format!("{unqualified} //")),
            "benches/src/schema.rs and examples/greylist/greylist.sql define different functions"
        );
    }
}

//! The CalMail data set: a deterministic stand-in for the account data UC Berkeley's CalMail kept
//! in MySQL Cluster, at CalMail's size (22,220 mailing lists with 1,164,015 subscriptions, about
//! 1.5 million rows in all), for measuring full-table analytics and memory per replica.
//!
//! # Tables (database `calmail`)
//!
//! | table        | rows (scale 1) | what it holds |
//! |--------------|----------------|---------------|
//! | `domain`     | 500            | mail domains: `berkeley.edu`, `lists.berkeley.edu`, departments |
//! | `account`    | 240,000        | mailboxes: local part, domain, backend host (`cyrus07.calmail.berkeley.edu`), state, quota, timestamps |
//! | `alias`      | 60,000         | extra addresses of an account (`webmaster-123@physics.berkeley.edu`) |
//! | `forward`    | 13,265         | accounts whose mail is forwarded elsewhere |
//! | `list`       | 22,220         | Mailman lists, most on `lists.berkeley.edu` |
//! | `subscriber` | 1,164,015      | list memberships: list id and address (a campus account or an outside one) |
//!
//! # Guarantees
//!
//! - Every row is a pure function of its table and its row number (and the scale): no state, no
//!   randomness between runs. So the loader can split a table among connections in any way, two
//!   servers get byte-identical data, and a test can compute what a query must answer.
//! - Keys are unique: account and alias local parts carry their row number, subscriber addresses
//!   within one list come from distinct accounts (an arithmetic progression over the accounts
//!   with a step coprime to their count) or carry the member's position.
//! - The subscriber distribution is Zipf-like over a shuffled list order (list 1 is a
//!   campus-wide announce list of about a tenth of all subscriptions, 108,359 at scale 1;
//!   thousands of small lists), and one list in
//!   twenty-five has no subscribers at all, as real Mailman installations have.
//! - All generated text is ASCII letters, digits, `.`, `-`, `@`: nothing needs escaping, and
//!   every collation orders it the same way except for case (only lower case is generated).
//!
//! # Left out
//!
//! Passwords, Mailman's per-member options beyond digest mode, and the mail itself. The column
//! sizes are realistic (local parts of 10 to 20 characters, host names of 28), not CalMail's
//! actual values, which were never published.

use std::fmt::Write as _;

use crate::rng::mix;

/// The database the data set lives in.
pub const DATABASE: &str = "calmail";

/// Mailing lists in CalMail (from the brief).
pub const CALMAIL_LISTS: u64 = 22_220;

/// List subscriptions in CalMail (from the brief).
pub const CALMAIL_SUBSCRIPTIONS: u64 = 1_164_015;

/// The tables of the data set, in load order (referenced rows first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Domain,
    Account,
    Alias,
    Forward,
    List,
    Subscriber,
}

impl Table {
    /// Every table, in load order.
    pub const ALL: [Table; 6] = [
        Table::Domain,
        Table::Account,
        Table::Alias,
        Table::Forward,
        Table::List,
        Table::Subscriber,
    ];

    /// The table's name (unqualified).
    pub fn name(self) -> &'static str {
        match self {
            Table::Domain => "domain",
            Table::Account => "account",
            Table::Alias => "alias",
            Table::Forward => "forward",
            Table::List => "list",
            Table::Subscriber => "subscriber",
        }
    }

    /// `CREATE TABLE` for the table, qualified with [`DATABASE`]. The same text runs on Cairn and
    /// on MariaDB (InnoDB there), so the comparison measures the same schema.
    pub fn ddl(self) -> &'static str {
        match self {
            Table::Domain => {
                "CREATE TABLE calmail.domain (\
                 id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
                 name VARCHAR(255) NOT NULL, \
                 UNIQUE KEY (name))"
            }
            Table::Account => {
                "CREATE TABLE calmail.account (\
                 id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
                 domain_id INT UNSIGNED NOT NULL, \
                 localpart VARCHAR(64) NOT NULL, \
                 host VARCHAR(64) NOT NULL, \
                 state VARCHAR(16) NOT NULL DEFAULT 'active', \
                 quota_mb INT UNSIGNED NOT NULL, \
                 created DATETIME NOT NULL, \
                 last_login DATETIME NULL, \
                 UNIQUE KEY (domain_id, localpart))"
            }
            Table::Alias => {
                "CREATE TABLE calmail.alias (\
                 id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
                 domain_id INT UNSIGNED NOT NULL, \
                 localpart VARCHAR(64) NOT NULL, \
                 account_id INT UNSIGNED NOT NULL, \
                 UNIQUE KEY (domain_id, localpart))"
            }
            Table::Forward => {
                "CREATE TABLE calmail.forward (\
                 account_id INT UNSIGNED NOT NULL PRIMARY KEY, \
                 target VARCHAR(255) NOT NULL, \
                 keep_copy TINYINT NOT NULL DEFAULT 0, \
                 created DATETIME NOT NULL)"
            }
            Table::List => {
                "CREATE TABLE calmail.list (\
                 id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
                 domain_id INT UNSIGNED NOT NULL, \
                 name VARCHAR(64) NOT NULL, \
                 owner_account_id INT UNSIGNED NOT NULL, \
                 created DATETIME NOT NULL, \
                 UNIQUE KEY (domain_id, name))"
            }
            Table::Subscriber => {
                "CREATE TABLE calmail.subscriber (\
                 list_id INT UNSIGNED NOT NULL, \
                 address VARCHAR(255) NOT NULL, \
                 digest TINYINT NOT NULL DEFAULT 0, \
                 subscribed DATETIME NOT NULL, \
                 PRIMARY KEY (list_id, address))"
            }
        }
    }

    /// The column list of the table's INSERT statements.
    fn insert_columns(self) -> &'static str {
        match self {
            Table::Domain => "(id, name)",
            Table::Account => {
                "(id, domain_id, localpart, host, state, quota_mb, created, last_login)"
            }
            Table::Alias => "(id, domain_id, localpart, account_id)",
            Table::Forward => "(account_id, target, keep_copy, created)",
            Table::List => "(id, domain_id, name, owner_account_id, created)",
            Table::Subscriber => "(list_id, address, digest, subscribed)",
        }
    }
}

/// Statements that recreate the empty schema (dropping an earlier `calmail` database).
pub fn schema_statements() -> Vec<&'static str> {
    let mut statements = vec!["DROP DATABASE IF EXISTS calmail", "CREATE DATABASE calmail"];
    statements.extend(Table::ALL.iter().map(|table| table.ddl()));
    statements
}

// ---- Sizes --------------------------------------------------------------------------------------

/// How many rows each table has. Scale 1.0 is CalMail's size; smaller scales keep the shape for
/// tests and quick runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSet {
    pub domains: u64,
    pub accounts: u64,
    pub aliases: u64,
    pub forwards: u64,
    pub lists: u64,
    pub subscriptions: u64,
    /// Cumulative subscriber counts: `list_end[l]` is the number of subscriptions of lists
    /// `0..=l`. Kept so that a subscriber row number maps to its list by binary search.
    list_end: Vec<u64>,
}

/// Every multiplier used to step through accounts, domains or lists: a prime, so it is coprime
/// to any count it does not divide (checked where used).
const STEP_PRIMES: [u64; 4] = [7_919, 104_729, 15_485_863, 2_750_159];

impl DataSet {
    /// The data set at `scale` (1.0 = CalMail: 1,500,000 rows). Every table keeps at least a
    /// few rows, so that even a tiny scale exercises every query.
    pub fn new(scale: f64) -> Self {
        let scaled = |full: u64, minimum: u64| -> u64 {
            let value = (full as f64 * scale).round();
            if value.is_finite() && value >= minimum as f64 {
                value as u64
            } else {
                minimum
            }
        };
        let domains = scaled(500, 8);
        let accounts = scaled(240_000, 100);
        let aliases = scaled(60_000, 20);
        let forwards = scaled(13_265, 5).min(accounts);
        let lists = scaled(CALMAIL_LISTS, 10);
        let subscriptions = scaled(CALMAIL_SUBSCRIPTIONS, 50);
        let list_end = subscriber_distribution(lists, subscriptions, accounts);
        Self {
            domains,
            accounts,
            aliases,
            forwards,
            lists,
            subscriptions,
            list_end,
        }
    }

    /// Rows of `table`.
    pub fn rows(&self, table: Table) -> u64 {
        match table {
            Table::Domain => self.domains,
            Table::Account => self.accounts,
            Table::Alias => self.aliases,
            Table::Forward => self.forwards,
            Table::List => self.lists,
            Table::Subscriber => self.subscriptions,
        }
    }

    /// Rows of every table together.
    pub fn total_rows(&self) -> u64 {
        Table::ALL.iter().map(|table| self.rows(*table)).sum()
    }

    /// Subscribers of list number `list` (0-based; its id is `list + 1`).
    pub fn list_subscribers(&self, list: u64) -> u64 {
        let index = list as usize;
        let end = self.list_end[index];
        let start = if index == 0 { 0 } else { self.list_end[index - 1] };
        end - start
    }

    /// Appends the SQL text of row `row` of `table` (a parenthesised tuple) to `out`.
    pub fn write_row(&self, table: Table, row: u64, out: &mut String) {
        // Writing into a String cannot fail; the results are ignored for that reason.
        match table {
            Table::Domain => {
                let _ = write!(out, "({},'{}')", row + 1, domain_name(row));
            }
            Table::Account => {
                let account = self.account(row);
                let _ = write!(
                    out,
                    "({},{},'{}','{}','{}',{},'{}',",
                    row + 1,
                    account.domain + 1,
                    account.localpart,
                    account.host,
                    account.state,
                    account.quota_mb,
                    account.created
                );
                match account.last_login {
                    Some(last_login) => {
                        let _ = write!(out, "'{last_login}')");
                    }
                    None => out.push_str("NULL)"),
                }
            }
            Table::Alias => {
                let alias = self.alias(row);
                let _ = write!(
                    out,
                    "({},{},'{}',{})",
                    row + 1,
                    alias.domain + 1,
                    alias.localpart,
                    alias.account + 1
                );
            }
            Table::Forward => {
                let forward = self.forward(row);
                let _ = write!(
                    out,
                    "({},'{}',{},'{}')",
                    forward.account + 1,
                    forward.target,
                    u8::from(forward.keep_copy),
                    forward.created
                );
            }
            Table::List => {
                let list = self.list(row);
                let _ = write!(
                    out,
                    "({},{},'{}',{},'{}')",
                    row + 1,
                    list.domain + 1,
                    list.name,
                    list.owner_account + 1,
                    list.created
                );
            }
            Table::Subscriber => {
                let subscriber = self.subscriber(row);
                let _ = write!(
                    out,
                    "({},'{}',{},'{}')",
                    subscriber.list + 1,
                    subscriber.address,
                    u8::from(subscriber.digest),
                    subscriber.subscribed
                );
            }
        }
    }

    /// One multi-row `INSERT` of rows `rows` of `table`.
    pub fn insert_statement(&self, table: Table, rows: std::ops::Range<u64>) -> String {
        let mut statement = String::with_capacity(64 + 80 * (rows.end - rows.start) as usize);
        let _ = write!(
            statement,
            "INSERT INTO {DATABASE}.{} {} VALUES ",
            table.name(),
            table.insert_columns()
        );
        for row in rows {
            if !statement.ends_with(' ') {
                statement.push(',');
            }
            self.write_row(table, row, &mut statement);
        }
        statement
    }

    /// Account number `row` (0-based; id `row + 1`).
    pub fn account(&self, row: u64) -> Account {
        let bits = mix(row ^ 0xacc0_0000);
        // Three accounts in five live on berkeley.edu itself, the rest on department domains
        // (never on lists.berkeley.edu, domain 1, which holds only lists).
        let domain = if bits % 5 < 3 { 0 } else { 2 + (bits >> 8) % (self.domains - 2) };
        let first = FIRST_NAMES[((bits >> 20) % FIRST_NAMES.len() as u64) as usize];
        let last = LAST_NAMES[((bits >> 28) % LAST_NAMES.len() as u64) as usize];
        // The row number makes the local part unique; two spellings, as campuses have.
        let localpart = if (bits >> 36) % 3 == 0 {
            format!("{first}.{last}{row}")
        } else {
            format!("{}{last}{row}", &first[..1])
        };
        // Backend hosts are not equally full: new accounts went to the newer hosts.
        let host_bits = (bits >> 40) % 1000;
        let host = if host_bits < 700 { host_bits % 24 + 1 } else { host_bits % 8 + 17 };
        let state = match (bits >> 12) % 100 {
            0..=91 => "active",
            92..=95 => "suspended",
            96..=97 => "locked",
            _ => "deleted",
        };
        let quota_mb = [1_000, 2_000, 2_000, 5_000, 10_000][((bits >> 44) % 5) as usize];
        let created = timestamp(SECONDS_1998, SECONDS_2010, mix(row ^ 0xc4ea_7ed0));
        let last_login = if (bits >> 50) % 10 == 0 {
            None
        } else {
            Some(timestamp(SECONDS_2009, SECONDS_2010, mix(row ^ 0x1a57_1061)))
        };
        Account {
            domain,
            localpart,
            host: format!("cyrus{host:02}.calmail.berkeley.edu"),
            state,
            quota_mb,
            created,
            last_login,
        }
    }

    /// Alias number `row` (0-based; id `row + 1`).
    pub fn alias(&self, row: u64) -> Alias {
        let bits = mix(row ^ 0xa11a_5000);
        // Skewed towards low domain numbers (u² of a uniform u), so "domains with most aliases"
        // has a clear top.
        let uniform = (bits >> 11) as f64 / (1u64 << 53) as f64;
        let domain = ((uniform * uniform * self.domains as f64) as u64).min(self.domains - 1);
        let domain = if domain == 1 { 0 } else { domain };
        let role = ROLES[((bits >> 3) % ROLES.len() as u64) as usize];
        Alias {
            domain,
            localpart: format!("{role}-{row}"),
            account: mix(row ^ 0xa11a_5001) % self.accounts,
        }
    }

    /// Forward number `row`: the accounts that forward are distinct (a step through the
    /// accounts coprime to their count).
    pub fn forward(&self, row: u64) -> Forward {
        let step = coprime_step(self.accounts, 1);
        let account = (row.wrapping_mul(step) + 17) % self.accounts;
        let bits = mix(row ^ 0xf0ed_0000);
        let first = FIRST_NAMES[(bits % FIRST_NAMES.len() as u64) as usize];
        let last = LAST_NAMES[((bits >> 16) % LAST_NAMES.len() as u64) as usize];
        let provider = PROVIDERS[((bits >> 32) % PROVIDERS.len() as u64) as usize];
        Forward {
            account,
            target: format!("{first}.{last}{}@{provider}", row % 1000),
            keep_copy: (bits >> 40) % 3 == 0,
            created: timestamp(SECONDS_2005, SECONDS_2010, mix(row ^ 0xf0ed_0001)),
        }
    }

    /// List number `row` (0-based; id `row + 1`).
    pub fn list(&self, row: u64) -> List {
        let bits = mix(row ^ 0x1157_0000);
        // Seven lists in ten live on lists.berkeley.edu; the rest on department domains.
        let domain = if bits % 10 < 7 { 1 } else { 2 + (bits >> 8) % (self.domains - 2) };
        let topic = LIST_TOPICS[((bits >> 24) % LIST_TOPICS.len() as u64) as usize];
        let prefix = LIST_PREFIXES[((bits >> 32) % LIST_PREFIXES.len() as u64) as usize];
        List {
            domain,
            name: format!("{prefix}{}-{topic}", row),
            owner_account: mix(row ^ 0x1157_0001) % self.accounts,
            created: timestamp(SECONDS_1998, SECONDS_2010, mix(row ^ 0x1157_0002)),
        }
    }

    /// Subscription number `row`: its list, and the member's address. Members of one list are
    /// distinct: campus members step through the accounts from a per-list start with a step
    /// coprime to the account count, and outside members carry their position in the list.
    pub fn subscriber(&self, row: u64) -> Subscriber {
        let list = self.list_end.partition_point(|end| *end <= row) as u64;
        let list_start = if list == 0 { 0 } else { self.list_end[list as usize - 1] };
        let position = row - list_start;
        let bits = mix((list << 24) ^ position ^ 0x5b5c_0000);
        // One member in five is from outside the campus.
        let address = if bits % 5 == 0 {
            let first = FIRST_NAMES[((bits >> 8) % FIRST_NAMES.len() as u64) as usize];
            let last = LAST_NAMES[((bits >> 16) % LAST_NAMES.len() as u64) as usize];
            let provider = PROVIDERS[((bits >> 32) % PROVIDERS.len() as u64) as usize];
            format!("{first}.{last}.{position}@{provider}")
        } else {
            let step = coprime_step(self.accounts, 0);
            let start = mix(list ^ 0x5b5c_0001) % self.accounts;
            let account = (start + position.wrapping_mul(step) % self.accounts) % self.accounts;
            let account = self.account(account);
            format!("{}@{}", account.localpart, domain_name(account.domain))
        };
        Subscriber {
            list,
            address,
            digest: (bits >> 40) % 8 == 0,
            subscribed: timestamp(SECONDS_2002, SECONDS_2010, mix(row ^ 0x5b5c_0002)),
        }
    }
}

/// Per-list subscriber counts as cumulative ends: list `l` of `lists` gets a Zipf-like share of
/// `subscriptions` by its rank in a shuffled order; one list in twenty-five gets none. No list
/// is larger than `accounts` (campus members of a list are distinct accounts).
fn subscriber_distribution(lists: u64, subscriptions: u64, accounts: u64) -> Vec<u64> {
    let empty = |list: u64| mix(list ^ 0xe3e3_0000) % 25 == 0;
    let nonempty: Vec<u64> = (0..lists).filter(|list| !empty(*list)).collect();
    let mut counts = vec![0u64; lists as usize];
    if nonempty.is_empty() {
        return counts;
    }
    let n = nonempty.len() as u64;
    // Ranks: a multiplicative shuffle of the positions. Position 0 keeps rank 0, so list 1 is the
    // campus-wide list (a tenth of all subscriptions); the other big lists are scattered ids.
    let step = coprime_step(n, 2);
    let weight = |position: u64| 1.0 / ((position.wrapping_mul(step) % n) as f64 + 1.0);
    let total_weight: f64 = (0..n).map(weight).sum();
    // Every non-empty list has one subscriber; the rest is shared by weight, the remainders
    // going one each to the first lists until the total is exact.
    let spread = subscriptions.saturating_sub(n);
    let mut assigned = 0u64;
    for (position, list) in nonempty.iter().enumerate() {
        let share = (weight(position as u64) / total_weight * spread as f64).floor() as u64;
        let count = (1 + share).min(accounts);
        counts[*list as usize] = count;
        assigned += count;
    }
    let mut position = 0usize;
    while assigned < subscriptions {
        let list = nonempty[position % nonempty.len()] as usize;
        if counts[list] < accounts {
            counts[list] += 1;
            assigned += 1;
        }
        position += 1;
        if position > nonempty.len() * (subscriptions as usize + 1) {
            // Every list is full (more subscriptions than lists times accounts): stop short.
            break;
        }
    }
    let mut running = 0u64;
    counts
        .into_iter()
        .map(|count| {
            running += count;
            running
        })
        .collect()
}

/// A step for walking `0..count` that visits every value once (coprime to `count`).
fn coprime_step(count: u64, which: usize) -> u64 {
    let mut index = which;
    loop {
        let candidate = STEP_PRIMES[index % STEP_PRIMES.len()];
        if gcd(candidate, count) == 1 {
            return candidate;
        }
        index += 1;
        if index > which + STEP_PRIMES.len() {
            // Every prime divides `count` (impossible below their product): step by one.
            return 1;
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The name of domain number `index` (0-based; id `index + 1`): `berkeley.edu`,
/// `lists.berkeley.edu`, then departments (numbered once the names run out).
pub fn domain_name(index: u64) -> String {
    match index {
        0 => "berkeley.edu".to_owned(),
        1 => "lists.berkeley.edu".to_owned(),
        _ => {
            let department = (index - 2) as usize;
            let name = DEPARTMENTS[department % DEPARTMENTS.len()];
            let round = department / DEPARTMENTS.len();
            if round == 0 {
                format!("{name}.berkeley.edu")
            } else {
                format!("{name}{round}.berkeley.edu")
            }
        }
    }
}

// ---- Rows ---------------------------------------------------------------------------------------

/// An account as generated (indexes are 0-based; ids are one more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub domain: u64,
    pub localpart: String,
    pub host: String,
    pub state: &'static str,
    pub quota_mb: u32,
    pub created: String,
    pub last_login: Option<String>,
}

/// An alias as generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub domain: u64,
    pub localpart: String,
    pub account: u64,
}

/// A forward as generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub account: u64,
    pub target: String,
    pub keep_copy: bool,
    pub created: String,
}

/// A mailing list as generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    pub domain: u64,
    pub name: String,
    pub owner_account: u64,
    pub created: String,
}

/// A list subscription as generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub list: u64,
    pub address: String,
    pub digest: bool,
    pub subscribed: String,
}

// ---- Text ---------------------------------------------------------------------------------------

const SECONDS_1998: i64 = 883_612_800;
const SECONDS_2002: i64 = 1_009_843_200;
const SECONDS_2005: i64 = 1_104_537_600;
const SECONDS_2009: i64 = 1_230_768_000;
const SECONDS_2010: i64 = 1_277_942_400; // 2010-07-01, about when CalMail's numbers were given

/// A `YYYY-MM-DD hh:mm:ss` (UTC) between `from` and `to` seconds since the epoch.
fn timestamp(from: i64, to: i64, bits: u64) -> String {
    let seconds = from + (bits % (to - from) as u64) as i64;
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

const FIRST_NAMES: [&str; 32] = [
    "james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "william",
    "elizabeth", "david", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah",
    "wei", "mei", "hiroshi", "yuki", "carlos", "maria", "ahmed", "fatima", "raj", "priya", "ivan",
    "olga", "kwame", "amara",
];

const LAST_NAMES: [&str; 32] = [
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez",
    "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor",
    "moore", "jackson", "martin", "lee", "chen", "wang", "nguyen", "kim", "patel", "tanaka",
    "suzuki", "ivanov", "okafor", "mensah", "cohen",
];

const DEPARTMENTS: [&str; 48] = [
    "eecs", "cs", "math", "stat", "physics", "chem", "cchem", "mcb", "ib", "ls", "haas", "law",
    "berkeleylaw", "ischool", "journalism", "music", "history", "english", "econ", "polisci",
    "psych", "socrates", "ced", "me", "ce", "ieor", "bioeng", "nuc", "astro", "eps", "geog",
    "anthro", "linguistics", "philosophy", "rhetoric", "slavic", "ealc", "nes", "spanish",
    "french", "german", "italian", "library", "uhs", "ist", "rescomp", "housing", "athletics",
];

const ROLES: [&str; 12] = [
    "webmaster", "info", "admin", "help", "staff", "office", "chair", "grad", "undergrad",
    "advising", "events", "noreply",
];

const PROVIDERS: [&str; 8] = [
    "gmail.com", "yahoo.com", "hotmail.com", "aol.com", "comcast.net", "sbcglobal.net",
    "alumni.berkeley.edu", "lbl.gov",
];

const LIST_PREFIXES: [&str; 12] = [
    "cs", "ee", "math", "phys", "chem", "bio", "econ", "hist", "ls", "haas", "law", "ist",
];

const LIST_TOPICS: [&str; 12] = [
    "announce", "staff", "students", "grads", "faculty", "discuss", "alumni", "seminar", "jobs",
    "lab", "admin", "social",
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn full_scale_has_calmails_sizes() {
        let data = DataSet::new(1.0);
        assert_eq!(data.lists, CALMAIL_LISTS);
        assert_eq!(data.subscriptions, CALMAIL_SUBSCRIPTIONS);
        assert_eq!(data.total_rows(), 1_500_000);
        let summed: u64 = (0..data.lists).map(|list| data.list_subscribers(list)).sum();
        assert_eq!(summed, CALMAIL_SUBSCRIPTIONS);
        let empty = (0..data.lists).filter(|list| data.list_subscribers(*list) == 0).count();
        assert!((700..1100).contains(&empty), "{empty} empty lists");
        let largest = (0..data.lists).map(|list| data.list_subscribers(list)).max();
        assert!(largest > Some(50_000) && largest < Some(data.accounts), "{largest:?}");
    }

    #[test]
    fn keys_are_unique_and_rows_are_deterministic() {
        let data = DataSet::new(0.01);
        let mut accounts = HashSet::new();
        for row in 0..data.accounts {
            let account = data.account(row);
            assert!(account.domain < data.domains && account.domain != 1);
            assert!(accounts.insert((account.domain, account.localpart.clone())));
            assert_eq!(account, data.account(row));
        }
        let mut aliases = HashSet::new();
        for row in 0..data.aliases {
            let alias = data.alias(row);
            assert!(aliases.insert((alias.domain, alias.localpart)));
            assert!(alias.account < data.accounts);
        }
        let forwarded: HashSet<u64> = (0..data.forwards).map(|row| data.forward(row).account).collect();
        assert_eq!(forwarded.len() as u64, data.forwards);
        let lists: HashSet<(u64, String)> =
            (0..data.lists).map(|row| { let list = data.list(row); (list.domain, list.name) }).collect();
        assert_eq!(lists.len() as u64, data.lists);
        let mut subscriptions = HashSet::new();
        for row in 0..data.subscriptions {
            let subscriber = data.subscriber(row);
            assert!(subscriber.list < data.lists);
            assert!(subscriptions.insert((subscriber.list, subscriber.address)), "row {row}");
        }
    }

    #[test]
    fn subscribers_are_grouped_by_list_in_row_order() {
        let data = DataSet::new(0.01);
        let mut row = 0;
        for list in 0..data.lists {
            for _ in 0..data.list_subscribers(list) {
                assert_eq!(data.subscriber(row).list, list);
                row += 1;
            }
        }
        assert_eq!(row, data.subscriptions);
    }

    #[test]
    fn timestamps_are_calendar_dates() {
        assert_eq!(timestamp(0, 1, 0), "1970-01-01 00:00:00");
        assert_eq!(timestamp(SECONDS_2010, SECONDS_2010 + 1, 0), "2010-07-01 00:00:00");
        assert_eq!(timestamp(951_782_400, 951_782_401, 0), "2000-02-29 00:00:00");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn insert_statements_list_every_row() {
        let data = DataSet::new(0.001);
        let statement = data.insert_statement(Table::Account, 0..3);
        assert!(statement.starts_with(
            "INSERT INTO calmail.account (id, domain_id, localpart, host, state, quota_mb, created, last_login) VALUES (1,"
        ));
        assert_eq!(statement.matches("),(").count(), 2);
        assert!(statement.contains(".calmail.berkeley.edu'"));
        assert!(!data.insert_statement(Table::Subscriber, 0..10).contains(",,"));
    }
}

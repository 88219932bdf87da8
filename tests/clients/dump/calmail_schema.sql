-- A CalMail-like account store for the mysqldump round trip (dump_roundtrip.sh): domains,
-- accounts, aliases, forwards, mailing lists and their subscribers, with the column types,
-- defaults, keys and awkward values such a store holds. It is loaded into MariaDB, dumped, and the
-- dump must load into Cairn and dump back out identically.
CREATE TABLE domain (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) NOT NULL,
  backend VARCHAR(64) NOT NULL DEFAULT 'imap1.example.net',
  max_accounts INT UNSIGNED DEFAULT NULL,
  active TINYINT(1) NOT NULL DEFAULT 1,
  created DATETIME NOT NULL DEFAULT '2020-01-01 00:00:00',
  PRIMARY KEY (id),
  UNIQUE KEY name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE account (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  domain_id INT UNSIGNED NOT NULL,
  localpart VARCHAR(64) NOT NULL,
  host VARCHAR(64) NOT NULL,
  password_hash VARBINARY(64) DEFAULT NULL,
  quota_mb INT UNSIGNED NOT NULL DEFAULT 1024,
  used_bytes BIGINT UNSIGNED NOT NULL DEFAULT 0,
  state ENUM('active','disabled','deleted') NOT NULL DEFAULT 'active',
  full_name VARCHAR(128) DEFAULT NULL,
  balance DECIMAL(10,2) NOT NULL DEFAULT 0.00,
  last_login DATETIME DEFAULT NULL,
  birthday DATE DEFAULT NULL,
  note TEXT,
  PRIMARY KEY (id),
  UNIQUE KEY domain_local (domain_id, localpart),
  KEY host (host)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE alias (
  domain_id INT UNSIGNED NOT NULL,
  localpart VARCHAR(64) NOT NULL,
  target VARCHAR(255) NOT NULL,
  PRIMARY KEY (domain_id, localpart, target)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE forward (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  account_id INT UNSIGNED NOT NULL,
  address VARCHAR(255) NOT NULL,
  keep_copy TINYINT(1) NOT NULL DEFAULT 0,
  priority SMALLINT NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  KEY account_id (account_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE list (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(64) NOT NULL,
  description VARCHAR(255) NOT NULL DEFAULT '',
  owner_id INT UNSIGNED DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE subscriber (
  list_id INT UNSIGNED NOT NULL,
  address VARCHAR(255) NOT NULL,
  digest TINYINT(1) NOT NULL DEFAULT 0,
  subscribed DATETIME NOT NULL,
  bounce_score DOUBLE NOT NULL DEFAULT 0,
  PRIMARY KEY (list_id, address)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Webmail sessions: the remaining column kinds a dump must carry (CHAR, TIMESTAMP defaults and
-- ON UPDATE, fractional seconds, a latin1 column, FLOAT, MEDIUMINT, YEAR, TIME, MEDIUMBLOB,
-- comments) and a foreign key.
CREATE TABLE web_session (
  id CHAR(32) NOT NULL COMMENT 'random token',
  account_id INT UNSIGNED NOT NULL,
  created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  touched TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  precise DATETIME(3) DEFAULT NULL,
  client_ip INT UNSIGNED DEFAULT NULL,
  legacy_name VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci DEFAULT NULL,
  score FLOAT DEFAULT NULL,
  offset_s MEDIUMINT NOT NULL DEFAULT -1,
  flags TINYINT UNSIGNED NOT NULL DEFAULT 255,
  state_blob MEDIUMBLOB,
  since_year YEAR DEFAULT NULL,
  idle TIME DEFAULT '00:00:00',
  PRIMARY KEY (id),
  KEY account (account_id, created),
  CONSTRAINT fk_session_account FOREIGN KEY (account_id) REFERENCES account (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='webmail sessions';

INSERT INTO domain (name, backend, max_accounts, active, created) VALUES
  ('example.org', 'imap1.example.net', 1000, 1, '2019-03-04 05:06:07'),
  ('example.com', 'imap2.example.net', NULL, 1, '2020-02-29 23:59:59'),
  ('oude-stad.nl', 'imap1.example.net', 5, 0, '2021-12-31 00:00:00'),
  ('xn--mnchen-3ya.de', 'imap3.example.net', 4294967295, 1, '2024-02-29 12:00:00');

INSERT INTO account (domain_id, localpart, host, password_hash, quota_mb, used_bytes, state,
                     full_name, balance, last_login, birthday, note) VALUES
  (1, 'alice', 'imap1.example.net', UNHEX('00FF10275C27'), 2048, 18446744073709551615, 'active',
   'Alice Ängström', 12.50, '2024-02-29 08:15:00', '2000-02-29', 'first line\nsecond line\ttab'),
  (1, 'bob', 'imap1.example.net', NULL, 1024, 0, 'disabled', 'Bob "the builder" O''Neil', -3.75,
   NULL, NULL, NULL),
  (2, 'alice', 'imap2.example.net', UNHEX(''), 0, 123456789, 'active', '', 0.00,
   '1999-12-31 23:59:59', '1970-01-01', ''),
  (2, 'carol', 'imap2.example.net', UNHEX('DEADBEEF'), 100, 42, 'deleted', 'Carol \\ backslash',
   99999999.99, '2038-01-19 03:14:07', '9999-12-31', 'emoji 😀 and 中文'),
  (4, 'dieter', 'imap3.example.net', UNHEX('0D0A1A'), 500, 9223372036854775808, 'active',
   'Dieter Müller', -99999999.99, '2026-11-29 02:20:00', '1985-07-14', 'NULL'),
  (3, 'eve', 'imap1.example.net', NULL, 1, 1, 'active', NULL, 0.01, NULL, NULL,
   'trailing spaces   ');

INSERT INTO alias (domain_id, localpart, target) VALUES
  (1, 'postmaster', 'alice@example.org'),
  (1, 'postmaster', 'bob@example.org'),
  (2, 'abuse', 'carol@example.com'),
  (2, 'info', 'alice@example.com'),
  (4, 'büro', 'dieter@xn--mnchen-3ya.de');

INSERT INTO forward (account_id, address, keep_copy, priority) VALUES
  (1, 'alice@elsewhere.example', 1, 0),
  (1, 'alice.backup@elsewhere.example', 0, -5),
  (4, 'carol@archive.example', 1, 32767),
  (5, 'dieter@privat.example', 0, -32768);

INSERT INTO list (name, description, owner_id) VALUES
  ('announce', 'Announcements; read-only', 1),
  ('users', 'User\'s discussion, 100% "open"', NULL),
  ('dev', '', 4);

INSERT INTO subscriber (list_id, address, digest, subscribed, bounce_score) VALUES
  (1, 'alice@example.org', 0, '2020-01-01 00:00:00', 0),
  (1, 'bob@example.org', 1, '2020-06-15 12:30:45', 1.5),
  (1, 'carol@example.com', 0, '2021-01-01 00:00:01', 0.1),
  (2, 'alice@example.org', 1, '2022-02-22 22:22:22', 2.25e-5),
  (2, 'dieter@xn--mnchen-3ya.de', 0, '2023-03-03 03:03:03', 100),
  (3, 'carol@example.com', 0, '2024-02-29 00:00:00', -1.25);

INSERT INTO web_session VALUES
  ('0123456789abcdef0123456789abcdef', 1, '2024-01-01 00:00:00', '2024-01-02 03:04:05',
   '2024-01-01 00:00:00.123', 3232235777, 'café', 1.5, -8388608, 0, UNHEX('00FF'), 2024, '-838:59:59'),
  ('fedcba9876543210fedcba9876543210', 5, '2026-11-29 02:00:00', '2026-11-29 02:30:00',
   NULL, NULL, NULL, NULL, 8388607, 255, NULL, NULL, '12:34:56');

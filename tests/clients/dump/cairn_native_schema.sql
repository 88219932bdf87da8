-- A CalMail-like schema as an operator creates it on Cairn: no ENGINE, CHARSET or COLLATE
-- clauses, so every table and column takes the server's defaults (utf8mb4 with MySQL 8's
-- utf8mb4_0900_ai_ci), plus the ENUM and SET columns an account store uses. dump_roundtrip.sh
-- dumps it from the server under test and loads the dump into MariaDB 10.11, which does not
-- know utf8mb4_0900_ai_ci (see docs/sql.md, "Collations in dumps").
CREATE TABLE domain (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  backend VARCHAR(64) NOT NULL DEFAULT 'imap1.example.net',
  UNIQUE KEY name (name)
);

CREATE TABLE account (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  domain_id INT UNSIGNED NOT NULL,
  localpart VARCHAR(64) NOT NULL,
  host VARCHAR(64) NOT NULL,
  state ENUM('active','disabled','deleted') NOT NULL DEFAULT 'active',
  services SET('imap','pop','smtp','webmail') NOT NULL DEFAULT 'imap,smtp',
  full_name VARCHAR(128) DEFAULT NULL,
  quota_mb INT UNSIGNED NOT NULL DEFAULT 1024,
  last_login DATETIME DEFAULT NULL,
  UNIQUE KEY domain_local (domain_id, localpart),
  KEY host (host)
);

CREATE TABLE forward (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  account_id INT UNSIGNED NOT NULL,
  address VARCHAR(255) NOT NULL,
  keep_copy TINYINT(1) NOT NULL DEFAULT 0,
  KEY account_id (account_id)
);

CREATE TABLE subscriber (
  list_name VARCHAR(64) NOT NULL,
  address VARCHAR(255) NOT NULL,
  options SET('digest','nomail','ack') NOT NULL DEFAULT '',
  PRIMARY KEY (list_name, address)
);

INSERT INTO domain (id, name, backend) VALUES (1, 'berkeley.example', 'imap1.example.net'), (2, 'lists.example', 'imap2.example.net');
INSERT INTO account (id, domain_id, localpart, host, state, services, full_name, quota_mb, last_login) VALUES
  (1, 1, 'alice', 'imap1', 'active', 'smtp,imap', 'Alice Ünïcødé 😀', 2048, '2024-02-29 13:45:00'),
  (2, 1, 'bob', 'imap1', 'disabled', '', NULL, 1024, NULL),
  (3, 1, 'carol', 'imap2', 'active', 'webmail,pop,imap,smtp', 'Carol O''Brien', 4096, '2023-12-31 23:59:59'),
  (4, 2, 'list-owner', 'imap2', 'deleted', 'imap', 'tab\tand back\\slash', 0, NULL);
INSERT INTO account (domain_id, localpart, host) VALUES (2, 'defaults', 'imap1');
INSERT INTO forward (account_id, address, keep_copy) VALUES (1, 'alice@elsewhere.example', 1), (3, 'carol@gmail.example', 0);
INSERT INTO subscriber (list_name, address, options) VALUES ('staff', 'alice@berkeley.example', 'ack,digest'), ('staff', 'bob@berkeley.example', ''), ('students', 'carol@berkeley.example', 'nomail');

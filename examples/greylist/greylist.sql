-- Postgrey-style greylisting as a stored function, for Exim's RCPT ACL (see README.md).
--
-- Load it into the database Exim's mysql_servers names, with the mysql or mariadb client:
--     mysql -h 127.0.0.1 -P 3306 -u root calmail < examples/greylist/greylist.sql
-- The DELIMITER lines are the client's: it sends the CREATE FUNCTION as one statement.
--
-- greylist_defer_p(key, ip, awl_count, delay, timestamp_update) returns 1 (defer) or 0
-- (accept). It runs the same on Cairn and on MySQL/MariaDB.

-- One row per triplet: the client's /24 network (4 bytes, INET_ATON) and the key Exim builds
-- from the envelope sender and recipient.
CREATE TABLE IF NOT EXISTS greylist_triplet (
  net        INT UNSIGNED NOT NULL,
  k          VARCHAR(255) NOT NULL,
  first_seen INT UNSIGNED NOT NULL,
  last_seen  INT UNSIGNED NOT NULL,
  attempts   INT UNSIGNED NOT NULL DEFAULT 1,
  PRIMARY KEY (net, k)
);

-- The auto-whitelist: one row per client address (4 bytes) with the number of its delivery
-- attempts that were accepted.
CREATE TABLE IF NOT EXISTS greylist_client (
  ip        INT UNSIGNED NOT NULL PRIMARY KEY,
  passes    INT UNSIGNED NOT NULL,
  last_seen INT UNSIGNED NOT NULL
);

DROP FUNCTION IF EXISTS greylist_defer_p;

DELIMITER //
CREATE FUNCTION greylist_defer_p(p_key VARCHAR(255), p_ip VARCHAR(45), p_awl_count INT,
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
END //
DELIMITER ;

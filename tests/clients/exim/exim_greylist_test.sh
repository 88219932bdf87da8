#!/usr/bin/env bash
# Greylisting in Exim's RCPT ACL through a stored function, as CalMail's MTAs did it:
#
#   defer condition = ${lookup mysql{select greylist_defer_p('k','$sender_host_address',5,300,1)}{$value}{0}}
#
# SEPARATE FROM exim_route_test.sh ON PURPOSE: this test needs stored functions (CREATE FUNCTION
# with a BEGIN ... END body sent by the mariadb CLI as one statement, DELIMITER-style, and a
# function that reads and writes a table). Against Cairn it passes only once Cairn has stored
# functions; against MariaDB it validates the test itself now.
#
# greylist_defer_p(key, ip, awl_count, delay, timestamp_update) returns 1 (defer) or 0 (accept):
# - a (key, ip) pair seen for the first time is recorded and deferred;
# - it stays deferred until `delay` seconds have passed since it was first seen;
# - after that each delivery attempt is accepted and counted; a pair with `awl_count` or more
#   accepted attempts is auto-whitelisted (accepted at once);
# - timestamp_update = 1 refreshes last_seen on every accepted attempt.
#
# Checks, with `exim -C <private config> -bh <ip>` (a simulated SMTP session: ACLs run, nothing is
# accepted for delivery, no connection is made): first contact deferred with our 451 message;
# a retry inside the delay deferred again; after the delay (first_seen moved back 301 s in the
# table) accepted with 250 and counted; a pair already at awl_count accepted at once; and the
# table rows the function left behind.
source "$(dirname "$0")/lib.sh"

sql <<'SQL' || fail "could not create the greylist schema and function"
DROP DATABASE IF EXISTS calmail;
CREATE DATABASE calmail DEFAULT CHARACTER SET utf8mb4;
USE calmail;
CREATE TABLE greylist (
  k VARCHAR(128) NOT NULL,
  ip VARCHAR(45) NOT NULL,
  first_seen INT UNSIGNED NOT NULL,
  last_seen INT UNSIGNED NOT NULL,
  passes INT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (k, ip)
);
DELIMITER //
CREATE FUNCTION greylist_defer_p(p_key VARCHAR(128), p_ip VARCHAR(45), p_awl_count INT,
                                 p_delay INT, p_timestamp_update INT)
RETURNS INT
MODIFIES SQL DATA
BEGIN
  DECLARE v_now INT UNSIGNED DEFAULT UNIX_TIMESTAMP();
  DECLARE v_first INT UNSIGNED DEFAULT NULL;
  DECLARE v_passes INT UNSIGNED DEFAULT 0;
  SELECT first_seen, passes INTO v_first, v_passes FROM greylist WHERE k = p_key AND ip = p_ip;
  IF v_first IS NULL THEN
    INSERT INTO greylist (k, ip, first_seen, last_seen, passes) VALUES (p_key, p_ip, v_now, v_now, 0);
    RETURN 1;
  END IF;
  IF v_passes < p_awl_count AND v_now - v_first < p_delay THEN
    RETURN 1;
  END IF;
  UPDATE greylist SET passes = passes + 1,
         last_seen = IF(p_timestamp_update <> 0, v_now, last_seen)
   WHERE k = p_key AND ip = p_ip;
  RETURN 0;
END //
DELIMITER ;
SQL
ok "created calmail.greylist and the stored function greylist_defer_p"

conf=$(write_config greylist <<'EOF'
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  defer   message   = greylisted, try again later
          condition = ${lookup mysql{select greylist_defer_p('k','$sender_host_address',5,300,1)}{$value}{0}}
  accept
EOF
)

# One simulated SMTP session from $1; prints the RCPT reply line.
session() {
    local ip=$1 out
    out=$(printf 'EHLO client.example\r\nMAIL FROM:<sender@client.example>\r\nRCPT TO:<alice@example.org>\r\nQUIT\r\n' \
        | exim -C "$conf" -bh "$ip" 2>&1 | tr -d '\r') || true
    # -bh prints the server's replies without a prefix and its own commentary with ">>>" or
    # "LOG:"; the reply after MAIL's 250 is RCPT's.
    grep -E '^[245][0-9][0-9][ -]' <<<"$out" | grep -vE '^(220|221)' | sed -n '/^250 OK$/,$p' | sed -n 2p
}

expect_reply() {
    local what=$1 ip=$2 pattern=$3 reply
    reply=$(session "$ip")
    [[ "$reply" =~ $pattern ]] || fail "$what: expected RCPT reply /$pattern/, got '$reply'"
    ok "$what: $reply"
}

note "$(exim_version | head -n 1)"
expect_reply "first contact from 127.0.0.2 is greylisted" 127.0.0.2 '^451 greylisted, try again later'
expect_reply "a retry inside the 300 s delay is still greylisted" 127.0.0.2 '^451 greylisted, try again later'
rows=$(sql calmail <<<"SELECT ip, passes, last_seen - first_seen FROM greylist ORDER BY ip")
[[ "$rows" == $'127.0.0.2\t0\t0' ]] || fail "greylist rows after two deferrals: expected one row with 0 passes, got '$rows'"
ok "one greylist row, no passes yet"

# Pretend the first attempt was 301 seconds ago.
sql calmail <<<"UPDATE greylist SET first_seen = first_seen - 301, last_seen = last_seen - 301 WHERE ip = '127.0.0.2'"
expect_reply "a retry after the delay is accepted" 127.0.0.2 '^250 Accepted'
rows=$(sql calmail <<<"SELECT passes, last_seen - first_seen >= 301 FROM greylist WHERE ip = '127.0.0.2'")
[[ "$rows" == $'1\t1' ]] || fail "after the accepted retry: expected passes 1 and a refreshed last_seen, got '$rows'"
ok "the accepted attempt was counted and last_seen refreshed"

# A pair with awl_count (5) accepted attempts is whitelisted even if first seen just now.
sql calmail <<<"INSERT INTO greylist (k, ip, first_seen, last_seen, passes) VALUES ('k', '127.0.0.3', UNIX_TIMESTAMP(), UNIX_TIMESTAMP(), 5)"
expect_reply "an auto-whitelisted sender is accepted at once" 127.0.0.3 '^250 Accepted'
expect_reply "a new sender address is greylisted" 127.0.0.4 '^451 greylisted, try again later'
check=$(sql calmail <<<"SELECT greylist_defer_p('k', '127.0.0.9', 5, 300, 1), greylist_defer_p('k', '127.0.0.9', 5, 0, 0)")
[[ "$check" == $'1\t0' ]] || fail "direct calls: expected defer then accept with delay 0, got '$check'"
ok "direct SELECT greylist_defer_p(): 1 then 0 with delay 0"

sql <<<"DROP DATABASE calmail;" || fail "could not drop calmail"
ok "dropped database calmail"
echo "PASS"

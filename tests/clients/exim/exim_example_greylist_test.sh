#!/usr/bin/env bash
# Greylisting with the repository's own Postgrey function, examples/greylist/greylist.sql, in
# Exim's RCPT ACL as CalMail wrote it:
#
#   GREYLIST_QUERY = ${lookup mysql{ select greylist_defer_p('GREYLIST_KEY','$sender_host_address',
#                      GREYLIST_AWL_COUNT, GREYLIST_DELAY, GREYLIST_TIMESTAMP_UPDATE)}{$value}{0}}
#   defer condition = GREYLIST_QUERY
#         message   = Your message is subject to a greylisting policy.\n...
#
# The schema file is loaded through the mariadb CLI, DELIMITER and all. Checks, with
# `exim -C <private config> -bh <ip>` (a simulated SMTP session: ACLs run, nothing is delivered):
# a first attempt is deferred with the policy message, so is a retry inside the delay; after the
# delay (first_seen moved back in the table) the retry is accepted and the client earns a pass;
# a client with awl_count passes is accepted at once for a new sender; an IPv6 client is
# accepted (nothing to key it by in four bytes).
source "$(dirname "$0")/lib.sh"
example="$(cd "$(dirname "$0")/../../.." && pwd)/examples/greylist/greylist.sql"
[[ -f "$example" ]] || fail "missing $example"

sql <<<"DROP DATABASE IF EXISTS calmail; CREATE DATABASE calmail;" || fail "could not create calmail"
sql calmail <"$example" || fail "could not load $example"
ok "loaded examples/greylist/greylist.sql into calmail"

conf=$(write_config example-greylist <<'EOF2'
GREYLIST_KEY = ${quote_mysql:${lc:$sender_address}/${lc:$local_part@$domain}}
GREYLIST_AWL_COUNT = 3
GREYLIST_DELAY = 300
GREYLIST_TIMESTAMP_UPDATE = 1
GREYLIST_QUERY = ${lookup mysql{ select greylist_defer_p('GREYLIST_KEY','$sender_host_address', GREYLIST_AWL_COUNT, GREYLIST_DELAY, GREYLIST_TIMESTAMP_UPDATE)}{$value}{0}}

acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  defer
    condition = GREYLIST_QUERY
    message   = Your message is subject to a greylisting policy.\n\
                Please resend your message after five minutes have elapsed.
  accept
EOF2
)

# One simulated SMTP session from $1 with envelope sender $2; prints the RCPT reply's first line.
session() {
    local ip=$1 sender=$2 out
    out=$(printf 'EHLO client.example\r\nMAIL FROM:<%s>\r\nRCPT TO:<alice@example.org>\r\nQUIT\r\n' "$sender" \
        | exim -C "$conf" -bh "$ip" 2>&1 | tr -d '\r') || true
    grep -E '^[245][0-9][0-9][ -]' <<<"$out" | grep -vE '^(220|221)' | sed -n '/^250 OK$/,$p' | sed -n 2p
}

expect_reply() {
    local what=$1 ip=$2 sender=$3 pattern=$4 reply
    reply=$(session "$ip" "$sender")
    [[ "$reply" =~ $pattern ]] || fail "$what: expected RCPT reply /$pattern/, got '$reply'"
    ok "$what: $reply"
}

deferred='^451[ -]Your message is subject to a greylisting policy'
note "$(exim_version | head -n 1)"
expect_reply "first attempt from 192.0.2.10 is deferred" 192.0.2.10 bob@sender.example "$deferred"
expect_reply "a retry inside the delay is deferred again" 192.0.2.10 bob@sender.example "$deferred"
rows=$(sql calmail <<<"SELECT INET_NTOA(net), k, attempts FROM greylist_triplet")
[[ "$rows" == $'192.0.2.0\tbob@sender.example/alice@example.org\t2' ]] || fail "triplet after two attempts: got '$rows'"
ok "one triplet row keyed by the /24 network, two attempts"

sql calmail <<<"UPDATE greylist_triplet SET first_seen = first_seen - 301"
expect_reply "a retry after the delay is accepted" 192.0.2.10 bob@sender.example '^250 Accepted'
passes=$(sql calmail <<<"SELECT passes FROM greylist_client WHERE ip = INET_ATON('192.0.2.10')")
[[ "$passes" == 1 ]] || fail "the accepted client should have 1 pass, has '$passes'"
ok "the accepted client earned a pass"

sql calmail <<<"INSERT INTO greylist_client (ip, passes, last_seen) VALUES (INET_ATON('192.0.2.20'), 3, UNIX_TIMESTAMP())"
expect_reply "a whitelisted client is accepted at once" 192.0.2.20 carol@other.example '^250 Accepted'
expect_reply "an IPv6 client is accepted (no 4-byte key)" 2001:db8::25 dave@v6.example '^250 Accepted'

sql <<<"DROP DATABASE calmail;" || fail "could not drop calmail"
ok "dropped database calmail"
echo "PASS"

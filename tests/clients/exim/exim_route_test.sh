#!/usr/bin/env bash
# Exim routes mail with a MySQL lookup, as CalMail's MTA hosts did: a manualroute router whose
# route_data is the `host` column of the active account row for local_part@domain.
#
# Checks, with `exim -C <private config> -bt` (address testing, nothing is delivered):
# - a known active address routes to its account's host (the output names router and host);
# - the same local part in another domain routes to that domain's account, not this one;
# - an unknown address, an inactive account, and a known local part in the wrong domain are
#   unrouteable (exit status 2, "Unrouteable address"), not deferred: a deferral would mean the
#   lookup itself failed;
# - a local part of  x' or '1'='1  finds nothing, because ${quote_mysql:} escapes the quotes; a
#   control configuration without quote_mysql shows the same address WOULD route, so the check
#   really exercises the server's handling of the escaped quote.
# The schema is calmail.domain / calmail.account, created with the mariadb CLI and dropped at the end.
source "$(dirname "$0")/lib.sh"

sql <<'SQL' || fail "could not create the calmail schema"
DROP DATABASE IF EXISTS calmail;
CREATE DATABASE calmail DEFAULT CHARACTER SET utf8mb4;
USE calmail;
CREATE TABLE domain (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(255) NOT NULL UNIQUE
);
CREATE TABLE account (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  domain_id INT UNSIGNED NOT NULL,
  localpart VARCHAR(64) NOT NULL,
  host VARCHAR(64) NOT NULL,
  state VARCHAR(16) NOT NULL DEFAULT 'active',
  UNIQUE KEY (domain_id, localpart)
);
INSERT INTO domain (name) VALUES ('example.org'), ('other.example');
-- Hosts are loopback addresses so that Exim needs no DNS to report them.
INSERT INTO account (domain_id, localpart, host, state) VALUES
  (1, 'alice', '127.0.0.11', 'active'),
  (1, 'bob', '127.0.0.12', 'disabled'),
  (2, 'alice', '127.0.0.13', 'active'),
  (2, 'carol', '127.0.0.14', 'active');
SQL
ok "created calmail.domain and calmail.account"

# The lookup, exactly as the MTA configuration has it.
lookup="\${lookup mysql{select a.* from calmail.account a, calmail.domain d where a.domain_id=d.id and a.localpart='\${quote_mysql:\$local_part}' and d.name='\${quote_mysql:\$domain}' and a.state='active';}}"
# The same without quote_mysql: the injection control.
unquoted="\${lookup mysql{select a.* from calmail.account a, calmail.domain d where a.domain_id=d.id and a.localpart='\$local_part' and d.name='\$domain' and a.state='active';}}"

router_config() {
    cat <<EOF
begin routers

mysql_account:
  driver = manualroute
  route_data = \${extract{host}{$1}{\$value}fail}
  transport = remote_smtp
  # The hosts are loopback addresses; without this Exim would treat them as itself.
  self = send

begin transports

remote_smtp:
  driver = smtp
EOF
}

conf=$(router_config "$lookup" | write_config route)
control=$(router_config "$unquoted" | write_config control)

# Runs exim -bt; sets $out and $status.
bt() {
    local config=$1 address=$2
    set +e
    out=$(exim -C "$config" -bt "$address" 2>&1)
    status=$?
    set -e
}

expect_routed() {
    local address=$1 host=$2
    bt "$conf" "$address"
    [[ $status -eq 0 ]] || fail "$address: expected to route to $host, exit status $status: $out"
    grep -q "router = mysql_account, transport = remote_smtp" <<<"$out" \
        || fail "$address: output does not name the router: $out"
    grep -qE "^ +host $host \[$host\]" <<<"$out" || fail "$address: expected host $host in: $out"
    ok "$address routes to host $host"
}

expect_unrouteable() {
    local config=$1 address=$2 why=$3
    bt "$config" "$address"
    # Exit 2 with "Unrouteable address" is a clean "no such account"; exit 1 ("cannot be resolved
    # at this time") would be a failed lookup.
    [[ $status -eq 2 ]] && grep -q "Unrouteable address" <<<"$out" \
        || fail "$address ($why): expected 'Unrouteable address' and exit status 2, got status $status: $out"
    ok "$address is unrouteable ($why)"
}

note "$(exim_version | head -n 1)"
expect_routed "alice@example.org" 127.0.0.11
expect_routed "alice@other.example" 127.0.0.13
expect_routed "carol@other.example" 127.0.0.14
expect_unrouteable "$conf" "nobody@example.org" "unknown address"
expect_unrouteable "$conf" "bob@example.org" "inactive account"
expect_unrouteable "$conf" "carol@example.org" "local part of another domain"

injection="\"x' or '1'='1\"@example.org"
expect_unrouteable "$conf" "$injection" "quote_mysql escaped the quotes"
# The control: without quote_mysql the OR clause matches every active account and the address
# routes, so the check above can tell escaping from an empty result.
bt "$control" "$injection"
[[ $status -eq 0 ]] && grep -qE "^ +host 127\.0\.0\.1[134] " <<<"$out" \
    || fail "control without quote_mysql: expected the injected OR to route somewhere, got status $status: $out"
ok "control: without quote_mysql the same local part routes ($(grep -oE 'host 127\.0\.0\.[0-9]+' <<<"$out" | head -n 1))"

# Mixed case in the domain: Exim lowercases domains, and the lookup still finds the account.
expect_routed "alice@Example.ORG" 127.0.0.11

sql <<<"DROP DATABASE calmail;" || fail "could not drop calmail"
ok "dropped database calmail"
echo "PASS"

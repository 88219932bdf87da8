#!/usr/bin/perl
# A realistic Perl DBI session with DBD::MariaDB or DBD::mysql, checked value by value.
#
# Usage: dbi_test.pl MariaDB|mysql
#
# Each driver runs the session twice: with client-side placeholders (the default: values are
# escaped into the SQL text) and with server-side prepare (mariadb_server_prepare=1 /
# mysql_server_prepare=1: every statement, DDL included, goes through COM_STMT_PREPARE; see
# shared/CLIENTS.md sections 1 and 2.4). Both drivers set CLIENT_FOUND_ROWS by default, so an
# UPDATE reports matched rows. In the database cairn_dbd_<driver> (dropped at start and end) the
# session checks: the section 2.7 value set bound with default and with explicit SQL types and
# read back exactly, column metadata (native type codes, NULLABLE), affected rows, insert ids,
# begin_work/commit/rollback as a second connection sees them, and the errors 1062/23000,
# 1146/42S02 (also at prepare time), 1064/42000, 1049/42000 and 1045/28000 through err and state.
use strict;
use warnings;
use utf8;
use DBI qw(:sql_types);

binmode STDOUT, ':encoding(UTF-8)';
$| = 1;

my $driver = shift @ARGV // '';
die "usage: $0 MariaDB|mysql\n" unless $driver eq 'MariaDB' || $driver eq 'mysql';
my $prefix = $driver eq 'MariaDB' ? 'mariadb' : 'mysql';
my $db = 'cairn_dbd_' . lc $driver;
my %cfg = (
    host => $ENV{CAIRN_HOST} // '127.0.0.1',
    port => $ENV{CAIRN_PORT} // '3306',
    user => $ENV{CAIRN_USER} // 'root',
    password => $ENV{CAIRN_PASSWORD} // '',
);

sub show {
    my ($v) = @_;
    return 'undef' unless defined $v;
    return $v;
}

sub fail { die "FAIL $_[0]\n" }
sub ok { print "ok   $_[0]", (defined $_[1] ? ": $_[1]" : ''), "\n" }
sub note { print "note $_[0]\n" }

sub check {
    my ($what, $got, $want) = @_;
    my $same = (!defined $got && !defined $want) || (defined $got && defined $want && $got eq $want);
    fail("$what: expected '" . show($want) . "', got '" . show($got) . "'") unless $same;
    ok($what, show($got));
}

# Server features a check needs that the server under test does not have yet, from the
# comma-separated CAIRN_PENDING (run.sh --pending): `transactions` (COMMIT/ROLLBACK as a second
# connection sees them) and `unique` (UNIQUE keys enforced, error 1062). A pending check runs, but
# its mismatch is printed as `pending ...` instead of failing; an action that would change the
# data later checks rely on is not run at all.
my %pending = map { $_ => 1 } grep { length } map { s/^\s+|\s+$//gr } split /,/, ($ENV{CAIRN_PENDING} // '');

sub check_pending {
    my ($feature, $what, $got, $want) = @_;
    return check($what, $got, $want) unless $pending{$feature};
    my $same = (!defined $got && !defined $want) || (defined $got && defined $want && $got eq $want);
    print "pending $feature: $what: ", ($same ? "already holds ('" . show($got) . "')"
        : "expected '" . show($want) . "', got '" . show($got) . "'"), "\n";
}

sub skip_pending {
    my ($feature, $what) = @_;
    return 0 unless $pending{$feature};
    print "pending $feature: $what: not run\n";
    return 1;
}

sub connect_db {
    my (%opt) = @_;
    my $dsn = "DBI:$driver:host=$cfg{host};port=$cfg{port}";
    $dsn .= ";database=$opt{database}" if defined $opt{database};
    $dsn .= ";${prefix}_server_prepare=1" if $opt{server_prepare};
    my %attr = (RaiseError => 1, PrintError => 0, AutoCommit => 1);
    # DBD::mysql needs to be told to speak utf8mb4 and decode text; DBD::MariaDB always does.
    $attr{mysql_enable_utf8mb4} = 1 if $driver eq 'mysql';
    return DBI->connect($dsn, $opt{user} // $cfg{user}, $opt{password} // $cfg{password}, \%attr);
}

# Runs $code, which must die with a DBI error; checks err and state.
sub expect_error {
    my ($what, $code, $errno, $state, $handle) = @_;
    my $ok = eval { $code->(); 1 };
    fail("$what: expected error $errno/$state, but it succeeded") if $ok;
    my $err = $@;
    die $err if $err =~ /^FAIL /;
    my ($got_err, $got_state) = $handle ? ($handle->err, $handle->state) : ($DBI::err, $DBI::state);
    fail("$what: expected $errno/$state, got " . show($got_err) . '/' . show($got_state) . " ($err)")
        unless defined $got_err && $got_err == $errno && defined $got_state && $got_state eq $state;
    ok($what, "$got_err/$got_state");
}

my $utf8_text = "\x{1F600} caf\x{e9} \x{1D11E} \x{fc}n\x{ef}";
my $special_text = "line1\nline2\ttab 'single' \"double\" back\\slash";
my @columns = qw(c_u64 c_i64 c_u32 c_i8 c_dec c_txt c_note c_date c_dt c_blob);
my @row_max = ('18446744073709551615', '9223372036854775807', '4294967295', '127', '-12345.6789', $utf8_text,
    $special_text, '2024-02-29', '2024-02-29 23:59:58', "\x00\xff\x10\xfe");
my @row_min = ('9223372036854775808', '-9223372036854775808', '0', '-128', '-0.0001', '', undef, '2000-02-29',
    '1999-12-31 23:59:59', '');
# Native MySQL type codes (shared/CLIENTS.md section 2.6), id first.
my @type_codes = (3, 8, 8, 3, 1, 246, 253, 252, 10, 12, 252);

sub session {
    my ($server_prepare) = @_;
    my $mode = $server_prepare ? "${prefix}_server_prepare=1" : 'client-side placeholders';
    my $admin = connect_db(server_prepare => $server_prepare);
    # The driver module is loaded by the first connect.
    note("DBD::$driver " . ($driver eq 'MariaDB' ? $DBD::MariaDB::VERSION : $DBD::mysql::VERSION) . ", $mode");
    note('server version ' . $admin->selectrow_array('SELECT VERSION()'));
    $admin->do("DROP DATABASE IF EXISTS $db");
    $admin->do("CREATE DATABASE $db DEFAULT CHARACTER SET utf8mb4");
    ok("[$mode] created database $db");

    my $dbh = connect_db(database => $db, server_prepare => $server_prepare);
    check("[$mode] SELECT DATABASE()", scalar $dbh->selectrow_array('SELECT DATABASE()'), $db);
    $dbh->do(q{CREATE TABLE types (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        c_u64 BIGINT UNSIGNED NULL, c_i64 BIGINT NULL, c_u32 INT UNSIGNED NULL, c_i8 TINYINT NULL,
        c_dec DECIMAL(20,4) NULL, c_txt VARCHAR(255) NULL, c_note TEXT NULL, c_date DATE NULL,
        c_dt DATETIME NULL, c_blob BLOB NULL) DEFAULT CHARSET=utf8mb4});
    $dbh->do(q{CREATE TABLE account (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        email VARCHAR(255) NOT NULL, owner VARCHAR(64) NULL, quota BIGINT NOT NULL DEFAULT 0,
        UNIQUE KEY email (email)) DEFAULT CHARSET=utf8mb4});

    # ---- Values: default binding, then explicit SQL types ------------------------------------
    my $insert = $dbh->prepare('INSERT INTO types (' . join(', ', @columns) . ') VALUES ('
        . join(', ', ('?') x @columns) . ')');
    # Binary data must be bound as a BLOB type, or it is taken as character data.
    for my $i (0 .. $#columns) {
        $insert->bind_param($i + 1, $row_max[$i], $columns[$i] eq 'c_blob' ? SQL_BLOB : undef);
    }
    check("[$mode] INSERT max row: execute returns affected rows", $insert->execute, 1);
    check("[$mode] INSERT max row: insert id", $dbh->last_insert_id(undef, undef, 'types', 'id'), 1);
    my %sql_type = (c_u64 => SQL_BIGINT, c_i64 => SQL_BIGINT, c_u32 => SQL_INTEGER, c_i8 => SQL_TINYINT,
        c_dec => SQL_DECIMAL, c_txt => SQL_VARCHAR, c_note => SQL_LONGVARCHAR, c_date => SQL_DATE,
        c_dt => SQL_DATETIME, c_blob => SQL_BLOB);
    for my $i (0 .. $#columns) {
        $insert->bind_param($i + 1, $row_min[$i], $sql_type{$columns[$i]});
    }
    check("[$mode] INSERT min row (explicit SQL types): affected rows", $insert->execute, 1);
    check("[$mode] INSERT min row: ${prefix}_insertid", $dbh->{"${prefix}_insertid"}, 2);
    for my $i (0 .. $#columns) {
        $insert->bind_param($i + 1, $row_max[$i], $sql_type{$columns[$i]});
    }
    $insert->execute;
    check("[$mode] INSERT max row (explicit SQL types): insert id", $dbh->{"${prefix}_insertid"}, 3);
    # Literals, so that the server's own parsing of every value is checked as well.
    $dbh->do(q{INSERT INTO types (} . join(', ', @columns) . q{) VALUES (18446744073709551615,
        9223372036854775807, 4294967295, 127, -12345.6789, '} . $utf8_text . q{',
        'line1\nline2\ttab \'single\' \"double\" back\\\\slash', '2024-02-29', '2024-02-29 23:59:58', x'00FF10FE')});

    my $sth = $dbh->prepare('SELECT id, ' . join(', ', @columns) . ' FROM types ORDER BY id');
    $sth->execute;
    check("[$mode] column names", join(',', @{ $sth->{NAME} }), join(',', 'id', @columns));
    check("[$mode] native type codes (${prefix}_type)", join(',', @{ $sth->{"${prefix}_type"} }), join(',', @type_codes));
    check("[$mode] NULLABLE", join(',', map { $_ ? 1 : 0 } @{ $sth->{NULLABLE} }), join(',', 0, (1) x @columns));
    my $rows = $sth->fetchall_arrayref;
    check("[$mode] row count", scalar @$rows, 4);
    my @expected = (\@row_max, \@row_min, \@row_max, \@row_max);
    for my $r (0 .. 3) {
        for my $i (0 .. $#columns) {
            my ($got, $want) = ($rows->[$r][$i + 1], $expected[$r][$i]);
            if ($columns[$i] eq 'c_blob') {
                $got = unpack('H*', $got) if defined $got;
                $want = unpack('H*', $want);
            }
            check("[$mode] row id=" . ($r + 1) . " $columns[$i]", $got, $want);
        }
    }
    check("[$mode] 4-byte UTF-8 read back as characters", length($rows->[0][6]), 12);
    check("[$mode] BLOB read back as bytes", length($rows->[0][10]), 4);
    my ($found) = $dbh->selectrow_array('SELECT COUNT(*) FROM types WHERE c_u64 = ? AND c_txt = ? AND c_dec = ?',
        undef, '18446744073709551615', $utf8_text, '-12345.6789');
    check("[$mode] WHERE with BIGINT UNSIGNED max, 4-byte UTF-8 and a negative DECIMAL", $found, 3);

    # A Latin-1 string that Perl keeps as bytes: DBD::mysql 4.050 sends it unconverted (section
    # 1.1) unless it is upgraded first; DBD::MariaDB converts it itself.
    my $latin1 = "Bob \xe9";
    utf8::downgrade($latin1);
    if ($driver eq 'mysql') {
        note('DBD::mysql quirk: utf8::upgrade before binding a Latin-1 byte string');
        utf8::upgrade($latin1);
    }
    $dbh->do('INSERT INTO account (email, owner) VALUES (?, ?)', undef, 'latin1@example.org', $latin1);
    check("[$mode] Latin-1 text round trip",
        scalar $dbh->selectrow_array('SELECT owner FROM account WHERE email = ?', undef, 'latin1@example.org'),
        "Bob \x{e9}");
    $dbh->do('DELETE FROM account');

    # ---- Affected rows (FOUND_ROWS is on: matched rows) and insert ids -----------------------
    check("[$mode] 3-row INSERT: do() returns affected rows", $dbh->do(
        "INSERT INTO account (email, quota) VALUES ('alice\@example.org', 100), ('bob\@example.org', 200), ('carol\@example.org', 300)"), 3);
    my $first_id = $dbh->{"${prefix}_insertid"};
    check("[$mode] 3-row INSERT: insert id is the first row's",
        $first_id, scalar $dbh->selectrow_array('SELECT MIN(id) FROM account'));
    check("[$mode] UPDATE 3 matched 2 changed: do() returns matched rows",
        $dbh->do('UPDATE account SET quota = 300 WHERE quota >= ?', undef, 100), 3);
    check("[$mode] same-value UPDATE: matched rows", $dbh->do('UPDATE account SET quota = 300 WHERE email = ?', undef, 'alice@example.org'), 1);
    check("[$mode] DELETE of nothing returns 0E0", $dbh->do('DELETE FROM account WHERE email = ?', undef, 'nobody@example.org'), '0E0');

    # ---- Transactions seen from a second connection ----------------------------------------
    my $observer = connect_db(database => $db, server_prepare => $server_prepare);
    my $visible = sub {
        return scalar $observer->selectrow_array('SELECT COUNT(*) FROM account WHERE email = ?', undef, $_[0]);
    };
    $dbh->begin_work;
    $dbh->do('INSERT INTO account (email, quota) VALUES (?, ?)', undef, 'erin@example.org', 5);
    check_pending('transactions', "[$mode] uncommitted insert invisible to a second connection", $visible->('erin@example.org'), 0);
    $dbh->commit;
    check("[$mode] committed insert visible to a second connection", $visible->('erin@example.org'), 1);
    $dbh->begin_work;
    $dbh->do('INSERT INTO account (email, quota) VALUES (?, ?)', undef, 'frank@example.org', 6);
    check("[$mode] own uncommitted insert visible to itself",
        scalar $dbh->selectrow_array('SELECT COUNT(*) FROM account WHERE email = ?', undef, 'frank@example.org'), 1);
    $dbh->rollback;
    check_pending('transactions', "[$mode] rolled-back insert invisible to a second connection", $visible->('frank@example.org'), 0);
    # Without transactions the rolled-back row stays; remove it so later counts hold either way.
    $dbh->do("DELETE FROM account WHERE email = 'frank\@example.org'") if $pending{transactions};
    check("[$mode] AutoCommit back on after rollback", $dbh->{AutoCommit}, 1);
    $observer->disconnect;

    # ---- Errors ----------------------------------------------------------------------------
    expect_error("[$mode] duplicate key", sub { $dbh->do('INSERT INTO account (email) VALUES (?)', undef, 'alice@example.org') },
        1062, '23000', $dbh) unless skip_pending('unique', "[$mode] duplicate key");
    expect_error("[$mode] unknown table", sub { $dbh->selectall_arrayref('SELECT * FROM no_such_table') }, 1146, '42S02', $dbh);
    expect_error("[$mode] unknown table with a placeholder", sub {
        my $s = $dbh->prepare('SELECT * FROM no_such_table WHERE id = ?');
        $s->execute(1);
    }, 1146, '42S02', $dbh);
    expect_error("[$mode] syntax error", sub { $dbh->do('SELEC 1') }, 1064, '42000', $dbh);
    expect_error("[$mode] USE of an unknown database", sub { $dbh->do('USE cairn_no_such_database') }, 1049, '42000', $dbh);
    check("[$mode] connection usable after errors", scalar $dbh->selectrow_array('SELECT COUNT(*) FROM account'), 4);
    expect_error("[$mode] connect to an unknown database", sub { connect_db(database => 'cairn_no_such_database') },
        1049, '42000', undef);

    my $user = $db;
    my $password = 'Cairn-pw-7';
    my $created = eval {
        $admin->do("DROP USER IF EXISTS '$user'\@'%'");
        $admin->do("CREATE USER '$user'\@'%' IDENTIFIED BY '$password'");
        $admin->do("GRANT ALL PRIVILEGES ON $db.* TO '$user'\@'%'");
        1;
    };
    if ($created) {
        my $good = connect_db(database => $db, user => $user, password => $password);
        check("[$mode] login with the right password", scalar $good->selectrow_array('SELECT CURRENT_USER()'), "$user\@%");
        $good->disconnect;
        expect_error("[$mode] wrong password", sub { connect_db(database => $db, user => $user, password => 'wrong-pw') },
            1045, '28000', undef);
        $admin->do("DROP USER '$user'\@'%'");
    } else {
        note("server rejected CREATE USER ($@); checking a wrong password for $cfg{user} instead");
        expect_error("[$mode] wrong password", sub { connect_db(password => "$cfg{password}-wrong") }, 1045, '28000', undef);
    }

    $dbh->disconnect;
    $admin->do("DROP DATABASE $db");
    ok("[$mode] dropped database $db");
    $admin->disconnect;
}

my $ok = eval {
    session(0);
    session(1);
    1;
};
if (!$ok) {
    my $err = $@;
    $err = "FAIL unexpected: $err" unless $err =~ /^FAIL /;
    print $err;
    exit 1;
}
print "PASS\n";

<?php
// A realistic mysqli (mysqlnd) session, checked value by value.
//
// mysqli sends `SET NAMES utf8mb4` from set_charset, runs prepare/bind_param as COM_STMT_PREPARE /
// EXECUTE (`i` as LONGLONG, `s` as VAR_STRING), and multi_query() as COM_SET_OPTION(MULTI_STATEMENTS
// ON), the query, then OFF (shared/CLIENTS.md section 1). In the database cairn_mysqli (dropped at
// start and end) this checks: the section 2.7 value set through bind_param and read back through
// get_result() (native PHP types from the binary protocol) and through query() (strings from the
// text protocol); fetch_fields type codes and UNSIGNED flags; affected_rows without FOUND_ROWS,
// insert_id, the info text "Rows matched: N  Changed: M  Warnings: W" and warning_count;
// multi_query with several result sets; begin_transaction/commit/rollback as a second
// connection sees them; and mysqli_sql_exception getCode()/getSqlState() for 1062, 1146, 1064,
// 1049 and 1045.
declare(strict_types=1);

require __DIR__ . '/common.php';

const DB = 'cairn_mysqli';
const UNSIGNED_FLAG = 32;

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);

function connect(?string $database = DB, ?string $user = null, ?string $password = null): mysqli
{
    $cfg = settings();
    $m = new mysqli($cfg['host'], $user ?? $cfg['user'], $password ?? $cfg['password'], $database ?? '', $cfg['port']);
    $m->set_charset('utf8mb4');
    return $m;
}

/**
 * Runs $action, which must throw mysqli_sql_exception with $errno. For a failed connect mysqlnd
 * reports SQLSTATE HY000 whatever the server sent, so $connect accepts that.
 */
function expect_error(string $what, callable $action, int $errno, string $sqlstate, bool $connect = false): void
{
    try {
        $action();
    } catch (mysqli_sql_exception $e) {
        if ($e->getCode() !== $errno) {
            throw new Failure("$what: expected errno $errno, got {$e->getCode()} ({$e->getMessage()})");
        }
        $state = $e->getSqlState();
        if ($state !== $sqlstate && !($connect && $state === 'HY000')) {
            throw new Failure("$what: expected SQLSTATE $sqlstate, got $state");
        }
        ok("$what: $errno/$state" . ($state === $sqlstate ? '' : ' (mysqlnd reports HY000 for every failed connect)'));
        return;
    }
    throw new Failure("$what: expected error $errno/$sqlstate, but it succeeded");
}

main_wrapper(function (): void {
    $admin = connect(null);
    note('PHP ' . PHP_VERSION . ', client ' . $admin->client_info . ', server ' . $admin->server_info);
    $admin->query('DROP DATABASE IF EXISTS ' . DB);
    $admin->query('CREATE DATABASE ' . DB . ' DEFAULT CHARACTER SET utf8mb4');
    ok('created database ' . DB);

    $db = connect();
    check('SELECT DATABASE()', $db->query('SELECT DATABASE()')->fetch_row()[0], DB);
    $db->query(TYPES_DDL);
    $db->query(ACCOUNT_DDL);

    // ---- Values through bind_param ----------------------------------------------------------------
    $insert = $db->prepare('INSERT INTO types (' . implode(', ', COLUMNS) . ') VALUES ('
        . implode(', ', array_fill(0, count(COLUMNS), '?')) . ')');
    foreach ([[ROW_MAX_IN, 1], [ROW_MIN_IN, 2]] as [$row, $id]) {
        // `i` for what fits a PHP int, `s` for the rest (BIGINT UNSIGNED, DECIMAL, dates, bytes).
        $types = implode('', array_map(fn ($v) => is_int($v) ? 'i' : 's', $row));
        $insert->bind_param($types, ...$row);
        $insert->execute();
        check("INSERT ($types) affected_rows", $insert->affected_rows, 1);
        check('INSERT insert_id', $insert->insert_id, $id);
    }
    $db->query(LITERAL_ROW_MAX_SQL);
    check('literal INSERT insert_id', $db->insert_id, 3);

    // Binary protocol via get_result(): native types where they fit.
    $max_native = ['18446744073709551615', PHP_INT_MAX, 4294967295, 127, '-12345.6789', UTF8_TEXT, SPECIAL_TEXT,
        '2024-02-29', '2024-02-29 23:59:58', "\x00\xff\x10\xfe"];
    $min_native = ['9223372036854775808', PHP_INT_MIN, 0, -128, '-0.0001', '', null, '2000-02-29',
        '1999-12-31 23:59:59', ''];
    $select = $db->prepare('SELECT id, ' . implode(', ', COLUMNS) . ' FROM types WHERE id >= ? ORDER BY id');
    $first = 1;
    $select->bind_param('i', $first);
    $select->execute();
    $rows = $select->get_result()->fetch_all(MYSQLI_NUM);
    check('binary protocol row count', count($rows), 3);
    foreach ([$max_native, $min_native, $max_native] as $r => $want) {
        check('binary protocol row ' . ($r + 1) . ' id', $rows[$r][0], $r + 1);
        foreach (COLUMNS as $i => $column) {
            check('binary protocol row ' . ($r + 1) . " $column", $rows[$r][$i + 1], $want[$i]);
        }
    }

    // Text protocol via query(): every value a string, NULL as null.
    $result = $db->query('SELECT id, ' . implode(', ', COLUMNS) . ' FROM types ORDER BY id');
    $rows = $result->fetch_all(MYSQLI_NUM);
    $as_text = fn (array $row) => array_map(fn ($v) => $v === null ? null : (string) $v, $row);
    foreach ([$max_native, $min_native, $max_native] as $r => $want) {
        $want = $as_text($want);
        check('text protocol row ' . ($r + 1) . ' id', $rows[$r][0], (string) ($r + 1));
        foreach (COLUMNS as $i => $column) {
            check('text protocol row ' . ($r + 1) . " $column", $rows[$r][$i + 1], $want[$i]);
        }
    }
    $fields = $result->fetch_fields();
    check('fetch_fields type codes', implode(',', array_map(fn ($f) => $f->type, $fields)), '3,8,8,3,1,246,253,252,10,12,252');
    check('fetch_fields UNSIGNED flags', implode(',', array_map(fn ($f) => ($f->flags & UNSIGNED_FLAG) ? 1 : 0, $fields)),
        '1,1,0,1,0,0,0,0,0,0,0');
    check('fetch_fields charset of the BLOB is binary (63)', $fields[10]->charsetnr, 63);
    check('fetch_fields decimals of DECIMAL(20,4)', $fields[5]->decimals, 4);

    // ---- Affected rows (no FOUND_ROWS: changed rows), info text, warnings ---------------------
    $db->query("INSERT INTO account (email, quota) VALUES ('alice@example.org', 100), ('bob@example.org', 200), ('carol@example.org', 300)");
    check('3-row INSERT affected_rows', $db->affected_rows, 3);
    check('3-row INSERT info text', $db->info, 'Records: 3  Duplicates: 0  Warnings: 0');
    check('3-row INSERT insert_id (first id)', $db->insert_id, 1);
    $db->query('UPDATE account SET quota = 300 WHERE quota >= 100');
    check('UPDATE 3 matched 2 changed: affected_rows (changed rows)', $db->affected_rows, 2);
    check('UPDATE info text', $db->info, 'Rows matched: 3  Changed: 2  Warnings: 0');
    $update = $db->prepare('UPDATE account SET quota = ? WHERE email = ?');
    $quota = 300;
    $email = 'alice@example.org';
    $update->bind_param('is', $quota, $email);
    $update->execute();
    check('prepared same-value UPDATE affected_rows', $update->affected_rows, 0);
    $db->query('SELECT CAST(\'12abc\' AS SIGNED)');
    check('warning_count after a truncating CAST', $db->warning_count, 1);
    check('SHOW WARNINGS code', (int) $db->query('SHOW WARNINGS')->fetch_row()[1], 1292);

    // ---- multi_query --------------------------------------------------------------------------
    $db->multi_query("SELECT 1 AS a; SELECT email FROM account WHERE id = 2; UPDATE account SET quota = quota + 1 WHERE id = 3; SELECT 'x' AS c");
    $sets = [];
    do {
        $r = $db->store_result();
        $sets[] = $r === false ? 'affected=' . $db->affected_rows : $r->fetch_all(MYSQLI_NUM);
    } while ($db->more_results() && $db->next_result());
    check('multi_query results', json_encode($sets), json_encode([[['1']], [['bob@example.org']], 'affected=1', [['x']]]));
    check('query after multi_query (MULTI_STATEMENTS switched off again)', $db->query('SELECT 2')->fetch_row()[0], '2');
    expect_error('two statements in query() after multi_query', fn () => $db->query('SELECT 1; SELECT 2'), 1064, '42000');

    // ---- Transactions seen from a second connection ------------------------------------------
    $observer = connect();
    $count = fn (string $e) => $observer->query("SELECT COUNT(*) FROM account WHERE email = '" . $observer->real_escape_string($e) . "'")->fetch_row()[0];
    $db->begin_transaction();
    $db->query("INSERT INTO account (email, quota) VALUES ('erin@example.org', 5)");
    check_pending('transactions', 'uncommitted insert invisible to a second connection', $count('erin@example.org'), '0');
    $db->commit();
    check('committed insert visible to a second connection', $count('erin@example.org'), '1');
    $db->begin_transaction();
    $db->query("DELETE FROM account WHERE email = 'erin@example.org'");
    check('own uncommitted delete visible to itself', $db->query("SELECT COUNT(*) FROM account WHERE email = 'erin@example.org'")->fetch_row()[0], '0');
    $db->rollback();
    check_pending('transactions', 'rolled-back delete undone for a second connection', $count('erin@example.org'), '1');
    if (pending('transactions') && $count('erin@example.org') === '0') {
        // Without transactions the delete stays; put the row back so later counts hold either way.
        $db->query("INSERT INTO account (email, quota) VALUES ('erin@example.org', 5)");
    }
    $observer->close();

    // ---- Errors ------------------------------------------------------------------------------
    if (!skip_pending('unique', 'duplicate key')) {
        expect_error('duplicate key', fn () => $db->query("INSERT INTO account (email) VALUES ('alice@example.org')"), 1062, '23000');
    }
    expect_error('unknown table at prepare time', fn () => $db->prepare('SELECT * FROM no_such_table WHERE id = ?'), 1146, '42S02');
    expect_error('unknown table', fn () => $db->query('SELECT * FROM no_such_table'), 1146, '42S02');
    expect_error('syntax error at prepare time', fn () => $db->prepare('SELEC ?'), 1064, '42000');
    expect_error('USE of an unknown database', fn () => $db->query('USE cairn_no_such_database'), 1049, '42000');
    expect_error('select_db of an unknown database (COM_INIT_DB)', fn () => $db->select_db('cairn_no_such_database'), 1049, '42000');
    check('connection usable after errors', $db->query('SELECT COUNT(*) FROM account')->fetch_row()[0], '4');
    expect_error('connect to an unknown database', fn () => connect('cairn_no_such_database'), 1049, '42000', true);

    $user = DB;
    $password = 'Cairn-pw-7';
    try {
        $admin->query("DROP USER IF EXISTS '$user'@'%'");
        $admin->query("CREATE USER '$user'@'%' IDENTIFIED BY '$password'");
        $admin->query('GRANT ALL PRIVILEGES ON ' . DB . ".* TO '$user'@'%'");
        $created = true;
    } catch (mysqli_sql_exception $e) {
        note("server rejected CREATE USER ({$e->getMessage()}); checking a wrong password for " . settings()['user'] . ' instead');
        $created = false;
    }
    if ($created) {
        $good = connect(DB, $user, $password);
        check('login with the right password', $good->query('SELECT CURRENT_USER()')->fetch_row()[0], "$user@%");
        $good->close();
        expect_error('wrong password', fn () => connect(DB, $user, 'wrong-pw'), 1045, '28000', true);
        expect_error('change_user with a wrong password (COM_CHANGE_USER)', fn () => $db->change_user($user, 'wrong-pw', DB),
            1045, '28000');
        $admin->query("DROP USER '$user'@'%'");
    } else {
        expect_error('wrong password', fn () => connect(null, null, settings()['password'] . '-wrong'), 1045, '28000', true);
    }

    $db->close();
    $admin->query('DROP DATABASE ' . DB);
    ok('dropped database ' . DB);
    $admin->close();
});

<?php
// A realistic PDO (pdo_mysql on mysqlnd) session, checked value by value, run twice: with
// emulated prepares (PDO's default: values are quoted into COM_QUERY text) and with native
// prepares (ATTR_EMULATE_PREPARES=false: prepare() and query() become COM_STMT_PREPARE / EXECUTE /
// CLOSE; exec() stays COM_QUERY). See shared/CLIENTS.md section 1.
//
// In the database cairn_pdo (dropped at start and end) each run checks: the section 2.7 value set
// bound with PARAM_INT / PARAM_STR / PARAM_NULL / PARAM_LOB and read back with PHP 8.1+'s native
// types (ints as int, BIGINT UNSIGNED above PHP_INT_MAX, DECIMAL and dates as strings, BLOB as
// bytes); getColumnMeta native types and flags; rowCount without FOUND_ROWS (changed rows);
// lastInsertId; multi-statements with nextRowset (emulated mode only); commit and rollback as a
// second connection sees them; PDOException errorInfo [SQLSTATE, errno, message] for 1062, 1146,
// 1064, 1049 and 1045.
declare(strict_types=1);

require __DIR__ . '/common.php';

const DB = 'cairn_pdo';

function connect(bool $emulate, ?string $database = DB, ?string $user = null, ?string $password = null): PDO
{
    $cfg = settings();
    $dsn = "mysql:host={$cfg['host']};port={$cfg['port']};charset=utf8mb4" . ($database === null ? '' : ";dbname=$database");
    return new PDO($dsn, $user ?? $cfg['user'], $password ?? $cfg['password'], [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_EMULATE_PREPARES => $emulate,
    ]);
}

/**
 * Runs $action, which must throw a PDOException with $errno. $sqlstate is the server's; for a
 * failed connect mysqlnd reports HY000 whatever the server sent, so $connect accepts that.
 */
function expect_error(string $what, callable $action, int $errno, string $sqlstate, bool $connect = false): void
{
    try {
        $action();
    } catch (PDOException $e) {
        [$state, $code] = [$e->errorInfo[0] ?? null, $e->errorInfo[1] ?? null];
        if ($code !== $errno) {
            throw new Failure("$what: expected errno $errno, got " . show($code) . ' (' . $e->getMessage() . ')');
        }
        if ($state !== $sqlstate && !($connect && $state === 'HY000')) {
            throw new Failure("$what: expected SQLSTATE $sqlstate, got " . show($state));
        }
        if (!$connect && $e->getCode() !== $sqlstate) {
            throw new Failure("$what: expected getCode() $sqlstate, got " . show($e->getCode()));
        }
        ok("$what: $code/$state" . ($state === $sqlstate ? '' : ' (mysqlnd reports HY000 for every failed connect)'));
        return;
    }
    throw new Failure("$what: expected error $errno/$sqlstate, but it succeeded");
}

function bind_row(PDOStatement $stmt, array $row): void
{
    foreach ($row as $i => $value) {
        $type = match (true) {
            $value === null => PDO::PARAM_NULL,
            is_int($value) => PDO::PARAM_INT,
            COLUMNS[$i] === 'c_blob' => PDO::PARAM_LOB,
            default => PDO::PARAM_STR,
        };
        $stmt->bindValue($i + 1, $value, $type);
    }
}

function session(bool $emulate): void
{
    $mode = $emulate ? '[emulated prepares]' : '[native prepares]';
    $admin = connect($emulate, null);
    note("PHP " . PHP_VERSION . ", client " . $admin->getAttribute(PDO::ATTR_CLIENT_VERSION)
        . ", server " . $admin->getAttribute(PDO::ATTR_SERVER_VERSION) . " $mode");
    $admin->exec('DROP DATABASE IF EXISTS ' . DB);
    $admin->exec('CREATE DATABASE ' . DB . ' DEFAULT CHARACTER SET utf8mb4');
    ok("$mode created database " . DB);

    $pdo = connect($emulate);
    check("$mode SELECT DATABASE()", $pdo->query('SELECT DATABASE()')->fetchColumn(), DB);
    $pdo->exec(TYPES_DDL);
    $pdo->exec(ACCOUNT_DDL);

    // ---- Values --------------------------------------------------------------------------------
    $insert = $pdo->prepare('INSERT INTO types (' . implode(', ', COLUMNS) . ') VALUES ('
        . implode(', ', array_fill(0, count(COLUMNS), '?')) . ')');
    foreach ([[ROW_MAX_IN, '1'], [ROW_MIN_IN, '2']] as [$row, $id]) {
        bind_row($insert, $row);
        $insert->execute();
        check("$mode INSERT rowCount", $insert->rowCount(), 1);
        check("$mode lastInsertId", $pdo->lastInsertId(), $id);
    }
    check("$mode exec() of a literal INSERT returns affected rows", $pdo->exec(LITERAL_ROW_MAX_SQL), 1);

    // PHP 8.1+ gives native ints in both modes; what does not fit an int stays a string.
    $max_out = ['18446744073709551615', PHP_INT_MAX, 4294967295, 127, '-12345.6789', UTF8_TEXT, SPECIAL_TEXT,
        '2024-02-29', '2024-02-29 23:59:58', "\x00\xff\x10\xfe"];
    $min_out = ['9223372036854775808', PHP_INT_MIN, 0, -128, '-0.0001', '', null, '2000-02-29',
        '1999-12-31 23:59:59', ''];
    $select = $pdo->prepare('SELECT id, ' . implode(', ', COLUMNS) . ' FROM types WHERE id >= ? ORDER BY id');
    $select->bindValue(1, 1, PDO::PARAM_INT);
    $select->execute();
    $rows = $select->fetchAll(PDO::FETCH_NUM);
    check("$mode row count", count($rows), 3);
    foreach ([$max_out, $min_out, $max_out] as $r => $want) {
        check("$mode row " . ($r + 1) . ' id', $rows[$r][0], $r + 1);
        foreach (COLUMNS as $i => $column) {
            check("$mode row " . ($r + 1) . " $column", $rows[$r][$i + 1], $want[$i]);
        }
    }
    $native = [];
    foreach (range(0, count(COLUMNS)) as $i) {
        $meta = $select->getColumnMeta($i);
        $native[] = $meta['native_type'] ?? '?';
    }
    check("$mode getColumnMeta native types", implode(',', $native),
        'LONG,LONGLONG,LONGLONG,LONG,TINY,NEWDECIMAL,VAR_STRING,BLOB,DATE,DATETIME,BLOB');
    $id_meta = $select->getColumnMeta(0);
    check("$mode getColumnMeta(id) flags", in_array('not_null', $id_meta['flags'], true)
        && in_array('primary_key', $id_meta['flags'], true), true);
    $find = $pdo->prepare('SELECT COUNT(*) FROM types WHERE c_u64 = ? AND c_txt = ? AND c_dec = ?');
    $find->execute(['18446744073709551615', UTF8_TEXT, '-12345.6789']);
    check("$mode WHERE with BIGINT UNSIGNED max, 4-byte UTF-8 and negative DECIMAL", $find->fetchColumn(), 2);

    // ---- Affected rows (no FOUND_ROWS: changed rows) ----------------------------------------------
    check("$mode 3-row INSERT via exec()", $pdo->exec("INSERT INTO account (email, quota) VALUES
        ('alice@example.org', 100), ('bob@example.org', 200), ('carol@example.org', 300)"), 3);
    check("$mode lastInsertId of a multi-row INSERT (first id)", $pdo->lastInsertId(), '1');
    $update = $pdo->prepare('UPDATE account SET quota = ? WHERE quota >= ?');
    $update->execute([300, 100]);
    check("$mode UPDATE 3 matched 2 changed: rowCount (changed rows)", $update->rowCount(), 2);
    $update->execute([300, 100]);
    check("$mode same-value UPDATE: rowCount", $update->rowCount(), 0);

    // ---- Multi-statements: emulated mode only ------------------------------------------------
    if ($emulate) {
        $multi = $pdo->query("SELECT 1 AS a; SELECT email FROM account WHERE id = 2; SELECT 'x' AS c");
        $sets = [$multi->fetchAll(PDO::FETCH_NUM)];
        while ($multi->nextRowset()) {
            $sets[] = $multi->fetchAll(PDO::FETCH_NUM);
        }
        check("$mode multi-statement result sets", json_encode($sets), json_encode([[[1]], [['bob@example.org']], [['x']]]));
    }

    // ---- Transactions seen from a second connection ----------------------------------------
    $observer = connect($emulate);
    $count = fn (string $email) => $observer->query("SELECT COUNT(*) FROM account WHERE email = " . $observer->quote($email))->fetchColumn();
    $pdo->beginTransaction();
    $pdo->prepare('INSERT INTO account (email, quota) VALUES (?, ?)')->execute(['erin@example.org', 5]);
    check_pending('transactions', "$mode uncommitted insert invisible to a second connection", $count('erin@example.org'), 0);
    $pdo->commit();
    check("$mode committed insert visible to a second connection", $count('erin@example.org'), 1);
    $pdo->beginTransaction();
    $pdo->prepare('INSERT INTO account (email, quota) VALUES (?, ?)')->execute(['frank@example.org', 6]);
    check("$mode inTransaction()", $pdo->inTransaction(), true);
    $pdo->rollBack();
    check_pending('transactions', "$mode rolled-back insert invisible to a second connection", $count('frank@example.org'), 0);
    if (pending('transactions')) {
        // Without transactions the rolled-back row stays; remove it so later counts hold either way.
        $pdo->exec("DELETE FROM account WHERE email = 'frank@example.org'");
    }
    $observer = null;

    // ---- Errors ------------------------------------------------------------------------------
    if (!skip_pending('unique', "$mode duplicate key")) {
        expect_error("$mode duplicate key", fn () => $pdo->prepare('INSERT INTO account (email) VALUES (?)')->execute(['alice@example.org']),
            1062, '23000');
    }
    expect_error("$mode unknown table", fn () => $pdo->prepare('SELECT * FROM no_such_table WHERE id = ?')->execute([1]),
        1146, '42S02');
    expect_error("$mode syntax error", fn () => $pdo->query('SELEC 1'), 1064, '42000');
    expect_error("$mode USE of an unknown database", fn () => $pdo->exec('USE cairn_no_such_database'), 1049, '42000');
    check("$mode connection usable after errors", $pdo->query('SELECT COUNT(*) FROM account')->fetchColumn(), 4);
    expect_error("$mode connect to an unknown database", fn () => connect($emulate, 'cairn_no_such_database'), 1049, '42000', true);

    $user = DB;
    $password = 'Cairn-pw-7';
    try {
        $admin->exec("DROP USER IF EXISTS '$user'@'%'");
        $admin->exec("CREATE USER '$user'@'%' IDENTIFIED BY '$password'");
        $admin->exec("GRANT ALL PRIVILEGES ON " . DB . ".* TO '$user'@'%'");
        $created = true;
    } catch (PDOException $e) {
        note("server rejected CREATE USER ({$e->getMessage()}); checking a wrong password for " . settings()['user'] . ' instead');
        $created = false;
    }
    if ($created) {
        $good = connect($emulate, DB, $user, $password);
        check("$mode login with the right password", $good->query('SELECT CURRENT_USER()')->fetchColumn(), "$user@%");
        $good = null;
        expect_error("$mode wrong password", fn () => connect($emulate, DB, $user, 'wrong-pw'), 1045, '28000', true);
        $admin->exec("DROP USER '$user'@'%'");
    } else {
        expect_error("$mode wrong password", fn () => connect($emulate, null, null, settings()['password'] . '-wrong'),
            1045, '28000', true);
    }

    $pdo = null;
    $admin->exec('DROP DATABASE ' . DB);
    ok("$mode dropped database " . DB);
}

main_wrapper(function (): void {
    session(true);
    session(false);
});

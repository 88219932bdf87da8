<?php
// Shared pieces of the PHP client tests (pdo_test.php, mysqli_test.php): settings, checks that
// fail loudly, and the value set of shared/CLIENTS.md section 2.7.
declare(strict_types=1);

final class Failure extends Exception
{
}

function settings(): array
{
    return [
        'host' => getenv('CAIRN_HOST') ?: '127.0.0.1',
        'port' => (int) (getenv('CAIRN_PORT') ?: '3306'),
        'user' => getenv('CAIRN_USER') ?: 'root',
        'password' => getenv('CAIRN_PASSWORD') ?: '',
    ];
}

function show($value): string
{
    // preg_match with /u fails on invalid UTF-8; it needs no mbstring extension.
    if (is_string($value) && preg_match('//u', $value) !== 1) {
        return 'bytes 0x' . bin2hex($value);
    }
    return var_export($value, true) . ' (' . get_debug_type($value) . ')';
}

function ok(string $what, $got = null): void
{
    echo "ok   $what" . ($got === null ? '' : ': ' . show($got)) . "\n";
}

function note(string $text): void
{
    echo "note $text\n";
}

/** Strict comparison: the value and its PHP type. */
function check(string $what, $got, $want): void
{
    if ($got !== $want) {
        throw new Failure("$what: expected " . show($want) . ', got ' . show($got));
    }
    ok($what, $got);
}

// Server features a check needs that the server under test does not have yet, from the
// comma-separated CAIRN_PENDING (run.sh --pending): `transactions` (COMMIT/ROLLBACK as a second
// connection sees them) and `unique` (UNIQUE keys enforced, error 1062). A pending check runs, but
// its mismatch is printed as `pending ...` instead of failing; an action that would change the
// data later checks rely on is not run at all.
function pending(string $feature): bool
{
    $words = array_filter(array_map('trim', explode(',', getenv('CAIRN_PENDING') ?: '')));
    return in_array($feature, $words, true);
}

function check_pending(string $feature, string $what, $got, $want): void
{
    if (!pending($feature)) {
        check($what, $got, $want);
        return;
    }
    echo "pending $feature: $what: " . ($got === $want ? 'already holds (' . show($got) . ')'
        : 'expected ' . show($want) . ', got ' . show($got)) . "\n";
}

function skip_pending(string $feature, string $what): bool
{
    if (!pending($feature)) {
        return false;
    }
    echo "pending $feature: $what: not run\n";
    return true;
}

const UTF8_TEXT = "\u{1F600} caf\u{e9} \u{1D11E} \u{fc}n\u{ef}";
const SPECIAL_TEXT = "line1\nline2\ttab 'single' \"double\" back\\slash";
const COLUMNS = ['c_u64', 'c_i64', 'c_u32', 'c_i8', 'c_dec', 'c_txt', 'c_note', 'c_date', 'c_dt', 'c_blob'];

// Values as the application binds them: PHP ints where they fit, strings for what does not
// (BIGINT UNSIGNED above PHP_INT_MAX, DECIMAL, dates), raw bytes for the BLOB.
const ROW_MAX_IN = ['18446744073709551615', PHP_INT_MAX, 4294967295, 127, '-12345.6789', UTF8_TEXT, SPECIAL_TEXT,
    '2024-02-29', '2024-02-29 23:59:58', "\x00\xff\x10\xfe"];
const ROW_MIN_IN = ['9223372036854775808', PHP_INT_MIN, 0, -128, '-0.0001', '', null, '2000-02-29',
    '1999-12-31 23:59:59', ''];

const TYPES_DDL = 'CREATE TABLE types (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  c_u64 BIGINT UNSIGNED NULL, c_i64 BIGINT NULL, c_u32 INT UNSIGNED NULL, c_i8 TINYINT NULL,
  c_dec DECIMAL(20,4) NULL, c_txt VARCHAR(255) NULL, c_note TEXT NULL, c_date DATE NULL,
  c_dt DATETIME NULL, c_blob BLOB NULL
) DEFAULT CHARSET=utf8mb4';
const ACCOUNT_DDL = 'CREATE TABLE account (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(255) NOT NULL,
  quota BIGINT NOT NULL DEFAULT 0,
  UNIQUE KEY email (email)
) DEFAULT CHARSET=utf8mb4';
const LITERAL_ROW_MAX_SQL = "INSERT INTO types (c_u64, c_i64, c_u32, c_i8, c_dec, c_txt, c_note, c_date, c_dt, c_blob)
  VALUES (18446744073709551615, 9223372036854775807, 4294967295, 127, -12345.6789, '" . UTF8_TEXT . "',
  'line1\\nline2\\ttab \\'single\\' \\\"double\\\" back\\\\slash', '2024-02-29', '2024-02-29 23:59:58', x'00FF10FE')";

/** Runs $body; the first failure becomes a FAIL line and exit status 1. */
function main_wrapper(callable $body): void
{
    try {
        $body();
    } catch (Failure $f) {
        echo 'FAIL ' . $f->getMessage() . "\n";
        exit(1);
    } catch (Throwable $t) {
        echo $t . "\n";
        echo 'FAIL unexpected ' . get_class($t) . ': ' . $t->getMessage() . "\n";
        exit(1);
    }
    echo "PASS\n";
}

"""Shared pieces of the Python client tests: connection settings, checks that fail loudly, and the
value set every client writes and reads back (shared/CLIENTS.md section 2.7).

Each check prints one `ok ...` line; the first mismatch raises `Failure`, whose message names what
was checked, what was expected and what came back. The programs turn it into a `FAIL ...` line and
exit status 1, which is what tests/clients/run.sh reports.
"""

import datetime
import decimal
import os
import sys


class Failure(Exception):
    """A check did not hold; the message says expected versus got."""


def settings():
    """The server to talk to, from the environment run.sh sets."""
    try:
        return {
            "host": os.environ.get("CAIRN_HOST", "127.0.0.1"),
            "port": int(os.environ.get("CAIRN_PORT", "3306")),
            "user": os.environ.get("CAIRN_USER", "root"),
            "password": os.environ.get("CAIRN_PASSWORD", ""),
        }
    except ValueError as exc:
        raise Failure(f"CAIRN_PORT is not a number: {exc}") from exc


def ok(what, detail=""):
    print(f"ok   {what}{': ' + detail if detail else ''}", flush=True)


def note(text):
    print(f"note {text}", flush=True)


def check(what, got, expected):
    """Equal value and equal type; bool is not accepted where int is expected, nor the reverse."""
    if type(got) is not type(expected) or got != expected:
        raise Failure(f"{what}: expected {expected!r} ({type(expected).__name__}), "
                      f"got {got!r} ({type(got).__name__})")
    ok(what, repr(got))


# Server features a check needs that the server under test does not have yet, from the
# comma-separated CAIRN_PENDING (run.sh --pending): `transactions` (COMMIT/ROLLBACK as a second
# connection sees them) and `unique` (UNIQUE keys enforced, error 1062). A check of a pending
# feature still runs where it can, but its mismatch is printed as `pending ...` instead of
# failing; removing the word from CAIRN_PENDING turns the checks back into real ones.
PENDING = {w.strip() for w in os.environ.get("CAIRN_PENDING", "").split(",") if w.strip()}


def pending(feature):
    """Whether checks of `feature` are marked pending for this run."""
    return feature in PENDING


def skip_pending(feature, what):
    """True (after saying so) when an action that needs `feature` must not run at all, because
    running it without the feature would change the data later checks rely on."""
    if feature in PENDING:
        print(f"pending {feature}: {what}: not run", flush=True)
        return True
    return False


def check_pending(feature, what, got, expected):
    """`check`, except that a mismatch only reports when `feature` is pending."""
    if feature not in PENDING:
        check(what, got, expected)
    elif type(got) is not type(expected) or got != expected:
        print(f"pending {feature}: {what}: expected {expected!r}, got {got!r}", flush=True)
    else:
        print(f"pending {feature}: {what}: already holds ({got!r})", flush=True)


def check_true(what, condition, detail):
    if not condition:
        raise Failure(f"{what}: {detail}")
    ok(what)


def expect_error(what, action, errno, sqlstate, error_of, exc_class=None):
    """Runs `action`, which must raise; `error_of(exc)` gives (errno, sqlstate or None)."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - every driver has its own hierarchy; we inspect it.
        got_errno, got_state = error_of(exc)
        if got_errno != errno:
            raise Failure(f"{what}: expected error {errno}, got {got_errno} ({exc!r})") from exc
        if sqlstate is not None and got_state is not None and got_state != sqlstate:
            raise Failure(f"{what}: expected SQLSTATE {sqlstate}, got {got_state} ({exc!r})") from exc
        if exc_class is not None and not isinstance(exc, exc_class):
            raise Failure(f"{what}: expected exception class {exc_class.__name__}, "
                          f"got {type(exc).__name__}") from exc
        state_text = got_state if got_state is not None else "(client exposes no SQLSTATE here)"
        ok(what, f"{got_errno}/{state_text} {type(exc).__name__}")
        return exc
    raise Failure(f"{what}: expected error {errno}/{sqlstate}, but it succeeded")


# ---- The value set -------------------------------------------------------------------------------

TYPES_DDL = """
CREATE TABLE types (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  c_u64 BIGINT UNSIGNED NULL,
  c_i64 BIGINT NULL,
  c_u32 INT UNSIGNED NULL,
  c_i8 TINYINT NULL,
  c_dec DECIMAL(20,4) NULL,
  c_txt VARCHAR(255) NULL,
  c_note TEXT NULL,
  c_date DATE NULL,
  c_dt DATETIME NULL,
  c_blob BLOB NULL
) DEFAULT CHARSET=utf8mb4
"""

COLUMNS = ["c_u64", "c_i64", "c_u32", "c_i8", "c_dec", "c_txt", "c_note", "c_date", "c_dt", "c_blob"]

# Text with every character that client-side escaping must get right.
SPECIAL_TEXT = "line1\nline2\ttab 'single' \"double\" back\\slash"
# Four-byte UTF-8 (emoji, musical symbol) next to two-byte Latin letters.
UTF8_TEXT = "\U0001F600 caf\u00e9 \U0001D11E \u00fcn\u00ef"

# The extremes: maximum integers, a negative decimal, 4-byte UTF-8, special text, a leap day.
ROW_MAX = {
    "c_u64": 18446744073709551615,
    "c_i64": 9223372036854775807,
    "c_u32": 4294967295,
    "c_i8": 127,
    "c_dec": decimal.Decimal("-12345.6789"),
    "c_txt": UTF8_TEXT,
    "c_note": SPECIAL_TEXT,
    "c_date": datetime.date(2024, 2, 29),
    "c_dt": datetime.datetime(2024, 2, 29, 23, 59, 58),
    "c_blob": b"\x00\xff\x10\xfe",
}

# The other ends: 2^63 unsigned, -2^63, zero, -128, a tiny negative decimal, an empty string next
# to a NULL, an empty blob, another leap day and the last second of a century.
ROW_MIN = {
    "c_u64": 9223372036854775808,
    "c_i64": -9223372036854775808,
    "c_u32": 0,
    "c_i8": -128,
    "c_dec": decimal.Decimal("-0.0001"),
    "c_txt": "",
    "c_note": None,
    "c_date": datetime.date(2000, 2, 29),
    "c_dt": datetime.datetime(1999, 12, 31, 23, 59, 59),
    "c_blob": b"",
}

# ROW_MAX written as SQL literals, so that the server's own literal parsing is checked too (the
# escapes are MySQL's: \n, \t, \' and \\ inside a single-quoted string).
ROW_MAX_LITERAL_SQL = (
    "INSERT INTO types (" + ", ".join(COLUMNS) + ") VALUES ("
    "18446744073709551615, 9223372036854775807, 4294967295, 127, -12345.6789, "
    "'\U0001F600 caf\u00e9 \U0001D11E \u00fcn\u00ef', "
    r"'line1\nline2\ttab \'single\' \"double\" back\\slash', "
    "'2024-02-29', '2024-02-29 23:59:58', x'00FF10FE')"
)

INSERT_TYPES_SQL = ("INSERT INTO types (" + ", ".join(COLUMNS) + ") VALUES ("
                    + ", ".join(["%s"] * len(COLUMNS)) + ")")
SELECT_TYPES_SQL = "SELECT id, " + ", ".join(COLUMNS) + " FROM types"

ACCOUNT_DDL = """
CREATE TABLE account (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(255) NOT NULL,
  quota BIGINT NOT NULL DEFAULT 0,
  active TINYINT NOT NULL DEFAULT 1,
  UNIQUE KEY email (email)
) DEFAULT CHARSET=utf8mb4
"""

# MySQL column type codes (shared/CLIENTS.md section 2.6).
TYPE_CODES = {"id": 3, "c_u64": 8, "c_i64": 8, "c_u32": 3, "c_i8": 1, "c_dec": 246, "c_txt": 253,
              "c_note": 252, "c_date": 10, "c_dt": 12, "c_blob": 252}
UNSIGNED_FLAG = 32
BINARY_FLAG = 128


def check_row(what, row, expected, overrides=None):
    """Compares a fetched row (id first, then COLUMNS) with an expected dict, column by column."""
    overrides = overrides or {}
    if len(row) != len(COLUMNS) + 1:
        raise Failure(f"{what}: expected {len(COLUMNS) + 1} columns, got {len(row)}: {row!r}")
    for index, column in enumerate(COLUMNS, start=1):
        want = overrides.get(column, expected[column])
        got = row[index]
        if isinstance(got, bytearray):
            got = bytes(got)
        check(f"{what} {column}", got, want)


def main_wrapper(body):
    """Runs `body`, turning the first failure into a FAIL line and exit status 1."""
    try:
        body()
    except Failure as failure:
        print(f"FAIL {failure}", flush=True)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - anything unexpected is a failure with its traceback.
        import traceback
        traceback.print_exc()
        print(f"FAIL unexpected {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)
    print("PASS", flush=True)

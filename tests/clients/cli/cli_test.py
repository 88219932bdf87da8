"""The `mysql` command-line client (Debian's mariadb-client) used the three ways people use it.

1. Batch: `mariadb -e '...'`, tab-separated output with the CLI's escapes, exit status 1 and
   `ERROR n (state) at line 1: ...` on stderr for each kind of error, and a login with a right and
   a wrong password.
2. A piped script (`mariadb db < script.sql`) run with -vvv, whose "Query OK, n rows affected",
   "Records:" and "Rows matched: N  Changed: M  Warnings: W" lines show the server's affected
   rows and OK-packet info text; and a second script with --force that hits three errors and
   reports each with its line number.
3. An interactive session on a pseudo-terminal: the start-up auto-rehash (SHOW TABLES, then one
   COM_FIELD_LIST per table) proven by tab-completing a table name and a column name that the
   query then needs, `\\G` vertical output, an error on screen, and a transaction whose COMMIT and
   ROLLBACK a batch client (a second connection) sees.

The CLI sends no start-up statements of its own in batch mode and splits scripts on `;` itself
(shared/CLIENTS.md section 1). Uses only the Python standard library.
"""

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from common import (Failure, check, check_pending, check_true, main_wrapper, note, ok, pending,  # noqa: E402
                    settings)

DB = "cairn_cli"
USER = "cairn_cli"
USER_PASSWORD = "Cairn-pw-7"
UTF8_TEXT = "\U0001F600 caf\u00e9 \U0001D11E \u00fcn\u00ef"

TYPES_DDL = """CREATE TABLE types (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  c_u64 BIGINT UNSIGNED NULL, c_i64 BIGINT NULL, c_u32 INT UNSIGNED NULL, c_i8 TINYINT NULL,
  c_dec DECIMAL(20,4) NULL, c_txt VARCHAR(255) NULL, c_note TEXT NULL, c_date DATE NULL,
  c_dt DATETIME NULL, c_blob BLOB NULL
) DEFAULT CHARSET=utf8mb4;"""

ACCOUNT_DDL = """CREATE TABLE account (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(255) NOT NULL,
  quota BIGINT NOT NULL DEFAULT 0,
  UNIQUE KEY email (email)
) DEFAULT CHARSET=utf8mb4;"""

INSERT_TYPES = (
    "INSERT INTO types (c_u64, c_i64, c_u32, c_i8, c_dec, c_txt, c_note, c_date, c_dt, c_blob) VALUES\n"
    "  (18446744073709551615, 9223372036854775807, 4294967295, 127, -12345.6789, '" + UTF8_TEXT + "',\n"
    r"   'line1\nline2\ttab \'single\' \"double\" back\\slash', '2024-02-29', '2024-02-29 23:59:58', x'00FF10FE'),"
    "\n  (9223372036854775808, -9223372036854775808, 0, -128, -0.0001, '', NULL, '2000-02-29',"
    " '1999-12-31 23:59:59', x'');"
)

# What `mariadb --batch --skip-column-names` prints for the two rows: tab-separated, NULL as
# "NULL", and newline, tab and backslash escaped as \n, \t and \\.
EXPECTED_BATCH_ROWS = [
    ["18446744073709551615", "9223372036854775807", "4294967295", "127", "-12345.6789", UTF8_TEXT,
     r"line1\nline2\ttab 'single' " + '"double"' + r" back\\slash", "2024-02-29", "2024-02-29 23:59:58",
     "00FF10FE", "0"],
    ["9223372036854775808", "-9223372036854775808", "0", "-128", "-0.0001", "", "NULL", "2000-02-29",
     "1999-12-31 23:59:59", "", "1"],
]


class Cli:
    """Runs the mariadb client as a user would, with a private HOME so no ~/.my.cnf interferes."""

    def __init__(self, home):
        self.cfg = settings()
        self.binary = shutil.which("mariadb") or shutil.which("mysql")
        if not self.binary:
            raise Failure("neither mariadb nor mysql is on PATH (Debian package mariadb-client)")
        self.env = dict(os.environ, HOME=home, MYSQL_HISTFILE=os.path.join(home, "history"), TERM="xterm")

    def args(self, user=None, password=None, database=None, extra=()):
        password = self.cfg["password"] if password is None else password
        argv = [self.binary, f"--host={self.cfg['host']}", f"--port={self.cfg['port']}", "--protocol=TCP",
                f"--user={user or self.cfg['user']}", "--default-character-set=utf8mb4"]
        if password:
            argv.append(f"--password={password}")
        argv.extend(extra)
        if database:
            argv.append(database)
        return argv

    def run(self, extra, stdin_text=None, **kwargs):
        result = subprocess.run(self.args(extra=extra, **kwargs), input=stdin_text, capture_output=True,
                                text=True, env=self.env, timeout=60)
        return result.returncode, result.stdout, result.stderr

    def batch(self, sql, database=DB, **kwargs):
        """`mariadb -B -N -e sql`: must succeed; returns the rows as lists of fields."""
        status, out, err = self.run(["--batch", "--skip-column-names", f"--execute={sql}"], database=database, **kwargs)
        if status != 0:
            raise Failure(f"mariadb -e {sql!r}: exit status {status}, stderr {err.strip()!r}")
        return [line.split("\t") for line in out.splitlines()]


def expect_cli_error(what, status, err, errno, sqlstate, want_status=1):
    pattern = rf"^ERROR {errno} \({sqlstate}\)"
    line = next((l for l in err.splitlines() if l.startswith("ERROR")), "")
    if not re.match(pattern, line):
        raise Failure(f"{what}: expected stderr 'ERROR {errno} ({sqlstate}) ...', got {err.strip()!r}")
    if want_status is not None and status != want_status:
        raise Failure(f"{what}: expected exit status {want_status}, got {status}")
    ok(what, line)


# ---- 1. Batch ----------------------------------------------------------------------------------

def batch_part(cli):
    version = cli.batch("SELECT VERSION()", database=None)[0][0]
    note(f"server version {version}")
    cli.batch(f"DROP DATABASE IF EXISTS {DB}; CREATE DATABASE {DB} DEFAULT CHARACTER SET utf8mb4", database=None)
    check("database created, SHOW DATABASES LIKE", cli.batch(f"SHOW DATABASES LIKE '{DB}'", database=None), [[DB]])

    status, _, err = cli.run(["--batch", "--execute=SELECT 1"], database="cairn_no_such_database")
    expect_cli_error("batch: unknown database in the handshake", status, err, 1049, "42000")
    status, _, err = cli.run(["--batch", "--execute=USE cairn_no_such_database"])
    expect_cli_error("batch: USE of an unknown database", status, err, 1049, "42000")

    status, out, err = cli.run(["--batch", f"--execute={ACCOUNT_DDL} {TYPES_DDL}"], database=DB)
    check_true("batch: CREATE TABLE x2", status == 0, f"exit {status}, stderr {err.strip()!r}")
    check("SHOW TABLES", sorted(r[0] for r in cli.batch("SHOW TABLES")), ["account", "types"])

    status, _, err = cli.run(["--batch", "--execute=SELECT * FROM no_such_table"], database=DB)
    expect_cli_error("batch: unknown table", status, err, 1146, "42S02")
    check_true("batch: unknown-table message names the table", "no_such_table" in err, err.strip())
    status, _, err = cli.run(["--batch", "--execute=SELEC 1"], database=DB)
    expect_cli_error("batch: syntax error", status, err, 1064, "42000")

    # An account with a password, for the right and the wrong password.
    try:
        cli.batch(f"DROP USER IF EXISTS '{USER}'@'%'; CREATE USER '{USER}'@'%' IDENTIFIED BY '{USER_PASSWORD}'; "
                  f"GRANT ALL PRIVILEGES ON {DB}.* TO '{USER}'@'%'", database=None)
        created = True
    except Failure as exc:
        note(f"server rejected CREATE USER ({exc}); checking a wrong password for {cli.cfg['user']} instead")
        created = False
    if created:
        check("login with the right password: CURRENT_USER()",
              cli.batch("SELECT CURRENT_USER()", user=USER, password=USER_PASSWORD), [[f"{USER}@%"]])
        status, _, err = cli.run(["--batch", "--execute=SELECT 1"], user=USER, password="wrong-pw", database=DB)
    else:
        status, _, err = cli.run(["--batch", "--execute=SELECT 1"], password=cli.cfg["password"] + "-wrong")
    expect_cli_error("batch: wrong password", status, err, 1045, "28000")
    return created


# ---- 2. Piped scripts ----------------------------------------------------------------------------

def script_part(cli):
    script = "\n".join([
        INSERT_TYPES,
        "SELECT LAST_INSERT_ID() AS first_id;",
        "INSERT INTO account (email, quota) VALUES ('alice@example.org', 100), ('bob@example.org', 200),"
        " ('carol@example.org', 300);",
        "UPDATE account SET quota = 300 WHERE quota >= 100;",
        "UPDATE account SET quota = 300 WHERE email = 'alice@example.org';",
        "DELETE FROM account WHERE email = 'nobody@example.org';",
        "START TRANSACTION;",
        "INSERT INTO account (email, quota) VALUES ('frank@example.org', 6);",
        "ROLLBACK;",
        "SELECT COUNT(*) AS accounts FROM account;",
    ]) + "\n"
    status, out, err = cli.run(["-vvv"], stdin_text=script, database=DB)
    if status != 0:
        raise Failure(f"piped script: exit status {status}, stderr {err.strip()!r}")
    # -vvv prints each statement between dashes, then its result.
    blocks = {}
    for match in re.finditer(r"--------------\n(.*?)\n--------------\n\n(.*?)(?=\n--------------|\Z)", out, re.S):
        blocks[match.group(1).strip()] = match.group(2)

    def result_of(prefix):
        for statement, result in blocks.items():
            if statement.startswith(prefix):
                return result
        raise Failure(f"piped script: no -vvv output block for {prefix!r}; output was {out!r}")

    def expect_in(what, prefix, pattern):
        text = result_of(prefix)
        if not re.search(pattern, text, re.M):
            raise Failure(f"{what}: expected /{pattern}/ in {text!r}")
        ok(what, re.search(pattern, text, re.M).group(0))

    expect_in("script: multi-row INSERT affected rows", "INSERT INTO types", r"^Query OK, 2 rows affected")
    expect_in("script: multi-row INSERT info text", "INSERT INTO types", r"^Records: 2  Duplicates: 0  Warnings: 0$")
    expect_in("script: LAST_INSERT_ID() is the first id of the multi-row INSERT", "SELECT LAST_INSERT_ID()",
              r"^\| +1 \|$")
    expect_in("script: 3-row INSERT", "INSERT INTO account", r"^Query OK, 3 rows affected")
    expect_in("script: UPDATE 3 matched 2 changed", "UPDATE account SET quota = 300", r"^Query OK, 2 rows affected")
    expect_in("script: UPDATE info text", "UPDATE account SET quota = 300", r"^Rows matched: 3  Changed: 2  Warnings: 0$")
    expect_in("script: same-value UPDATE", "UPDATE account SET quota = 300 WHERE email", r"^Query OK, 0 rows affected")
    expect_in("script: same-value UPDATE info text", "UPDATE account SET quota = 300 WHERE email",
              r"^Rows matched: 1  Changed: 0  Warnings: 0$")
    expect_in("script: DELETE of nothing", "DELETE FROM account", r"^Query OK, 0 rows affected")
    if pending("transactions"):
        got = re.search(r"^\| +(\d+) \|$", result_of("SELECT COUNT(*) AS accounts"), re.M)
        check_pending("transactions", "script: ROLLBACK undid the insert", got.group(1) if got else None, "3")
    else:
        expect_in("script: ROLLBACK undid the insert", "SELECT COUNT(*) AS accounts", r"^\| +3 \|$")

    rows = cli.batch("SELECT c_u64, c_i64, c_u32, c_i8, c_dec, c_txt, c_note, c_date, c_dt, HEX(c_blob), "
                     "c_note IS NULL FROM types ORDER BY id")
    check("batch: row count of types", len(rows), 2)
    check("batch: max row, every column", rows[0], EXPECTED_BATCH_ROWS[0])
    check("batch: min row, every column", rows[1], EXPECTED_BATCH_ROWS[1])
    check("batch: LENGTH of 4-byte UTF-8 text and of the blob",
          cli.batch("SELECT CHAR_LENGTH(c_txt), LENGTH(c_txt), LENGTH(c_blob) FROM types WHERE id = 1"),
          [["12", "21", "4"]])
    status, out, _ = cli.run(["--batch", "--raw", "--skip-column-names",
                              "--execute=SELECT c_note FROM types WHERE id = 1"], database=DB)
    check("batch --raw: special text unescaped", out, "line1\nline2\ttab 'single' \"double\" back\\slash\n")

    # --force goes on after errors; each is reported with its line number.
    duplicate = ["INSERT INTO account (email) VALUES ('alice@example.org');"]
    if pending("unique"):
        # Without enforced UNIQUE keys the duplicate would be inserted; leave it out.
        print("pending unique: script --force duplicate key: not run", flush=True)
        duplicate = []
    forced = "\n".join(duplicate + [
        "SELECT * FROM no_such_table;",
        "SELEC 1;",
        "INSERT INTO account (email, quota) VALUES ('dave@example.org', 4);",
        "SELECT LAST_INSERT_ID() = (SELECT id FROM account WHERE email = 'dave@example.org') AS same, "
        "LAST_INSERT_ID() > 3 AS after;",
    ]) + "\n"
    status, out, err = cli.run(["--batch", "--force"], stdin_text=forced, database=DB)
    errors = [l for l in err.splitlines() if l.startswith("ERROR")]
    expected_errors = ["ERROR 1062 (23000)", "ERROR 1146 (42S02)", "ERROR 1064 (42000)"][1 - len(duplicate):]
    check("script --force: error lines", [re.sub(r": .*", "", l) for l in errors],
          [f"{e} at line {n}" for n, e in enumerate(expected_errors, start=1)])
    check("script --force: statements after errors ran, insert id", out.splitlines(), ["same\tafter", "1\t1"])
    note(f"script --force exit status {status} (0 in mariadb-client 10.11; it varies between versions)")


# ---- 3. Interactive session on a pseudo-terminal ----------------------------------------------------

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\([AB0-2]|\x07|\r")


class Terminal:
    """The CLI on a pty: what a person sees, read with a timeout so nothing can hang."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.seen = b""

    def expect(self, pattern, timeout=15.0):
        """Reads until `pattern` (a bytes regex) matches the unread screen text; returns the text."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            clean = ANSI.sub(b"", self.seen)
            match = regex.search(clean)
            if match:
                self.seen = b""
                return clean[:match.end()].decode("utf-8", "replace")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure(f"interactive: waited for /{pattern.decode()}/; screen shows "
                              f"{clean.decode('utf-8', 'replace')[-600:]!r}")
            ready, _, _ = select.select([self.fd], [], [], min(remaining, 0.2))
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise Failure(f"interactive: the client exited while waiting for /{pattern.decode()}/; "
                                  f"screen shows {clean.decode('utf-8', 'replace')[-600:]!r}")
                self.seen += chunk

    def type(self, text):
        os.write(self.fd, text.encode("utf-8"))

    def close(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        os.close(self.fd)


def interactive_part(cli):
    prompt = rb"\[" + DB.encode() + rb"\]> $"
    # No -A: the client reads table and column names at start-up for completion (auto-rehash).
    term = Terminal(cli.args(database=DB), cli.env)
    try:
        screen = term.expect(prompt)
        check_true("interactive: auto-rehash announced", "Reading table information for completion" in screen, screen)
        check_true("interactive: banner shows the server version", re.search(r"Server version: \S+", screen) is not None, screen)
        ok("interactive: banner", re.search(r"Server version: .*", screen).group(0))

        # Tab completion of a column name only works if COM_FIELD_LIST answered at start-up;
        # "quo" alone would be an unknown column (1054), so the result proves the completion.
        term.type("SELECT quo\t")
        term.expect(rb"quota")
        term.type(" FROM acco\t")
        term.expect(rb"account")
        term.type(" WHERE email = 'alice@example.org';\n")
        screen = term.expect(rb"row in set[\s\S]*" + prompt)
        check_true("interactive: completed column and table names ran", re.search(r"\|\s+300 \|", screen) is not None, screen)
        ok("interactive: tab completion from COM_FIELD_LIST (SELECT quo<TAB> FROM acco<TAB>)")

        term.type("SELECT * FROM types WHERE id = 1\\G\n")
        screen = term.expect(rb"row in set[\s\S]*" + prompt)
        check_true("interactive: \\G header", "*************************** 1. row ***************************" in screen, screen)
        for line in (r"^\s+c_u64: 18446744073709551615$", r"^\s+c_i64: 9223372036854775807$",
                     r"^\s+c_dec: -12345\.6789$", r"^\s+c_txt: " + re.escape(UTF8_TEXT) + "$",
                     r"^\s+c_dt: 2024-02-29 23:59:58$",
                     r"^\s*c_note: line1\nline2\ttab 'single' \"double\" back\\slash$"):
            check_true(f"interactive: \\G line /{line}/", re.search(line, screen, re.M) is not None, screen)

        term.type("SELECT * FROM no_such_table;\n")
        screen = term.expect(prompt)
        check_true("interactive: error on screen", re.search(r"^ERROR 1146 \(42S02\): .*no_such_table", screen, re.M)
                   is not None, screen)
        ok("interactive: ERROR 1146 (42S02) shown")

        # A transaction, watched by a batch client on its own connection.
        def others_count():
            return cli.batch("SELECT COUNT(*) FROM account WHERE email = 'erin@example.org'")[0][0]

        term.type("START TRANSACTION;\n")
        term.expect(rb"Query OK[\s\S]*" + prompt)
        term.type("INSERT INTO account (email, quota) VALUES ('erin@example.org', 5);\n")
        screen = term.expect(rb"Query OK, 1 row affected[\s\S]*" + prompt)
        check_pending("transactions", "interactive: uncommitted insert, as a second connection sees it", others_count(), "0")
        term.type("COMMIT;\n")
        term.expect(rb"Query OK[\s\S]*" + prompt)
        check("interactive: committed insert, as a second connection sees it", others_count(), "1")
        term.type("START TRANSACTION;\n")
        term.expect(rb"Query OK[\s\S]*" + prompt)
        term.type("DELETE FROM account WHERE email = 'erin@example.org';\n")
        term.expect(rb"Query OK, 1 row affected[\s\S]*" + prompt)
        term.type("ROLLBACK;\n")
        term.expect(rb"Query OK[\s\S]*" + prompt)
        check_pending("transactions", "interactive: rolled-back delete, as a second connection sees it", others_count(), "1")

        term.type("\\q\n")
        term.expect(rb"Bye")
        ok("interactive: \\q said Bye")
    finally:
        term.close()


def main():
    home = tempfile.mkdtemp(prefix="cairn-cli-test.")
    try:
        cli = Cli(home)
        created_user = batch_part(cli)
        script_part(cli)
        interactive_part(cli)
        if created_user:
            cli.batch(f"DROP USER '{USER}'@'%'", database=None)
        cli.batch(f"DROP DATABASE {DB}", database=None)
        ok(f"dropped database {DB}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main_wrapper(main)

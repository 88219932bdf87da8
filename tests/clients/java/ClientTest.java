// A realistic JDBC session with Debian's MariaDB Connector/J (libmariadb-java), checked value by
// value, run twice: with useServerPrepStmts=false (the default since 2.0.1: parameters are
// substituted on the client) and with useServerPrepStmts=true (COM_STMT_PREPARE and the binary
// protocol). Connector/J sets CLIENT_FOUND_ROWS and DEPRECATE_EOF and sends its own start-up
// statements (shared/CLIENTS.md section 1).
//
// In the database cairn_jdbc (dropped at start and end) each run checks: the section 2.7 value set
// bound with typed setters and read back with getObject() as the JDBC types Connector/J maps them
// to (BigInteger for BIGINT UNSIGNED, Long, BigDecimal, Date, Timestamp, byte[]);
// ResultSetMetaData type names, signedness and nullability; update counts (matched rows) and
// getGeneratedKeys; a batch; commit and rollback as a second connection sees them;
// DatabaseMetaData getTables/getColumns/getPrimaryKeys (information_schema queries); and errors
// with getErrorCode, getSQLState and the SQLException subclass picked from the SQLSTATE class.
//
// Compile: javac -cp /usr/share/java/mariadb-java-client.jar -d OUT ClientTest.java
// Run:     java -cp OUT:/usr/share/java/mariadb-java-client.jar ClientTest
// The server comes from CAIRN_HOST, CAIRN_PORT, CAIRN_USER and CAIRN_PASSWORD.

import java.math.BigDecimal;
import java.math.BigInteger;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.SQLIntegrityConstraintViolationException;
import java.sql.SQLInvalidAuthorizationSpecException;
import java.sql.SQLSyntaxErrorException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

public final class ClientTest {
    private static final String DB = "cairn_jdbc";
    private static final String HOST = envOr("CAIRN_HOST", "127.0.0.1");
    private static final String PORT = envOr("CAIRN_PORT", "3306");
    private static final String USER = envOr("CAIRN_USER", "root");
    private static final String PASSWORD = envOr("CAIRN_PASSWORD", "");

    private static final String UTF8_TEXT = "\uD83D\uDE00 caf\u00e9 \uD834\uDD1E \u00fcn\u00ef";
    private static final String SPECIAL_TEXT = "line1\nline2\ttab 'single' \"double\" back\\slash";
    private static final String[] COLUMNS = {
        "c_u64", "c_i64", "c_u32", "c_i8", "c_dec", "c_txt", "c_note", "c_date", "c_dt", "c_blob"};
    // Values as getObject() returns them with Connector/J 2.7.
    private static final Object[] ROW_MAX = {
        new BigInteger("18446744073709551615"), Long.MAX_VALUE, 4294967295L, 127,
        new BigDecimal("-12345.6789"), UTF8_TEXT, SPECIAL_TEXT, Date.valueOf("2024-02-29"),
        Timestamp.valueOf("2024-02-29 23:59:58"), new byte[] {0x00, (byte) 0xff, 0x10, (byte) 0xfe}};
    private static final Object[] ROW_MIN = {
        new BigInteger("9223372036854775808"), Long.MIN_VALUE, 0L, -128,
        new BigDecimal("-0.0001"), "", null, Date.valueOf("2000-02-29"),
        Timestamp.valueOf("1999-12-31 23:59:59"), new byte[0]};

    /** A check did not hold; the message says expected versus got. */
    static final class Failure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Failure(String message) {
            super(message);
        }
    }

    private interface SqlAction {
        void run() throws SQLException;
    }

    private static String envOr(String name, String fallback) {
        String value = System.getenv(name);
        return value == null ? fallback : value;
    }

    private static String show(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof byte[]) {
            StringBuilder hex = new StringBuilder("0x");
            for (byte b : (byte[]) value) {
                hex.append(String.format("%02x", b & 0xff));
            }
            return hex + " (byte[])";
        }
        return value + " (" + value.getClass().getSimpleName() + ")";
    }

    private static void ok(String what, Object got) {
        System.out.println("ok   " + what + ": " + show(got));
    }

    private static void check(String what, Object got, Object want) {
        boolean same;
        if (want instanceof byte[] && got instanceof byte[]) {
            same = Arrays.equals((byte[]) want, (byte[]) got);
        } else if (want instanceof BigDecimal && got instanceof BigDecimal) {
            // Scale is part of a DECIMAL(20,4) value: -0.0001 must come back as -0.0001, not -1E-4
            // with another scale, so compare by value and then by text at the column's scale.
            same = ((BigDecimal) want).compareTo((BigDecimal) got) == 0
                && ((BigDecimal) got).scale() == 4;
        } else {
            same = Objects.equals(want, got) && (want == null || want.getClass() == got.getClass());
        }
        if (!same) {
            throw new Failure(what + ": expected " + show(want) + ", got " + show(got));
        }
        ok(what, got);
    }

    // Server features a check needs that the server under test does not have yet, from the
    // comma-separated CAIRN_PENDING (run.sh --pending): "transactions" (COMMIT/ROLLBACK as a second
    // connection sees them) and "unique" (UNIQUE keys enforced, error 1062). A pending check runs,
    // but its mismatch is printed as "pending ..." instead of failing; an action that would change
    // the data later checks rely on is not run at all.
    private static boolean pending(String feature) {
        String words = System.getenv("CAIRN_PENDING");
        if (words == null) {
            return false;
        }
        for (String word : words.split(",")) {
            if (word.trim().equals(feature)) {
                return true;
            }
        }
        return false;
    }

    private static void checkPending(String feature, String what, Object got, Object want) {
        if (!pending(feature)) {
            check(what, got, want);
            return;
        }
        boolean same = Objects.equals(want, got);
        System.out.println("pending " + feature + ": " + what + ": "
            + (same ? "already holds (" + show(got) + ")" : "expected " + show(want) + ", got " + show(got)));
    }

    private static boolean skipPending(String feature, String what) {
        if (!pending(feature)) {
            return false;
        }
        System.out.println("pending " + feature + ": " + what + ": not run");
        return true;
    }

    private static SQLException expectError(String what, SqlAction action, int code, String state,
                                            Class<? extends SQLException> kind) {
        try {
            action.run();
        } catch (SQLException e) {
            if (e.getErrorCode() != code || !state.equals(e.getSQLState())) {
                throw new Failure(what + ": expected " + code + "/" + state + ", got " + e.getErrorCode() + "/"
                    + e.getSQLState() + " (" + e + ")");
            }
            if (kind != null && !kind.isInstance(e)) {
                throw new Failure(what + ": expected " + kind.getSimpleName() + ", got " + e.getClass().getName());
            }
            System.out.println("ok   " + what + ": " + e.getErrorCode() + "/" + e.getSQLState() + " "
                + e.getClass().getSimpleName());
            return e;
        }
        throw new Failure(what + ": expected error " + code + "/" + state + ", but it succeeded");
    }

    private static Connection connect(String database, String user, String password, boolean serverPrepare)
            throws SQLException {
        String url = "jdbc:mariadb://" + HOST + ":" + PORT + "/" + (database == null ? "" : database)
            + "?useServerPrepStmts=" + serverPrepare;
        return DriverManager.getConnection(url, user, password);
    }

    private static long scalarLong(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) {
            if (!r.next()) {
                throw new Failure("no row from " + sql);
            }
            return r.getLong(1);
        }
    }

    private static void bindRow(PreparedStatement p, Object[] row) throws SQLException {
        p.setObject(1, row[0]);
        p.setLong(2, (Long) row[1]);
        p.setLong(3, (Long) row[2]);
        p.setInt(4, (Integer) row[3]);
        p.setBigDecimal(5, (BigDecimal) row[4]);
        p.setString(6, (String) row[5]);
        if (row[6] == null) {
            p.setNull(7, Types.LONGVARCHAR);
        } else {
            p.setString(7, (String) row[6]);
        }
        p.setDate(8, (Date) row[7]);
        p.setTimestamp(9, (Timestamp) row[8]);
        p.setBytes(10, (byte[]) row[9]);
    }

    private static void checkRow(String what, ResultSet r, Object[] expected) throws SQLException {
        for (int i = 0; i < COLUMNS.length; i++) {
            check(what + " " + COLUMNS[i], r.getObject(i + 2), expected[i]);
        }
    }

    private static void session(boolean serverPrepare) throws SQLException {
        String mode = "[useServerPrepStmts=" + serverPrepare + "]";
        try (Connection admin = connect(null, USER, PASSWORD, serverPrepare)) {
            DatabaseMetaData adminMeta = admin.getMetaData();
            System.out.println("note " + adminMeta.getDriverName() + " " + adminMeta.getDriverVersion()
                + ", server " + adminMeta.getDatabaseProductVersion() + " " + mode);
            try (Statement s = admin.createStatement()) {
                s.execute("DROP DATABASE IF EXISTS " + DB);
                s.execute("CREATE DATABASE " + DB + " DEFAULT CHARACTER SET utf8mb4");
            }
            ok(mode + " created database", DB);

            try (Connection conn = connect(DB, USER, PASSWORD, serverPrepare)) {
                run(mode, admin, conn, serverPrepare);
            }
            try (Statement s = admin.createStatement()) {
                s.execute("DROP DATABASE " + DB);
            }
            ok(mode + " dropped database", DB);
        }
    }

    private static void run(String mode, Connection admin, Connection conn, boolean serverPrepare)
            throws SQLException {
        try (Statement s = conn.createStatement()) {
            s.execute("CREATE TABLE types (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                + " c_u64 BIGINT UNSIGNED NULL, c_i64 BIGINT NULL, c_u32 INT UNSIGNED NULL, c_i8 TINYINT NULL,"
                + " c_dec DECIMAL(20,4) NULL, c_txt VARCHAR(255) NULL, c_note TEXT NULL, c_date DATE NULL,"
                + " c_dt DATETIME NULL, c_blob BLOB NULL) DEFAULT CHARSET=utf8mb4");
            s.execute("CREATE TABLE account (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                + " email VARCHAR(255) NOT NULL, quota BIGINT NOT NULL DEFAULT 0, UNIQUE KEY email (email))"
                + " DEFAULT CHARSET=utf8mb4");
        }

        // ---- Values through typed setters, and getGeneratedKeys --------------------------------
        String insert = "INSERT INTO types (" + String.join(", ", COLUMNS) + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        try (PreparedStatement p = conn.prepareStatement(insert, Statement.RETURN_GENERATED_KEYS)) {
            long expectedId = 1;
            for (Object[] row : new Object[][] {ROW_MAX, ROW_MIN}) {
                bindRow(p, row);
                check(mode + " INSERT update count", p.executeUpdate(), 1);
                try (ResultSet keys = p.getGeneratedKeys()) {
                    check(mode + " getGeneratedKeys has a row", keys.next(), true);
                    check(mode + " generated key", keys.getLong(1), expectedId++);
                }
            }
        }
        try (Statement s = conn.createStatement()) {
            s.executeUpdate("INSERT INTO types (" + String.join(", ", COLUMNS) + ") VALUES (18446744073709551615,"
                + " 9223372036854775807, 4294967295, 127, -12345.6789, '" + UTF8_TEXT + "',"
                + " 'line1\\nline2\\ttab \\'single\\' \\\"double\\\" back\\\\slash', '2024-02-29',"
                + " '2024-02-29 23:59:58', x'00FF10FE')");
        }

        try (PreparedStatement p = conn.prepareStatement(
                "SELECT id, " + String.join(", ", COLUMNS) + " FROM types WHERE id >= ? ORDER BY id")) {
            p.setInt(1, 1);
            try (ResultSet r = p.executeQuery()) {
                ResultSetMetaData md = r.getMetaData();
                String[] typeNames = {"INTEGER UNSIGNED", "BIGINT UNSIGNED", "BIGINT", "INTEGER UNSIGNED", "TINYINT",
                    "DECIMAL", "VARCHAR", "TEXT", "DATE", "DATETIME", "BLOB"};
                List<String> got = new ArrayList<>();
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    got.add(md.getColumnTypeName(i));
                }
                check(mode + " ResultSetMetaData type names", String.join(",", got), String.join(",", typeNames));
                check(mode + " isSigned(c_u64)", md.isSigned(2), false);
                check(mode + " isSigned(c_i64)", md.isSigned(3), true);
                check(mode + " isNullable(id)", md.isNullable(1), ResultSetMetaData.columnNoNulls);
                check(mode + " isNullable(c_txt)", md.isNullable(7), ResultSetMetaData.columnNullable);
                check(mode + " column type of c_dec", md.getColumnType(6), Types.DECIMAL);
                Object[][] expected = {ROW_MAX, ROW_MIN, ROW_MAX};
                for (int row = 0; row < 3; row++) {
                    check(mode + " row " + (row + 1) + " present", r.next(), true);
                    check(mode + " row " + (row + 1) + " id", r.getObject(1), (long) (row + 1));
                    checkRow(mode + " row " + (row + 1), r, expected[row]);
                }
                check(mode + " no more rows", r.next(), false);
            }
        }
        try (PreparedStatement p = conn.prepareStatement(
                "SELECT COUNT(*) FROM types WHERE c_u64 = ? AND c_txt = ? AND c_dec = ?")) {
            p.setObject(1, new BigInteger("18446744073709551615"));
            p.setString(2, UTF8_TEXT);
            p.setBigDecimal(3, new BigDecimal("-12345.6789"));
            try (ResultSet r = p.executeQuery()) {
                r.next();
                check(mode + " WHERE with BIGINT UNSIGNED max, 4-byte UTF-8 and negative DECIMAL", r.getLong(1), 2L);
            }
        }

        // ---- Update counts (FOUND_ROWS: matched rows) and a batch --------------------------------
        try (PreparedStatement p = conn.prepareStatement("INSERT INTO account (email, quota) VALUES (?, ?)")) {
            String[] emails = {"alice@example.org", "bob@example.org", "carol@example.org"};
            for (int i = 0; i < emails.length; i++) {
                p.setString(1, emails[i]);
                p.setLong(2, 100L * (i + 1));
                p.addBatch();
            }
            int[] counts = p.executeBatch();
            check(mode + " batch of 3 INSERTs: update counts", Arrays.toString(counts), "[1, 1, 1]");
        }
        try (PreparedStatement p = conn.prepareStatement("UPDATE account SET quota = ? WHERE quota >= ?")) {
            p.setLong(1, 300);
            p.setLong(2, 100);
            check(mode + " UPDATE 3 matched 2 changed: update count (matched rows)", p.executeUpdate(), 3);
        }
        try (Statement s = conn.createStatement()) {
            check(mode + " DELETE of nothing", s.executeUpdate("DELETE FROM account WHERE email = 'nobody@example.org'"), 0);
        }

        // ---- Transactions seen from a second connection ---------------------------------------
        try (Connection observer = connect(DB, USER, PASSWORD, serverPrepare)) {
            String count = "SELECT COUNT(*) FROM account WHERE email = 'erin@example.org'";
            conn.setAutoCommit(false);
            try (Statement s = conn.createStatement()) {
                s.executeUpdate("INSERT INTO account (email, quota) VALUES ('erin@example.org', 5)");
            }
            checkPending("transactions", mode + " uncommitted insert invisible to a second connection", scalarLong(observer, count), 0L);
            conn.commit();
            check(mode + " committed insert visible to a second connection", scalarLong(observer, count), 1L);
            try (Statement s = conn.createStatement()) {
                s.executeUpdate("DELETE FROM account WHERE email = 'erin@example.org'");
            }
            conn.rollback();
            checkPending("transactions", mode + " rolled-back delete undone for a second connection", scalarLong(observer, count), 1L);
            conn.setAutoCommit(true);
            if (pending("transactions") && scalarLong(observer, count) == 0L) {
                // Without transactions the delete stays; put the row back so later counts hold either way.
                try (Statement s = conn.createStatement()) {
                    s.executeUpdate("INSERT INTO account (email, quota) VALUES ('erin@example.org', 5)");
                }
            }
        }

        // ---- Errors ------------------------------------------------------------------------------
        if (!skipPending("unique", mode + " duplicate key")) {
            expectError(mode + " duplicate key", () -> {
                try (PreparedStatement p = conn.prepareStatement("INSERT INTO account (email) VALUES (?)")) {
                    p.setString(1, "alice@example.org");
                    p.executeUpdate();
                }
            }, 1062, "23000", SQLIntegrityConstraintViolationException.class);
        }
        expectError(mode + " unknown table", () -> {
            try (PreparedStatement p = conn.prepareStatement("SELECT * FROM no_such_table WHERE id = ?")) {
                p.setInt(1, 1);
                p.executeQuery().close();
            }
        }, 1146, "42S02", SQLSyntaxErrorException.class);
        expectError(mode + " syntax error", () -> {
            try (Statement s = conn.createStatement()) {
                s.executeQuery("SELEC 1").close();
            }
        }, 1064, "42000", SQLSyntaxErrorException.class);
        expectError(mode + " USE of an unknown database", () -> {
            try (Statement s = conn.createStatement()) {
                s.execute("USE cairn_no_such_database");
            }
        }, 1049, "42000", SQLSyntaxErrorException.class);
        check(mode + " connection usable after errors", scalarLong(conn, "SELECT COUNT(*) FROM account"), 4L);
        expectError(mode + " connect to an unknown database",
            () -> connect("cairn_no_such_database", USER, PASSWORD, serverPrepare).close(), 1049, "42000", null);

        String user = DB;
        String password = "Cairn-pw-7";
        boolean created;
        try (Statement s = admin.createStatement()) {
            s.execute("DROP USER IF EXISTS '" + user + "'@'%'");
            s.execute("CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + password + "'");
            s.execute("GRANT ALL PRIVILEGES ON " + DB + ".* TO '" + user + "'@'%'");
            created = true;
        } catch (SQLException e) {
            System.out.println("note server rejected CREATE USER (" + e.getMessage()
                + "); checking a wrong password for " + USER + " instead");
            created = false;
        }
        if (created) {
            try (Connection good = connect(DB, user, password, serverPrepare);
                 Statement s = good.createStatement();
                 ResultSet r = s.executeQuery("SELECT CURRENT_USER()")) {
                r.next();
                check(mode + " login with the right password", r.getString(1), user + "@%");
            }
            expectError(mode + " wrong password", () -> connect(DB, user, "wrong-pw", serverPrepare).close(),
                1045, "28000", SQLInvalidAuthorizationSpecException.class);
            try (Statement s = admin.createStatement()) {
                s.execute("DROP USER '" + user + "'@'%'");
            }
        } else {
            expectError(mode + " wrong password", () -> connect(DB, USER, PASSWORD + "-wrong", serverPrepare).close(),
                1045, "28000", SQLInvalidAuthorizationSpecException.class);
        }

        // ---- DatabaseMetaData (information_schema) ------------------------------------------------
        DatabaseMetaData meta = conn.getMetaData();
        List<String> tables = new ArrayList<>();
        try (ResultSet r = meta.getTables(DB, null, "%", new String[] {"TABLE"})) {
            while (r.next()) {
                tables.add(r.getString("TABLE_NAME") + ":" + r.getString("TABLE_TYPE"));
            }
        }
        check(mode + " getTables", String.join(",", tables), "account:TABLE,types:TABLE");
        Map<String, String> columns = new HashMap<>();
        List<String> order = new ArrayList<>();
        try (ResultSet r = meta.getColumns(DB, null, "types", "%")) {
            while (r.next()) {
                String name = r.getString("COLUMN_NAME");
                order.add(name);
                columns.put(name, r.getString("TYPE_NAME") + "/" + r.getInt("DATA_TYPE") + "/" + r.getInt("COLUMN_SIZE")
                    + "/" + r.getString("IS_NULLABLE") + "/" + r.getString("IS_AUTOINCREMENT"));
            }
        }
        check(mode + " getColumns order", String.join(",", order), "id," + String.join(",", COLUMNS));
        check(mode + " getColumns id", columns.get("id"), "INT UNSIGNED/" + Types.INTEGER + "/10/NO/YES");
        check(mode + " getColumns c_u64", columns.get("c_u64"), "BIGINT UNSIGNED/" + Types.BIGINT + "/20/YES/NO");
        check(mode + " getColumns c_dec", columns.get("c_dec"), "DECIMAL/" + Types.DECIMAL + "/20/YES/NO");
        check(mode + " getColumns c_txt", columns.get("c_txt"), "VARCHAR/" + Types.VARCHAR + "/255/YES/NO");
        check(mode + " getColumns c_dt", columns.get("c_dt"), "DATETIME/" + Types.TIMESTAMP + "/19/YES/NO");
        try (ResultSet r = meta.getPrimaryKeys(DB, null, "account")) {
            check(mode + " getPrimaryKeys has a row", r.next(), true);
            check(mode + " getPrimaryKeys column", r.getString("COLUMN_NAME"), "id");
        }
    }

    public static void main(String[] args) {
        try {
            session(false);
            session(true);
        } catch (Failure f) {
            System.out.println("FAIL " + f.getMessage());
            System.exit(1);
        } catch (SQLException | RuntimeException e) {
            e.printStackTrace(System.out);
            System.out.println("FAIL unexpected " + e);
            System.exit(1);
        }
        System.out.println("PASS");
    }
}

//! From the bytes of a COM_QUERY to statement text, without losing binary string literals.
//!
//! The engine parses `&str`, but a statement's bytes need not be UTF-8: clients escape binary
//! parameters into the text (`_binary'\0\xFF…'` from mysqlclient, PDO, DBD and JDBC's client-side
//! placeholders), and those bytes are the value. Decoding the whole text lossily would replace
//! them with U+FFFD and store the wrong bytes. Instead, every quoted string literal whose bytes
//! are not valid UTF-8 is unescaped and rewritten as a hexadecimal literal (`X'00FF…'`), which
//! means the same bytes to MySQL (`_binary X'00FF'` is valid too, so an introducer in front of
//! it stays meaningful). Everything else must be UTF-8 and is decoded as such; bytes that are not
//! (in identifiers or comments) are replaced, and a statement that relied on them fails to match
//! instead of crashing.
//!
//! The scanner knows MySQL's lexical rules only as far as finding string literals needs:
//! single- and double-quoted strings (double quotes are identifiers under ANSI_QUOTES), doubled
//! quotes and backslash escapes (unless NO_BACKSLASH_ESCAPES), backquoted identifiers, `-- `,
//! `#` and `/* */` comments. Versioned comments `/*!… */` and optimizer hints `/*+ … */` hold
//! SQL that runs, so their strings are literals too.
//!
//! Left out: other client character sets. A latin1 session's text is not converted; its non-ASCII
//! string literals arrive as binary strings.

use std::borrow::Cow;

use crate::backend::Backend;
use crate::session::Session;

impl<B: Backend> Session<B> {
    /// [`decode_query`] under the session's sql_mode (NO_BACKSLASH_ESCAPES, ANSI_QUOTES).
    pub fn decode_query<'a>(&self, sql: &'a [u8]) -> Cow<'a, str> {
        decode_query(sql, !self.has_mode("NO_BACKSLASH_ESCAPES"), self.has_mode("ANSI_QUOTES"))
    }
}

/// Turns the bytes of a statement text into a string, keeping non-UTF-8 string literals exact
/// by rewriting them as hexadecimal literals.
pub fn decode_query(sql: &[u8], backslash_escapes: bool, ansi_quotes: bool) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(sql) {
        return Cow::Borrowed(text);
    }
    let mut out: Vec<u8> = Vec::with_capacity(sql.len() + sql.len() / 2);
    let mut i = 0;
    while i < sql.len() {
        let b = sql[i];
        match b {
            b'\'' | b'"' if !(b == b'"' && ansi_quotes) => {
                let (end, content) = string_literal(sql, i, b, backslash_escapes);
                let raw = &sql[i..end];
                if std::str::from_utf8(raw).is_ok() {
                    out.extend_from_slice(raw);
                } else {
                    // `_binary'…'` becomes `_binary X'…'`: without the space the introducer and
                    // the X would read as one identifier.
                    if out.last().is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$') {
                        out.push(b' ');
                    }
                    out.extend_from_slice(b"X'");
                    for byte in content {
                        out.extend_from_slice(format!("{byte:02X}").as_bytes());
                    }
                    out.push(b'\'');
                }
                i = end;
            }
            b'`' | b'"' => {
                let end = quoted_identifier(sql, i, b);
                out.extend_from_slice(&sql[i..end]);
                i = end;
            }
            b'#' => {
                let end = line_end(sql, i);
                out.extend_from_slice(&sql[i..end]);
                i = end;
            }
            b'-' if sql.get(i + 1) == Some(&b'-') && sql.get(i + 2).is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()) => {
                let end = line_end(sql, i);
                out.extend_from_slice(&sql[i..end]);
                i = end;
            }
            b'/' if sql.get(i + 1) == Some(&b'*') && !matches!(sql.get(i + 2), Some(b'!' | b'+')) => {
                let end = find(sql, i + 2, b"*/").map_or(sql.len(), |at| at + 2);
                out.extend_from_slice(&sql[i..end]);
                i = end;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// The end (one past the closing quote) of the string literal opening at `start`, and its
/// unescaped bytes. An unterminated literal runs to the end of the text (the parser then reports
/// it).
fn string_literal(sql: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> (usize, Vec<u8>) {
    let mut content = Vec::new();
    let mut i = start + 1;
    while i < sql.len() {
        let b = sql[i];
        if b == quote {
            if sql.get(i + 1) == Some(&quote) {
                content.push(quote);
                i += 2;
                continue;
            }
            return (i + 1, content);
        }
        if b == b'\\' && backslash_escapes && i + 1 < sql.len() {
            let next = sql[i + 1];
            match next {
                b'0' => content.push(0),
                b'b' => content.push(8),
                b'n' => content.push(b'\n'),
                b'r' => content.push(b'\r'),
                b't' => content.push(b'\t'),
                b'Z' => content.push(26),
                // `\%` and `\_` keep their backslash (they are LIKE escapes), as in MySQL.
                b'%' | b'_' => content.extend_from_slice(&[b'\\', next]),
                other => content.push(other),
            }
            i += 2;
            continue;
        }
        content.push(b);
        i += 1;
    }
    (sql.len(), content)
}

fn quoted_identifier(sql: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < sql.len() {
        if sql[i] == quote {
            if sql.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    sql.len()
}

fn line_end(sql: &[u8], start: usize) -> usize {
    sql[start..].iter().position(|&b| b == b'\n').map_or(sql.len(), |at| start + at)
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|at| from + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(sql: &[u8]) -> String {
        decode_query(sql, true, false).into_owned()
    }

    #[test]
    fn utf8_text_is_borrowed_unchanged() {
        let sql = "SELECT '😀 café', `t` FROM x".as_bytes();
        assert!(matches!(decode_query(sql, true, false), Cow::Borrowed(_)));
    }

    #[test]
    fn binary_literals_become_hex_with_their_exact_bytes() {
        assert_eq!(decode(b"INSERT INTO t VALUES (_binary'\\0\xff\x10\xfe', 'ok')"), "INSERT INTO t VALUES (_binary X'00FF10FE', 'ok')");
        assert_eq!(decode(b"SELECT N'\xff',('\xfe')"), "SELECT N X'FF',(X'FE')");
    }

    #[test]
    fn escapes_and_doubled_quotes_are_unescaped() {
        assert_eq!(decode(b"SELECT '\xff\\'\\\\''' x"), "SELECT X'FF275C27' x");
        assert_eq!(decode(b"SELECT \"\xff\\n\""), "SELECT X'FF0A'");
        // Without backslash escapes a backslash is an ordinary byte.
        assert_eq!(decode_query(b"SELECT '\xff\\'", false, false), "SELECT X'FF5C'");
    }

    #[test]
    fn comments_and_identifiers_are_not_literals() {
        assert_eq!(decode(b"SELECT 1 -- '\xff\nFROM t"), "SELECT 1 -- '\u{FFFD}\nFROM t");
        assert_eq!(decode(b"SELECT /* '\xff */ '\xfe'"), "SELECT /* '\u{FFFD} */ X'FE'");
        assert_eq!(decode(b"SELECT /*!40101 '\xfe' */"), "SELECT /*!40101 X'FE' */");
        assert_eq!(decode(b"SELECT `it's` , '\xfe'"), "SELECT `it's` , X'FE'");
        assert_eq!(decode_query(b"SELECT \"a'b\" , '\xfe'", true, true), "SELECT \"a'b\" , X'FE'");
    }

    #[test]
    fn unterminated_literals_do_not_panic() {
        assert_eq!(decode(b"SELECT '\xff"), "SELECT X'FF'");
        assert_eq!(decode(b"SELECT '\xff\\"), "SELECT X'FF5C'");
        for len in 0..6 {
            let _ = decode(&b"'\\\xff\"`#"[..len]);
        }
    }
}

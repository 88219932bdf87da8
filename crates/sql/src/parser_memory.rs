//! # The parser's memory bound (MySQL's `parser_max_mem_size`)
//!
//! A statement's text becomes tokens (sqlparser's tokenizer keeps every token, whitespace
//! included, with its position) and then a syntax tree; both are much larger than the text. A
//! 64 MiB COM_QUERY (what `max_allowed_packet` lets through) of `1,1,1,…` is about 64 million
//! tokens, which would take several GiB before the first statement ran: a single client could
//! take the SQL node, and every other client on it, down. Huge `IN (…)` lists and huge
//! `VALUES (…), (…)` lists are the usual way to get there, by accident or not.
//!
//! So, before tokenizing, the text's tokens are counted by a single pass over its bytes that
//! understands quoting and comments ([`estimate_tokens`]); the count times what one token costs
//! through tokenizing and parsing ([`BYTES_PER_TOKEN`]) is the parse's memory. Past
//! `parser_max_mem_size` (the `ParserMaxMemSize` key of `[[mysqld]]`) the text is refused with
//! MySQL's own error for that variable, 3170 ER_CAPACITY_EXCEEDED (SQLSTATE HY000), before any
//! of it is tokenized, and the session stays usable.
//!
//! Guarantees: the count is an upper bound of the tokens sqlparser makes (every run of ASCII
//! letters, digits, `_` and `$`, every quoted string and every comment is one token; every
//! other byte is one token, even where sqlparser joins several, as in `>=` or `1.5`), so a text that
//! passes cannot cost more than the bound says; a text of at most `limit / BYTES_PER_TOKEN`
//! bytes always passes without being scanned.
//!
//! Left out: the memory of planning and executing (bounded by the row limits of `exec`), and
//! stored routine bodies, which were checked when they were created.

use cairn_common::{Error, ErrorKind};

/// What one token costs from the text to the syntax tree, estimated from the sizes involved
/// (not measured allocation by allocation): the token with its span (about 80 bytes), the copy
/// handed to sqlparser, the string behind a number or word, and the tree node built from it;
/// rounded up.
pub const BYTES_PER_TOKEN: u64 = 320;

/// MySQL's `parser_max_mem_size` default is "no limit"; Cairn's keeps the parse of one
/// statement at 1 GiB, about 3.3 million tokens: an IN list of 1.6 million numbers, or a
/// multi-row INSERT of about 200,000 five-column rows. A mysqldump file's extended INSERTs
/// (at most `net_buffer_length`, 1 MiB, each) always pass.
pub const DEFAULT_PARSER_MAX_MEM_SIZE: u64 = 1 << 30;

/// Refuses a text whose tokens would take more than `limit` bytes to tokenize and parse.
pub fn check(text: &str, limit: u64) -> Result<(), Error> {
    // Every token is at least one byte, so a short text cannot exceed the limit.
    if (text.len() as u64).saturating_mul(BYTES_PER_TOKEN) <= limit {
        return Ok(());
    }
    let needed = (estimate_tokens(text.as_bytes()) as u64).saturating_mul(BYTES_PER_TOKEN);
    if needed > limit {
        return Err(capacity_exceeded(limit));
    }
    Ok(())
}

/// MySQL's message for `parser_max_mem_size`.
pub fn capacity_exceeded(limit: u64) -> Error {
    Error::new(
        ErrorKind::CapacityExceeded,
        format!("Memory capacity of {limit} bytes for 'parser_max_mem_size' exceeded. Parser bailed out for this query."),
    )
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$')
}

/// An upper bound of the tokens sqlparser's MySQL tokenizer makes of `text`, in one pass.
pub fn estimate_tokens(text: &[u8]) -> usize {
    let mut tokens = 0usize;
    let mut i = 0;
    let n = text.len();
    while i < n {
        let b = text[i];
        tokens += 1;
        if is_word_byte(b) {
            while i < n && is_word_byte(text[i]) {
                i += 1;
            }
        } else if matches!(b, b'\'' | b'"' | b'`') {
            i = skip_quoted(text, i, b);
        } else if b == b'#' || (b == b'-' && text.get(i + 1) == Some(&b'-') && text.get(i + 2).is_none_or(|c| c.is_ascii_whitespace())) {
            while i < n && text[i] != b'\n' {
                i += 1;
            }
        } else if b == b'/' && text.get(i + 1) == Some(&b'*') && text.get(i + 2) != Some(&b'!') {
            i += 2;
            while i < n && !(text[i] == b'*' && text.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i = (i + 2).min(n);
        } else {
            // Whitespace (sqlparser makes a token of every space and newline), punctuation,
            // operators, every byte of a non-ASCII character, and the `/*!` and `*/` of
            // executable comments (whose content is counted as ordinary text).
            i += 1;
        }
    }
    tokens
}

/// The index after a quoted string opened at `start` by `quote`: a doubled quote stays inside,
/// and so does a backslash-escaped character in '…' and "…" (MySQL's default escapes).
fn skip_quoted(text: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < text.len() {
        let b = text[i];
        if b == b'\\' && quote != b'`' {
            i += 2;
        } else if b == quote {
            if text.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The estimate is never below what the tokenizer makes, on the shapes that matter.
    #[test]
    fn the_estimate_bounds_the_tokenizer() {
        let texts = [
            "SELECT id FROM t WHERE id IN (1, 2, 3, 4)",
            "INSERT INTO t VALUES (1,'a b c'),(2,'it''s'),(3,\"x\\\"y\")",
            "SELECT `we ird`, @v, @@session.sql_mode FROM d.t # comment\n WHERE a>=1.5e10 -- c\n",
            "SELECT /* a comment, with, commas */ 1 /*!40101 , 2 */",
            "SELECT x'4142', b'01', 0x41, _utf8mb4'é', 'ünï'",
            "SELECT 1;SELECT 2; ;",
            "'unterminated",
        ];
        for text in texts {
            let actual = crate::lexer::tokenize(text).map(|t| t.len()).unwrap_or(0);
            let estimate = estimate_tokens(text.as_bytes());
            assert!(estimate >= actual, "{text}: estimated {estimate} < {actual}");
            // ... and not wildly above it, so that legitimate statements are not refused.
            assert!(estimate <= actual * 3 + 2, "{text}: estimated {estimate} for {actual}");
        }
    }

    #[test]
    fn long_strings_count_as_one_token() {
        let blob = format!("INSERT INTO t VALUES ('{}')", "a,b;c ".repeat(1_000_000));
        assert!(estimate_tokens(blob.as_bytes()) < 20);
        check(&blob, 1 << 20).expect("a 6 MB string literal is a handful of tokens");
    }

    #[test]
    fn a_huge_in_list_is_refused_before_tokenizing() {
        let list = format!("SELECT * FROM t WHERE id IN ({})", vec!["1"; 200_000].join(","));
        let refused = check(&list, 64 << 20).unwrap_err();
        assert_eq!(refused.code(), 3170);
        assert_eq!(refused.message, "Memory capacity of 67108864 bytes for 'parser_max_mem_size' exceeded. Parser bailed out for this query.");
        check(&list, 1 << 30).expect("within a larger limit");
        check("SELECT 1", 1024).expect("short texts are never scanned");
    }
}

//! Tokens, statement splitting and MySQL's syntax-error message.
//!
//! Everything the SQL node reads goes through sqlparser's tokenizer with the MySQL dialect, so
//! quoting (`'…'`, `"…"`, backquotes, backslash escapes), comments (`--`, `#`, `/* */`) and
//! executable comments (`/*!40101 … */`, whose content becomes ordinary tokens) are understood
//! in exactly one way. Splitting a multi-statement text happens on those tokens, never on a raw
//! `;`, and `CREATE FUNCTION/PROCEDURE/TRIGGER/EVENT` bodies (`BEGIN … END` with inner `;`) are
//! kept whole, because the mariadb CLI sends a DELIMITER-defined routine as one COM_QUERY.

use cairn_common::error::{Error, ErrorKind};
use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// The one dialect the SQL node speaks.
pub(crate) static DIALECT: MySqlDialect = MySqlDialect {};

/// Longest excerpt MySQL quotes in a syntax error (`near '%-.80s'`).
const NEAR_TEXT_CHARS: usize = 80;

/// One statement of a (possibly multi-statement) text: its tokens without the `;` that ended
/// it, and its own text.
#[derive(Clone, Debug)]
pub(crate) struct StatementText {
    /// Every token, whitespace and comments included, with locations relative to `text`.
    pub tokens: Vec<TokenWithSpan>,
    /// The statement's text, from its first significant token to its last one.
    pub text: String,
}

impl StatementText {
    /// The significant tokens (no whitespace or comments).
    pub fn significant(&self) -> Vec<&TokenWithSpan> {
        self.tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).collect()
    }
}

/// Converts sqlparser locations (line, character column, both 1-based) into byte offsets of
/// one text.
pub(crate) struct Locator<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Locator<'a> {
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        Locator { text, line_starts }
    }

    /// Byte offset of a location; locations past the end (or an empty location) clamp to the
    /// text's bounds, so a slightly-off span from an executable comment never panics.
    pub fn offset(&self, location: Location) -> usize {
        if location.line == 0 {
            return 0;
        }
        let Some(&start) = self.line_starts.get(location.line as usize - 1) else {
            return self.text.len();
        };
        let column = location.column.saturating_sub(1) as usize;
        let line = &self.text[start..];
        match line.char_indices().nth(column) {
            Some((i, _)) => start + i,
            None => self.text.len(),
        }
    }

    /// The text between two locations, clamped.
    pub fn slice(&self, from: Location, to: Location) -> &'a str {
        let a = self.offset(from);
        let b = self.offset(to).max(a);
        &self.text[a..b]
    }
}

/// Tokenizes a text; an unterminated string or comment is a syntax error as MySQL reports it.
pub(crate) fn tokenize(text: &str) -> Result<Vec<TokenWithSpan>, Error> {
    Tokenizer::new(&DIALECT, text).tokenize_with_location().map_err(|e| {
        let locator = Locator::new(text);
        syntax_error_near(&text[locator.offset(e.location)..], e.location.line)
    })
}

/// MySQL's ER_PARSE_ERROR: "… near '<text from the error on>' at line N".
pub(crate) fn syntax_error_near(rest: &str, line: u64) -> Error {
    let near: String = rest.chars().take(NEAR_TEXT_CHARS).collect();
    Error::new(
        ErrorKind::ParseError,
        format!(
            "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near '{near}' at line {}",
            line.max(1)
        ),
    )
}

/// A syntax error at a token of a statement (or at its end when `at` is None).
pub(crate) fn syntax_error_at(statement: &StatementText, at: Option<&TokenWithSpan>) -> Error {
    match at {
        Some(token) if token.span.start.line > 0 => {
            let locator = Locator::new(&statement.text);
            syntax_error_near(&statement.text[locator.offset(token.span.start)..], token.span.start.line)
        }
        _ => {
            let line = statement.text.lines().count().max(1) as u64;
            syntax_error_near("", line)
        }
    }
}

/// Turns a sqlparser error into MySQL's 1064, pointing at the location sqlparser names
/// (its messages end with "at Line: L, Column: C").
pub(crate) fn parser_error(statement: &StatementText, message: &str) -> Error {
    if let Some(location) = location_in_message(message) {
        let locator = Locator::new(&statement.text);
        return syntax_error_near(&statement.text[locator.offset(location)..], location.line);
    }
    // No location: sqlparser ran out of input (or hit its recursion limit).
    syntax_error_at(statement, None)
}

fn location_in_message(message: &str) -> Option<Location> {
    let at = message.rfind("at Line: ")?;
    let rest = &message[at + "at Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some(Location::new(line.trim().parse().ok()?, column.parse().ok()?))
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none())
}

fn word_is(token: &Token, text: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(text))
}

/// Whether a statement starting with these significant tokens is a stored-program definition
/// whose body may hold `;` (`CREATE [OR REPLACE] [DEFINER = x] [AGGREGATE] FUNCTION …`).
fn starts_routine(significant: &[&Token]) -> bool {
    if !significant.first().is_some_and(|t| is_keyword(t, Keyword::CREATE)) {
        return false;
    }
    significant.iter().take(12).any(|t| {
        is_keyword(t, Keyword::FUNCTION)
            || is_keyword(t, Keyword::PROCEDURE)
            || is_keyword(t, Keyword::TRIGGER)
            || word_is(t, "EVENT")
    })
}

/// Whether the `IF` at `at` starts an IF statement of a routine body (closed by `END IF`)
/// rather than being the IF() function or part of `IF [NOT] EXISTS`: it does not follow a word
/// that makes it an expression or a DDL clause, and its condition reaches a THEN before the
/// statement could end (CASE … END expressions inside the condition are skipped).
fn starts_if_statement(tokens: &[TokenWithSpan], previous: Option<usize>, at: usize) -> bool {
    if let Some(p) = previous {
        let prev = &tokens[p].token;
        let expression_context = matches!(prev, Token::Word(w) if w.quote_style.is_none() && matches!(
            w.value.to_ascii_uppercase().as_str(),
            "FUNCTION" | "PROCEDURE" | "TABLE" | "DATABASE" | "SCHEMA" | "VIEW" | "TRIGGER" | "EVENT" | "INDEX" | "USER"
                | "IF" | "ELSEIF" | "WHEN" | "WHILE" | "UNTIL" | "RETURN" | "SELECT" | "AND" | "OR" | "NOT" | "XOR"
        )) || !matches!(prev, Token::Word(_) | Token::SemiColon | Token::Colon | Token::RParen | Token::SingleQuotedString(_) | Token::DoubleQuotedString(_));
        if expression_context {
            return false;
        }
    }
    let mut depth = 0i32;
    let mut cases = 0usize;
    for t in tokens[at + 1..].iter().filter(|t| !matches!(t.token, Token::Whitespace(_))) {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Token::SemiColon => return false,
            Token::Word(w) if w.quote_style.is_none() && depth == 0 => match w.keyword {
                Keyword::CASE => cases += 1,
                Keyword::END if cases > 0 => cases -= 1,
                Keyword::END | Keyword::BEGIN | Keyword::DO => return false,
                Keyword::THEN if cases == 0 => return true,
                _ => {}
            },
            _ => {}
        }
    }
    false
}

/// Splits a text into statements on top-level `;`. Empty statements (only whitespace and
/// comments) are dropped; the caller decides what an entirely empty text means.
pub(crate) fn split(text: &str) -> Result<Vec<StatementText>, Error> {
    let tokens = tokenize(text)?;
    let locator = Locator::new(text);
    let mut statements = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    // Open compound statements inside a routine body: BEGIN, CASE, LOOP, WHILE, REPEAT and
    // IF, each closed by exactly one END (`END`, `END CASE`, `END LOOP`, …), so a routine's
    // inner `;` never ends it, with or without an outer BEGIN … END.
    let mut blocks: usize = 0;
    let mut previous: Option<usize> = None;
    let mut routine = false;
    let mut significant_seen: Vec<Token> = Vec::new();

    let flush = |current: &mut Vec<TokenWithSpan>, statements: &mut Vec<StatementText>| {
        let tokens = std::mem::take(current);
        let first = tokens.iter().find(|t| !matches!(t.token, Token::Whitespace(_)));
        let last = tokens.iter().rev().find(|t| !matches!(t.token, Token::Whitespace(_)));
        if let (Some(first), Some(last)) = (first, last) {
            let start = first.span.start;
            let text = locator.slice(start, last.span.end).to_string();
            let tokens = tokens.into_iter().map(|t| rebase(t, start)).collect();
            statements.push(StatementText { tokens, text });
        }
    };

    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        if !matches!(token.token, Token::Whitespace(_)) {
            if significant_seen.len() < 12 {
                significant_seen.push(token.token.clone());
                let refs: Vec<&Token> = significant_seen.iter().collect();
                routine = starts_routine(&refs);
            }
            if routine {
                let after_end = previous.is_some_and(|p| is_keyword(&tokens[p].token, Keyword::END));
                let next = tokens[i + 1..].iter().find(|t| !matches!(t.token, Token::Whitespace(_)));
                let opens = if after_end {
                    // `END IF`, `END LOOP`, … : the closing words, not new statements.
                    false
                } else if is_keyword(&token.token, Keyword::BEGIN) || is_keyword(&token.token, Keyword::CASE) {
                    true
                } else if word_is(&token.token, "LOOP") || is_keyword(&token.token, Keyword::WHILE) {
                    true
                } else if word_is(&token.token, "REPEAT") {
                    // REPEAT(str, n) is a function.
                    !next.is_some_and(|t| t.token == Token::LParen)
                } else if is_keyword(&token.token, Keyword::IF) {
                    starts_if_statement(&tokens, previous, i)
                } else {
                    false
                };
                if opens {
                    blocks += 1;
                } else if is_keyword(&token.token, Keyword::END) {
                    blocks = blocks.saturating_sub(1);
                }
            }
            previous = Some(i);
        }
        if matches!(token.token, Token::SemiColon) && blocks == 0 {
            flush(&mut current, &mut statements);
            significant_seen.clear();
            routine = false;
            previous = None;
        } else {
            current.push(token.clone());
        }
        i += 1;
    }
    flush(&mut current, &mut statements);
    Ok(statements)
}

/// The source text of each item of the select list starting at the SELECT keyword at
/// `select_at`, as MySQL names unaliased result columns (`1+1`, `COUNT( * )`, exactly as
/// written). `aliased[i]` says whether item i ends with an alias (dropped from its text).
/// None if the tokens do not split into as many items (the caller falls back to the parsed
/// form).
pub(crate) fn select_item_texts(statement: &StatementText, select_at: Location, aliased: &[bool]) -> Option<Vec<String>> {
    let tokens: Vec<&TokenWithSpan> = statement.tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).collect();
    let start = tokens.iter().position(|t| t.span.start == select_at && is_keyword(&t.token, Keyword::SELECT))?;
    let mut i = start + 1;
    // Modifiers between SELECT and the first item.
    while let Some(t) = tokens.get(i) {
        let modifier = matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && matches!(
            w.value.to_ascii_uppercase().as_str(),
            "DISTINCT" | "ALL" | "DISTINCTROW" | "HIGH_PRIORITY" | "STRAIGHT_JOIN" | "SQL_SMALL_RESULT" | "SQL_BIG_RESULT"
                | "SQL_BUFFER_RESULT" | "SQL_NO_CACHE" | "SQL_CACHE" | "SQL_CALC_FOUND_ROWS"
        ));
        if !modifier {
            break;
        }
        i += 1;
    }
    let mut items: Vec<(usize, usize)> = Vec::new();
    let mut depth = 0i32;
    let mut item_start = i;
    while i < tokens.len() {
        let t = &tokens[i].token;
        match t {
            Token::LParen => depth += 1,
            Token::RParen => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            Token::Comma if depth == 0 => {
                items.push((item_start, i));
                item_start = i + 1;
            }
            Token::Word(w) if depth == 0 && w.quote_style.is_none() => {
                let ends = matches!(
                    w.value.to_ascii_uppercase().as_str(),
                    "FROM" | "WHERE" | "GROUP" | "HAVING" | "ORDER" | "LIMIT" | "INTO" | "FOR" | "LOCK" | "UNION" | "WINDOW" | "EXCEPT" | "INTERSECT"
                );
                if ends {
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    items.push((item_start, i));
    if items.len() != aliased.len() {
        return None;
    }
    let locator = Locator::new(&statement.text);
    let mut out = Vec::with_capacity(items.len());
    for ((from, mut to), &has_alias) in items.into_iter().zip(aliased) {
        if has_alias {
            // `expr AS alias` or `expr alias`.
            to = to.checked_sub(1)?;
            if to > from && matches!(&tokens[to - 1].token, Token::Word(w) if w.keyword == Keyword::AS && w.quote_style.is_none()) {
                to -= 1;
            }
        }
        if to <= from {
            return None;
        }
        out.push(locator.slice(tokens[from].span.start, tokens[to - 1].span.end).to_string());
    }
    Some(out)
}

/// Shifts a token's location so that it is relative to a statement starting at `start`.
fn rebase(mut token: TokenWithSpan, start: Location) -> TokenWithSpan {
    let shift = |l: Location| -> Location {
        if l.line == 0 {
            return l;
        }
        if l.line == start.line {
            Location::new(1, (l.column + 1).saturating_sub(start.column).max(1))
        } else {
            Location::new(l.line.saturating_sub(start.line) + 1, l.column)
        }
    };
    token.span.start = shift(token.span.start);
    token.span.end = shift(token.span.end);
    token
}


#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        split(sql).unwrap().into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        assert_eq!(texts("SELECT 1; SELECT 2"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(texts("SELECT ';' ; SELECT \"a;b\";"), ["SELECT ';'", "SELECT \"a;b\""]);
        assert_eq!(texts("SELECT `x;y` FROM t -- c;omment\n; SELECT 2 # x;y\n"), ["SELECT `x;y` FROM t", "SELECT 2"]);
        assert_eq!(texts("SELECT 1 /* a;b */ + 1;;"), ["SELECT 1 /* a;b */ + 1"]);
        assert_eq!(texts("  ;  -- nothing\n"), Vec::<String>::new());
        assert_eq!(texts("SELECT 'it\\'s;'; SELECT 3"), ["SELECT 'it\\'s;'", "SELECT 3"]);
    }

    #[test]
    fn executable_comments_count_as_code() {
        let parts = split("/*!40101 SET NAMES utf8mb4 */; SELECT 1").unwrap();
        assert_eq!(parts.len(), 2);
        let words: Vec<String> = parts[0].significant().iter().map(|t| t.token.to_string()).collect();
        assert_eq!(words, ["SET", "NAMES", "utf8mb4"]);
    }

    #[test]
    fn routine_bodies_stay_whole() {
        let sql = "CREATE FUNCTION f(x INT) RETURNS INT DETERMINISTIC BEGIN DECLARE y INT DEFAULT 0; \
                   IF x > 0 THEN SET y = CASE WHEN x > 1 THEN 2 ELSE 1 END; END IF; \
                   WHILE y < 3 DO SET y = y + 1; END WHILE; RETURN y; END; SELECT f(1)";
        let parts = texts(sql);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts[0].ends_with("RETURN y; END"));
        assert_eq!(parts[1], "SELECT f(1)");
        let sql = "CREATE DEFINER=`root`@`localhost` PROCEDURE p() BEGIN SELECT 1; SELECT 2; END;SELECT 3";
        assert_eq!(texts(sql).len(), 2);
        // Compound bodies without BEGIN, IF () with a parenthesized condition, IF() functions,
        // REPEAT() the function, IF [NOT] EXISTS clauses inside and in the header.
        for (sql, parts) in [
            ("CREATE PROCEDURE p() l: LOOP SET @a = IF(@a > 1, 1, 2); LEAVE l; END LOOP l; SELECT 1", 2),
            ("CREATE PROCEDURE p() WHILE (@a < 3) DO SET @a = @a + 1; END WHILE; SELECT 1", 2),
            ("CREATE PROCEDURE p() REPEAT SET @s = REPEAT('x', 2); UNTIL 1 END REPEAT; SELECT 1", 2),
            ("CREATE PROCEDURE p() IF (@a) THEN SELECT 1; ELSEIF IF(@b, 1, 0) THEN SELECT 2; END IF; SELECT 3", 2),
            ("CREATE PROCEDURE IF NOT EXISTS p() BEGIN DROP TABLE IF EXISTS t; IF EXISTS (SELECT 1) THEN SELECT 1; END IF; END; SELECT 2", 2),
            ("CREATE FUNCTION f() RETURNS INT RETURN IF(1, CASE WHEN 1 THEN 2 END, 3); SELECT f()", 2),
            ("CREATE PROCEDURE p() CASE @a WHEN 1 THEN SELECT 1; ELSE SELECT 2; END CASE; SELECT 3", 2),
        ] {
            assert_eq!(texts(sql).len(), parts, "{sql}: {:?}", texts(sql));
        }
    }

    #[test]
    fn unterminated_string_is_a_1064_with_mysql_wording() {
        let err = split("SELECT 'abc").unwrap_err();
        assert_eq!(err.code(), 1064);
        assert!(err.message.starts_with("You have an error in your SQL syntax; check the manual"), "{}", err.message);
        assert!(err.message.ends_with("at line 1"), "{}", err.message);
    }

    #[test]
    fn locations_rebase_to_each_statement() {
        let parts = split("SELECT 1;\n  SELECT  é, 2").unwrap();
        let second = &parts[1];
        let locator = Locator::new(&second.text);
        let sig = second.significant();
        let two = sig.last().unwrap();
        assert_eq!(&second.text[locator.offset(two.span.start)..locator.offset(two.span.end)], "2");
    }

    #[test]
    fn parser_error_points_near_the_token() {
        let st = split("SELECT * FROM t WHERE").unwrap().remove(0);
        let err = parser_error(&st, "Expected: an expression, found: EOF");
        assert!(err.message.contains("near '' at line 1"), "{}", err.message);
        let err = parser_error(&st, "Expected: x, found: WHERE at Line: 1, Column: 17");
        assert!(err.message.contains("near 'WHERE' at line 1"), "{}", err.message);
    }
}

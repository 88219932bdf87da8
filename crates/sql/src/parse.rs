//! The pre-parser: classifies each statement on its first tokens, parses the families
//! sqlparser lacks or mangles by hand, and hands the rest to sqlparser.
//!
//! Hand-parsed (small, closed grammars where sqlparser drops meaning, see DEPENDENCIES.md §2):
//! `SET` in all its forms, the whole `SHOW` family, `DESCRIBE`, `USE`, `CREATE/DROP
//! DATABASE`, `DROP TABLE`, `TRUNCATE`, and the transaction statements. Cut at token level
//! before sqlparser sees the rest: `PARTITION BY KEY (…) [PARTITIONS n]` of CREATE TABLE and
//! `LOCK IN SHARE MODE` of SELECT. Everything else (queries, INSERT/REPLACE, UPDATE, DELETE,
//! CREATE TABLE) is parsed by sqlparser with the MySQL dialect. Statements Cairn does not run
//! yet parse to [`Statement::Unsupported`] and answer 1235, naming what is missing.

use sqlparser::ast;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan};

use cairn_common::error::Error;

use crate::lexer::{DIALECT, StatementText, parser_error, syntax_error_at};

/// Nesting sqlparser may descend before refusing a statement (deep nesting would otherwise
/// exhaust the stack on hostile input).
const RECURSION_LIMIT: usize = 64;

/// Most AND/OR/XOR operators in one statement. Chains of them are compiled into balanced
/// trees, but sqlparser's form is as deep as the chain (and dropped recursively).
pub(crate) const MAX_LOGICAL_OPERATORS: usize = 4000;
/// Most other operators (arithmetic, comparison, bitwise) in one statement. The depth of what
/// they build is checked after compiling (`compile::MAX_EXPR_DEPTH`); this bounds the parse.
pub(crate) const MAX_OTHER_OPERATORS: usize = 8000;

/// Refuses statements whose operator chains would make expressions too deep to parse,
/// compile and evaluate safely (MySQL's "Thread stack overrun", 1436).
fn check_operator_counts(statement: &StatementText) -> Result<(), Error> {
    let (mut logical, mut other) = (0usize, 0usize);
    for t in &statement.tokens {
        match &t.token {
            Token::Word(w) if w.quote_style.is_none() => match w.keyword {
                Keyword::AND | Keyword::OR | Keyword::XOR => logical += 1,
                Keyword::DIV | Keyword::MOD | Keyword::LIKE | Keyword::IS | Keyword::BETWEEN | Keyword::REGEXP | Keyword::RLIKE => other += 1,
                _ => {}
            },
            Token::StringConcat => logical += 1,
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Spaceship
            | Token::Ampersand
            | Token::Pipe
            | Token::Caret
            | Token::ShiftLeft
            | Token::ShiftRight
            | Token::Tilde
            | Token::ExclamationMark => other += 1,
            _ => {}
        }
    }
    if logical > MAX_LOGICAL_OPERATORS || other > MAX_OTHER_OPERATORS {
        return Err(Error::new(
            cairn_common::ErrorKind::StackOverrun,
            format!(
                "Thread stack overrun: the statement has {logical} AND/OR and {other} other operators;                  at most {MAX_LOGICAL_OPERATORS} and {MAX_OTHER_OPERATORS} are evaluated safely (use IN lists or split the statement)"
            ),
        ));
    }
    Ok(())
}

/// A table name as written: `t` or `db.t`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableName {
    pub database: Option<String>,
    pub name: String,
}

/// `PARTITION BY KEY (cols) [PARTITIONS n]`, cut from a CREATE TABLE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartitionSpec {
    pub columns: Vec<String>,
    pub partitions: Option<u32>,
}

/// Where a variable of a SET or a `@@` reference lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VarScope {
    /// `@@x`, `x`: the session value (SET), or session-then-global (reads).
    Default,
    Session,
    Global,
    /// `@x`.
    User,
}

#[derive(Clone, Debug)]
pub(crate) enum SetValue {
    Default,
    Expr(Box<ast::Expr>),
}

#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum SetItem {
    /// `SET NAMES charset [COLLATE collation]` / `SET NAMES DEFAULT`.
    Names { charset: Option<String>, collation: Option<String> },
    /// `SET CHARACTER SET charset` / `SET CHARSET DEFAULT`.
    CharacterSet { charset: Option<String> },
    Variable { scope: VarScope, name: String, value: SetValue },
    /// `SET [SESSION|GLOBAL] TRANSACTION ISOLATION LEVEL …, READ ONLY|WRITE`.
    Transaction { scope: VarScope, isolation: Option<String>, read_only: Option<bool> },
}

/// A `LIKE 'pattern'` or `WHERE expr` filter of a SHOW statement.
#[derive(Clone, Debug, Default)]
pub(crate) struct ShowFilter {
    pub like: Option<String>,
    pub filter: Option<ast::Expr>,
}

#[derive(Clone, Debug)]
pub(crate) enum Show {
    Databases(ShowFilter),
    Tables { full: bool, database: Option<String>, filter: ShowFilter },
    TableStatus { database: Option<String>, filter: ShowFilter },
    Columns { full: bool, table: TableName, filter: ShowFilter },
    Index { table: TableName, filter: ShowFilter },
    Variables { global: bool, filter: ShowFilter },
    /// SHOW [GLOBAL] STATUS: this SQL node's counters either way.
    Status(ShowFilter),
    /// `SHOW WARNINGS [LIMIT [offset,] count]`, `SHOW ERRORS …`; `count_only` for
    /// `SHOW COUNT(*) WARNINGS`.
    Warnings { errors_only: bool, count_only: bool, offset: u64, limit: Option<u64> },
    CreateTable(TableName),
    CreateDatabase { name: String, if_not_exists: bool },
    Engines,
    Collation(ShowFilter),
    CharacterSet(ShowFilter),
    /// SHOW [FULL] PROCESSLIST: this session only (the node does not list its peers' yet);
    /// without FULL, Info is cut to 100 characters as in MySQL.
    Processlist { full: bool },
    /// SHOW CREATE FUNCTION / PROCEDURE (crate::routine::show).
    CreateRoutine { kind: cairn_common::routine::RoutineKind, name: crate::routine::QualifiedName },
    /// SHOW FUNCTION / PROCEDURE STATUS [LIKE | WHERE].
    RoutineStatus { kind: cairn_common::routine::RoutineKind, filter: ShowFilter },
}

/// A statement, ready for planning. Parsed once per text (and kept by prepared statements),
/// so the size of its largest variant does not matter.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Statement {
    Query(Box<ast::Query>),
    Insert(Box<ast::Insert>),
    Update(Box<ast::Update>),
    Delete(Box<ast::Delete>),
    CreateTable { table: Box<ast::CreateTable>, partitioning: Option<PartitionSpec> },
    CreateDatabase { name: String, if_not_exists: bool, charset: Option<String>, collation: Option<String> },
    DropDatabase { name: String, if_exists: bool },
    DropTable { tables: Vec<TableName>, if_exists: bool },
    Truncate(TableName),
    /// `CREATE [UNIQUE] INDEX name ON t (cols)`.
    CreateIndex(Box<ast::CreateIndex>),
    /// `DROP INDEX name ON t`.
    DropIndex { name: String, table: TableName },
    /// `ALTER TABLE t op, op…`.
    AlterTable(Box<ast::AlterTable>),
    /// `RENAME TABLE a TO b [, c TO d…]`.
    RenameTable(Vec<(TableName, TableName)>),
    /// `DO expr [, expr…]`: evaluated, results discarded.
    Do(Vec<ast::Expr>),
    /// `EXPLAIN` of a query or a write: the plan, in MySQL's tabular form.
    Explain(Box<Statement>),
    Use(String),
    Set(Vec<SetItem>),
    Show(Show),
    Begin,
    Commit,
    Rollback,
    /// KILL, FLUSH, LOCK TABLES, savepoints, ... (session/admin.rs).
    Admin(crate::session::admin::AdminStatement),
    /// LOAD DATA [LOCAL] INFILE (session/load_data.rs).
    LoadData(Box<crate::session::load_data::LoadData>),
    Savepoint(String),
    RollbackToSavepoint(String),
    ReleaseSavepoint(String),
    /// Stored routines: CREATE/DROP/ALTER FUNCTION and PROCEDURE, CALL, SELECT … INTO
    /// (crate::routine).
    Routine(crate::routine::RoutineStatement),
    /// Parsed, but not something Cairn runs yet: answered with 1235 naming it.
    Unsupported(String),
    /// CREATE USER, GRANT, SHOW GRANTS and the other account statements (`crate::users`).
    Account(crate::users::AccountStatement),
}

/// A cursor over one statement's tokens that skips whitespace and comments.
pub(crate) struct Cursor<'a> {
    statement: &'a StatementText,
    tokens: &'a [TokenWithSpan],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(statement: &'a StatementText) -> Cursor<'a> {
        Cursor { statement, tokens: &statement.tokens, pos: 0 }
    }

    pub(crate) fn skip_trivia(&mut self) {
        while self.pos < self.tokens.len() && matches!(self.tokens[self.pos].token, Token::Whitespace(_)) {
            self.pos += 1;
        }
    }

    pub(crate) fn peek(&mut self) -> Option<&'a TokenWithSpan> {
        self.skip_trivia();
        self.tokens.get(self.pos)
    }

    /// The significant token `n` places ahead (0 = next).
    pub(crate) fn peek_nth(&mut self, n: usize) -> Option<&'a TokenWithSpan> {
        self.skip_trivia();
        self.tokens[self.pos..].iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).nth(n)
    }

    pub(crate) fn next(&mut self) -> Option<&'a TokenWithSpan> {
        let token = self.peek()?;
        self.pos += 1;
        Some(token)
    }

    pub(crate) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    pub(crate) fn error(&mut self) -> Error {
        let at = self.peek();
        syntax_error_at(self.statement, at)
    }

    /// Consumes the next token if it is this unquoted word (any case).
    pub(crate) fn eat(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(TokenWithSpan { token: Token::Word(w), .. }) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn eat_token(&mut self, token: &Token) -> bool {
        match self.peek() {
            Some(t) if &t.token == token => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn expect(&mut self, word: &str) -> Result<(), Error> {
        if self.eat(word) { Ok(()) } else { Err(self.error()) }
    }

    pub(crate) fn expect_token(&mut self, token: &Token) -> Result<(), Error> {
        if self.eat_token(token) { Ok(()) } else { Err(self.error()) }
    }

    pub(crate) fn peek_is(&mut self, word: &str) -> bool {
        matches!(self.peek(), Some(TokenWithSpan { token: Token::Word(w), .. }) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
    }

    /// An identifier: a word (quoted with backquotes or not). Unquoted reserved words that
    /// cannot be names are refused.
    pub(crate) fn ident(&mut self) -> Result<String, Error> {
        match self.peek() {
            Some(TokenWithSpan { token: Token::Word(w), .. }) => {
                if w.quote_style.is_none() && is_reserved_for_names(w.keyword) {
                    return Err(self.error());
                }
                self.pos += 1;
                Ok(w.value.clone())
            }
            _ => Err(self.error()),
        }
    }

    /// A name given as an identifier or a string (`SET NAMES 'utf8mb4'`, `COLLATE utf8mb4_bin`).
    pub(crate) fn name_or_string(&mut self) -> Result<String, Error> {
        match self.peek() {
            Some(TokenWithSpan { token: Token::SingleQuotedString(s) | Token::DoubleQuotedString(s), .. }) => {
                self.pos += 1;
                Ok(s.clone())
            }
            Some(TokenWithSpan { token: Token::Word(w), .. }) => {
                self.pos += 1;
                Ok(w.value.clone())
            }
            _ => Err(self.error()),
        }
    }

    pub(crate) fn string(&mut self) -> Result<String, Error> {
        match self.peek() {
            Some(TokenWithSpan { token: Token::SingleQuotedString(s) | Token::DoubleQuotedString(s), .. }) => {
                self.pos += 1;
                Ok(s.clone())
            }
            _ => Err(self.error()),
        }
    }

    pub(crate) fn number(&mut self) -> Result<u64, Error> {
        match self.peek() {
            Some(TokenWithSpan { token: Token::Number(n, _), .. }) => {
                let value = n.parse().map_err(|_| self.error())?;
                self.pos += 1;
                Ok(value)
            }
            _ => Err(self.error()),
        }
    }

    /// `name` or `db.name`.
    pub(crate) fn table_name(&mut self) -> Result<TableName, Error> {
        let first = self.ident()?;
        if self.eat_token(&Token::Period) {
            let name = self.ident()?;
            Ok(TableName { database: Some(first), name })
        } else {
            Ok(TableName { database: None, name: first })
        }
    }

    /// Parses one expression with sqlparser from the current position.
    pub(crate) fn expr(&mut self) -> Result<ast::Expr, Error> {
        self.skip_trivia();
        let rest = self.tokens[self.pos..].to_vec();
        let mut parser = Parser::new(&DIALECT).with_recursion_limit(RECURSION_LIMIT).with_tokens_with_locations(rest);
        let expr = parser.parse_expr().map_err(|e| map_parser_error(self.statement, e))?;
        self.pos += parser.index();
        // sqlparser's index may point past trailing whitespace it peeked at; never past the end.
        self.pos = self.pos.min(self.tokens.len());
        Ok(expr)
    }

    pub(crate) fn expect_end(&mut self) -> Result<(), Error> {
        if self.at_end() { Ok(()) } else { Err(self.error()) }
    }
}

fn is_reserved_for_names(keyword: Keyword) -> bool {
    matches!(
        keyword,
        Keyword::SELECT
            | Keyword::FROM
            | Keyword::WHERE
            | Keyword::LIKE
            | Keyword::IN
            | Keyword::TABLE
            | Keyword::AND
            | Keyword::OR
            | Keyword::ORDER
            | Keyword::GROUP
            | Keyword::LIMIT
            | Keyword::SET
            | Keyword::INTO
            | Keyword::VALUES
    )
}

pub(crate) fn map_parser_error(statement: &StatementText, error: ParserError) -> Error {
    match error {
        ParserError::RecursionLimitExceeded => Error::new(
            cairn_common::ErrorKind::ParseError,
            "You have an error in your SQL syntax; the statement nests deeper than this server allows",
        ),
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => parser_error(statement, &m),
    }
}

/// Parses one statement.
pub(crate) fn parse(statement: &StatementText) -> Result<Statement, Error> {
    check_operator_counts(statement)?;
    if let Some(account) = crate::users::parse(statement)? {
        return Ok(Statement::Account(account));
    }
    let mut c = Cursor::new(statement);
    let Some(first) = c.peek() else {
        return Err(Error::new(cairn_common::ErrorKind::EmptyQuery, "Query was empty"));
    };
    let keyword = match &first.token {
        Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        Token::LParen => return parse_with_sqlparser(statement, &statement.tokens),
        _ => return Err(c.error()),
    };
    match keyword.as_str() {
        "KILL" | "FLUSH" | "LOCK" | "UNLOCK" | "ALTER" | "SHOW" | "ANALYZE" | "OPTIMIZE"
        | "CHECK" | "REPAIR" | "CHECKSUM"
            if crate::session::admin::claims(statement) =>
        {
            crate::session::admin::parse(statement)
        }
        "LOAD" => crate::session::load_data::parse(statement),
        "SELECT" | "WITH" => match crate::routine::parse::into_position(statement) {
            Some((into, end)) => crate::routine::parse::parse_select_into(statement, into, end),
            None => parse_query(statement),
        },
        "VALUES" | "TABLE" => parse_query(statement),
        "CREATE" if crate::routine::parse::is_create_routine(statement) => crate::routine::parse::parse_create(statement),
        "DROP" if crate::routine::parse::is_drop_routine(statement) => crate::routine::parse::parse_drop(statement),
        "ALTER" if crate::routine::parse::is_alter_routine(statement) => crate::routine::parse::parse_alter(statement),
        "CALL" => crate::routine::parse::parse_call(statement),
        "INSERT" | "REPLACE" | "UPDATE" | "DELETE" => parse_with_sqlparser(statement, &rewrite_binary_operator(&statement.tokens)),
        "CREATE" => parse_create(statement, &mut c),
        "DROP" => parse_drop(&mut c),
        "TRUNCATE" => {
            c.next();
            c.eat("TABLE");
            let table = c.table_name()?;
            c.expect_end()?;
            Ok(Statement::Truncate(table))
        }
        "USE" => {
            c.next();
            let name = c.ident()?;
            c.expect_end()?;
            Ok(Statement::Use(name))
        }
        "SET" => parse_set(&mut c),
        "SHOW" => parse_show(&mut c),
        "DESCRIBE" | "DESC" | "EXPLAIN" => parse_describe(statement, &mut c),
        "BEGIN" => {
            c.next();
            c.eat("WORK");
            c.expect_end()?;
            Ok(Statement::Begin)
        }
        "START" => {
            c.next();
            c.expect("TRANSACTION")?;
            // Characteristics: READ WRITE, READ ONLY, WITH CONSISTENT SNAPSHOT, in any order.
            loop {
                if c.eat("READ") {
                    if !(c.eat("WRITE") || c.eat("ONLY")) {
                        return Err(c.error());
                    }
                } else if c.eat("WITH") {
                    c.expect("CONSISTENT")?;
                    c.expect("SNAPSHOT")?;
                } else {
                    break;
                }
                if !c.eat_token(&Token::Comma) {
                    break;
                }
            }
            c.expect_end()?;
            Ok(Statement::Begin)
        }
        "COMMIT" | "ROLLBACK" => {
            c.next();
            c.eat("WORK");
            if keyword == "ROLLBACK" && c.eat("TO") {
                c.eat("SAVEPOINT");
                let name = c.ident()?;
                c.expect_end()?;
                return Ok(Statement::RollbackToSavepoint(name));
            }
            if c.eat("AND") {
                c.eat("NO");
                c.expect("CHAIN")?;
            }
            if c.eat("NO") {
                c.expect("RELEASE")?;
            } else {
                c.eat("RELEASE");
            }
            c.expect_end()?;
            Ok(if keyword == "COMMIT" { Statement::Commit } else { Statement::Rollback })
        }
        "SAVEPOINT" => {
            c.next();
            let name = c.ident()?;
            c.expect_end()?;
            Ok(Statement::Savepoint(name))
        }
        "RELEASE" => {
            c.next();
            c.expect("SAVEPOINT")?;
            let name = c.ident()?;
            c.expect_end()?;
            Ok(Statement::ReleaseSavepoint(name))
        }
        "ALTER" if c.peek_nth(1).is_some_and(|t| matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case("TABLE"))) => {
            parse_with_sqlparser(statement, &statement.tokens)
        }
        "RENAME" if c.peek_nth(1).is_some_and(|t| matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case("TABLE"))) => {
            c.next();
            c.next();
            let mut pairs = Vec::new();
            loop {
                let from = c.table_name()?;
                c.expect("TO")?;
                let to = c.table_name()?;
                pairs.push((from, to));
                if !c.eat_token(&Token::Comma) {
                    break;
                }
            }
            c.expect_end()?;
            Ok(Statement::RenameTable(pairs))
        }
        "DO" => {
            c.next();
            let mut exprs = vec![c.expr()?];
            while c.eat_token(&Token::Comma) {
                exprs.push(c.expr()?);
            }
            c.expect_end()?;
            Ok(Statement::Do(exprs))
        }
        "ALTER" | "RENAME" | "GRANT" | "REVOKE" | "FLUSH" | "KILL" | "LOCK" | "UNLOCK" | "ANALYZE" | "OPTIMIZE"
        | "CHECK" | "REPAIR" | "PREPARE" | "EXECUTE" | "DEALLOCATE" | "XA" | "HANDLER"
        | "CHECKSUM" | "INSTALL" | "UNINSTALL" | "RESET" | "PURGE" | "CHANGE" | "SIGNAL" | "RESIGNAL" | "GET"
        | "IMPORT" | "CLONE" | "RESTART" | "SHUTDOWN" | "HELP" | "BINLOG" | "CACHE" | "TABLE_STATS" => {
            let words: Vec<String> =
                statement.significant().iter().take(2).map(|t| t.token.to_string().to_ascii_uppercase()).collect();
            Ok(Statement::Unsupported(words.join(" ")))
        }
        _ => Err(c.error()),
    }
}

/// A SELECT: `LOCK IN SHARE MODE` is rewritten to `FOR SHARE`, then sqlparser.
fn parse_query(statement: &StatementText) -> Result<Statement, Error> {
    let tokens = rewrite_lock_in_share_mode(&statement.tokens);
    parse_with_sqlparser(statement, &rewrite_binary_operator(&tokens))
}

/// MySQL's `BINARY x` casts only its operand (`WHERE BINARY name = 'X'` compares
/// case-sensitively), but sqlparser casts the whole expression that follows. The operand (a
/// possibly qualified name, a literal, or a parenthesized group) is rewritten to
/// `CAST(x AS BINARY)` on tokens before sqlparser sees it.
fn rewrite_binary_operator(tokens: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let significant: Vec<usize> = (0..tokens.len()).filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_))).collect();
    let is_word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let mut out = Vec::with_capacity(tokens.len());
    let mut copied = 0;
    let mut s = 0;
    while s < significant.len() {
        let i = significant[s];
        let prev = s.checked_sub(1).map(|p| &tokens[significant[p]].token);
        let after_cast_keyword = prev.is_some_and(|p| ["AS", "USING", "COLLATE", "SET", "CHARSET"].iter().any(|w| is_word(p, w)));
        if !is_word(&tokens[i].token, "BINARY") || after_cast_keyword || s + 1 >= significant.len() {
            s += 1;
            continue;
        }
        // The operand: s+1 ..= end (indexes into `significant`).
        let first = s + 1;
        let mut end = first;
        match &tokens[significant[first]].token {
            Token::LParen => {
                let mut depth = 0;
                let mut k = first;
                while k < significant.len() {
                    match tokens[significant[k]].token {
                        Token::LParen => depth += 1,
                        Token::RParen => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    k += 1;
                }
                if k >= significant.len() {
                    s += 1;
                    continue;
                }
                end = k;
            }
            Token::Word(_) => {
                while end + 2 < significant.len()
                    && matches!(tokens[significant[end + 1]].token, Token::Period)
                    && matches!(tokens[significant[end + 2]].token, Token::Word(_))
                {
                    end += 2;
                }
                // A function call `BINARY f(x)`: take its argument list too.
                if end + 1 < significant.len() && matches!(tokens[significant[end + 1]].token, Token::LParen) {
                    s += 1;
                    continue;
                }
            }
            Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) | Token::Number(..) | Token::HexStringLiteral(_) | Token::Placeholder(_) => {}
            _ => {
                s += 1;
                continue;
            }
        }
        let span = tokens[i].span;
        let make = |token: Token| TokenWithSpan { token, span };
        out.extend_from_slice(&tokens[copied..i]);
        out.push(make(Token::make_keyword("CAST")));
        out.push(make(Token::LParen));
        let last = significant[end];
        out.extend_from_slice(&tokens[significant[first]..=last]);
        out.push(make(Token::Whitespace(sqlparser::tokenizer::Whitespace::Space)));
        out.push(make(Token::make_keyword("AS")));
        out.push(make(Token::Whitespace(sqlparser::tokenizer::Whitespace::Space)));
        out.push(make(Token::make_keyword("BINARY")));
        out.push(make(Token::RParen));
        copied = last + 1;
        s = end + 1;
    }
    out.extend_from_slice(&tokens[copied..]);
    out
}

fn rewrite_lock_in_share_mode(tokens: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let significant: Vec<usize> = (0..tokens.len()).filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_))).collect();
    let words = ["LOCK", "IN", "SHARE", "MODE"];
    for w in significant.windows(4) {
        let hit = w.iter().zip(words).all(|(&i, word)| {
            matches!(&tokens[i].token, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(word))
        });
        if hit {
            // MySQL's old spelling of FOR SHARE: rewrite it so the lock reaches the plan.
            let mut out = tokens[..w[0]].to_vec();
            let span = tokens[w[0]].span;
            out.push(TokenWithSpan { token: Token::make_keyword("FOR"), span });
            out.push(TokenWithSpan { token: Token::Whitespace(sqlparser::tokenizer::Whitespace::Space), span });
            out.push(TokenWithSpan { token: Token::make_keyword("SHARE"), span });
            out.extend_from_slice(&tokens[w[3] + 1..]);
            return out;
        }
    }
    tokens.to_vec()
}

fn parse_with_sqlparser(statement: &StatementText, tokens: &[TokenWithSpan]) -> Result<Statement, Error> {
    let mut parser = Parser::new(&DIALECT).with_recursion_limit(RECURSION_LIMIT).with_tokens_with_locations(tokens.to_vec());
    let parsed = parser.parse_statement().map_err(|e| map_parser_error(statement, e))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(syntax_error_at(statement, Some(&next)));
    }
    Ok(match parsed {
        ast::Statement::Query(q) => Statement::Query(q),
        ast::Statement::Insert(i) => Statement::Insert(Box::new(i)),
        ast::Statement::Update(u) => Statement::Update(Box::new(u)),
        ast::Statement::Delete(d) => Statement::Delete(Box::new(d)),
        ast::Statement::CreateTable(t) => Statement::CreateTable { table: Box::new(t), partitioning: None },
        ast::Statement::CreateIndex(ix) => Statement::CreateIndex(Box::new(ix)),
        ast::Statement::AlterTable(at) => Statement::AlterTable(Box::new(at)),
        _ => {
            // Named by its first words (the parsed form may be deep; printing it is not needed).
            let head: Vec<String> = statement.significant().iter().take(2).map(|t| t.token.to_string().to_ascii_uppercase()).collect();
            Statement::Unsupported(head.join(" "))
        }
    })
}

fn parse_create(statement: &StatementText, c: &mut Cursor<'_>) -> Result<Statement, Error> {
    c.next(); // CREATE
    if c.eat("DATABASE") || c.eat("SCHEMA") {
        let if_not_exists = if c.eat("IF") {
            c.expect("NOT")?;
            c.expect("EXISTS")?;
            true
        } else {
            false
        };
        let name = c.ident()?;
        let (mut charset, mut collation) = (None, None);
        loop {
            c.eat("DEFAULT");
            if c.eat("CHARACTER") {
                c.expect("SET")?;
                c.eat_token(&Token::Eq);
                charset = Some(c.name_or_string()?);
            } else if c.eat("CHARSET") {
                c.eat_token(&Token::Eq);
                charset = Some(c.name_or_string()?);
            } else if c.eat("COLLATE") {
                c.eat_token(&Token::Eq);
                collation = Some(c.name_or_string()?);
            } else if c.eat("ENCRYPTION") {
                c.eat_token(&Token::Eq);
                let value = c.string()?;
                if !value.eq_ignore_ascii_case("n") {
                    return Ok(Statement::Unsupported("ENCRYPTION='Y'".into()));
                }
            } else {
                break;
            }
        }
        c.expect_end()?;
        return Ok(Statement::CreateDatabase { name, if_not_exists, charset, collation });
    }
    // CREATE [TEMPORARY] TABLE: cut PARTITION BY …, then sqlparser.
    let mut look = 0;
    while let Some(t) = c.peek_nth(look) {
        match &t.token {
            Token::Word(w) if w.value.eq_ignore_ascii_case("TABLE") => {
                if (0..look).any(|i| matches!(c.peek_nth(i), Some(TokenWithSpan { token: Token::Word(w), .. }) if w.value.eq_ignore_ascii_case("TEMPORARY"))) {
                    return Ok(Statement::Unsupported("CREATE TEMPORARY TABLE".into()));
                }
                let (tokens, partitioning) = cut_partitioning(statement)?;
                let parsed = parse_with_sqlparser(statement, &tokens)?;
                return Ok(match parsed {
                    Statement::CreateTable { table, .. } => Statement::CreateTable { table, partitioning },
                    other => other,
                });
            }
            Token::Word(w) if look < 6 && matches!(w.value.to_ascii_uppercase().as_str(), "TEMPORARY" | "OR" | "REPLACE") => {}
            _ => break,
        }
        look += 1;
    }
    let words: Vec<String> = statement.significant().iter().take(3).map(|t| t.token.to_string().to_ascii_uppercase()).collect();
    if matches!(words.get(1).map(String::as_str), Some("INDEX")) || (words.get(1).map(String::as_str) == Some("UNIQUE") && words.get(2).map(String::as_str) == Some("INDEX")) {
        return parse_with_sqlparser(statement, &statement.tokens);
    }
    let what = match words.get(1).map(String::as_str) {
        Some("UNIQUE" | "INDEX" | "FULLTEXT" | "SPATIAL") => "CREATE INDEX".to_string(),
        Some("DEFINER") | Some("FUNCTION") | Some("PROCEDURE") | Some("TRIGGER") | Some("EVENT") | Some("AGGREGATE") => {
            "CREATE FUNCTION/PROCEDURE".to_string()
        }
        _ => words.join(" "),
    };
    Ok(Statement::Unsupported(what))
}

/// Removes `PARTITION BY KEY [ALGORITHM = n] (cols) [PARTITIONS n]` from a CREATE TABLE's
/// tokens (it may come from an executable comment `/*!50100 … */`, which the tokenizer has
/// already expanded).
fn cut_partitioning(statement: &StatementText) -> Result<(Vec<TokenWithSpan>, Option<PartitionSpec>), Error> {
    let tokens = &statement.tokens;
    let mut depth = 0i32;
    let mut start = None;
    for (i, t) in tokens.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 && w.quote_style.is_none() && w.keyword == Keyword::PARTITION => {
                start = Some(i);
                break;
            }
            _ => {}
        }
    }
    let Some(start) = start else {
        return Ok((tokens.clone(), None));
    };
    let sub = StatementText { tokens: tokens[start..].to_vec(), text: statement.text.clone() };
    let mut c = Cursor::new(&sub);
    c.expect("PARTITION")?;
    c.expect("BY")?;
    c.eat("LINEAR");
    if !c.eat("KEY") {
        let kind = c.peek().map(|t| t.token.to_string().to_ascii_uppercase()).unwrap_or_default();
        return Err(Error::not_supported(format!("PARTITION BY {kind} (only PARTITION BY KEY)")));
    }
    if c.eat("ALGORITHM") {
        c.expect_token(&Token::Eq)?;
        c.number()?;
    }
    c.expect_token(&Token::LParen)?;
    let mut columns = Vec::new();
    if !c.eat_token(&Token::RParen) {
        loop {
            columns.push(c.ident()?);
            if c.eat_token(&Token::RParen) {
                break;
            }
            c.expect_token(&Token::Comma)?;
        }
    }
    let partitions = if c.eat("PARTITIONS") {
        let n = c.number()?;
        Some(u32::try_from(n).map_err(|_| c.error())?)
    } else {
        None
    };
    if !c.at_end() {
        return Err(Error::not_supported("partition definitions after PARTITION BY KEY"));
    }
    Ok((tokens[..start].to_vec(), Some(PartitionSpec { columns, partitions })))
}

fn parse_drop(c: &mut Cursor<'_>) -> Result<Statement, Error> {
    c.next(); // DROP
    if c.eat("DATABASE") || c.eat("SCHEMA") {
        let if_exists = if c.eat("IF") {
            c.expect("EXISTS")?;
            true
        } else {
            false
        };
        let name = c.ident()?;
        c.expect_end()?;
        return Ok(Statement::DropDatabase { name, if_exists });
    }
    if c.eat("TEMPORARY") {
        return Ok(Statement::Unsupported("DROP TEMPORARY TABLE".into()));
    }
    if c.eat("TABLE") || c.eat("TABLES") {
        let if_exists = if c.eat("IF") {
            c.expect("EXISTS")?;
            true
        } else {
            false
        };
        let mut tables = vec![c.table_name()?];
        while c.eat_token(&Token::Comma) {
            tables.push(c.table_name()?);
        }
        if !c.eat("RESTRICT") {
            c.eat("CASCADE");
        }
        c.expect_end()?;
        return Ok(Statement::DropTable { tables, if_exists });
    }
    if c.eat("INDEX") {
        let name = c.ident()?;
        c.expect("ON")?;
        let table = c.table_name()?;
        // ALGORITHM / LOCK options: every index change is online here.
        while c.eat("ALGORITHM") || c.eat("LOCK") {
            c.eat_token(&Token::Eq);
            c.ident()?;
        }
        c.expect_end()?;
        return Ok(Statement::DropIndex { name, table });
    }
    let what = c.peek().map(|t| t.token.to_string().to_ascii_uppercase()).unwrap_or_default();
    if what.is_empty() {
        return Err(c.error());
    }
    Ok(Statement::Unsupported(format!("DROP {what}")))
}

/// `SET` statements: a comma-separated list of assignments, or NAMES / CHARACTER SET /
/// TRANSACTION forms.
fn parse_set(c: &mut Cursor<'_>) -> Result<Statement, Error> {
    c.next(); // SET
    let mut items = Vec::new();
    loop {
        items.push(parse_set_item(c)?);
        if !c.eat_token(&Token::Comma) {
            break;
        }
    }
    c.expect_end()?;
    Ok(Statement::Set(items))
}

fn parse_set_item(c: &mut Cursor<'_>) -> Result<SetItem, Error> {
    if c.eat("NAMES") {
        if c.eat("DEFAULT") {
            return Ok(SetItem::Names { charset: None, collation: None });
        }
        let charset = c.name_or_string()?;
        let collation = if c.eat("COLLATE") { Some(c.name_or_string()?) } else { None };
        return Ok(SetItem::Names { charset: Some(charset), collation });
    }
    if c.peek_is("CHARACTER") && matches!(c.peek_nth(1), Some(t) if matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case("SET"))) {
        c.next();
        c.next();
        return set_charset(c);
    }
    if c.peek_is("CHARSET") && !matches!(c.peek_nth(1).map(|t| &t.token), Some(Token::Eq | Token::Assignment)) {
        c.next();
        return set_charset(c);
    }
    // Scope keywords and `@@scope.` prefixes.
    let mut scope = VarScope::Default;
    if c.peek_is("SESSION") || c.peek_is("LOCAL") || c.peek_is("GLOBAL") || c.peek_is("PERSIST") || c.peek_is("PERSIST_ONLY") {
        // `SET SESSION = 1` would assign a variable named session; MySQL has none, so a scope
        // keyword is always a scope here.
        let word = c.ident()?.to_ascii_uppercase();
        scope = if word == "SESSION" || word == "LOCAL" { VarScope::Session } else { VarScope::Global };
    }
    if c.eat("TRANSACTION") {
        return parse_set_transaction(c, scope);
    }
    let (scope, name) = variable_name(c, scope)?;
    if !(c.eat_token(&Token::Eq) || c.eat_token(&Token::Assignment)) {
        return Err(c.error());
    }
    let value = if c.peek_is("DEFAULT") && matches!(c.peek_nth(1).map(|t| &t.token), None | Some(Token::Comma)) {
        c.next();
        SetValue::Default
    } else if scope != VarScope::User && matches!(c.peek_nth(1).map(|t| &t.token), None | Some(Token::Comma))
        && matches!(c.peek().map(|t| &t.token), Some(Token::Word(w)) if w.quote_style.is_none() && matches!(w.value.to_ascii_uppercase().as_str(), "ON" | "OFF" | "ALL" | "BINARY"))
    {
        // `SET autocommit = ON`: keywords sqlparser would not take as an expression.
        let word = c.ident_any()?;
        SetValue::Expr(Box::new(ast::Expr::Identifier(ast::Ident::new(word))))
    } else {
        SetValue::Expr(Box::new(c.expr()?))
    };
    Ok(SetItem::Variable { scope, name, value })
}

impl Cursor<'_> {
    /// Any word, reserved or not.
    pub(crate) fn ident_any(&mut self) -> Result<String, Error> {
        match self.peek() {
            Some(TokenWithSpan { token: Token::Word(w), .. }) => {
                self.pos += 1;
                Ok(w.value.clone())
            }
            _ => Err(self.error()),
        }
    }
}

fn set_charset(c: &mut Cursor<'_>) -> Result<SetItem, Error> {
    if c.eat("DEFAULT") {
        return Ok(SetItem::CharacterSet { charset: None });
    }
    Ok(SetItem::CharacterSet { charset: Some(c.name_or_string()?) })
}

/// Reads a variable name with its scope: `@x`, `@@x`, `@@session.x`, `@@global.x`, `x`,
/// `x.y` (structured names such as `default.key_buffer_size` are kept whole).
fn variable_name(c: &mut Cursor<'_>, scope: VarScope) -> Result<(VarScope, String), Error> {
    let word = c.ident_any()?;
    if let Some(user) = word.strip_prefix('@').filter(|w| !w.starts_with('@')) {
        if scope != VarScope::Default || user.is_empty() {
            return Err(c.error());
        }
        return Ok((VarScope::User, user.to_string()));
    }
    if let Some(system) = word.strip_prefix("@@") {
        let lower = system.to_ascii_lowercase();
        let explicit = match lower.as_str() {
            "session" | "local" => Some(VarScope::Session),
            "global" | "persist" | "persist_only" => Some(VarScope::Global),
            _ => None,
        };
        if let Some(explicit) = explicit
            && c.eat_token(&Token::Period) {
                let name = c.ident_any()?;
                return Ok((explicit, name));
            }
        return Ok((scope, system.to_string()));
    }
    let mut name = word;
    if c.eat_token(&Token::Period) {
        name = format!("{name}.{}", c.ident_any()?);
    }
    Ok((scope, name))
}

fn parse_set_transaction(c: &mut Cursor<'_>, scope: VarScope) -> Result<SetItem, Error> {
    let (mut isolation, mut read_only) = (None, None);
    loop {
        if c.eat("ISOLATION") {
            c.expect("LEVEL")?;
            let level = if c.eat("READ") {
                if c.eat("COMMITTED") {
                    "READ-COMMITTED"
                } else if c.eat("UNCOMMITTED") {
                    "READ-UNCOMMITTED"
                } else {
                    return Err(c.error());
                }
            } else if c.eat("REPEATABLE") {
                c.expect("READ")?;
                "REPEATABLE-READ"
            } else if c.eat("SERIALIZABLE") {
                "SERIALIZABLE"
            } else {
                return Err(c.error());
            };
            isolation = Some(level.to_string());
        } else if c.eat("READ") {
            if c.eat("ONLY") {
                read_only = Some(true);
            } else if c.eat("WRITE") {
                read_only = Some(false);
            } else {
                return Err(c.error());
            }
        } else {
            return Err(c.error());
        }
        // Characteristics are comma-separated, but so are SET items: look ahead.
        let continues = matches!(c.peek_nth(0).map(|t| &t.token), Some(Token::Comma))
            && matches!(c.peek_nth(1).map(|t| &t.token), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("ISOLATION") || w.value.eq_ignore_ascii_case("READ"));
        if !continues {
            break;
        }
        c.next();
    }
    Ok(SetItem::Transaction { scope, isolation, read_only })
}

pub(crate) fn show_filter(c: &mut Cursor<'_>) -> Result<ShowFilter, Error> {
    let mut filter = ShowFilter::default();
    if c.eat("LIKE") {
        filter.like = Some(c.string()?);
    } else if c.eat("WHERE") {
        filter.filter = Some(c.expr()?);
    }
    Ok(filter)
}

/// `{FROM|IN} db`, optional.
pub(crate) fn from_database(c: &mut Cursor<'_>) -> Result<Option<String>, Error> {
    if c.eat("FROM") || c.eat("IN") { Ok(Some(c.ident()?)) } else { Ok(None) }
}

fn parse_show(c: &mut Cursor<'_>) -> Result<Statement, Error> {
    c.next(); // SHOW
    let show = if c.eat("DATABASES") || c.eat("SCHEMAS") {
        Show::Databases(show_filter(c)?)
    } else if c.eat("CREATE") {
        if c.eat("TABLE") {
            Show::CreateTable(c.table_name()?)
        } else if c.eat("DATABASE") || c.eat("SCHEMA") {
            let if_not_exists = if c.eat("IF") {
                c.expect("NOT")?;
                c.expect("EXISTS")?;
                true
            } else {
                false
            };
            Show::CreateDatabase { name: c.ident()?, if_not_exists }
        } else if c.peek_is("FUNCTION") || c.peek_is("PROCEDURE") {
            let kind = if c.eat("FUNCTION") {
                cairn_common::routine::RoutineKind::Function
            } else {
                c.next();
                cairn_common::routine::RoutineKind::Procedure
            };
            let first = c.ident()?;
            let name = if c.eat_token(&Token::Period) {
                crate::routine::QualifiedName { database: Some(first), name: c.ident()? }
            } else {
                crate::routine::QualifiedName { database: None, name: first }
            };
            Show::CreateRoutine { kind, name }
        } else {
            let what = c.peek().map(|t| t.token.to_string().to_ascii_uppercase()).unwrap_or_default();
            return Ok(Statement::Unsupported(format!("SHOW CREATE {what}")));
        }
    } else if c.eat("WARNINGS") || c.eat("ERRORS") || c.peek_is("COUNT") {
        let count_only = if c.eat("COUNT") {
            c.expect_token(&Token::LParen)?;
            c.expect_token(&Token::Mul)?;
            c.expect_token(&Token::RParen)?;
            if !(c.eat("WARNINGS") || c.eat("ERRORS")) {
                return Err(c.error());
            }
            true
        } else {
            false
        };
        let errors_only = c.tokens[..c.pos]
            .iter()
            .rev()
            .find(|t| !matches!(t.token, Token::Whitespace(_)))
            .is_some_and(|t| matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case("ERRORS")));
        let (mut offset, mut limit) = (0, None);
        if !count_only && c.eat("LIMIT") {
            let first = c.number()?;
            if c.eat_token(&Token::Comma) {
                offset = first;
                limit = Some(c.number()?);
            } else {
                limit = Some(first);
            }
        }
        Show::Warnings { errors_only, count_only, offset, limit }
    } else if c.eat("ENGINES") || (c.eat("STORAGE") && { c.expect("ENGINES")?; true }) {
        Show::Engines
    } else if c.eat("COLLATION") {
        Show::Collation(show_filter(c)?)
    } else if c.eat("CHARSET") || (c.peek_is("CHARACTER") && { c.next(); c.expect("SET")?; true }) {
        Show::CharacterSet(show_filter(c)?)
    } else if c.eat("INDEX") || c.eat("INDEXES") || c.eat("KEYS") {
        if !(c.eat("FROM") || c.eat("IN")) {
            return Err(c.error());
        }
        let mut table = c.table_name()?;
        if let Some(db) = from_database(c)? {
            table.database = Some(db);
        }
        Show::Index { table, filter: show_filter(c)? }
    } else if c.eat("TABLE") {
        c.expect("STATUS")?;
        let database = from_database(c)?;
        Show::TableStatus { database, filter: show_filter(c)? }
    } else if c.eat("PROCESSLIST") {
        Show::Processlist { full: false }
    } else if (c.peek_is("FUNCTION") || c.peek_is("PROCEDURE"))
        && matches!(c.peek_nth(1), Some(TokenWithSpan { token: Token::Word(w), .. }) if w.value.eq_ignore_ascii_case("STATUS"))
    {
        let kind = if c.eat("FUNCTION") {
            cairn_common::routine::RoutineKind::Function
        } else {
            c.next();
            cairn_common::routine::RoutineKind::Procedure
        };
        c.expect("STATUS")?;
        Show::RoutineStatus { kind, filter: show_filter(c)? }
    } else {
        // [GLOBAL|SESSION|LOCAL] VARIABLES/STATUS, [EXTENDED] [FULL] TABLES/COLUMNS/FIELDS.
        let global = if c.eat("GLOBAL") {
            true
        } else {
            let _ = c.eat("SESSION") || c.eat("LOCAL");
            false
        };
        c.eat("EXTENDED");
        let full = c.eat("FULL");
        if c.eat("VARIABLES") {
            Show::Variables { global, filter: show_filter(c)? }
        } else if c.eat("STATUS") {
            Show::Status(show_filter(c)?)
        } else if c.eat("TABLES") {
            let database = from_database(c)?;
            Show::Tables { full, database, filter: show_filter(c)? }
        } else if c.eat("COLUMNS") || c.eat("FIELDS") {
            if !(c.eat("FROM") || c.eat("IN")) {
                return Err(c.error());
            }
            let mut table = c.table_name()?;
            if let Some(db) = from_database(c)? {
                table.database = Some(db);
            }
            Show::Columns { full, table, filter: show_filter(c)? }
        } else if c.eat("PROCESSLIST") {
            Show::Processlist { full }
        } else {
            let what: Vec<String> = std::iter::from_fn(|| c.next().map(|t| t.token.to_string().to_ascii_uppercase())).take(2).collect();
            if what.is_empty() {
                return Err(c.error());
            }
            return Ok(Statement::Unsupported(format!("SHOW {}", what.join(" "))));
        }
    };
    c.expect_end()?;
    Ok(Statement::Show(show))
}

/// `DESCRIBE t [col|'pattern']`, `DESC t`, `EXPLAIN t`; `EXPLAIN SELECT …` is not run yet.
fn parse_describe(statement: &StatementText, c: &mut Cursor<'_>) -> Result<Statement, Error> {
    c.next();
    let next_word = c.peek().and_then(|t| match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    });
    if let Some(word) = next_word
        && matches!(word.as_str(), "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "WITH" | "TABLE" | "FORMAT" | "ANALYZE" | "EXTENDED" | "PARTITIONS" | "FOR") {
            // EXPLAIN [EXTENDED | PARTITIONS | FORMAT = TRADITIONAL] statement.
            if c.eat("EXTENDED") || c.eat("PARTITIONS") {
            } else if c.eat("FORMAT") {
                c.expect_token(&Token::Eq)?;
                let format = c.ident()?;
                if !format.eq_ignore_ascii_case("TRADITIONAL") {
                    return Ok(Statement::Unsupported(format!("EXPLAIN FORMAT={}", format.to_ascii_uppercase())));
                }
            } else if c.peek_is("ANALYZE") || c.peek_is("FOR") {
                return Ok(Statement::Unsupported("EXPLAIN ANALYZE / EXPLAIN FOR CONNECTION".into()));
            }
            c.skip_trivia();
            let inner = StatementText { tokens: statement.tokens[c.pos..].to_vec(), text: statement.text.clone() };
            let explained = parse(&inner)?;
            return match explained {
                Statement::Query(_) | Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => Ok(Statement::Explain(Box::new(explained))),
                _ => Err(c.error()),
            };
        }
    let table = c.table_name()?;
    let mut filter = ShowFilter::default();
    if !c.at_end() {
        let pattern = c.name_or_string()?;
        filter.like = Some(pattern);
    }
    c.expect_end()?;
    Ok(Statement::Show(Show::Columns { full: false, table, filter }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::split;

    fn one(sql: &str) -> Result<Statement, Error> {
        let mut parts = split(sql)?;
        assert_eq!(parts.len(), 1, "{sql}");
        parse(&parts.remove(0))
    }

    #[test]
    fn set_forms_clients_send() {
        let Statement::Set(items) = one("SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'").unwrap() else { panic!() };
        assert!(matches!(&items[0], SetItem::Names { charset: Some(c), collation: Some(k) } if c == "utf8mb4" && k == "utf8mb4_general_ci"));
        let Statement::Set(items) = one("SET @@session.autocommit = OFF").unwrap() else { panic!() };
        assert!(matches!(&items[0], SetItem::Variable { scope: VarScope::Session, name, .. } if name == "autocommit"));
        let Statement::Set(items) = one("set autocommit=1, sql_mode = concat(@@sql_mode,',STRICT_TRANS_TABLES')").unwrap() else { panic!() };
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[1], SetItem::Variable { scope: VarScope::Default, name, value: SetValue::Expr(e) } if name == "sql_mode" && matches!(e.as_ref(), ast::Expr::Function(_))));
        let Statement::Set(items) = one("SET @x := 5, @@global.max_connections = DEFAULT, SESSION sql_mode = ''").unwrap() else { panic!() };
        assert!(matches!(&items[0], SetItem::Variable { scope: VarScope::User, name, .. } if name == "x"));
        assert!(matches!(&items[1], SetItem::Variable { scope: VarScope::Global, value: SetValue::Default, .. }));
        assert!(matches!(&items[2], SetItem::Variable { scope: VarScope::Session, .. }));
        let Statement::Set(items) = one("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY").unwrap() else { panic!() };
        assert!(matches!(&items[0], SetItem::Transaction { scope: VarScope::Session, isolation: Some(l), read_only: Some(true) } if l == "READ-COMMITTED"));
        let Statement::Set(items) = one("SET character_set_results = NULL").unwrap() else { panic!() };
        assert!(matches!(&items[0], SetItem::Variable { name, .. } if name == "character_set_results"));
        let Statement::Set(items) = one("/*!40101 SET NAMES utf8mb4 */").unwrap() else { panic!() };
        assert!(matches!(&items[0], SetItem::Names { .. }));
        assert_eq!(one("SET autocommit").unwrap_err().code(), 1064);
    }

    #[test]
    fn show_family() {
        assert!(matches!(one("SHOW DATABASES LIKE 'cal%'").unwrap(), Statement::Show(Show::Databases(ShowFilter { like: Some(_), .. }))));
        assert!(matches!(one("SHOW FULL TABLES FROM `calmail`").unwrap(), Statement::Show(Show::Tables { full: true, database: Some(_), .. })));
        assert!(matches!(one("SHOW schemas").unwrap(), Statement::Show(Show::Databases(_))));
        assert!(matches!(one("SHOW FULL COLUMNS FROM t FROM db LIKE 'a%'").unwrap(), Statement::Show(Show::Columns { full: true, .. })));
        assert!(matches!(one("SHOW SESSION VARIABLES WHERE Variable_name = 'x'").unwrap(), Statement::Show(Show::Variables { global: false, filter: ShowFilter { filter: Some(_), .. } })));
        assert!(matches!(one("SHOW WARNINGS LIMIT 1, 2").unwrap(), Statement::Show(Show::Warnings { offset: 1, limit: Some(2), errors_only: false, count_only: false })));
        assert!(matches!(one("SHOW COUNT(*) ERRORS").unwrap(), Statement::Show(Show::Warnings { errors_only: true, count_only: true, .. })));
        assert!(matches!(one("SHOW CREATE TABLE `db`.`t`").unwrap(), Statement::Show(Show::CreateTable(TableName { database: Some(_), .. }))));
        assert!(matches!(one("SHOW CHARACTER SET LIKE 'utf8%'").unwrap(), Statement::Show(Show::CharacterSet(_))));
        assert!(matches!(one("SHOW GRANTS FOR 'x'@'%'").unwrap(), Statement::Account(_)));
        assert!(matches!(one("DESCRIBE `db`.`t`").unwrap(), Statement::Show(Show::Columns { .. })));
        assert!(matches!(one("EXPLAIN SELECT 1").unwrap(), Statement::Explain(_)));
        assert!(matches!(one("EXPLAIN FORMAT=JSON SELECT 1").unwrap(), Statement::Unsupported(_)));
    }

    #[test]
    fn ddl_and_transactions() {
        let Statement::CreateDatabase { name, if_not_exists, charset, collation } =
            one("CREATE DATABASE IF NOT EXISTS calmail DEFAULT CHARACTER SET = utf8mb4 COLLATE utf8mb4_bin").unwrap()
        else {
            panic!()
        };
        assert_eq!((name.as_str(), if_not_exists, charset.as_deref(), collation.as_deref()), ("calmail", true, Some("utf8mb4"), Some("utf8mb4_bin")));
        assert!(matches!(one("DROP SCHEMA IF EXISTS x").unwrap(), Statement::DropDatabase { if_exists: true, .. }));
        let Statement::DropTable { tables, if_exists } = one("DROP TABLE IF EXISTS a, db.b").unwrap() else { panic!() };
        assert!(if_exists);
        assert_eq!(tables[1], TableName { database: Some("db".into()), name: "b".into() });
        let Statement::CreateTable { partitioning, .. } =
            one("CREATE TABLE t (a INT PRIMARY KEY, b INT) ENGINE=NDBCLUSTER /*!50100 PARTITION BY KEY (a) PARTITIONS 4 */").unwrap()
        else {
            panic!()
        };
        assert_eq!(partitioning, Some(PartitionSpec { columns: vec!["a".into()], partitions: Some(4) }));
        assert_eq!(one("CREATE TABLE t (a INT) PARTITION BY RANGE (a)").unwrap_err().code(), 1235);
        assert!(matches!(one("START TRANSACTION WITH CONSISTENT SNAPSHOT").unwrap(), Statement::Begin));
        assert!(matches!(one("BEGIN WORK").unwrap(), Statement::Begin));
        assert!(matches!(one("rollback").unwrap(), Statement::Rollback));
        assert!(matches!(one("COMMIT AND NO CHAIN NO RELEASE").unwrap(), Statement::Commit));
        assert!(matches!(one("USE `calmail`").unwrap(), Statement::Use(db) if db == "calmail"));
        assert!(matches!(one("CREATE INDEX ix ON t (a)").unwrap(), Statement::CreateIndex(_)));
        assert!(matches!(one("CREATE UNIQUE INDEX ix ON t (a, b)").unwrap(), Statement::CreateIndex(ix) if ix.unique));
        assert!(matches!(one("DROP INDEX ix ON db.t").unwrap(), Statement::DropIndex { .. }));
        assert!(matches!(one("ALTER TABLE t ADD INDEX (a), DROP INDEX b").unwrap(), Statement::AlterTable(_)));
        assert!(matches!(one("RENAME TABLE a TO b, c TO d").unwrap(), Statement::RenameTable(p) if p.len() == 2));
        assert!(matches!(one("DO RELEASE_LOCK('x'), 1").unwrap(), Statement::Do(e) if e.len() == 2));
        assert!(matches!(one("SELECT * FROM t WHERE id = 1 LOCK IN SHARE MODE").unwrap(), Statement::Query(_)));
        assert!(matches!(one("TRUNCATE TABLE t").unwrap(), Statement::Truncate(_)));
    }

    #[test]
    fn binary_casts_only_its_operand() {
        let Statement::Query(q) = one("SELECT * FROM t WHERE BINARY a.name = 'X' AND b = 1").unwrap() else { panic!() };
        assert_eq!(q.to_string(), "SELECT * FROM t WHERE CAST(a.name AS BINARY) = 'X' AND b = 1");
        let Statement::Query(q) = one("SELECT BINARY 'x' = 'X', CAST(1 AS BINARY), BINARY (a = b) FROM t").unwrap() else { panic!() };
        assert_eq!(q.to_string(), "SELECT CAST('x' AS BINARY) = 'X', CAST(1 AS BINARY), CAST((a = b) AS BINARY) FROM t");
    }

    #[test]
    fn syntax_errors_are_1064() {
        for sql in ["SELEC 1", "SELECT FROM", "INSERT INTO", "CREATE DATABASE", "SHOW TABLES FROM", "SET @x", "DROP TABLE"] {
            let err = one(sql).unwrap_err();
            assert_eq!(err.code(), 1064, "{sql}: {err}");
        }
    }
}

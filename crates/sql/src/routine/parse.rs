//! The routine grammar, by hand: `CREATE FUNCTION/PROCEDURE` headers, the body language
//! (blocks, declarations, handlers, cursors, control flow, SIGNAL), `DROP`, `ALTER`, `CALL` and
//! `SELECT … INTO`.
//!
//! A body is read on the tokens of the whole CREATE statement (sqlparser's tokenizer, as for
//! every statement). Control statements are parsed here; their expressions by sqlparser's
//! expression parser from the current token; leaf statements (SELECT, INSERT, UPDATE, DELETE,
//! REPLACE, DDL, SET) are cut at their `;` and parsed by the ordinary statement path, so a
//! statement means the same inside a routine as outside. Names are resolved as the body is
//! read: variables to frame slots (innermost declaration wins), labels, cursors and condition
//! names to ids, with MySQL's errors for what does not resolve (1308, 1319, 1324, 1327, …).
//!
//! Syntax errors are MySQL's 1064, quoting the text from the offending token on.

use std::sync::Arc;

use sqlparser::ast;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use cairn_common::error::{Error, ErrorKind};
use cairn_common::routine::{DataAccess, ParamMode, RoutineKind, RoutineParam, RoutineType, SqlSecurity};
use cairn_common::{bail, err};

use super::{
    Assignment, Block, CallStmt, Characteristics, ConditionValue, CreateRoutine, CursorDecl, Handler, Leaf, LocalVar, Locals,
    Program, QualifiedName, RoutineExpr, RoutineStatement, Signal, Stmt, Target, type_column,
};
use crate::lexer::{DIALECT, Locator, StatementText, syntax_error_at};
use crate::parse::{SetItem, SetValue, Statement, VarScope, map_parser_error};
use crate::types::{self, SqlType};

/// How deep sqlparser may nest inside one expression or data type of a body.
const EXPR_RECURSION_LIMIT: usize = 64;
/// How deep control statements may nest (blocks, IF, loops): the parser and the interpreter
/// recurse on them.
const MAX_NESTING: usize = 48;
/// Most variables, cursors and labels one body may declare.
const MAX_DECLARATIONS: usize = 4096;

/// A cursor over one statement's significant tokens.
pub(crate) struct TokenCursor<'a> {
    statement: &'a StatementText,
    /// Indexes of the significant (non-whitespace) tokens.
    significant: Vec<usize>,
    pos: usize,
}

impl<'a> TokenCursor<'a> {
    pub fn new(statement: &'a StatementText) -> TokenCursor<'a> {
        let significant = (0..statement.tokens.len()).filter(|&i| !matches!(statement.tokens[i].token, Token::Whitespace(_))).collect();
        TokenCursor { statement, significant, pos: 0 }
    }

    fn peek_nth(&self, n: usize) -> Option<&'a TokenWithSpan> {
        let statement: &'a StatementText = self.statement;
        self.significant.get(self.pos + n).map(|&i| &statement.tokens[i])
    }

    fn peek(&self) -> Option<&'a TokenWithSpan> {
        self.peek_nth(0)
    }

    fn peek_token(&self) -> Option<&'a Token> {
        self.peek().map(|t| &t.token)
    }

    fn next(&mut self) -> Option<&'a TokenWithSpan> {
        let t = self.peek()?;
        self.pos += 1;
        Some(t)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.significant.len()
    }

    fn error(&self) -> Error {
        syntax_error_at(self.statement, self.peek())
    }

    fn is_word(token: Option<&Token>, word: &str) -> bool {
        matches!(token, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
    }

    fn peek_is(&self, word: &str) -> bool {
        Self::is_word(self.peek_token(), word)
    }

    fn peek_nth_is(&self, n: usize, word: &str) -> bool {
        Self::is_word(self.peek_nth(n).map(|t| &t.token), word)
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.peek_is(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_token(&mut self, token: &Token) -> bool {
        if self.peek_token() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, word: &str) -> Result<(), Error> {
        if self.eat(word) { Ok(()) } else { Err(self.error()) }
    }

    fn expect_token(&mut self, token: &Token) -> Result<(), Error> {
        if self.eat_token(token) { Ok(()) } else { Err(self.error()) }
    }

    /// A name: a word, backquoted or not (reserved words are taken when the grammar leaves no
    /// doubt, as MySQL does for most of them).
    fn ident(&mut self) -> Result<String, Error> {
        match self.peek_token() {
            Some(Token::Word(w)) if !w.value.starts_with('@') => {
                let v = w.value.clone();
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.error()),
        }
    }

    fn string(&mut self) -> Result<String, Error> {
        match self.peek_token() {
            Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => {
                let v = s.clone();
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.error()),
        }
    }

    /// `name` or `db.name`.
    fn qualified_name(&mut self) -> Result<QualifiedName, Error> {
        let first = self.ident()?;
        if self.eat_token(&Token::Period) {
            let name = self.ident()?;
            Ok(QualifiedName { database: Some(first), name })
        } else {
            Ok(QualifiedName { database: None, name: first })
        }
    }

    /// The raw token index of significant token `pos` (the end of the tokens past the last).
    fn raw(&self, pos: usize) -> usize {
        self.significant.get(pos).copied().unwrap_or(self.statement.tokens.len())
    }

    /// Raw index of the next `;` at or after significant position `pos` (or the end).
    fn statement_end(&self, pos: usize) -> usize {
        let from = self.raw(pos);
        self.statement.tokens[from..].iter().position(|t| t.token == Token::SemiColon).map_or(self.statement.tokens.len(), |p| from + p)
    }

    /// Moves to the first significant token at or after raw index `raw`.
    fn seek_raw(&mut self, raw: usize) {
        self.pos = self.significant.partition_point(|&i| i < raw);
    }

    /// Runs a sqlparser parse function on the tokens from here to the next `;`, then moves past
    /// what it consumed.
    fn with_parser<T>(&mut self, f: impl FnOnce(&mut Parser<'_>) -> Result<T, sqlparser::parser::ParserError>) -> Result<T, Error> {
        let start = self.raw(self.pos);
        let end = self.statement_end(self.pos);
        let tokens = self.statement.tokens[start..end].to_vec();
        let mut parser = Parser::new(&DIALECT).with_recursion_limit(EXPR_RECURSION_LIMIT).with_tokens_with_locations(tokens);
        let value = f(&mut parser).map_err(|e| map_parser_error(self.statement, e))?;
        let consumed = parser.index().min(end - start);
        self.seek_raw(start + consumed);
        Ok(value)
    }

    fn expr(&mut self) -> Result<ast::Expr, Error> {
        if self.at_end() || self.peek_token() == Some(&Token::SemiColon) {
            return Err(self.error());
        }
        self.with_parser(|p| p.parse_expr())
    }

    /// The text between two significant positions (from the start of `from` to the end of the
    /// token before `to`), verbatim.
    fn text_between(&self, from: usize, to: usize) -> String {
        if to <= from {
            return String::new();
        }
        let locator = Locator::new(&self.statement.text);
        let first = &self.statement.tokens[self.raw(from)];
        let last = &self.statement.tokens[self.raw(to - 1)];
        locator.slice(first.span.start, last.span.end).to_string()
    }
}

/// Whether a statement is `CREATE [OR REPLACE] [DEFINER = …] [AGGREGATE] FUNCTION|PROCEDURE`.
pub(crate) fn is_create_routine(statement: &StatementText) -> bool {
    let mut c = TokenCursor::new(statement);
    if !c.eat("CREATE") {
        return false;
    }
    if c.eat("OR") && !c.eat("REPLACE") {
        return false;
    }
    if c.eat("DEFINER") && !(c.eat_token(&Token::Eq) && user_at_host(&mut c).is_ok()) {
        return false;
    }
    c.eat("AGGREGATE");
    c.peek_is("FUNCTION") || c.peek_is("PROCEDURE")
}

/// `CREATE … FUNCTION|PROCEDURE …`, with its body parsed and resolved.
pub(crate) fn parse_create(statement: &StatementText) -> Result<Statement, Error> {
    Ok(Statement::Routine(RoutineStatement::Create(Box::new(create_routine(statement)?))))
}

/// Parses a CREATE statement (a client's, or the one a catalog entry prints).
pub(crate) fn create_routine(statement: &StatementText) -> Result<CreateRoutine, Error> {
    let mut c = TokenCursor::new(statement);
    c.expect("CREATE")?;
    let or_replace = if c.eat("OR") {
        c.expect("REPLACE")?;
        true
    } else {
        false
    };
    let definer = if c.eat("DEFINER") {
        c.expect_token(&Token::Eq)?;
        Some(user_at_host(&mut c)?)
    } else {
        None
    };
    if c.peek_is("AGGREGATE") {
        return Err(Error::not_supported("CREATE AGGREGATE FUNCTION"));
    }
    let kind = if c.eat("FUNCTION") {
        RoutineKind::Function
    } else if c.eat("PROCEDURE") {
        RoutineKind::Procedure
    } else {
        return Err(c.error());
    };
    let if_not_exists = if c.peek_is("IF") && c.peek_nth_is(1, "NOT") {
        c.next();
        c.next();
        c.expect("EXISTS")?;
        true
    } else {
        false
    };
    let name = c.qualified_name()?;
    cairn_common::routine::check_routine_name(&name.name)?;
    c.expect_token(&Token::LParen)?;
    let list_start = c.pos;
    let mut params = Vec::new();
    if c.peek_token() != Some(&Token::RParen) {
        loop {
            // Function parameters have no mode in MySQL's grammar: `IN x INT` is a syntax error.
            let moded = ["IN", "OUT", "INOUT"].iter().any(|m| c.peek_is(m)) && matches!(c.peek_nth(1).map(|t| &t.token), Some(Token::Word(_)));
            if moded && kind == RoutineKind::Function {
                return Err(c.error());
            }
            let mode = if c.eat("INOUT") {
                ParamMode::InOut
            } else if c.eat("OUT") {
                ParamMode::Out
            } else {
                c.eat("IN");
                ParamMode::In
            };
            let pname = c.ident()?;
            if params.iter().any(|p: &RoutineParam| p.name.eq_ignore_ascii_case(&pname)) {
                bail!(DuplicateParameter, "Duplicate parameter: {pname}");
            }
            let ty = data_type(&mut c, &pname)?;
            params.push(RoutineParam { mode, name: pname, ty });
            if !c.eat_token(&Token::Comma) {
                break;
            }
        }
    }
    let list_end = c.pos;
    c.expect_token(&Token::RParen)?;
    let param_list = c.text_between(list_start, list_end);
    let returns = if kind == RoutineKind::Function {
        c.expect("RETURNS")?;
        Some(data_type(&mut c, "")?)
    } else {
        None
    };
    let characteristics = characteristics(&mut c, false)?;
    if c.at_end() {
        return Err(c.error());
    }
    let body_start = c.pos;
    let body_text = c.text_between(body_start, c.significant.len());
    let mut parser = BodyParser::new(c, kind);
    for p in &params {
        parser.declare_variable(&p.name, Some(p.ty.clone()))?;
    }
    parser.param_count = params.len();
    let body = parser.statement(0)?;
    if !parser.c.at_end() {
        // A single-statement body ends at its `;`; anything after it is a new statement the
        // client should have sent separately.
        return Err(parser.c.error());
    }
    let returns_column = returns.as_ref().map(|r| {
        let column = type_column("", r);
        let sql = SqlType::from_column(&column).nullable(true);
        (column, sql)
    });
    let program = Program { body, locals: parser.locals, param_count: params.len(), cursors: parser.cursors, returns: returns_column };
    Ok(CreateRoutine {
        or_replace,
        if_not_exists,
        definer,
        kind,
        name,
        params,
        returns,
        param_list,
        body_text,
        characteristics,
        program: Arc::new(program),
    })
}

/// `'u'@'h'`, `` `u`@`h` ``, `u@h`, `u`, `CURRENT_USER[()]` (None for the current user).
fn user_at_host(c: &mut TokenCursor<'_>) -> Result<(String, String), Error> {
    if c.eat("CURRENT_USER") {
        if c.eat_token(&Token::LParen) {
            c.expect_token(&Token::RParen)?;
        }
        return Ok((String::new(), String::new()));
    }
    let user = match c.peek_token() {
        Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => s.clone(),
        Some(Token::Word(w)) => w.value.clone(),
        _ => return Err(c.error()),
    };
    c.next();
    match c.peek_token() {
        Some(Token::AtSign) => {
            c.next();
            let host = match c.peek_token() {
                Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => s.clone(),
                Some(Token::Word(w)) => w.value.clone(),
                _ => return Err(c.error()),
            };
            c.next();
            Ok((user, host))
        }
        Some(Token::Word(w)) if w.quote_style.is_none() && w.value.starts_with('@') && w.value.len() > 1 => {
            let host = w.value[1..].to_string();
            c.next();
            Ok((user, host))
        }
        _ => Ok((user, "%".to_string())),
    }
}

/// The characteristics of CREATE (after the parameters) or ALTER. `alter` refuses those ALTER
/// cannot change ([NOT] DETERMINISTIC, LANGUAGE stays accepted).
fn characteristics(c: &mut TokenCursor<'_>, alter: bool) -> Result<Characteristics, Error> {
    let mut out = Characteristics::default();
    loop {
        if c.eat("COMMENT") {
            out.comment = Some(c.string()?);
        } else if c.eat("LANGUAGE") {
            c.expect("SQL")?;
        } else if !alter && c.peek_is("NOT") && c.peek_nth_is(1, "DETERMINISTIC") {
            c.next();
            c.next();
            out.deterministic = Some(false);
        } else if !alter && c.eat("DETERMINISTIC") {
            out.deterministic = Some(true);
        } else if c.peek_is("CONTAINS") && c.peek_nth_is(1, "SQL") {
            c.next();
            c.next();
            out.data_access = Some(DataAccess::ContainsSql);
        } else if c.peek_is("NO") && c.peek_nth_is(1, "SQL") {
            c.next();
            c.next();
            out.data_access = Some(DataAccess::NoSql);
        } else if c.peek_is("READS") && c.peek_nth_is(1, "SQL") {
            c.next();
            c.next();
            c.expect("DATA")?;
            out.data_access = Some(DataAccess::ReadsSqlData);
        } else if c.peek_is("MODIFIES") && c.peek_nth_is(1, "SQL") {
            c.next();
            c.next();
            c.expect("DATA")?;
            out.data_access = Some(DataAccess::ModifiesSqlData);
        } else if c.peek_is("SQL") && c.peek_nth_is(1, "SECURITY") {
            c.next();
            c.next();
            out.security = Some(if c.eat("DEFINER") {
                SqlSecurity::Definer
            } else if c.eat("INVOKER") {
                SqlSecurity::Invoker
            } else {
                return Err(c.error());
            });
        } else {
            return Ok(out);
        }
    }
}

/// A declared type: sqlparser's data type, then `CHARACTER SET x` / `CHARSET x` / `COLLATE y`.
fn data_type(c: &mut TokenCursor<'_>, name: &str) -> Result<RoutineType, Error> {
    if c.at_end() {
        return Err(c.error());
    }
    let dt = c.with_parser(|p| p.parse_data_type())?;
    // utf8mb4: four bytes per character bound a VARCHAR's length (MySQL's 16383).
    let (ty, _) = crate::ddl::column_type(&dt, name, 4)?;
    let mut charset = None;
    let mut collation = None;
    loop {
        if c.peek_is("CHARACTER") && c.peek_nth_is(1, "SET") {
            c.next();
            c.next();
            charset = Some(name_or_string(c)?);
        } else if c.eat("CHARSET") {
            charset = Some(name_or_string(c)?);
        } else if c.eat("COLLATE") {
            collation = Some(name_or_string(c)?);
        } else {
            break;
        }
    }
    let collation = match (charset, collation) {
        (_, Some(coll)) => {
            let known = types::normalize_collation(&coll).ok_or_else(|| err!(UnknownCollation, "Unknown collation: '{coll}'"))?;
            Some(known.to_string())
        }
        (Some(cs), None) => {
            let known = types::normalize_charset(&cs).ok_or_else(|| err!(UnknownCharacterSet, "Unknown character set: '{cs}'"))?;
            types::default_collation(known).map(str::to_string)
        }
        (None, None) => None,
    };
    Ok(RoutineType { ty, collation })
}

fn name_or_string(c: &mut TokenCursor<'_>) -> Result<String, Error> {
    match c.peek_token() {
        Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => {
            let v = s.clone();
            c.next();
            Ok(v)
        }
        Some(Token::Word(w)) => {
            let v = w.value.clone();
            c.next();
            Ok(v)
        }
        _ => Err(c.error()),
    }
}

/// Which declarations a block has seen so far (MySQL's order: variables and conditions, then
/// cursors, then handlers).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DeclarationStage {
    Variables,
    Cursors,
    Handlers,
}

/// What a block declared, to undo when it ends.
struct BlockScope {
    variables: usize,
    cursors: usize,
    conditions: usize,
}

struct BodyParser<'a> {
    c: TokenCursor<'a>,
    kind: RoutineKind,
    locals: Vec<LocalVar>,
    param_count: usize,
    /// Visible variables: (name, slot).
    visible: Vec<(String, u16)>,
    visible_snapshot: Option<Arc<Locals>>,
    cursors: Vec<CursorDecl>,
    visible_cursors: Vec<(String, usize)>,
    /// Declared conditions: name → SQLSTATE or error number.
    conditions: Vec<(String, ConditionValue)>,
    labels: Vec<String>,
    /// Open labelled constructs: (label id, is a loop).
    open_labels: Vec<(usize, bool)>,
}

impl<'a> BodyParser<'a> {
    fn new(c: TokenCursor<'a>, kind: RoutineKind) -> BodyParser<'a> {
        BodyParser {
            c,
            kind,
            locals: Vec::new(),
            param_count: 0,
            visible: Vec::new(),
            visible_snapshot: None,
            cursors: Vec::new(),
            visible_cursors: Vec::new(),
            conditions: Vec::new(),
            labels: Vec::new(),
            open_labels: Vec::new(),
        }
    }

    /// The variables visible here, shared by every statement until the next declaration.
    fn locals(&mut self) -> Arc<Locals> {
        if let Some(l) = &self.visible_snapshot {
            return l.clone();
        }
        let visible = self.visible.iter().map(|(n, i)| (n.clone(), *i, self.locals[*i as usize].sql.clone())).collect();
        let l = Arc::new(Locals { visible });
        self.visible_snapshot = Some(l.clone());
        l
    }

    fn new_slot(&mut self, name: &str, declared: Option<RoutineType>) -> Result<u16, Error> {
        if self.locals.len() >= MAX_DECLARATIONS {
            return Err(Error::not_supported(format!("more than {MAX_DECLARATIONS} variables in one routine")));
        }
        let (column, sql) = match &declared {
            Some(t) => {
                let column = type_column(name, t);
                let sql = SqlType::from_column(&column).nullable(true);
                (Some(column), sql)
            }
            None => (None, SqlType::varchar(0, false, true)),
        };
        self.locals.push(LocalVar { column, sql });
        Ok((self.locals.len() - 1) as u16)
    }

    fn declare_variable(&mut self, name: &str, declared: Option<RoutineType>) -> Result<u16, Error> {
        let slot = self.new_slot(name, declared)?;
        self.visible.push((name.to_string(), slot));
        self.visible_snapshot = None;
        Ok(slot)
    }

    fn lookup(&self, name: &str) -> Option<u16> {
        self.visible.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, i)| *i)
    }

    /// A target of INTO / FETCH / OUT: a local variable, or (unless `locals_only`) `@user`.
    fn target(&mut self, locals_only: bool) -> Result<Target, Error> {
        match self.c.peek_token() {
            Some(Token::Word(w)) if w.quote_style.is_none() && w.value.starts_with('@') && !w.value.starts_with("@@") && !locals_only => {
                let name = w.value[1..].to_ascii_lowercase();
                self.c.next();
                Ok(Target::User(name))
            }
            Some(Token::Word(w)) if !w.value.starts_with('@') => {
                let name = w.value.clone();
                self.c.next();
                match self.lookup(&name) {
                    Some(slot) => Ok(Target::Local(slot)),
                    None => bail!(UndeclaredVariable, "Undeclared variable: {name}"),
                }
            }
            _ => Err(self.c.error()),
        }
    }

    fn expr(&mut self) -> Result<RoutineExpr, Error> {
        let ast = self.c.expr()?;
        Ok(RoutineExpr::new(ast, self.locals()))
    }

    /// A leaf statement from here to its `;`, as its own statement text (tokens keep their
    /// places in the whole CREATE text, so error messages point into it).
    fn leaf_text(&mut self) -> StatementText {
        let start = self.c.raw(self.c.pos);
        let end = self.c.statement_end(self.c.pos);
        self.c.seek_raw(end);
        StatementText { tokens: self.c.statement.tokens[start..end].to_vec(), text: self.c.statement.text.clone() }
    }

    fn label_id(&mut self, name: &str, is_loop: bool) -> Result<usize, Error> {
        if !name.is_empty() && self.open_labels.iter().any(|(id, _)| self.labels[*id].eq_ignore_ascii_case(name)) {
            bail!(LabelRedefined, "Redefining label {name}");
        }
        if self.labels.len() >= MAX_DECLARATIONS {
            return Err(Error::not_supported(format!("more than {MAX_DECLARATIONS} labels in one routine")));
        }
        self.labels.push(name.to_string());
        let id = self.labels.len() - 1;
        self.open_labels.push((id, is_loop));
        Ok(id)
    }

    /// `END [label]`'s label, checked against the begin label.
    fn end_label(&mut self, id: usize) -> Result<(), Error> {
        if let Some(Token::Word(w)) = self.c.peek_token()
            && self.c.peek_nth(1).is_none_or(|t| t.token == Token::SemiColon)
        {
            let name = w.value.clone();
            if !self.labels[id].eq_ignore_ascii_case(&name) {
                bail!(EndLabelMismatch, "End-label {name} without match");
            }
            self.c.next();
        }
        Ok(())
    }

    fn resolve_label(&self, statement: &str, name: &str, loops_only: bool) -> Result<usize, Error> {
        self.open_labels
            .iter()
            .rev()
            .find(|(id, is_loop)| self.labels[*id].eq_ignore_ascii_case(name) && (*is_loop || !loops_only))
            .map(|(id, _)| *id)
            .ok_or_else(|| err!(LabelMismatch, "{statement} with no matching label: {name}"))
    }

    fn condition_value(&mut self) -> Result<ConditionValue, Error> {
        if self.c.eat("SQLSTATE") {
            self.c.eat("VALUE");
            let state = self.c.string()?;
            return Ok(ConditionValue::State(check_sqlstate(&state)?));
        }
        if self.c.eat("SQLWARNING") {
            return Ok(ConditionValue::SqlWarning);
        }
        if self.c.eat("SQLEXCEPTION") {
            return Ok(ConditionValue::SqlException);
        }
        if self.c.peek_is("NOT") && self.c.peek_nth_is(1, "FOUND") {
            self.c.next();
            self.c.next();
            return Ok(ConditionValue::NotFound);
        }
        if let Some(Token::Number(n, _)) = self.c.peek_token() {
            let code: u16 = n.parse().map_err(|_| self.c.error())?;
            self.c.next();
            if code == 0 {
                return Err(err!(WrongArguments, "Incorrect CONDITION value: '0'"));
            }
            return Ok(ConditionValue::Code(code));
        }
        let name = self.c.ident()?;
        self.conditions
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| err!(UndefinedCondition, "Undefined CONDITION: {name}"))
    }

    /// One statement (without its `;`).
    fn statement(&mut self, depth: usize) -> Result<Stmt, Error> {
        if depth > MAX_NESTING {
            return Err(Error::new(ErrorKind::StackOverrun, format!("Thread stack overrun: a routine body nests deeper than {MAX_NESTING} levels")));
        }
        // `label: BEGIN | LOOP | WHILE | REPEAT`.
        let label = match (self.c.peek_token(), self.c.peek_nth(1).map(|t| &t.token)) {
            (Some(Token::Word(w)), Some(Token::Colon)) if !w.value.starts_with('@') => {
                let name = w.value.clone();
                self.c.next();
                self.c.next();
                Some(name)
            }
            _ => None,
        };
        let Some(first) = self.c.peek() else {
            return Err(self.c.error());
        };
        let word = match &first.token {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ if label.is_some() => return Err(self.c.error()),
            _ => String::new(),
        };
        if label.is_some() && !matches!(word.as_str(), "BEGIN" | "LOOP" | "WHILE" | "REPEAT") {
            return Err(self.c.error());
        }
        match word.as_str() {
            "BEGIN" => self.block(label, depth),
            "LOOP" | "WHILE" | "REPEAT" => self.loop_statement(&word, label.unwrap_or_default(), depth),
            "DECLARE" => Err(self.c.error()),
            "IF" => self.if_statement(depth),
            "CASE" => self.case_statement(depth),
            "LEAVE" | "ITERATE" => {
                self.c.next();
                let name = self.c.ident()?;
                let id = self.resolve_label(&word, &name, word == "ITERATE")?;
                Ok(if word == "LEAVE" { Stmt::Leave(id) } else { Stmt::Iterate(id) })
            }
            "RETURN" => {
                if self.kind == RoutineKind::Procedure {
                    bail!(ReturnOutsideFunction, "RETURN is only allowed in a FUNCTION");
                }
                self.c.next();
                Ok(Stmt::Return(self.expr()?))
            }
            "OPEN" | "CLOSE" => {
                self.c.next();
                let cursor = self.cursor_id()?;
                Ok(if word == "OPEN" { Stmt::Open(cursor) } else { Stmt::Close(cursor) })
            }
            "FETCH" => {
                self.c.next();
                if self.c.eat("NEXT") {
                    self.c.expect("FROM")?;
                } else {
                    self.c.eat("FROM");
                }
                let cursor = self.cursor_id()?;
                self.c.expect("INTO")?;
                let mut targets = vec![self.target(true)?];
                while self.c.eat_token(&Token::Comma) {
                    targets.push(self.target(true)?);
                }
                Ok(Stmt::Fetch(cursor, targets))
            }
            "SIGNAL" | "RESIGNAL" => self.signal(word == "RESIGNAL"),
            "CALL" => {
                self.c.next();
                let name = self.c.qualified_name()?;
                let mut args = Vec::new();
                let mut targets = Vec::new();
                if self.c.eat_token(&Token::LParen) && !self.c.eat_token(&Token::RParen) {
                    loop {
                        let e = self.expr()?;
                        targets.push(match &e.ast {
                            ast::Expr::Identifier(i) if !i.value.starts_with('@') => self.lookup(&i.value).map(Target::Local),
                            ast::Expr::Identifier(i) if i.quote_style.is_none() && i.value.starts_with('@') && !i.value.starts_with("@@") => {
                                Some(Target::User(i.value[1..].to_ascii_lowercase()))
                            }
                            _ => None,
                        });
                        args.push(e);
                        if self.c.eat_token(&Token::RParen) {
                            break;
                        }
                        self.c.expect_token(&Token::Comma)?;
                    }
                }
                Ok(Stmt::Call(Box::new(CallStmt { name, args, targets })))
            }
            "SET" => self.set_statement(),
            "ELSE" | "ELSEIF" | "END" | "WHEN" | "UNTIL" | "THEN" | "DO" => Err(self.c.error()),
            "GET" => Err(Error::not_supported("GET DIAGNOSTICS")),
            _ => self.leaf(),
        }
    }

    fn cursor_id(&mut self) -> Result<usize, Error> {
        let name = self.c.ident()?;
        self.visible_cursors
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, id)| *id)
            .ok_or_else(|| err!(UndefinedCursor, "Undefined CURSOR: {name}"))
    }

    /// Statements each ended by `;`, until one of `terminators` (not consumed). `at_least_one`
    /// as MySQL's grammar requires for IF, CASE and loop bodies.
    fn statement_list(&mut self, terminators: &[&str], at_least_one: bool, depth: usize) -> Result<Vec<Stmt>, Error> {
        let mut out = Vec::new();
        loop {
            if terminators.iter().any(|t| self.c.peek_is(t)) && !self.c.peek_nth(1).is_some_and(|t| t.token == Token::Colon) {
                // `END` could also be a label named "end"; a label is followed by ':'.
                break;
            }
            if self.c.at_end() {
                return Err(self.c.error());
            }
            out.push(self.statement(depth + 1)?);
            self.c.expect_token(&Token::SemiColon)?;
        }
        if at_least_one && out.is_empty() {
            return Err(self.c.error());
        }
        Ok(out)
    }

    fn block(&mut self, label: Option<String>, depth: usize) -> Result<Stmt, Error> {
        self.c.expect("BEGIN")?;
        let label_id = match &label {
            Some(name) => Some(self.label_id(name, false)?),
            None => None,
        };
        let scope = BlockScope { variables: self.visible.len(), cursors: self.visible_cursors.len(), conditions: self.conditions.len() };
        let mut block = Block { label: label_id, variables: Vec::new(), cursors: Vec::new(), handlers: Vec::new(), body: Vec::new() };
        let mut stage = DeclarationStage::Variables;
        let mut block_vars: Vec<String> = Vec::new();
        let mut block_conditions: Vec<String> = Vec::new();
        let mut block_cursors: Vec<String> = Vec::new();
        let mut handled: Vec<ConditionValue> = Vec::new();
        while self.c.peek_is("DECLARE") {
            self.c.next();
            if self.c.peek_is("CONTINUE") || self.c.peek_is("EXIT") || self.c.peek_is("UNDO") {
                let action = self.c.ident()?.to_ascii_uppercase();
                if action == "UNDO" {
                    return Err(Error::not_supported("UNDO handlers"));
                }
                self.c.expect("HANDLER")?;
                self.c.expect("FOR")?;
                let mut conditions = vec![self.condition_value()?];
                while self.c.eat_token(&Token::Comma) {
                    conditions.push(self.condition_value()?);
                }
                for cv in &conditions {
                    if handled.contains(cv) {
                        bail!(DuplicateHandler, "Duplicate handler declared in the same block");
                    }
                    handled.push(cv.clone());
                }
                let body = self.statement(depth + 1)?;
                block.handlers.push(Handler { exit: action == "EXIT", conditions, body });
                stage = DeclarationStage::Handlers;
            } else if self.c.peek_nth_is(1, "CURSOR") {
                if stage > DeclarationStage::Cursors {
                    bail!(CursorAfterHandler, "Cursor declaration after handler declaration");
                }
                stage = DeclarationStage::Cursors;
                let name = self.c.ident()?;
                self.c.expect("CURSOR")?;
                self.c.expect("FOR")?;
                if block_cursors.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                    bail!(DuplicateCursor, "Duplicate cursor: {name}");
                }
                let query = self.cursor_query()?;
                if self.cursors.len() >= MAX_DECLARATIONS {
                    return Err(Error::not_supported(format!("more than {MAX_DECLARATIONS} cursors in one routine")));
                }
                self.cursors.push(CursorDecl { query });
                let id = self.cursors.len() - 1;
                self.visible_cursors.push((name.clone(), id));
                block_cursors.push(name);
                block.cursors.push(id);
            } else if self.c.peek_nth_is(1, "CONDITION") {
                if stage > DeclarationStage::Variables {
                    bail!(DeclarationOrder, "Variable or condition declaration after cursor or handler declaration");
                }
                let name = self.c.ident()?;
                self.c.expect("CONDITION")?;
                self.c.expect("FOR")?;
                let value = if self.c.eat("SQLSTATE") {
                    self.c.eat("VALUE");
                    ConditionValue::State(check_sqlstate(&self.c.string()?)?)
                } else if let Some(Token::Number(n, _)) = self.c.peek_token() {
                    let code: u16 = n.parse().map_err(|_| self.c.error())?;
                    self.c.next();
                    ConditionValue::Code(code)
                } else {
                    return Err(self.c.error());
                };
                if block_conditions.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                    bail!(DuplicateCondition, "Duplicate condition: {name}");
                }
                block_conditions.push(name.clone());
                self.conditions.push((name, value));
            } else {
                if stage > DeclarationStage::Variables {
                    bail!(DeclarationOrder, "Variable or condition declaration after cursor or handler declaration");
                }
                let mut names = vec![self.c.ident()?];
                while self.c.eat_token(&Token::Comma) {
                    names.push(self.c.ident()?);
                }
                let ty = data_type(&mut self.c, &names[0])?;
                // The DEFAULT sees the variables declared before this DECLARE only.
                let default = if self.c.eat("DEFAULT") { Some(self.c.expr()?) } else { None };
                let locals_before = self.locals();
                for name in names {
                    if block_vars.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                        bail!(DuplicateVariable, "Duplicate variable: {name}");
                    }
                    block_vars.push(name.clone());
                    let slot = self.declare_variable(&name, Some(ty.clone()))?;
                    let default = default.as_ref().map(|d| RoutineExpr::new(d.clone(), locals_before.clone()));
                    block.variables.push((slot, default));
                }
            }
            self.c.expect_token(&Token::SemiColon)?;
        }
        block.body = self.statement_list(&["END"], false, depth)?;
        self.c.expect("END")?;
        if let Some(id) = label_id {
            self.end_label(id)?;
            self.open_labels.pop();
        }
        self.visible.truncate(scope.variables);
        self.visible_snapshot = None;
        self.visible_cursors.truncate(scope.cursors);
        self.conditions.truncate(scope.conditions);
        Ok(Stmt::Block(Box::new(block)))
    }

    fn cursor_query(&mut self) -> Result<Leaf, Error> {
        if !(self.c.peek_is("SELECT") || self.c.peek_is("WITH") || self.c.peek_token() == Some(&Token::LParen)) {
            bail!(CursorNotSelect, "Cursor statement must be a SELECT");
        }
        let text = self.leaf_text();
        if into_position(&text).is_some() {
            bail!(CursorSelectWithInto, "Cursor SELECT must not have INTO");
        }
        let statement = crate::parse::parse(&text)?;
        if !matches!(statement, Statement::Query(_)) {
            bail!(CursorNotSelect, "Cursor statement must be a SELECT");
        }
        Ok(Leaf::new(statement, text, self.locals()))
    }

    fn loop_statement(&mut self, word: &str, label: String, depth: usize) -> Result<Stmt, Error> {
        self.c.next();
        let id = self.label_id(&label, true)?;
        let statement = match word {
            "LOOP" => {
                let body = self.statement_list(&["END"], true, depth)?;
                self.c.expect("END")?;
                self.c.expect("LOOP")?;
                Stmt::Loop { label: id, body }
            }
            "WHILE" => {
                let condition = self.expr()?;
                self.c.expect("DO")?;
                let body = self.statement_list(&["END"], true, depth)?;
                self.c.expect("END")?;
                self.c.expect("WHILE")?;
                Stmt::While { label: id, condition, body }
            }
            _ => {
                let body = self.statement_list(&["UNTIL"], true, depth)?;
                self.c.expect("UNTIL")?;
                let until = self.expr()?;
                self.c.expect("END")?;
                self.c.expect("REPEAT")?;
                Stmt::Repeat { label: id, body, until }
            }
        };
        if !label.is_empty() {
            self.end_label(id)?;
        }
        self.open_labels.pop();
        Ok(statement)
    }

    fn if_statement(&mut self, depth: usize) -> Result<Stmt, Error> {
        self.c.expect("IF")?;
        let mut branches = Vec::new();
        let mut otherwise = None;
        loop {
            let condition = self.expr()?;
            self.c.expect("THEN")?;
            let body = self.statement_list(&["ELSEIF", "ELSE", "END"], true, depth)?;
            branches.push((condition, body));
            if self.c.eat("ELSEIF") {
                continue;
            }
            if self.c.eat("ELSE") {
                otherwise = Some(self.statement_list(&["END"], true, depth)?);
            }
            break;
        }
        self.c.expect("END")?;
        self.c.expect("IF")?;
        Ok(Stmt::If { branches, otherwise })
    }

    fn case_statement(&mut self, depth: usize) -> Result<Stmt, Error> {
        self.c.expect("CASE")?;
        // A simple CASE evaluates its operand once, into a hidden slot the WHENs compare with.
        let operand = if self.c.peek_is("WHEN") {
            None
        } else {
            let e = self.expr()?;
            let slot = self.new_slot("", None)?;
            Some((slot, e))
        };
        let mut whens = Vec::new();
        while self.c.eat("WHEN") {
            let mut condition = self.expr()?;
            if let Some((slot, _)) = &operand {
                // `CASE v WHEN x` is `v = x`, with v read from the hidden slot.
                let hidden = hidden_slot_name(*slot);
                let compare = ast::Expr::BinaryOp {
                    left: Box::new(ast::Expr::Identifier(ast::Ident::new(hidden.clone()))),
                    op: ast::BinaryOperator::Eq,
                    right: Box::new(ast::Expr::Nested(Box::new(condition.ast))),
                };
                let mut visible = condition.locals.visible.clone();
                visible.push((hidden, *slot, self.locals[*slot as usize].sql.clone()));
                condition = RoutineExpr::new(compare, Arc::new(Locals { visible }));
            }
            self.c.expect("THEN")?;
            let body = self.statement_list(&["WHEN", "ELSE", "END"], true, depth)?;
            whens.push((condition, body));
        }
        if whens.is_empty() {
            return Err(self.c.error());
        }
        let otherwise = if self.c.eat("ELSE") { Some(self.statement_list(&["END"], true, depth)?) } else { None };
        self.c.expect("END")?;
        self.c.expect("CASE")?;
        Ok(Stmt::Case { operand, whens, otherwise })
    }

    fn signal(&mut self, resignal: bool) -> Result<Stmt, Error> {
        self.c.next();
        let state = if self.c.eat("SQLSTATE") {
            self.c.eat("VALUE");
            let s = self.c.string()?;
            Some((check_sqlstate(&s)?, None))
        } else if matches!(self.c.peek_token(), Some(Token::Word(w)) if !w.value.eq_ignore_ascii_case("SET"))
            && !(resignal && self.c.peek_is("SET"))
        {
            let name = self.c.ident()?;
            let value = self
                .conditions
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| err!(UndefinedCondition, "Undefined CONDITION: {name}"))?;
            match value {
                ConditionValue::State(s) => Some((s, None)),
                _ => bail!(SignalBadCondition, "SIGNAL/RESIGNAL can only use a CONDITION defined with SQLSTATE"),
            }
        } else if resignal {
            None
        } else {
            return Err(self.c.error());
        };
        let mut message = None;
        let mut errno = None;
        if self.c.eat("SET") {
            loop {
                let item = self.c.ident()?.to_ascii_uppercase();
                self.c.expect_token(&Token::Eq)?;
                let value = self.expr()?;
                match item.as_str() {
                    "MESSAGE_TEXT" => message = Some(value),
                    "MYSQL_ERRNO" => errno = Some(value),
                    "CLASS_ORIGIN" | "SUBCLASS_ORIGIN" | "CONSTRAINT_CATALOG" | "CONSTRAINT_SCHEMA" | "CONSTRAINT_NAME" | "CATALOG_NAME"
                    | "SCHEMA_NAME" | "TABLE_NAME" | "COLUMN_NAME" | "CURSOR_NAME" => {
                        // Accepted; Cairn has no GET DIAGNOSTICS to read them back.
                    }
                    _ => return Err(syntax_error_at(self.c.statement, None)),
                }
                if !self.c.eat_token(&Token::Comma) {
                    break;
                }
            }
        }
        Ok(Stmt::Signal(Box::new(Signal { resignal, state, message, errno })))
    }

    /// SET: local variables are assigned here; user and system variables through the same
    /// assignment code; NAMES / CHARACTER SET / TRANSACTION forms as the client's SET.
    fn set_statement(&mut self) -> Result<Stmt, Error> {
        let locals = self.locals();
        let text = self.leaf_text();
        let statement = crate::parse::parse(&text)?;
        let Statement::Set(items) = statement else {
            return Err(syntax_error_at(&text, None));
        };
        if items.iter().any(|i| !matches!(i, SetItem::Variable { .. })) {
            return Ok(Stmt::Sql(Box::new(Leaf::new(Statement::Set(items), text, locals))));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let SetItem::Variable { scope, name, value } = item else { continue };
            match (scope, value) {
                (VarScope::User, SetValue::Expr(e)) => out.push(Assignment::User(name.to_ascii_lowercase(), RoutineExpr::new(*e, locals.clone()))),
                (VarScope::User, SetValue::Default) => {
                    out.push(Assignment::User(name.to_ascii_lowercase(), RoutineExpr::new(null_literal(), locals.clone())))
                }
                (VarScope::Default, value) if locals.lookup(&name).is_some() => {
                    let slot = locals.lookup(&name).map(|(s, _)| s).unwrap_or_default();
                    let e = match value {
                        SetValue::Expr(e) => *e,
                        // `SET v = DEFAULT` in a routine: MySQL sets NULL for a variable.
                        SetValue::Default => null_literal(),
                    };
                    out.push(Assignment::Local(slot, RoutineExpr::new(e, locals.clone())));
                }
                (scope, value) => {
                    if crate::variables::lookup(&name).is_none() {
                        // MySQL refuses an unknown name when the routine is created.
                        return Err(crate::variables::unknown(&name));
                    }
                    let value = match value {
                        SetValue::Default => None,
                        // A bare word that is no variable is the value's name (`= ON`).
                        SetValue::Expr(e) => Some(match *e {
                            ast::Expr::Identifier(i) if !i.value.starts_with('@') && locals.lookup(&i.value).is_none() => {
                                RoutineExpr::new(string_literal(&i.value), locals.clone())
                            }
                            e => RoutineExpr::new(e, locals.clone()),
                        }),
                    };
                    out.push(Assignment::System { scope, name, value });
                }
            }
        }
        Ok(Stmt::Set(out))
    }

    fn leaf(&mut self) -> Result<Stmt, Error> {
        let locals = self.locals();
        let text = self.leaf_text();
        if let Some((into_at, targets_end)) = into_position(&text) {
            let sub = StatementText { tokens: text.tokens[into_at + 1..targets_end].to_vec(), text: text.text.clone() };
            let mut c = TokenCursor::new(&sub);
            let mut targets = Vec::new();
            loop {
                targets.push(target_from(&mut c, |name| self_lookup(&self.visible, name), false)?);
                if !c.eat_token(&Token::Comma) {
                    break;
                }
            }
            if !c.at_end() {
                return Err(c.error());
            }
            let query = without_into(&text, into_at, targets_end);
            let statement = crate::parse::parse(&query)?;
            if !matches!(statement, Statement::Query(_)) {
                return Err(syntax_error_at(&text, None));
            }
            return Ok(Stmt::SelectInto(Box::new(Leaf::new(statement, query, locals)), targets));
        }
        let statement = crate::parse::parse(&text)?;
        match &statement {
            Statement::Routine(RoutineStatement::Create(c)) => {
                bail!(RoutineCreateInRoutine, "Can't create a {} from within another stored routine", c.kind.keyword())
            }
            Statement::Routine(RoutineStatement::Drop { kind, .. } | RoutineStatement::Alter { kind, .. }) => {
                bail!(RoutineDropInRoutine, "Can't drop or alter a {} from within another stored routine", kind.keyword())
            }
            Statement::Use(_) => bail!(StatementNotAllowedInRoutine, "USE is not allowed in stored procedures"),
            Statement::Unsupported(what) => return Err(Error::not_supported(format!("{what} in stored routines"))),
            _ => {}
        }
        Ok(Stmt::Sql(Box::new(Leaf::new(statement, text, locals))))
    }
}

fn self_lookup(visible: &[(String, u16)], name: &str) -> Option<u16> {
    visible.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, i)| *i)
}

/// The name a CASE operand's hidden slot is known by in its WHEN comparisons: one no routine
/// can declare (a space is not allowed at the end of an unquoted name).
fn hidden_slot_name(slot: u16) -> String {
    format!("$case operand {slot} ")
}

fn null_literal() -> ast::Expr {
    ast::Expr::Value(ast::Value::Null.into())
}

fn string_literal(s: &str) -> ast::Expr {
    ast::Expr::Value(ast::Value::SingleQuotedString(s.to_string()).into())
}

/// Reads one INTO target: `@user` or a name `lookup` knows (1327 otherwise).
fn target_from(c: &mut TokenCursor<'_>, lookup: impl Fn(&str) -> Option<u16>, locals_only: bool) -> Result<Target, Error> {
    match c.peek_token() {
        Some(Token::Word(w)) if w.quote_style.is_none() && w.value.starts_with('@') && !w.value.starts_with("@@") && !locals_only => {
            let name = w.value[1..].to_ascii_lowercase();
            c.next();
            Ok(Target::User(name))
        }
        Some(Token::AtSign) if !locals_only => {
            c.next();
            let name = name_or_string(c)?;
            Ok(Target::User(name.to_ascii_lowercase()))
        }
        Some(Token::Word(w)) if !w.value.starts_with('@') => {
            let name = w.value.clone();
            c.next();
            match lookup(&name) {
                Some(slot) => Ok(Target::Local(slot)),
                None => bail!(UndeclaredVariable, "Undeclared variable: {name}"),
            }
        }
        _ => Err(c.error()),
    }
}

/// Where a SELECT's top-level `INTO var, …` is: the raw index of INTO and the raw index just
/// past its last target. None for statements that are not SELECTs or have no INTO.
pub(crate) fn into_position(statement: &StatementText) -> Option<(usize, usize)> {
    let tokens = &statement.tokens;
    let first = tokens.iter().position(|t| !matches!(t.token, Token::Whitespace(_)))?;
    let starts_query = matches!(&tokens[first].token, Token::Word(w) if w.quote_style.is_none() && (w.value.eq_ignore_ascii_case("SELECT") || w.value.eq_ignore_ascii_case("WITH")))
        || tokens[first].token == Token::LParen;
    if !starts_query {
        return None;
    }
    let mut depth = 0i32;
    let mut into = None;
    for (i, t) in tokens.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 && w.quote_style.is_none() && w.value.eq_ignore_ascii_case("INTO") => {
                into = Some(i);
                break;
            }
            _ => {}
        }
    }
    let into = into?;
    // Targets run until a clause keyword or the end.
    let ends = ["FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "FOR", "LOCK", "UNION", "WINDOW"];
    let mut end = tokens.len();
    for (i, t) in tokens.iter().enumerate().skip(into + 1) {
        if let Token::Word(w) = &t.token
            && w.quote_style.is_none()
            && ends.iter().any(|e| w.value.eq_ignore_ascii_case(e))
        {
            end = i;
            break;
        }
    }
    Some((into, end))
}

/// The statement without `INTO targets`.
fn without_into(statement: &StatementText, into_at: usize, end: usize) -> StatementText {
    let mut tokens = statement.tokens[..into_at].to_vec();
    tokens.extend_from_slice(&statement.tokens[end..]);
    StatementText { tokens, text: statement.text.clone() }
}

/// `SELECT … INTO @a, @b …` sent by a client: user variables only (a plain name is 1327).
pub(crate) fn parse_select_into(statement: &StatementText, into_at: usize, end: usize) -> Result<Statement, Error> {
    let sub = StatementText { tokens: statement.tokens[into_at + 1..end].to_vec(), text: statement.text.clone() };
    let mut c = TokenCursor::new(&sub);
    if c.peek_is("OUTFILE") || c.peek_is("DUMPFILE") {
        // A file written on the SQL node's host: SQL nodes are stateless and write no files for
        // clients, so this is refused as MySQL refuses it when secure_file_priv is NULL, the
        // same answer LOAD DATA INFILE without LOCAL gets (session/load_data.rs). Clients
        // export with their own tools (`mysql --batch -e`, mysqldump).
        cairn_common::bail!(
            OptionPreventsStatement,
            "The MySQL server is running with the --secure-file-priv option so it cannot execute this statement"
        );
    }
    let mut targets = Vec::new();
    loop {
        match target_from(&mut c, |_| None, false)? {
            Target::User(name) => targets.push(name),
            Target::Local(_) => return Err(c.error()),
        }
        if !c.eat_token(&Token::Comma) {
            break;
        }
    }
    if !c.at_end() {
        return Err(c.error());
    }
    let query = crate::parse::parse(&without_into(statement, into_at, end))?;
    if !matches!(query, Statement::Query(_)) {
        return Err(syntax_error_at(statement, None));
    }
    Ok(Statement::Routine(RoutineStatement::SelectInto { query: Box::new(query), targets }))
}

/// `DROP FUNCTION|PROCEDURE [IF EXISTS] name` (the cursor is past DROP).
pub(crate) fn parse_drop(statement: &StatementText) -> Result<Statement, Error> {
    let mut c = TokenCursor::new(statement);
    c.expect("DROP")?;
    let kind = if c.eat("FUNCTION") {
        RoutineKind::Function
    } else if c.eat("PROCEDURE") {
        RoutineKind::Procedure
    } else {
        return Err(c.error());
    };
    let if_exists = if c.eat("IF") {
        c.expect("EXISTS")?;
        true
    } else {
        false
    };
    let name = c.qualified_name()?;
    if !c.at_end() {
        return Err(c.error());
    }
    Ok(Statement::Routine(RoutineStatement::Drop { kind, name, if_exists }))
}

/// Whether a statement is `DROP FUNCTION` or `DROP PROCEDURE`.
pub(crate) fn is_drop_routine(statement: &StatementText) -> bool {
    let c = TokenCursor::new(statement);
    c.peek_is("DROP") && (c.peek_nth_is(1, "FUNCTION") || c.peek_nth_is(1, "PROCEDURE"))
}

/// Whether a statement is `ALTER FUNCTION` or `ALTER PROCEDURE`.
pub(crate) fn is_alter_routine(statement: &StatementText) -> bool {
    let c = TokenCursor::new(statement);
    c.peek_is("ALTER") && (c.peek_nth_is(1, "FUNCTION") || c.peek_nth_is(1, "PROCEDURE"))
}

/// `ALTER FUNCTION|PROCEDURE name characteristic…`.
pub(crate) fn parse_alter(statement: &StatementText) -> Result<Statement, Error> {
    let mut c = TokenCursor::new(statement);
    c.expect("ALTER")?;
    let kind = if c.eat("FUNCTION") { RoutineKind::Function } else if c.eat("PROCEDURE") { RoutineKind::Procedure } else { return Err(c.error()) };
    let name = c.qualified_name()?;
    let changes = characteristics(&mut c, true)?;
    if !c.at_end() {
        return Err(c.error());
    }
    Ok(Statement::Routine(RoutineStatement::Alter { kind, name, changes }))
}

/// `CALL name[(args)]` sent by a client.
pub(crate) fn parse_call(statement: &StatementText) -> Result<Statement, Error> {
    let mut c = TokenCursor::new(statement);
    c.expect("CALL")?;
    let name = c.qualified_name()?;
    let mut args = Vec::new();
    if c.eat_token(&Token::LParen) && !c.eat_token(&Token::RParen) {
        loop {
            args.push(c.expr()?);
            if c.eat_token(&Token::RParen) {
                break;
            }
            c.expect_token(&Token::Comma)?;
        }
    }
    if !c.at_end() {
        return Err(c.error());
    }
    Ok(Statement::Routine(RoutineStatement::Call { name, args }))
}

/// Checks a SQLSTATE as SIGNAL and DECLARE … CONDITION / HANDLER need it: five characters of
/// `[0-9A-Z]`, and not of class '00' (success).
fn check_sqlstate(state: &str) -> Result<String, Error> {
    let well_formed = state.len() == 5 && state.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    if !well_formed || state.starts_with("00") {
        bail!(BadSqlState, "Bad SQLSTATE: '{state}'");
    }
    Ok(state.to_string())
}

/// What a body does, for the checks CREATE makes (MySQL checks them when the routine is
/// created, not when it runs).
#[derive(Default)]
struct BodyFacts {
    has_return: bool,
    /// A statement that sends a result set (a SELECT without INTO).
    result_set: bool,
    /// A statement that commits (transaction control, DDL).
    commits: bool,
}

fn body_facts(stmt: &Stmt, facts: &mut BodyFacts) {
    let list = |stmts: &[Stmt], facts: &mut BodyFacts| stmts.iter().for_each(|s| body_facts(s, facts));
    match stmt {
        Stmt::Block(b) => {
            list(&b.body, facts);
            b.handlers.iter().for_each(|h| body_facts(&h.body, facts));
        }
        Stmt::Sql(leaf) => match &leaf.statement {
            Statement::Query(_) | Statement::Show(_) => facts.result_set = true,
            Statement::Begin
            | Statement::Commit
            | Statement::Rollback
            | Statement::CreateTable { .. }
            | Statement::CreateDatabase { .. }
            | Statement::DropDatabase { .. }
            | Statement::DropTable { .. }
            | Statement::Truncate(_) => facts.commits = true,
            _ => {}
        },
        Stmt::If { branches, otherwise } => {
            branches.iter().for_each(|(_, b)| list(b, facts));
            if let Some(o) = otherwise {
                list(o, facts);
            }
        }
        Stmt::Case { whens, otherwise, .. } => {
            whens.iter().for_each(|(_, b)| list(b, facts));
            if let Some(o) = otherwise {
                list(o, facts);
            }
        }
        Stmt::While { body, .. } | Stmt::Repeat { body, .. } | Stmt::Loop { body, .. } => list(body, facts),
        Stmt::Return(_) => facts.has_return = true,
        _ => {}
    }
}

/// MySQL's CREATE-time checks of a body: a function must RETURN (1320), may not send result
/// sets (1415) or commit (1422). `qualified` is `db.name` for the messages.
pub(crate) fn check_body(create: &CreateRoutine, qualified: &str) -> Result<(), Error> {
    let mut facts = BodyFacts::default();
    body_facts(&create.program.body, &mut facts);
    if create.kind == RoutineKind::Function {
        if facts.result_set {
            bail!(ResultSetFromFunction, "Not allowed to return a result set from a function");
        }
        if facts.commits {
            bail!(CommitInFunction, "Explicit or implicit commit is not allowed in stored function or trigger");
        }
        if !facts.has_return {
            bail!(FunctionWithoutReturn, "No RETURN found in FUNCTION {qualified}");
        }
    }
    Ok(())
}

/// The routine a catalog entry describes, parsed from the CREATE statement it prints.
pub(crate) fn program_of(definition: &str) -> Result<Arc<Program>, Error> {
    let mut statements = crate::lexer::split(definition)?;
    if statements.len() != 1 {
        return Err(Error::internal("a stored routine's definition is not one statement"));
    }
    let create = create_routine(&statements.remove(0))?;
    Ok(create.program)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::split;

    fn create(sql: &str) -> Result<CreateRoutine, Error> {
        let mut parts = split(sql)?;
        assert_eq!(parts.len(), 1, "{sql}");
        create_routine(&parts.remove(0))
    }

    #[test]
    fn headers_with_definer_characteristics_and_types() {
        let c = create(
            "CREATE DEFINER=`root`@`%` FUNCTION calmail.f(a INT UNSIGNED, b VARCHAR(10) CHARSET latin1) RETURNS varchar(20) \
             DETERMINISTIC READS SQL DATA COMMENT 'it''s' SQL SECURITY INVOKER RETURN CONCAT(a, b)",
        )
        .unwrap();
        assert_eq!(c.definer, Some(("root".into(), "%".into())));
        assert_eq!(c.name, QualifiedName { database: Some("calmail".into()), name: "f".into() });
        assert_eq!(c.params.len(), 2);
        assert_eq!(c.param_list, "a INT UNSIGNED, b VARCHAR(10) CHARSET latin1");
        assert_eq!(c.body_text, "RETURN CONCAT(a, b)");
        assert_eq!(c.characteristics.deterministic, Some(true));
        assert_eq!(c.characteristics.data_access, Some(DataAccess::ReadsSqlData));
        assert_eq!(c.characteristics.security, Some(SqlSecurity::Invoker));
        assert_eq!(c.characteristics.comment.as_deref(), Some("it's"));
        let c = create("CREATE DEFINER='exim'@'10.%' PROCEDURE p(IN a INT, OUT b INT, INOUT c INT) BEGIN END").unwrap();
        assert_eq!(c.definer, Some(("exim".into(), "10.%".into())));
        assert_eq!(c.params.iter().map(|p| p.mode).collect::<Vec<_>>(), [ParamMode::In, ParamMode::Out, ParamMode::InOut]);
        assert!(create("CREATE OR REPLACE PROCEDURE IF NOT EXISTS p() SELECT 1").is_ok());
        assert_eq!(create("CREATE FUNCTION f(OUT a INT) RETURNS INT RETURN 1").unwrap_err().code(), 1064);
        assert_eq!(create("CREATE FUNCTION f(a INT, A INT) RETURNS INT RETURN 1").unwrap_err().code(), 1330);
    }

    #[test]
    fn body_names_resolve_or_fail_as_mysql() {
        let ok = "CREATE PROCEDURE p() outer_block: BEGIN DECLARE i INT DEFAULT 0; \
                  l: LOOP SET i = i + 1; IF i > 3 THEN LEAVE l; END IF; ITERATE l; END LOOP l; \
                  LEAVE outer_block; END outer_block";
        let c = create(ok).unwrap();
        let Stmt::Block(b) = &c.program.body else { panic!() };
        assert!(matches!(&b.body[0], Stmt::Loop { .. }) && matches!(&b.body[1], Stmt::Leave(id) if Some(*id) == b.label));
        let cases = [
            ("CREATE PROCEDURE p() BEGIN LEAVE nowhere; END", 1308),
            ("CREATE PROCEDURE p() b: BEGIN ITERATE b; END", 1308),
            ("CREATE PROCEDURE p() l: LOOP l: LOOP LEAVE l; END LOOP; END LOOP", 1309),
            ("CREATE PROCEDURE p() l: LOOP LEAVE l; END LOOP m", 1310),
            ("CREATE PROCEDURE p() BEGIN SELECT 1 INTO nope; END", 1327),
            ("CREATE PROCEDURE p() BEGIN DECLARE a INT; DECLARE a INT; END", 1331),
            ("CREATE PROCEDURE p() BEGIN DECLARE c CURSOR FOR SELECT 1; DECLARE a INT; END", 1337),
            ("CREATE PROCEDURE p() BEGIN DECLARE CONTINUE HANDLER FOR NOT FOUND BEGIN END; DECLARE c CURSOR FOR SELECT 1; END", 1338),
            ("CREATE PROCEDURE p() BEGIN OPEN c; END", 1324),
            ("CREATE PROCEDURE p() BEGIN DECLARE EXIT HANDLER FOR bad BEGIN END; END", 1319),
            ("CREATE PROCEDURE p() BEGIN DECLARE EXIT HANDLER FOR SQLSTATE '00000' BEGIN END; END", 1407),
            ("CREATE PROCEDURE p() BEGIN DECLARE EXIT HANDLER FOR 1062, 1062 BEGIN END; END", 1413),
            ("CREATE PROCEDURE p() RETURN 1", 1313),
            ("CREATE PROCEDURE p() BEGIN DECLARE c CURSOR FOR UPDATE t SET a = 1; END", 1322),
            ("CREATE PROCEDURE p() BEGIN DECLARE x INT; DECLARE c CURSOR FOR SELECT 1 INTO x; END", 1323),
            ("CREATE PROCEDURE p() BEGIN CREATE FUNCTION g() RETURNS INT RETURN 1; END", 1303),
            ("CREATE PROCEDURE p() BEGIN USE calmail; END", 1314),
            ("CREATE PROCEDURE p() BEGIN IF 1 THEN END IF; END", 1064),
            ("CREATE PROCEDURE p() BEGIN SELECT 1; DECLARE a INT; END", 1064),
            ("CREATE PROCEDURE p() BEGIN SELECT 1 END", 1064),
        ];
        for (sql, code) in cases {
            match create(sql) {
                Ok(_) => panic!("{sql}: parsed"),
                Err(e) => assert_eq!(e.code(), code, "{sql}: {e:?}"),
            }
        }
    }

    #[test]
    fn inner_declarations_hide_outer_ones() {
        let c = create("CREATE PROCEDURE p(x INT) BEGIN DECLARE x INT DEFAULT x + 1; BEGIN DECLARE x CHAR(3); SET x = 'a'; END; SET x = 2; END").unwrap();
        // Slots: parameter x (0), the block's x (1), the inner block's x (2).
        assert_eq!(c.program.locals.len(), 3);
        let Stmt::Block(outer) = &c.program.body else { panic!() };
        let (slot, Some(default)) = &outer.variables[0] else { panic!() };
        assert_eq!(*slot, 1);
        assert_eq!(default.locals.lookup("x").map(|(s, _)| s), Some(0), "a DEFAULT sees the declarations before it");
        let Stmt::Block(inner) = &outer.body[0] else { panic!() };
        assert!(matches!(&inner.body[0], Stmt::Set(a) if matches!(a[0], Assignment::Local(2, _))));
        assert!(matches!(&outer.body[1], Stmt::Set(a) if matches!(a[0], Assignment::Local(1, _))));
    }

    #[test]
    fn select_into_finds_its_targets() {
        let c = create("CREATE PROCEDURE p() BEGIN DECLARE a, b INT; SELECT 1, 2 INTO a, @b FROM t WHERE x = (SELECT 1) LIMIT 1; SELECT 3 FROM t INTO b; END").unwrap();
        let Stmt::Block(b) = &c.program.body else { panic!() };
        assert!(matches!(&b.body[0], Stmt::SelectInto(_, t) if t == &[Target::Local(0), Target::User("b".into())]));
        assert!(matches!(&b.body[1], Stmt::SelectInto(_, t) if t == &[Target::Local(1)]));
    }
}

//! The plan cache for text-protocol statements.
//!
//! Exim and most web applications send their hot queries as text with the values inlined
//! (`SELECT … WHERE local = 'alice' AND domain = 'example.org'`). Parsing and planning such a
//! statement costs ten times what executing a key lookup does, so the engine keeps plans keyed
//! by the statement's *normalized* text: the values that can become parameters without
//! changing the plan's meaning are replaced by `?` and bound at execution, exactly as if the
//! client had prepared the statement.
//!
//! Which literals become parameters: a number or quoted string that is the whole right-hand
//! side of a comparison or LIKE in a WHERE clause (`col = 'x'`, `col < 5`), an element of an
//! `IN (…)` list, or a whole value of an INSERT's `VALUES (…)` row. Those never decide a
//! result column's type or a plan's shape: a key lookup bound with a value that cannot be a key
//! falls back to the same filter the literal would have had. Every other literal (select-list
//! values, LIMIT, hex and bit literals, typed literals such as `DATE '…'`) stays in the key.
//! Statements with subqueries are not cached.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use cairn_common::Value;

use crate::lexer::StatementText;

/// Plans the engine keeps (all sessions together); beyond this the cache starts over.
const CAPACITY: usize = 2048;
/// Statements longer than this are not cached (they are rarely repeated verbatim).
const MAX_KEY_BYTES: usize = 4096;

/// A statement with its parameterizable values taken out.
pub(crate) struct Normalized {
    /// The normalized text: the cache key.
    pub key: String,
    /// The values taken out, in order: the parameters of the cached plan.
    pub params: Vec<Value>,
    /// The statement with `?` placeholders where the values were.
    pub text: StatementText,
}

/// What else a plan depends on besides the text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PlanKey {
    pub text: String,
    pub database: Option<String>,
    /// sql_mode flags that change planning (ONLY_FULL_GROUP_BY, PIPES_AS_CONCAT).
    pub modes: u8,
}

fn literal_value(token: &Token) -> Option<Value> {
    match token {
        Token::Number(text, _) => crate::compile::number_literal(text).ok().and_then(|(e, _)| match e {
            cairn_common::expr::Expr::Literal(v) => Some(v),
            _ => None,
        }),
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Some(Value::text(s)),
        _ => None,
    }
}

fn is_word(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none())
}

fn is_comparison(token: &Token) -> bool {
    matches!(token, Token::Eq | Token::DoubleEq | Token::Neq | Token::Lt | Token::Gt | Token::LtEq | Token::GtEq | Token::Spaceship)
        || is_word(token, Keyword::LIKE)
}

/// Where a value ends: the next token closes the comparison.
fn ends_operand(next: Option<&Token>) -> bool {
    match next {
        None => true,
        Some(Token::RParen | Token::Comma | Token::SemiColon) => true,
        Some(t) => [
            Keyword::AND,
            Keyword::OR,
            Keyword::XOR,
            Keyword::ORDER,
            Keyword::GROUP,
            Keyword::LIMIT,
            Keyword::HAVING,
            Keyword::FOR,
            Keyword::LOCK,
            Keyword::ON,
            Keyword::UNION,
        ]
        .iter()
        .any(|k| is_word(t, *k)),
    }
}

/// Normalizes a SELECT, INSERT, REPLACE, UPDATE or DELETE; None for anything else, for
/// statements with subqueries or placeholders, and when there is nothing to take out.
pub(crate) fn normalize(statement: &StatementText) -> Option<Normalized> {
    let significant: Vec<usize> = (0..statement.tokens.len()).filter(|&i| !matches!(statement.tokens[i].token, Token::Whitespace(_))).collect();
    let first = &statement.tokens[*significant.first()?].token;
    let insert = is_word(first, Keyword::INSERT) || is_word(first, Keyword::REPLACE);
    if !(insert || is_word(first, Keyword::SELECT) || is_word(first, Keyword::UPDATE) || is_word(first, Keyword::DELETE)) {
        return None;
    }
    // One SELECT at most (the query itself, or INSERT … SELECT): no subqueries.
    let selects = significant.iter().filter(|&&i| is_word(&statement.tokens[i].token, Keyword::SELECT)).count();
    let allowed = usize::from(insert || is_word(first, Keyword::SELECT));
    if selects > allowed {
        return None;
    }
    let mut tokens: Vec<TokenWithSpan> = statement.tokens.clone();
    let mut params = Vec::new();
    let mut in_where = false;
    let mut in_values = false;
    // Parenthesis depth, and the depths at which an IN (…) list is open.
    let mut depth = 0usize;
    let mut in_lists: Vec<usize> = Vec::new();
    for (n, &i) in significant.iter().enumerate() {
        let token = &statement.tokens[i].token;
        let prev = n.checked_sub(1).map(|p| &statement.tokens[significant[p]].token);
        let next = significant.get(n + 1).map(|&j| &statement.tokens[j].token);
        match token {
            Token::Placeholder(_) => return None,
            Token::LParen => {
                depth += 1;
                if prev.is_some_and(|p| is_word(p, Keyword::IN)) {
                    in_lists.push(depth);
                }
                continue;
            }
            Token::RParen => {
                if in_lists.last() == Some(&depth) {
                    in_lists.pop();
                }
                depth = depth.saturating_sub(1);
                continue;
            }
            Token::Word(w) if w.quote_style.is_none() => {
                match w.keyword {
                    Keyword::WHERE => in_where = true,
                    Keyword::VALUES | Keyword::VALUE if insert => in_values = true,
                    Keyword::ORDER | Keyword::GROUP | Keyword::LIMIT | Keyword::HAVING | Keyword::ON if depth == 0 => {
                        in_where = false;
                        in_values = false;
                    }
                    Keyword::SELECT | Keyword::SET if insert => in_values = false,
                    _ => {}
                }
                continue;
            }
            _ => {}
        }
        let Some(value) = literal_value(token) else { continue };
        let in_list_element = in_lists.last() == Some(&depth) && matches!(prev, Some(Token::LParen | Token::Comma)) && matches!(next, Some(Token::RParen | Token::Comma));
        let compared = in_where && prev.is_some_and(is_comparison) && ends_operand(next);
        let inserted = in_values && depth == 1 && matches!(prev, Some(Token::LParen | Token::Comma)) && matches!(next, Some(Token::RParen | Token::Comma));
        if (in_where && in_list_element) || compared || inserted {
            params.push(value);
            tokens[i].token = Token::Placeholder("?".into());
        }
    }
    if params.is_empty() {
        return None;
    }
    let mut key = String::with_capacity(statement.text.len());
    for &i in &significant {
        if !key.is_empty() {
            key.push(' ');
        }
        key.push_str(&tokens[i].token.to_string());
        if key.len() > MAX_KEY_BYTES {
            return None;
        }
    }
    Some(Normalized { key, params, text: StatementText { tokens, text: statement.text.clone() } })
}

/// Plans by normalized text, shared by every session of an engine.
pub(crate) struct PlanCache<P> {
    entries: Mutex<HashMap<PlanKey, P>>,
}

impl<P: Clone> PlanCache<P> {
    pub fn new() -> PlanCache<P> {
        PlanCache { entries: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, key: &PlanKey) -> Option<P> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    pub fn insert(&self, key: PlanKey, plan: P) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            // Bounded: start over rather than track recency (hot statements come back at once).
            entries.clear();
        }
        entries.insert(key, plan);
    }

    pub fn remove(&self, key: &PlanKey) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::split;

    fn norm(sql: &str) -> Option<(String, Vec<Value>)> {
        normalize(&split(sql).unwrap().remove(0)).map(|n| (n.key, n.params))
    }

    #[test]
    fn where_values_become_parameters() {
        let (key, params) = norm("SELECT a.* FROM account a, domain d WHERE a.domain_id = d.id AND d.name = 'example.org' AND a.local='alice'").unwrap();
        assert_eq!(key, "SELECT a . * FROM account a , domain d WHERE a . domain_id = d . id AND d . name = ? AND a . local = ?");
        assert_eq!(params, vec![Value::text("example.org"), Value::text("alice")]);
        let (key, params) = norm("SELECT x FROM t WHERE id IN (1, 2, 3) AND n > 5 ORDER BY x LIMIT 10").unwrap();
        assert_eq!(key, "SELECT x FROM t WHERE id IN ( ? , ? , ? ) AND n > ? ORDER BY x LIMIT 10");
        assert_eq!(params, vec![Value::Int(1), Value::Int(2), Value::Int(3), Value::Int(5)]);
    }

    #[test]
    fn values_that_shape_the_plan_stay() {
        assert!(norm("SELECT 1, 'a' FROM t").is_none(), "select-list values name and type columns");
        assert!(norm("SELECT x FROM t WHERE a = 1 + 2").is_none(), "only whole operands");
        assert!(norm("SELECT x FROM t WHERE a = X'41'").is_none(), "hex literals are binary strings");
        assert!(norm("SELECT x FROM t WHERE a = DATE '2020-01-01'").is_none());
        assert!(norm("SELECT x FROM t WHERE a IN (SELECT b FROM u WHERE c = 1)").is_none(), "no subqueries");
        assert!(norm("SELECT x FROM t WHERE a = ?").is_none());
        assert!(norm("SET @a = 1").is_none());
        let (key, _) = norm("SELECT x FROM t WHERE a = -1 AND b = 2").unwrap();
        assert_eq!(key, "SELECT x FROM t WHERE a = - 1 AND b = ?");
    }

    #[test]
    fn insert_values_become_parameters() {
        let (key, params) = norm("INSERT INTO t (a, b) VALUES (1, 'x'), (2, CONCAT('y', 'z'))").unwrap();
        assert_eq!(key, "INSERT INTO t ( a , b ) VALUES ( ? , ? ) , ( ? , CONCAT ( 'y' , 'z' ) )");
        assert_eq!(params, vec![Value::Int(1), Value::text("x"), Value::Int(2)]);
        let (key, params) = norm("UPDATE t SET n = n + 1 WHERE id = 7").unwrap();
        assert_eq!(key, "UPDATE t SET n = n + 1 WHERE id = ?");
        assert_eq!(params, vec![Value::Int(7)]);
    }
}

//! The per-statement side of an account's resource limits: every statement a session runs is
//! counted against its account's MAX_QUERIES_PER_HOUR, and statements that change data or the
//! catalog against MAX_UPDATES_PER_HOUR too (crate::limits holds the node's counters). A
//! statement past a limit is refused with 1226 before it is parsed, as MySQL refuses it
//! before executing it. Internal sessions (no account) and accounts without hourly limits
//! cost one catalog lookup per statement and take no lock.

use cairn_common::Error;
use sqlparser::tokenizer::Token;

use crate::backend::Backend;
use crate::lexer::StatementText;
use crate::session::Session;

impl<B: Backend> Session<B> {
    /// Counts `text` against the hourly limits of the session's account.
    pub(super) fn charge_statement(&self, text: &StatementText) -> Result<(), Error> {
        let Some(account) = self.info.account.as_ref() else {
            return Ok(());
        };
        let catalog = self.engine.backend.catalog();
        let Some(limits) = catalog.accounts.get(account).map(|a| a.limits) else {
            return Ok(());
        };
        if limits.max_queries_per_hour == 0 && limits.max_updates_per_hour == 0 {
            return Ok(());
        }
        let first_word = text.tokens.iter().find_map(|t| match &t.token {
            Token::Word(w) => Some(w.value.clone()),
            _ => None,
        });
        let changes_data = first_word.as_deref().is_some_and(crate::limits::changes_data);
        let now = self.engine.config.clock.now_micros();
        self.engine.limits.charge_statement(account, &limits, changes_data, now)
    }
}

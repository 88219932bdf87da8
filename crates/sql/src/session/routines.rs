//! The routine interpreter: CALL, stored function calls, and the statements about routines,
//! run inside the calling session.
//!
//! A body's statements run through the session's own statement path: a leaf statement is
//! planned once (its plan kept in the [`Program`]), bound with the frame's variables as its
//! parameters, and executed by `run_planned` exactly as a client's statement would be. So a
//! statement in a routine sees and does what the same statement sent by the client would:
//! the same plans, the same row locks and write batching, and the caller's transaction (the
//! interpreter adds no commit of its own). A stored function called outside any transaction
//! (from an autocommit statement) runs as one transaction of its own, committed when it
//! returns and rolled back when it fails; a procedure called in autocommit mode commits
//! statement by statement, as in MySQL (docs/routines.md, "Transactions").
//!
//! While a routine runs, the session's current database is the routine's, and its sql_mode the
//! one the routine was created with (both restored afterwards, as MySQL does). NOW() keeps the
//! time the calling statement started.
//!
//! Conditions: an error of a statement (or of an expression of a control statement) looks for
//! a handler from the innermost running block outwards, taking in the first block that has one
//! the most specific (error number, then SQLSTATE, then SQLEXCEPTION / SQLWARNING / NOT FOUND).
//! A CONTINUE handler goes on after the failing statement; an EXIT handler ends the block that
//! declared it. While a handler runs, the handlers of its block and of blocks inside it are
//! out of reach. Warnings a statement leaves activate SQLWARNING and error-number handlers;
//! a SELECT … INTO that finds no row raises NOT FOUND (a warning when nothing handles it), a
//! FETCH past the last row raises it as an error.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cairn_common::catalog::CatalogOp;
use cairn_common::error::{Error, ErrorKind};
use cairn_common::expr::{Warning, WarningLevel};
use cairn_common::routine::{self as catalog_routine, ParamMode, RoutineChanges, RoutineDef, RoutineKey, RoutineKind, SqlSecurity, DataAccess};
use cairn_common::temporal::DateTime;
use cairn_common::{Value, bail, err};
use cairn_storage::coerce::{Coercion, coerce};

use super::{CachedPlan, Planned, Session, placeholders};
use crate::backend::Backend;
use crate::compile::{Compiler, PlanContext, PlanEnv, Scope, Slot};
use crate::engine::Stats;
use crate::exec::Exec;
use crate::lexer::StatementText;
use crate::outcome::{Outcome, Row, RowSource};
use crate::parse::VarScope;
use crate::routine::{
    self, Assignment, Block, CompiledExpr, ConditionValue, CreateRoutine, Leaf, Locals, Program, QualifiedName, RoutineCall,
    RoutineExpr, RoutineStatement, Stmt, Target, MAX_CALL_DEPTH, MAX_CURSOR_ROWS,
};
use crate::types::{column_meta, conform};
use crate::variables;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a session keeps about the routines it is running.
#[derive(Debug, Default)]
pub(crate) struct RoutineState {
    /// Result sets the procedures of the current statement produced (columns, rows, warning
    /// count): sent to the client before the statement's own outcome (the CALL's OK), as MySQL
    /// sends them. Held as rows, not outcomes: a session is shared by reference across threads
    /// while it plans, and a streamed result is not.
    results: Vec<(Arc<[crate::outcome::ColumnMeta]>, Vec<Row>, u16)>,
    /// The routines running, outermost first (recursion checks).
    stack: Vec<(RoutineKey, RoutineKind)>,
    /// Rows the last statement run inside a procedure affected: a CALL's OK reports them, as
    /// MySQL does (0 after a SET or a SELECT).
    last_affected: u64,
}

impl RoutineState {
    pub fn clear(&mut self) {
        self.results.clear();
        self.stack.clear();
    }

    /// The result sets produced so far, as outcomes, in order.
    pub fn take_results(&mut self) -> Vec<Outcome> {
        std::mem::take(&mut self.results)
            .into_iter()
            .map(|(columns, rows, warnings)| Outcome::Rows { columns, rows: RowSource::Rows(rows), warnings })
            .collect()
    }
}

/// How a statement ended: normally, or by a jump the enclosing constructs act on.
#[derive(Debug)]
enum Flow {
    Next,
    Leave(usize),
    Iterate(usize),
    Return(Value),
    /// An EXIT handler of the block whose handler scope has this index ran: that block ends.
    Exit(usize),
}

/// The handlers of one running block.
struct HandlerScope<'p> {
    handlers: &'p [routine::Handler],
    /// False while one of its handlers (or of an outer block's handler whose block is below
    /// it) runs: a condition raised by a handler is not handled in the handler's own block.
    enabled: bool,
}

/// One running routine: its program, frame, cursors and handler scopes.
struct Call<'p> {
    program: &'p Program,
    frame: Vec<Value>,
    cursors: Vec<Option<VecDeque<Row>>>,
    scopes: Vec<HandlerScope<'p>>,
    /// The conditions that activated the running handlers, innermost last (RESIGNAL).
    active: Vec<Error>,
    /// The calling statement's start, which NOW() keeps inside the routine.
    now: (DateTime, DateTime),
    /// The session state expressions of the body see, made at the first expression evaluated
    /// without an executor (`eval_in_place`) and brought up to date before each one. In a
    /// mutex only so that a `&Call` may be held across awaits (it is never contended).
    snapshot: std::sync::Mutex<Option<crate::exec::Snapshot>>,
}

/// A routine found in a catalog: the catalog is held, so the definition is borrowed from it
/// rather than copied for every call.
struct Found {
    catalog: Arc<cairn_common::catalog::Catalog>,
    key: RoutineKey,
}

impl Found {
    fn def(&self) -> &RoutineDef {
        // find_routine only builds a Found whose key is in its catalog.
        &self.catalog.routines[&self.key]
    }
}

/// Whether a slot is bound without running anything (see `eval_in_place`).
fn slot_binds_in_place(slot: &Slot) -> bool {
    !matches!(slot, Slot::Subquery { .. } | Slot::Routine(_))
}

/// The class of a SQLSTATE: '01' warning, '02' not found, anything else an exception.
fn sqlstate_class(state: &str) -> &str {
    state.get(..2).unwrap_or("HY")
}

/// How specifically a handler condition matches a condition (higher wins), or None.
/// `warning` says the condition was a warning a statement left (its SQLSTATE may be of any
/// class: a lenient conversion's 1264 is '22003'); NOT FOUND ('02') is its own class either way.
fn match_rank(condition: &ConditionValue, e: &Error, warning: bool) -> Option<u8> {
    let class = sqlstate_class(e.sqlstate());
    match condition {
        ConditionValue::Code(code) => (*code == e.code()).then_some(3),
        ConditionValue::State(state) => (state == e.sqlstate()).then_some(2),
        ConditionValue::SqlWarning => (class == "01" || (warning && class != "02")).then_some(1),
        ConditionValue::NotFound => (class == "02").then_some(1),
        ConditionValue::SqlException => (!warning && class != "01" && class != "02").then_some(1),
    }
}

/// The registry kind an error number belongs to, for conditions rebuilt from warnings.
fn kind_of_code(code: u16) -> ErrorKind {
    ErrorKind::ALL.iter().copied().find(|k| k.code() == code).unwrap_or(ErrorKind::Internal)
}

impl<B: Backend> Session<B> {
    /// Result sets produced by the procedures of the last statement (sent before its outcome).
    /// The daemon calls this after COM_STMT_EXECUTE; `execute` collects them itself.
    pub fn take_call_results(&mut self) -> Vec<Outcome> {
        self.routines.take_results()
    }

    // ----- Statements about routines -----

    pub(super) async fn run_routine_statement(
        &mut self,
        statement: &RoutineStatement,
        text: &StatementText,
        exec: &mut Exec<B>,
        params: &[cairn_common::Value],
    ) -> Result<Outcome, Error> {
        match statement {
            RoutineStatement::Create(create) => self.create_routine(create).await,
            RoutineStatement::Drop { kind, name, if_exists } => {
                let database = self.env_database(&name.database)?;
                let op = CatalogOp::DropRoutine { database, kind: *kind, name: name.name.clone(), if_exists: *if_exists };
                self.ddl(op).await?;
                Ok(self.ok_with_warnings(0))
            }
            RoutineStatement::Alter { kind, name, changes } => {
                let database = self.env_database(&name.database)?;
                let changes = RoutineChanges {
                    comment: changes.comment.clone(),
                    security: changes.security,
                    data_access: changes.data_access,
                    modified_micros: self.engine.config.clock.now_micros(),
                };
                self.ddl(CatalogOp::AlterRoutine { database, kind: *kind, name: name.name.clone(), changes }).await?;
                Ok(self.ok_with_warnings(0))
            }
            RoutineStatement::Call { name, args } => self.top_level_call(name, args, text, exec, params).await,
            RoutineStatement::SelectInto { query, targets } => {
                let plan = self.plan_statement(query, text)?.ok_or_else(|| Error::internal("SELECT ... INTO without a plan"))?;
                self.bind(&plan.slots, params, exec).await?;
                let rows = self.query_rows(&plan, exec).await?;
                match rows.len() {
                    0 => {
                        self.push_warning(WarningLevel::Warning, ErrorKind::NoData.code(), "No data - zero rows fetched, selected, or processed".into());
                        Ok(self.ok_with_warnings(0))
                    }
                    1 => {
                        let row = rows.into_iter().next().unwrap_or_default();
                        if row.len() != targets.len() {
                            bail!(WrongColumnCountInUnion, "The used SELECT statements have a different number of columns");
                        }
                        for (name, value) in targets.iter().zip(row) {
                            self.user_vars.insert(name.clone(), value);
                        }
                        Ok(self.ok_with_warnings(1))
                    }
                    _ => bail!(TooManyRows, "Result consisted of more than one row"),
                }
            }
        }
    }

    async fn create_routine(&mut self, create: &CreateRoutine) -> Result<Outcome, Error> {
        let database = self.env_database(&create.name.database)?;
        crate::routine::parse::check_body(create, &format!("{database}.{}", create.name.name))?;
        let (definer_user, definer_host) = match &create.definer {
            Some((user, host)) if !user.is_empty() => (user.clone(), host.clone()),
            // The definer is the account the session authenticated as (CURRENT_USER(), e.g.
            // 'root'@'%'), not the client's own host.
            _ => match self.security.account() {
                Some(account) => (account.user.clone(), account.host.clone()),
                None => (self.info.user.clone(), self.info.host.clone()),
            },
        };
        let catalog = self.engine.backend.catalog();
        let database_collation = catalog.database(&database).map(|d| d.collation.clone()).unwrap_or_else(|| "utf8mb4_0900_ai_ci".into());
        let text_var = |s: &Self, name: &'static str, fallback: &str| match s.read_var_value(name) {
            Some(Value::Text(t)) => t,
            _ => fallback.to_string(),
        };
        let now = self.engine.config.clock.now_micros();
        let c = &create.characteristics;
        let def = RoutineDef {
            database,
            name: create.name.name.clone(),
            kind: create.kind,
            version: 0,
            params: create.params.clone(),
            returns: create.returns.clone(),
            param_list: create.param_list.clone(),
            body: create.body_text.clone(),
            definer_user,
            definer_host,
            security: c.security.unwrap_or(SqlSecurity::Definer),
            deterministic: c.deterministic.unwrap_or(false),
            data_access: c.data_access.unwrap_or(DataAccess::ContainsSql),
            comment: c.comment.clone().unwrap_or_default(),
            sql_mode: self.sql_mode(),
            character_set_client: text_var(self, "character_set_client", "utf8mb4"),
            collation_connection: text_var(self, "collation_connection", "utf8mb4_0900_ai_ci"),
            database_collation,
            created_micros: now,
            modified_micros: now,
        };
        self.ddl(CatalogOp::CreateRoutine { routine: def, or_replace: create.or_replace, if_not_exists: create.if_not_exists }).await?;
        Ok(self.ok_with_warnings(0))
    }

    /// A CALL sent by a client: IN arguments are expressions (with `?` for a prepared CALL),
    /// OUT and INOUT arguments user variables, which receive the final values.
    async fn top_level_call(
        &mut self,
        name: &QualifiedName,
        args: &[sqlparser::ast::Expr],
        text: &StatementText,
        exec: &mut Exec<B>,
        params: &[Value],
    ) -> Result<Outcome, Error> {
        let database = self.env_database(&name.database)?;
        let found = self.find_routine(&database, RoutineKind::Procedure, &name.name).await?;
        let def = found.def();
        check_argument_count(def, args.len())?;
        let mut values = Vec::with_capacity(args.len());
        let mut outputs = Vec::new();
        for (i, (param, arg)) in def.params.iter().zip(args).enumerate() {
            let user_var = match arg {
                sqlparser::ast::Expr::Identifier(id) if id.quote_style.is_none() && id.value.starts_with('@') && !id.value.starts_with("@@") => {
                    Some(id.value[1..].to_ascii_lowercase())
                }
                _ => None,
            };
            if param.mode != ParamMode::In {
                let Some(var) = user_var else {
                    bail!(
                        OutArgumentNotVariable,
                        "OUT or INOUT argument {} for routine {}.{} is not a variable or NEW pseudo-variable in BEFORE trigger",
                        i + 1,
                        def.database,
                        def.name
                    );
                };
                outputs.push((i, var.clone()));
                if param.mode == ParamMode::Out {
                    values.push(Value::Null);
                    continue;
                }
            }
            values.push(self.eval_standalone(arg, text, params, exec).await?);
        }
        let now = (exec.snapshot.now, exec.snapshot.utc_now);
        self.routines.last_affected = 0;
        let (_, finals) = self.invoke(found, values, now, "").await?;
        for (i, var) in outputs {
            let value = finals.get(i).cloned().unwrap_or(Value::Null);
            self.user_vars.insert(var, value);
        }
        let affected = self.routines.last_affected;
        Ok(self.ok_with_warnings(affected))
    }

    /// Compiles and evaluates an expression of a client statement (CALL's arguments): no table
    /// in scope, `?` bound from `params`.
    pub(super) async fn eval_standalone(&mut self, e: &sqlparser::ast::Expr, text: &StatementText, params: &[Value], exec: &mut Exec<B>) -> Result<Value, Error> {
        let compiled = self.compile_expression(e, text, None)?;
        self.eval_lazily(&compiled, params, exec).await
    }

    /// Evaluates a compiled expression, calling the stored functions in it only when the
    /// evaluation reaches them, as MySQL does (`IF(x IS NULL, 0, f(x))` never calls f with
    /// NULL). Each call found missing is made, then the evaluation starts again with its
    /// value. An expression with subqueries has its calls made first: a subquery runs before
    /// the expression and may need them.
    async fn eval_lazily(&mut self, compiled: &CompiledExpr, params: &[Value], exec: &mut Exec<B>) -> Result<Value, Error> {
        let lazy = !compiled.slots.iter().any(|s| matches!(s, crate::compile::Slot::Subquery { .. }));
        let mut unbound = self.bind_slots(&compiled.slots, params, exec, lazy).await?;
        loop {
            let (result, missing) = exec.eval_partly(&compiled.expr, &[], &unbound);
            let Some(slot) = missing else {
                return result;
            };
            self.force_slot(&compiled.slots, slot, &mut unbound, exec).await?;
        }
    }

    /// Makes the stored function call of slot `slot` (its arguments evaluated lazily in turn)
    /// and binds its value.
    fn force_slot<'a>(&'a mut self, slots: &'a [crate::compile::Slot], slot: u32, unbound: &'a mut Vec<u32>, exec: &'a mut Exec<B>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(crate::compile::Slot::Routine(call)) = slots.get(slot as usize) else {
                return Err(Error::internal(format!("slot {slot} is not a stored function call")));
            };
            let mut args = Vec::with_capacity(call.args.len());
            for a in &call.args {
                let value = loop {
                    let (result, missing) = exec.eval_partly(a, &[], unbound);
                    match missing {
                        Some(inner) => self.force_slot(slots, inner, unbound, exec).await?,
                        None => break result?,
                    }
                };
                args.push(value);
            }
            let now = (exec.snapshot.now, exec.snapshot.utc_now);
            let value = self.call_function(call, args, now).await?;
            let mut bound = (*exec.bound).clone();
            if let Some(place) = bound.values.get_mut(slot as usize) {
                *place = value;
            }
            exec.bound = Arc::new(bound);
            unbound.retain(|s| *s != slot);
            Ok(())
        })
    }

    /// Compiles one expression with no table in scope; `locals` makes a routine's variables
    /// visible.
    fn compile_expression(&self, e: &sqlparser::ast::Expr, text: &StatementText, locals: Option<Arc<Locals>>) -> Result<CompiledExpr, Error> {
        let catalog = self.engine.backend.catalog();
        let system_var = |scope: VarScope, name: &str| self.system_var(scope, name);
        let user_var = |name: &str| self.user_vars.get(name).cloned().unwrap_or(Value::Null);
        let env = PlanEnv {
            catalog: &catalog,
            database: self.database.as_deref(),
            system_var: &system_var,
            user_var: &user_var,
            pipes_as_concat: self.has_mode("PIPES_AS_CONCAT"),
            only_full_group_by: false,
            source: None,
        };
        let places = if locals.is_some() { Vec::new() } else { placeholders(text) };
        let mut ctx = PlanContext::new(env, places);
        ctx.locals = locals;
        let scope = Scope::default();
        let mut c = Compiler::new(&mut ctx, &scope, "field list");
        let (expr, _) = c.compile(e)?;
        crate::compile::check_depth(&expr)?;
        Ok(CompiledExpr { expr, slots: Arc::new(ctx.slots), tables: ctx.tables, routines: ctx.routines })
    }

    // ----- Calling routines -----

    /// A stored function's value for a statement being bound (`Slot::Routine`).
    pub(super) fn call_function<'a>(&'a mut self, call: &'a RoutineCall, args: Vec<Value>, now: (DateTime, DateTime)) -> BoxFuture<'a, Result<Value, Error>> {
        Box::pin(async move {
            let found = self.find_routine(&call.database, RoutineKind::Function, &call.name).await?;
            check_argument_count(found.def(), args.len())?;
            let (value, _) = self.invoke(found, args, now, &call.display).await?;
            Ok(value.unwrap_or(Value::Null))
        })
    }

    /// Runs a routine with its arguments (already evaluated; OUT parameters get NULL). Returns
    /// a function's value and the parameters' final values (a procedure's OUT values).
    /// `display` names a function's value in conversion messages (the call as written).
    fn invoke<'a>(
        &'a mut self,
        found: Found,
        args: Vec<Value>,
        now: (DateTime, DateTime),
        display: &'a str,
    ) -> BoxFuture<'a, Result<(Option<Value>, Vec<Value>), Error>> {
        Box::pin(async move {
            let def = found.def();
            self.security.check_routine(&self.engine.backend.catalog(), &def.database, def.kind, &def.name)?;
            let key = found.key.clone();
            if self.routines.stack.len() >= MAX_CALL_DEPTH {
                bail!(StackOverrun, "Thread stack overrun: stored routines nest deeper than {MAX_CALL_DEPTH} calls");
            }
            match def.kind {
                RoutineKind::Function => {
                    if self.routines.stack.iter().any(|(k, _)| *k == key) {
                        bail!(RecursiveFunction, "Recursive stored functions and triggers are not allowed");
                    }
                }
                RoutineKind::Procedure => {
                    let depth = self.routines.stack.iter().filter(|(k, _)| *k == key).count() as u64;
                    let limit = self.read_var_value("max_sp_recursion_depth").and_then(|v| v.to_u64()).unwrap_or(0);
                    if depth > limit {
                        bail!(
                            RecursionLimit,
                            "Recursive limit {limit} (as set by the max_sp_recursion_depth variable) was exceeded for routine {}",
                            def.name
                        );
                    }
                }
            }
            let program = self.engine.routines.program(def)?;
            // The routine runs in its own database and with its own sql_mode.
            let saved_database = std::mem::replace(&mut self.database, Some(def.database.clone()));
            // Set only when it differs from the caller's (usually both are the default), so
            // that a call costs no copy of the mode text and no parse of it.
            let sql_mode_def = variables::lookup("sql_mode");
            let saved_mode = sql_mode_def.and_then(|d| self.vars.get(d.name).cloned());
            let current_mode = match &saved_mode {
                Some(Value::Text(t)) => t.as_str(),
                _ => variables::DEFAULT_SQL_MODE,
            };
            if let Some(d) = sql_mode_def
                && current_mode != def.sql_mode
            {
                self.vars.set(d, Value::text(&def.sql_mode));
            }
            // A stored function called outside any transaction (from an autocommit statement)
            // runs as one transaction of its own: its statements see each other's writes, lock
            // the rows they touch, and commit together when it returns, or roll back when it
            // fails. Inside a transaction a routine's statements simply run in the caller's.
            // Procedures keep MySQL's autocommit behaviour (each statement commits) and may
            // open and end transactions themselves.
            let own_transaction = def.kind == RoutineKind::Function
                && self.routines.stack.is_empty()
                && !self.in_transaction
                && self.txn.is_none()
                && self.autocommit();
            if own_transaction {
                self.in_transaction = true;
            }
            // SQL SECURITY DEFINER: the body runs with the definer's privileges (and none of the
            // caller's roles). A session that is not checked (an internal one) stays unchecked.
            let caller_security = (def.security == SqlSecurity::Definer && self.security.account().is_some()).then(|| {
                let definer = cairn_common::accounts::AccountName { user: def.definer_user.clone(), host: def.definer_host.clone() };
                let definer_security = self.security.for_definer(definer);
                std::mem::replace(&mut self.security, definer_security)
            });
            self.routines.stack.push((key, def.kind));
            let mut result = self.run_program(def, &program, args, now, display).await;
            self.routines.stack.pop();
            if let Some(caller) = caller_security {
                let definer_security = std::mem::replace(&mut self.security, caller);
                self.security.end_definer(definer_security);
            }
            if own_transaction {
                let ended = self.end_transaction(result.is_ok()).await;
                if let (Ok(_), Err(e)) = (&result, ended) {
                    result = Err(e);
                }
            }
            self.database = saved_database;
            // Restored whenever it differs: the routine's own, or one its body SET.
            if let Some(d) = sql_mode_def
                && self.vars.get(d.name) != saved_mode.as_ref()
            {
                match saved_mode {
                    Some(v) => self.vars.set(d, v),
                    None => self.vars.reset(d),
                }
            }
            result
        })
    }

    async fn run_program(
        &mut self,
        def: &RoutineDef,
        program: &Program,
        args: Vec<Value>,
        now: (DateTime, DateTime),
        display: &str,
    ) -> Result<(Option<Value>, Vec<Value>), Error> {
        let mut call = Call {
            program,
            frame: vec![Value::Null; program.locals.len()],
            cursors: vec![None; program.cursors.len()],
            scopes: Vec::new(),
            active: Vec::new(),
            now,
            snapshot: std::sync::Mutex::new(None),
        };
        for (slot, value) in args.into_iter().enumerate().take(program.param_count) {
            let stored = self.convert_for_slot(&call, slot as u16, value)?;
            call.frame[slot] = stored;
        }
        let flow = self.run_stmt(&mut call, &program.body).await?;
        let params = call.frame[..program.param_count].to_vec();
        match (def.kind, flow) {
            (RoutineKind::Function, Flow::Return(v)) => {
                let value = match &program.returns {
                    Some((column, _)) => {
                        let mut column = column.clone();
                        column.name = display.to_string();
                        let mut cx = self.coercion();
                        let v = coerce(v, &column, &mut cx)?;
                        self.add_warnings(cx.warnings);
                        v
                    }
                    None => v,
                };
                Ok((Some(value), params))
            }
            (RoutineKind::Function, _) => bail!(FunctionEndedWithoutReturn, "FUNCTION {} ended without RETURN", def.name),
            (RoutineKind::Procedure, _) => Ok((None, params)),
        }
    }

    fn coercion(&self) -> Coercion {
        let mode = self.write_mode();
        let mut cx = if mode.strict { Coercion::strict() } else { Coercion::lenient() };
        cx.no_zero_date = mode.no_zero_date;
        cx
    }

    fn add_warnings(&self, warnings: Vec<Warning>) {
        if warnings.is_empty() {
            return;
        }
        let mut list = self.lock_warnings();
        for w in warnings {
            if list.len() < 1024 {
                list.push(w);
            }
        }
    }

    fn push_warning(&self, level: WarningLevel, code: u16, message: String) {
        self.add_warnings(vec![Warning { level, code, message }]);
    }

    /// A value converted to a variable's declared type (MySQL's store assignment, strict or
    /// not by the routine's sql_mode).
    fn convert_for_slot(&self, call: &Call<'_>, slot: u16, value: Value) -> Result<Value, Error> {
        match call.program.locals.get(slot as usize).and_then(|l| l.column.as_ref()) {
            None => Ok(value),
            Some(column) => {
                let mut cx = self.coercion();
                let v = coerce(value, column, &mut cx)?;
                self.add_warnings(cx.warnings);
                Ok(v)
            }
        }
    }

    fn assign(&mut self, call: &mut Call<'_>, target: &Target, value: Value) -> Result<(), Error> {
        match target {
            Target::Local(slot) => {
                let v = self.convert_for_slot(call, *slot, value)?;
                if let Some(place) = call.frame.get_mut(*slot as usize) {
                    *place = v;
                }
            }
            Target::User(name) => {
                self.user_vars.insert(name.clone(), value);
            }
        }
        Ok(())
    }

    // ----- Running a body -----

    /// An executor for one statement of a routine: the current statement's warnings, NOW()
    /// of the calling statement.
    fn routine_exec(&mut self, call: &Call<'_>) -> Exec<B> {
        let mut exec = self.new_exec(self.warnings.clone());
        exec.snapshot.now = call.now.0;
        exec.snapshot.utc_now = call.now.1;
        exec
    }

    fn compiled(&self, e: &RoutineExpr) -> Result<Arc<CompiledExpr>, Error> {
        let catalog = self.engine.backend.catalog();
        {
            let cached = e.compiled.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cached.as_ref()
                && self.dependencies_current(&c.tables, &c.routines, &catalog)
            {
                return Ok(c.clone());
            }
        }
        let empty = StatementText { tokens: Vec::new(), text: String::new() };
        let compiled = Arc::new(self.compile_expression(&e.ast, &empty, Some(e.locals.clone()))?);
        *e.compiled.lock().unwrap_or_else(|p| p.into_inner()) = Some(compiled.clone());
        Ok(compiled)
    }

    async fn eval(&mut self, call: &Call<'_>, e: &RoutineExpr) -> Result<Value, Error> {
        let compiled = self.compiled(e)?;
        if compiled.tables.is_empty() && compiled.slots.iter().all(slot_binds_in_place) {
            return self.eval_in_place(call, &compiled);
        }
        self.security.check_reads(&self.engine.backend.catalog(), &compiled.tables)?;
        let mut exec = self.routine_exec(call);
        self.eval_lazily(&compiled, &call.frame, &mut exec).await
    }

    /// Evaluates an expression that runs no subquery and calls no stored function (most
    /// conditions and values of a body: `v_ip IS NULL`, `v_now < v_first + p_delay`) without
    /// building an executor: its slots are bound from the frame, the variables and the calling
    /// statement's time, exactly as `bind_slots` binds them, and it sees the session through
    /// the call's snapshot. It reads no table, so there is no privilege to check.
    fn eval_in_place(&mut self, call: &Call<'_>, compiled: &CompiledExpr) -> Result<Value, Error> {
        let mut values = Vec::with_capacity(compiled.slots.len());
        for slot in compiled.slots.iter() {
            values.push(match slot {
                Slot::Param(n) => call.frame.get(*n as usize).cloned().ok_or_else(|| err!(WrongArguments, "Incorrect arguments to mysqld_stmt_execute"))?,
                Slot::SystemVar { scope, name } => self.system_var(*scope, name)?,
                Slot::UserVar(name) => self.user_vars.get(name).cloned().unwrap_or(Value::Null),
                Slot::UtcNow { fsp } => Value::DateTime(call.now.1.round_to_fsp(*fsp).unwrap_or(call.now.1)),
                Slot::UnixNow => Value::Int(call.now.1.to_unix_seconds().unwrap_or(0)),
                Slot::Outer { .. } | Slot::Correlated { .. } => Value::Null,
                Slot::Subquery { .. } | Slot::Routine(_) => return Err(Error::internal("a subquery or stored function call evaluated in place")),
            });
        }
        let mut guard = call.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(snapshot) => self.refresh_snapshot(snapshot),
            None => {
                let mut snapshot = self.snapshot();
                snapshot.now = call.now.0;
                snapshot.utc_now = call.now.1;
                *guard = Some(snapshot);
            }
        }
        let Some(snapshot) = guard.as_mut() else {
            return Err(Error::internal("a routine call without a snapshot"));
        };
        let mut ctx = cairn_common::expr::EvalContext {
            params: &values,
            warnings: Vec::new(),
            session: Some(snapshot),
            strict: false,
            unbound: &[],
            missing: None,
        };
        let result = compiled.expr.eval(&[], &mut ctx);
        let warnings = std::mem::take(&mut ctx.warnings);
        drop(ctx);
        drop(guard);
        self.add_warnings(warnings);
        result
    }

    /// A leaf statement's plan: kept with the program, re-planned when a table (or a stored
    /// function) it uses changed.
    fn leaf_plan(&self, leaf: &Leaf) -> Result<Option<CachedPlan>, Error> {
        let catalog = self.engine.backend.catalog();
        {
            let cached = leaf.plan.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(p) = cached.as_ref()
                && self.plan_is_current(p, &catalog)
            {
                return Ok(Some(p.clone()));
            }
        }
        let plan = self.plan_statement_with(&leaf.statement, &leaf.text, Some(leaf.locals.clone()))?;
        if let Some(p) = &plan {
            *leaf.plan.lock().unwrap_or_else(|p| p.into_inner()) = Some(p.clone());
        }
        Ok(plan)
    }

    /// Runs a leaf statement; a result set comes back as rows.
    async fn run_leaf(&mut self, call: &Call<'_>, leaf: &Leaf) -> Result<Outcome, Error> {
        self.statements_run += 1;
        let mut exec = self.routine_exec(call);
        match self.leaf_plan(leaf)? {
            Some(plan) => {
                self.bind(&plan.slots, &call.frame, &mut exec).await?;
                self.run_planned(&plan, &mut exec).await
            }
            None => Box::pin(self.run_other(&leaf.statement, &leaf.text, &mut exec, &[])).await,
        }
    }

    /// Every row of a planned query (bounded: the rows are held).
    async fn query_rows(&mut self, plan: &CachedPlan, exec: &mut Exec<B>) -> Result<Vec<Row>, Error> {
        let Planned::Query(q) = plan.planned.as_ref() else {
            return Err(Error::internal("a query expected"));
        };
        // Cursors and SELECT … INTO read with the privileges the routine runs with.
        self.security.check_plan(&self.engine.backend.catalog(), &plan.planned, &plan.tables)?;
        Stats::bump(&self.engine.stats.com_select);
        if !super::is_tableless(&q.root) {
            self.touch_transaction(false);
        }
        let mut stream = crate::exec::run_query(&q.root, exec).await?;
        let limit = self.engine.config.max_materialized_rows.min(MAX_CURSOR_ROWS);
        let mut rows = Vec::new();
        while let Some(batch) = stream.next_batch().await {
            rows.extend(batch?);
            if rows.len() > limit {
                bail!(TooManyRows, "A cursor or SELECT ... INTO of a stored routine holds more than {limit} rows");
            }
        }
        Ok(rows)
    }

    async fn leaf_rows(&mut self, call: &Call<'_>, leaf: &Leaf) -> Result<Vec<Row>, Error> {
        self.statements_run += 1;
        let plan = self.leaf_plan(leaf)?.ok_or_else(|| Error::internal("a routine query without a plan"))?;
        let mut exec = self.routine_exec(call);
        self.bind(&plan.slots, &call.frame, &mut exec).await?;
        let rows = self.query_rows(&plan, &mut exec).await?;
        self.found_rows = rows.len() as u64;
        Ok(rows)
    }

    /// Looks for a handler of `e` and runs it; without one the error goes on up (a warning
    /// class condition, from SIGNAL, becomes a warning).
    async fn raise<'p>(&mut self, call: &mut Call<'p>, e: Error, warning: bool) -> Result<Flow, Error> {
        let mut found = None;
        for (index, scope) in call.scopes.iter().enumerate().rev() {
            if !scope.enabled {
                continue;
            }
            let best = scope
                .handlers
                .iter()
                .enumerate()
                .filter_map(|(h, handler)| handler.conditions.iter().filter_map(|c| match_rank(c, &e, warning)).max().map(|rank| (rank, h)))
                .max_by_key(|(rank, h)| (*rank, usize::MAX - h));
            if let Some((_, h)) = best {
                found = Some((index, h));
                break;
            }
        }
        let Some((scope_index, handler_index)) = found else {
            if warning {
                return Ok(Flow::Next);
            }
            if sqlstate_class(e.sqlstate()) == "01" {
                // An unhandled SIGNAL of a warning SQLSTATE is a warning, and execution goes on.
                self.push_warning(WarningLevel::Warning, e.code(), e.message.clone());
                return Ok(Flow::Next);
            }
            return Err(e);
        };
        let handlers: &'p [routine::Handler] = call.scopes[scope_index].handlers;
        let handler = &handlers[handler_index];
        let exit = handler.exit;
        let body = &handler.body;
        // The handler's block, and the blocks inside it, cannot catch what the handler raises.
        let disabled: Vec<usize> = (scope_index..call.scopes.len()).filter(|&i| call.scopes[i].enabled).collect();
        for &i in &disabled {
            call.scopes[i].enabled = false;
        }
        call.active.push(e);
        let depth = call.scopes.len();
        let result = self.run_stmt(call, body).await;
        call.scopes.truncate(depth);
        call.active.pop();
        for &i in &disabled {
            if let Some(s) = call.scopes.get_mut(i) {
                s.enabled = true;
            }
        }
        match result? {
            Flow::Next if exit => Ok(Flow::Exit(scope_index)),
            Flow::Next => Ok(Flow::Next),
            other => Ok(other),
        }
    }

    /// After a statement succeeded: a warning it left may activate a handler.
    async fn warning_handlers<'p>(&mut self, call: &mut Call<'p>, warnings_before: usize) -> Result<Flow, Error> {
        if call.scopes.iter().all(|s| s.handlers.is_empty()) {
            return Ok(Flow::Next);
        }
        let condition = {
            let list = self.lock_warnings();
            list.iter().skip(warnings_before).find(|w| w.level == WarningLevel::Warning).map(|w| {
                let kind = kind_of_code(w.code);
                let state = if kind == ErrorKind::Internal { "01000" } else { kind.sqlstate() };
                Error::signalled(kind, w.code, state, w.message.clone())
            })
        };
        match condition {
            Some(e) => self.raise(call, e, true).await,
            None => Ok(Flow::Next),
        }
    }

    fn warning_len(&self) -> usize {
        self.lock_warnings().len()
    }

    fn run_stmts<'a, 'p: 'a>(&'a mut self, call: &'a mut Call<'p>, stmts: &'p [Stmt]) -> BoxFuture<'a, Result<Flow, Error>> {
        Box::pin(async move {
            for stmt in stmts {
                match self.run_stmt(call, stmt).await? {
                    Flow::Next => {}
                    other => return Ok(other),
                }
            }
            Ok(Flow::Next)
        })
    }

    /// Evaluates a condition of a control statement; an error goes to the handlers (a
    /// CONTINUE handler then skips the statement).
    async fn condition<'p>(&mut self, call: &mut Call<'p>, e: &RoutineExpr) -> Result<Result<bool, Flow>, Error> {
        match self.eval(call, e).await {
            Ok(v) => Ok(Ok(v.truthy() == Some(true))),
            Err(error) => Ok(Err(self.raise(call, error, false).await?)),
        }
    }

    fn run_stmt<'a, 'p: 'a>(&'a mut self, call: &'a mut Call<'p>, stmt: &'p Stmt) -> BoxFuture<'a, Result<Flow, Error>> {
        Box::pin(async move {
            match stmt {
                Stmt::Block(block) => self.run_block(call, block).await,
                Stmt::If { branches, otherwise } => {
                    for (condition, body) in branches {
                        match self.condition(call, condition).await? {
                            Ok(true) => return self.run_stmts(call, body).await,
                            Ok(false) => {}
                            Err(flow) => return Ok(flow),
                        }
                    }
                    match otherwise {
                        Some(body) => self.run_stmts(call, body).await,
                        None => Ok(Flow::Next),
                    }
                }
                Stmt::Case { operand, whens, otherwise } => {
                    if let Some((slot, e)) = operand {
                        match self.eval(call, e).await {
                            Ok(v) => call.frame[*slot as usize] = v,
                            Err(error) => return self.raise(call, error, false).await,
                        }
                    }
                    for (condition, body) in whens {
                        match self.condition(call, condition).await? {
                            Ok(true) => return self.run_stmts(call, body).await,
                            Ok(false) => {}
                            Err(flow) => return Ok(flow),
                        }
                    }
                    match otherwise {
                        Some(body) => self.run_stmts(call, body).await,
                        None => self.raise(call, err!(CaseNotFound, "Case not found for CASE statement"), false).await,
                    }
                }
                Stmt::While { label, condition, body } => loop {
                    match self.condition(call, condition).await? {
                        Ok(true) => {}
                        Ok(false) => return Ok(Flow::Next),
                        Err(flow) => return Ok(flow),
                    }
                    match self.run_stmts(call, body).await? {
                        Flow::Next => {}
                        Flow::Iterate(id) if id == *label => {}
                        Flow::Leave(id) if id == *label => return Ok(Flow::Next),
                        other => return Ok(other),
                    }
                },
                Stmt::Repeat { label, body, until } => loop {
                    match self.run_stmts(call, body).await? {
                        Flow::Next => {}
                        // ITERATE starts the body again, without the UNTIL test (as MySQL).
                        Flow::Iterate(id) if id == *label => continue,
                        Flow::Leave(id) if id == *label => return Ok(Flow::Next),
                        other => return Ok(other),
                    }
                    match self.condition(call, until).await? {
                        Ok(true) => return Ok(Flow::Next),
                        Ok(false) => {}
                        Err(flow) => return Ok(flow),
                    }
                },
                Stmt::Loop { label, body } => loop {
                    match self.run_stmts(call, body).await? {
                        Flow::Next => {}
                        Flow::Iterate(id) if id == *label => {}
                        Flow::Leave(id) if id == *label => return Ok(Flow::Next),
                        other => return Ok(other),
                    }
                },
                Stmt::Leave(id) => Ok(Flow::Leave(*id)),
                Stmt::Iterate(id) => Ok(Flow::Iterate(*id)),
                Stmt::Return(e) => match self.eval(call, e).await {
                    Ok(v) => Ok(Flow::Return(v)),
                    Err(error) => self.raise(call, error, false).await,
                },
                simple => {
                    let before = self.warning_len();
                    match self.run_simple(call, simple).await {
                        Ok(Flow::Next) => self.warning_handlers(call, before).await,
                        Ok(flow) => Ok(flow),
                        Err(error) => self.raise(call, error, false).await,
                    }
                }
            }
        })
    }

    async fn run_block<'p>(&mut self, call: &mut Call<'p>, block: &'p Block) -> Result<Flow, Error> {
        let scope_index = call.scopes.len();
        call.scopes.push(HandlerScope { handlers: &block.handlers, enabled: true });
        let result = self.run_block_body(call, block).await;
        call.scopes.truncate(scope_index);
        for &cursor in &block.cursors {
            if let Some(c) = call.cursors.get_mut(cursor) {
                *c = None;
            }
        }
        match result? {
            Flow::Leave(id) if Some(id) == block.label => Ok(Flow::Next),
            Flow::Exit(index) if index == scope_index => Ok(Flow::Next),
            other => Ok(other),
        }
    }

    async fn run_block_body<'p>(&mut self, call: &mut Call<'p>, block: &'p Block) -> Result<Flow, Error> {
        for (slot, default) in &block.variables {
            let value = match default {
                Some(e) => match self.eval(call, e).await {
                    Ok(v) => v,
                    Err(error) => return self.raise(call, error, false).await,
                },
                None => Value::Null,
            };
            match self.convert_for_slot(call, *slot, value) {
                Ok(v) => call.frame[*slot as usize] = v,
                Err(error) => return self.raise(call, error, false).await,
            }
        }
        self.run_stmts(call, &block.body).await
    }

    /// Statements that do not contain others: their errors go to the handlers.
    async fn run_simple<'p>(&mut self, call: &mut Call<'p>, stmt: &'p Stmt) -> Result<Flow, Error> {
        self.routines.last_affected = 0;
        match stmt {
            Stmt::Set(assignments) => {
                for a in assignments {
                    match a {
                        Assignment::Local(slot, e) => {
                            let v = self.eval(call, e).await?;
                            self.assign(call, &Target::Local(*slot), v)?;
                        }
                        Assignment::User(name, e) => {
                            let v = self.eval(call, e).await?;
                            self.user_vars.insert(name.clone(), v);
                        }
                        Assignment::System { scope, name, value } => {
                            let v = match value {
                                Some(e) => Some(self.eval(call, e).await?),
                                None => None,
                            };
                            self.set_system_variable(*scope, name, v)?;
                        }
                    }
                }
                Ok(Flow::Next)
            }
            Stmt::Sql(leaf) => {
                let outcome = self.run_leaf(call, leaf).await?;
                if let Outcome::Ok { affected_rows, .. } = &outcome {
                    self.routines.last_affected = *affected_rows;
                }
                if let Outcome::Rows { columns, rows, warnings } = outcome {
                    if self.routines.stack.iter().any(|(_, kind)| *kind == RoutineKind::Function) {
                        bail!(ResultSetFromFunction, "Not allowed to return a result set from a function");
                    }
                    // The rows are taken now: the procedure's next statements may change them.
                    let rows = rows.collect().await?;
                    self.routines.results.push((columns, rows, warnings));
                }
                Ok(Flow::Next)
            }
            Stmt::SelectInto(leaf, targets) => {
                let rows = self.leaf_rows(call, leaf).await?;
                match rows.len() {
                    0 => {
                        let no_data = err!(NoData, "No data - zero rows fetched, selected, or processed");
                        let handled = call.scopes.iter().any(|s| s.enabled && s.handlers.iter().any(|h| h.conditions.iter().any(|c| match_rank(c, &no_data, false).is_some())));
                        if handled {
                            return self.raise(call, no_data, false).await;
                        }
                        // Unhandled, NOT FOUND of a SELECT … INTO is a warning; the variables keep
                        // their values.
                        self.push_warning(WarningLevel::Warning, no_data.code(), no_data.message);
                        Ok(Flow::Next)
                    }
                    1 => {
                        let row = rows.into_iter().next().unwrap_or_default();
                        if row.len() != targets.len() {
                            bail!(WrongColumnCountInUnion, "The used SELECT statements have a different number of columns");
                        }
                        for (target, value) in targets.iter().zip(row) {
                            self.assign(call, target, value)?;
                        }
                        Ok(Flow::Next)
                    }
                    _ => bail!(TooManyRows, "Result consisted of more than one row"),
                }
            }
            Stmt::Call(c) => {
                let database = c.name.database.clone().or_else(|| self.database.clone()).unwrap_or_default();
                let found = self.find_routine(&database, RoutineKind::Procedure, &c.name.name).await?;
                let def = found.def();
                check_argument_count(def, c.args.len())?;
                let mut values = Vec::with_capacity(c.args.len());
                for (i, (param, arg)) in def.params.iter().zip(&c.args).enumerate() {
                    if param.mode != ParamMode::In && c.targets[i].is_none() {
                        bail!(
                            OutArgumentNotVariable,
                            "OUT or INOUT argument {} for routine {}.{} is not a variable or NEW pseudo-variable in BEFORE trigger",
                            i + 1,
                            def.database,
                            def.name
                        );
                    }
                    values.push(if param.mode == ParamMode::Out { Value::Null } else { self.eval(call, arg).await? });
                }
                let modes: Vec<ParamMode> = def.params.iter().map(|p| p.mode).collect();
                let (_, finals) = self.invoke(found, values, call.now, "").await?;
                for (i, mode) in modes.iter().enumerate() {
                    if *mode != ParamMode::In
                        && let Some(target) = &c.targets[i]
                    {
                        let value = finals.get(i).cloned().unwrap_or(Value::Null);
                        self.assign(call, target, value)?;
                    }
                }
                Ok(Flow::Next)
            }
            Stmt::Open(cursor) => {
                if call.cursors[*cursor].is_some() {
                    bail!(CursorAlreadyOpen, "Cursor is already open");
                }
                let program: &'p Program = call.program;
                let decl = &program.cursors[*cursor];
                let rows = self.leaf_rows(call, &decl.query).await?;
                call.cursors[*cursor] = Some(rows.into());
                Ok(Flow::Next)
            }
            Stmt::Fetch(cursor, targets) => {
                let Some(rows) = call.cursors[*cursor].as_mut() else {
                    bail!(CursorNotOpen, "Cursor is not open");
                };
                let Some(row) = rows.pop_front() else {
                    bail!(NoData, "No data - zero rows fetched, selected, or processed");
                };
                if row.len() != targets.len() {
                    bail!(FetchArgumentCount, "Incorrect number of FETCH variables");
                }
                for (target, value) in targets.iter().zip(row) {
                    self.assign(call, target, value)?;
                }
                Ok(Flow::Next)
            }
            Stmt::Close(cursor) => {
                if call.cursors[*cursor].take().is_none() {
                    bail!(CursorNotOpen, "Cursor is not open");
                }
                Ok(Flow::Next)
            }
            Stmt::Signal(signal) => {
                let error = self.signal_error(call, signal).await?;
                Err(error)
            }
            _ => Err(Error::internal("a compound statement reached run_simple")),
        }
    }

    /// The condition a SIGNAL or RESIGNAL raises.
    async fn signal_error(&mut self, call: &Call<'_>, signal: &routine::Signal) -> Result<Error, Error> {
        let base = if signal.resignal {
            match call.active.last() {
                Some(active) => Some(active.clone()),
                None => bail!(ResignalWithoutHandler, "RESIGNAL when handler not active"),
            }
        } else {
            None
        };
        let (state, declared_code) = match (&signal.state, &base) {
            (Some((state, code)), _) => (state.clone(), *code),
            (None, Some(b)) => (b.sqlstate().to_string(), None),
            (None, None) => return Err(Error::internal("SIGNAL without a SQLSTATE")),
        };
        let (kind, default_code, default_message) = match sqlstate_class(&state) {
            "01" => (ErrorKind::SignalWarning, 1642, "Unhandled user-defined warning condition"),
            "02" => (ErrorKind::SignalNotFound, 1643, "Unhandled user-defined not found condition"),
            _ => (ErrorKind::SignalException, 1644, "Unhandled user-defined exception condition"),
        };
        // RESIGNAL keeps the condition's number and text (also under a new SQLSTATE) unless
        // SET changes them; SIGNAL starts from its class's defaults.
        let (mut code, mut message) = match &base {
            Some(b) => (declared_code.unwrap_or(b.code()), b.message.clone()),
            None => (declared_code.unwrap_or(default_code), default_message.to_string()),
        };
        if let Some(e) = &signal.message {
            let v = self.eval(call, e).await?;
            message = v.to_text().chars().take(128).collect();
        }
        if let Some(e) = &signal.errno {
            let v = self.eval(call, e).await?;
            code = match v.to_i64() {
                Some(n) if (1..=65535).contains(&n) => n as u16,
                _ => bail!(WrongValueForVariable, "Variable 'MYSQL_ERRNO' can't be set to the value of '{}'", v.to_text()),
            };
        }
        Ok(Error::signalled(kind, code, state, message))
    }

    /// `SET @@x = v` / `SET SESSION x = v` inside a routine, with the value already computed.
    fn set_system_variable(&mut self, scope: VarScope, name: &str, value: Option<Value>) -> Result<(), Error> {
        let def = variables::lookup(name).ok_or_else(|| variables::unknown(name))?;
        variables::check_settable(def, scope == VarScope::Global)?;
        match value {
            None => self.vars.reset(def),
            Some(v) => {
                let v = variables::normalize(def, v)?;
                self.check_variable_value(def, &v)?;
                self.vars.set(def, v);
            }
        }
        self.after_set(def);
        Ok(())
    }

    // ----- The fast path of `SELECT f(literals)` -----

    /// `SELECT [db.]f(literal, …)` naming a stored function: what Exim sends for greylisting.
    /// It is answered without parsing or planning: the literals are read off the tokens and the
    /// function is called directly. The result and its metadata are exactly what the planned
    /// statement gives (`routine_calls_answer_as_planned` tests it). None when the text is not
    /// of that shape, or names no stored function.
    pub(super) async fn fast_function_call(&mut self, text: &StatementText) -> Option<Outcome> {
        let (database, name, args, column_name) = self.fast_call_shape(text)?;
        let catalog = self.engine.backend.catalog();
        let def = catalog.routine(&database, RoutineKind::Function, &name)?;
        if def.params.len() != args.len() {
            return None;
        }
        let returns = def.returns.as_ref()?;
        let ty = routine::return_sql_type(returns);
        let call = RoutineCall { database, name: def.name.clone(), args: Vec::new(), display: column_name.clone() };
        drop(catalog);
        self.statements_run += 1;
        let warnings = Arc::new(std::sync::Mutex::new(Vec::new()));
        self.rotate_warnings(warnings.clone());
        self.current_text = text.text.clone();
        Stats::bump(&self.engine.stats.com_select);
        let snapshot = self.snapshot();
        let result = self.call_function(&call, args, (snapshot.now, snapshot.utc_now)).await;
        Some(match result {
            Ok(value) => {
                let columns: Arc<[crate::outcome::ColumnMeta]> = vec![column_meta(&column_name, &ty, None, self.result_collation)].into();
                let value = conform(value, &columns[0].ty);
                self.found_rows = 1;
                self.row_count = -1;
                let warnings = self.warning_count();
                Outcome::Rows { columns, rows: RowSource::Rows(vec![vec![value]]), warnings }
            }
            Err(e) => self.fail(e),
        })
    }

    /// `(database, name, argument values, column name)` of a `SELECT f(literals)` text.
    fn fast_call_shape(&self, text: &StatementText) -> Option<(String, String, Vec<Value>, String)> {
        use sqlparser::tokenizer::Token;
        let tokens: Vec<&sqlparser::tokenizer::TokenWithSpan> = text.tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).collect();
        let word = |i: usize| match tokens.get(i).map(|t| &t.token) {
            Some(Token::Word(w)) if !w.value.starts_with('@') => Some(w),
            _ => None,
        };
        let select = word(0)?;
        if select.quote_style.is_some() || !select.value.eq_ignore_ascii_case("SELECT") {
            return None;
        }
        let first = word(1)?;
        let (database, name, mut at) = if tokens.get(2).map(|t| &t.token) == Some(&Token::Period) {
            (first.value.clone(), word(3)?.value.clone(), 4)
        } else {
            if first.quote_style.is_none() && crate::compile::is_builtin_function(&first.value.to_ascii_uppercase()) {
                return None;
            }
            (self.database.clone()?, first.value.clone(), 2)
        };
        if tokens.get(at).map(|t| &t.token) != Some(&Token::LParen) {
            return None;
        }
        at += 1;
        let mut args = Vec::new();
        if tokens.get(at).map(|t| &t.token) == Some(&Token::RParen) {
            at += 1;
        } else {
            loop {
                let negative = tokens.get(at).map(|t| &t.token) == Some(&Token::Minus);
                if negative {
                    at += 1;
                }
                let value = match tokens.get(at).map(|t| &t.token)? {
                    Token::Number(n, _) => {
                        let literal = if negative { format!("-{n}") } else { n.clone() };
                        match crate::compile::number_literal(&literal).ok()?.0 {
                            cairn_common::expr::Expr::Literal(v) => v,
                            _ => return None,
                        }
                    }
                    Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) if !negative => Value::text(s),
                    Token::Word(w) if !negative && w.quote_style.is_none() && w.value.eq_ignore_ascii_case("NULL") => Value::Null,
                    _ => return None,
                };
                args.push(value);
                at += 1;
                match tokens.get(at).map(|t| &t.token)? {
                    Token::Comma => at += 1,
                    Token::RParen => {
                        at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        if at != tokens.len() {
            return None;
        }
        // MySQL names the column by the expression as written.
        let locator = crate::lexer::Locator::new(&text.text);
        let column = locator.slice(tokens[1].span.start, tokens[at - 1].span.end).to_string();
        Some((database, name, args, column))
    }

    /// Whether the tables and stored functions a plan or expression was built from are
    /// still the same versions.
    pub(super) fn dependencies_current(&self, tables: &[(cairn_common::ids::TableId, u64)], routines: &[(RoutineKey, u64)], catalog: &cairn_common::catalog::Catalog) -> bool {
        tables.iter().all(|(id, version)| catalog.table(*id).is_some_and(|t| t.version == *version))
            && routines.iter().all(|(key, version)| catalog.routines.get(key).is_some_and(|r| r.version == *version))
    }

    // ----- Routines created through other SQL nodes -----

    /// Plans a statement; if it names a stored routine this node does not know, the catalog
    /// is synchronized first and the statement planned again (the routine may have been
    /// created through another SQL node a moment ago).
    pub(super) async fn plan_statement_synced(&mut self, statement: &crate::parse::Statement, text: &StatementText) -> Result<Option<CachedPlan>, Error> {
        match self.plan_statement(statement, text) {
            Err(e) if e.kind == ErrorKind::RoutineDoesNotExist && self.catalog_caught_up().await => self.plan_statement(statement, text),
            other => other,
        }
    }

    /// A routine looked up by name: when this node does not know it, the catalog is
    /// synchronized once and the name looked up again.
    async fn find_routine(&self, database: &str, kind: RoutineKind, name: &str) -> Result<Found, Error> {
        let key = RoutineKey::new(database, kind, name);
        let catalog = self.engine.backend.catalog();
        if catalog.routines.contains_key(&key) {
            return Ok(Found { catalog, key });
        }
        if self.catalog_caught_up().await {
            let catalog = self.engine.backend.catalog();
            if catalog.routines.contains_key(&key) {
                return Ok(Found { catalog, key });
            }
        }
        Err(catalog_routine::does_not_exist(kind, database, name))
    }

    /// After a routine was not found: synchronizes the catalog with the management nodes and
    /// says whether that brought a newer one. One synchronization at a time per node, at most
    /// one per `CATALOG_SYNC_INTERVAL_MICROS`, so that calls of a routine that really does not
    /// exist cannot flood the management nodes.
    async fn catalog_caught_up(&self) -> bool {
        use std::sync::atomic::Ordering;
        const CATALOG_SYNC_INTERVAL_MICROS: i64 = 10_000;
        let engine = &self.engine;
        let now = engine.config.clock.now_micros();
        if now.saturating_sub(engine.last_catalog_sync_micros.load(Ordering::Relaxed)) < CATALOG_SYNC_INTERVAL_MICROS {
            return false;
        }
        if engine.catalog_sync_running.swap(true, Ordering::AcqRel) {
            return false;
        }
        engine.last_catalog_sync_micros.store(now, Ordering::Relaxed);
        let before = engine.backend.catalog().version;
        let synced = engine.backend.sync_catalog().await;
        engine.catalog_sync_running.store(false, Ordering::Release);
        synced.is_ok() && engine.backend.catalog().version > before
    }

    // ----- SHOW -----

    pub(super) fn show_create_routine(&self, kind: RoutineKind, name: &QualifiedName) -> Result<crate::show::ShowResult, Error> {
        let database = self.env_database(&name.database)?;
        let catalog = self.engine.backend.catalog();
        let def = catalog
            .routine(&database, kind, &name.name)
            .ok_or_else(|| err!(RoutineDoesNotExist, "{} {} does not exist", kind.keyword(), name.name))?;
        Ok(routine::show::show_create(def))
    }
}

/// MySQL's 1318 for a call with the wrong number of arguments.
fn check_argument_count(def: &RoutineDef, given: usize) -> Result<(), Error> {
    if def.params.len() != given {
        bail!(
            RoutineArgumentCount,
            "Incorrect number of arguments for {} {}.{}; expected {}, got {given}",
            def.kind.keyword(),
            def.database,
            def.name,
            def.params.len()
        );
    }
    Ok(())
}

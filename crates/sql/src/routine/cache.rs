//! Each SQL node's parsed routines.
//!
//! A routine is parsed once per SQL node and catalog version: the entry is keyed by the
//! routine's name and remembers the version it was parsed from. The catalog gives every
//! routine the version of the change that created or altered it, so a `CREATE OR REPLACE`,
//! `ALTER` or `DROP` through any SQL node reaches this node with the pushed catalog, and the
//! next call parses the new definition (a dropped routine is simply not found). The plans of
//! the body's statements live inside the parsed [`Program`], so they go with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_common::error::Error;
use cairn_common::routine::{RoutineDef, RoutineKey};

use super::Program;

/// Routines a node keeps parsed; beyond this the cache starts over (hot routines come back at
/// once, and a node with more routines than this is unusual).
const CAPACITY: usize = 1024;

#[derive(Default)]
pub(crate) struct RoutineCache {
    entries: Mutex<HashMap<RoutineKey, (u64, Arc<Program>)>>,
    /// Definitions parsed so far (tests check a routine is parsed once per version).
    parses: AtomicU64,
}

impl RoutineCache {
    pub fn new() -> RoutineCache {
        RoutineCache::default()
    }

    /// The parsed form of `routine`, parsing its definition if this node has not yet (or has
    /// an older version).
    pub fn program(&self, routine: &RoutineDef) -> Result<Arc<Program>, Error> {
        let key = RoutineKey::new(&routine.database, routine.kind, &routine.name);
        if let Some((version, program)) = self.lock().get(&key)
            && *version == routine.version
        {
            return Ok(program.clone());
        }
        // Parsed outside the lock: two sessions may both parse a new version once; the
        // result is the same either way.
        let program = super::parse::program_of(&routine.create_statement()).map_err(|e| {
            Error::new(
                e.kind,
                format!("{} {}.{} cannot be loaded: {}", routine.kind.keyword(), routine.database, routine.name, e.message),
            )
        })?;
        self.parses.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, (routine.version, program.clone()));
        Ok(program)
    }

    pub fn parses(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoutineKey, (u64, Arc<Program>)>> {
        // Every update is one insert or a clear: a panic elsewhere cannot leave it half-done.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for RoutineCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutineCache").field("parses", &self.parses()).finish_non_exhaustive()
    }
}

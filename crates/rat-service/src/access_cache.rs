//! The access rule's inputs as last read, kept while nothing they depend on
//! has changed.
//!
//! [`rat_dao::access::grants_of_many_at`] answers a question (an object, its
//! namespace, the caller's share principals) at an [`AccessGeneration`]: the
//! counter that every committed change to `ownership`, `shares` or
//! `namespaces` moves forward (migration V19). An answer read at generation
//! `g` is exactly what a new query would return in any snapshot that also
//! sees `g`. The hot read of a pipeline reads the generation in the same
//! statement as the pipeline, so its access check is answered here when the
//! generation is unchanged, and queried (then kept) when it moved: the answer
//! is as fresh as a query of its own, on every replica, with no notification
//! to wait for.
//!
//! Bounded: at most [`CAPACITY`] answers; when full, or when the generation
//! moves forward, everything is dropped at once (a grant changing is rare;
//! the answers are rebuilt by the next requests).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use rat_dao::access::{AccessGeneration, Grants, GrantsQuestion};

/// Most answers kept.
pub(crate) const CAPACITY: usize = 16_384;

/// Answers read at one generation (the newest seen).
#[derive(Debug, Default)]
pub(crate) struct GrantsCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The generation every kept answer was read at.
    generation: Option<AccessGeneration>,
    answers: HashMap<GrantsQuestion, Grants>,
}

impl State {
    /// Moves to `generation` when it is newer, dropping every answer; true
    /// when the kept answers are of `generation`.
    fn at(&mut self, generation: AccessGeneration) -> bool {
        if self.generation.is_none_or(|kept| generation > kept) {
            self.answers.clear();
            self.generation = Some(generation);
        }
        self.generation == Some(generation)
    }
}

impl GrantsCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change leaves the state consistent; a panic elsewhere while
        // holding the lock cannot leave it half-written.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer to `question` read at `generation`, if kept.
    pub(crate) fn get(&self, question: &GrantsQuestion, generation: AccessGeneration) -> Option<Grants> {
        let mut state = self.lock();
        if !state.at(generation) {
            return None;
        }
        state.answers.get(question).cloned()
    }

    /// Keeps `grants`, the answer to `question` read at `generation` (unless
    /// newer answers are kept already).
    pub(crate) fn put(&self, question: GrantsQuestion, grants: Grants, generation: AccessGeneration) {
        let mut state = self.lock();
        if !state.at(generation) {
            return;
        }
        if state.answers.len() >= CAPACITY && !state.answers.contains_key(&question) {
            state.answers.clear();
        }
        state.answers.insert(question, grants);
    }

    /// How many answers are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().answers.len()
    }
}

#[cfg(test)]
mod tests {
    use rat_domain::{AccessLevel, ObjectType};
    use uuid::Uuid;

    use super::*;

    fn question(n: u128) -> GrantsQuestion {
        GrantsQuestion {
            object_type: ObjectType::Pipeline,
            object_id: Uuid::from_u128(n),
            namespace: Some("default".to_owned()),
            principals: vec!["alice".to_owned(), "role:analysts".to_owned()],
        }
    }

    fn grants(owner: &str) -> Grants {
        Grants {
            owner: Some(owner.to_owned()),
            namespace_owner: None,
            shares: vec![("alice".to_owned(), AccessLevel::Read)],
        }
    }

    const G1: AccessGeneration = AccessGeneration(1);
    const G2: AccessGeneration = AccessGeneration(2);

    #[test]
    fn an_answer_is_given_only_at_the_generation_it_was_read_at() {
        let cache = GrantsCache::default();
        assert_eq!(cache.get(&question(1), G1), None);
        cache.put(question(1), grants("bob"), G1);
        assert_eq!(cache.get(&question(1), G1), Some(grants("bob")));
        // Another question, or the same principals on another object: no.
        assert_eq!(cache.get(&question(2), G1), None);
        let mut fewer_roles = question(1);
        fewer_roles.principals.pop();
        assert_eq!(cache.get(&fewer_roles, G1), None);
        // A newer generation drops every answer read before it...
        assert_eq!(cache.get(&question(1), G2), None);
        assert_eq!(cache.len(), 0);
        // ...and an older one (a request whose snapshot was taken before the
        // change) neither gets nor keeps anything.
        cache.put(question(1), grants("bob"), G1);
        assert_eq!(cache.get(&question(1), G1), None);
        assert_eq!(cache.len(), 0);
        cache.put(question(1), grants("carol"), G2);
        assert_eq!(cache.get(&question(1), G2), Some(grants("carol")));
    }

    #[test]
    fn an_answer_read_at_a_newer_generation_replaces_the_older_ones() {
        let cache = GrantsCache::default();
        cache.put(question(1), grants("bob"), G1);
        cache.put(question(2), grants("carol"), G2);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&question(2), G2), Some(grants("carol")));
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = GrantsCache::default();
        for n in 0..CAPACITY as u128 {
            cache.put(question(n), grants("bob"), G1);
        }
        assert_eq!(cache.len(), CAPACITY);
        // Replacing a kept answer keeps the others.
        cache.put(question(0), grants("carol"), G1);
        assert_eq!(cache.len(), CAPACITY);
        // One more drops them all and keeps the new one.
        cache.put(question(CAPACITY as u128), grants("bob"), G1);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&question(CAPACITY as u128), G1), Some(grants("bob")));
    }
}

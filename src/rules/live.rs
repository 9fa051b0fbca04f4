//! The rule set of a running pipeline, replaceable while it runs (hot reload).
//!
//! A reload compiles the new [`RulePack`] on its own thread, off the hot path, and
//! [`LiveRules::replace`]s it here. The reader thread — the one place units are made,
//! in sequence order — stamps every unit with the pack that is current when it is
//! made ([`LiveRules::current`]: one atomic load per unit, the lock only when the
//! generation moved). So the switch happens between two units: each unit is matched,
//! counted, routed and correlated against one pack from start to end, and the sink,
//! which sees units in sequence order, sees the packs change once, in order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::RulePack;

/// The current pack and its generation (1 for the pack the run started with).
#[derive(Debug)]
pub struct LiveRules {
    generation: AtomicU64,
    pack: Mutex<Arc<RulePack>>,
}

/// A reader's copy of the current pack.
#[derive(Debug, Clone)]
pub struct Cached {
    generation: u64,
    pack: Arc<RulePack>,
}

impl LiveRules {
    /// Starts with `pack`.
    pub fn new(pack: Arc<RulePack>) -> Self {
        LiveRules {
            generation: AtomicU64::new(1),
            pack: Mutex::new(pack),
        }
    }

    /// The generation of the current pack.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current pack, as a cache to keep.
    pub fn snapshot(&self) -> Cached {
        let pack = self
            .pack
            .lock()
            .map_or_else(|p| p.into_inner().clone(), |p| p.clone());
        Cached {
            generation: self.generation(),
            pack,
        }
    }

    /// The current pack.
    pub fn snapshot_pack(&self) -> Arc<RulePack> {
        self.snapshot().pack
    }

    /// The current pack, refreshing `cache` only when a reload happened since.
    pub fn current(&self, cache: &mut Cached) -> Arc<RulePack> {
        if self.generation() != cache.generation {
            *cache = self.snapshot();
        }
        cache.pack.clone()
    }

    /// Makes `pack` current; returns its generation.
    pub fn replace(&self, pack: Arc<RulePack>) -> u64 {
        let mut guard = self.pack.lock().unwrap_or_else(|p| p.into_inner());
        *guard = pack;
        // Bumped under the lock: a reader that sees the new generation finds the new pack.
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_a_replacement_once() {
        let pack = || {
            let opts = crate::rules::LoadOptions {
                builtin: false,
                paths: Vec::new(),
            };
            Arc::new(RulePack::load(&opts).expect("empty pack").0)
        };
        let a = pack();
        let live = LiveRules::new(a.clone());
        let mut cache = live.snapshot();
        assert!(Arc::ptr_eq(&live.current(&mut cache), &a));
        let b = pack();
        assert_eq!(live.replace(b.clone()), 2);
        assert!(Arc::ptr_eq(&live.current(&mut cache), &b));
        assert!(Arc::ptr_eq(&live.current(&mut cache), &b));
        assert_eq!(live.generation(), 2);
    }
}

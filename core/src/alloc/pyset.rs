//! An exact model of a CPython `set` holding small non-negative integers.
//!
//! The reference hands out single boards with `set.pop()`, whose choice depends on the hash
//! table's history (dummies left by removals, the `finger` where the last pop stopped, table
//! resizes). Replaying the reference decision for decision therefore needs the same table:
//! this is CPython 3.10–3.13's `setobject.c` algorithm (open addressing with linear probes of
//! 9 and perturbed probing, last-seen dummy reuse on insert, resize at 3/5 fill) for keys whose
//! hash is the key itself. Only the operations the allocator uses exist: build from ascending
//! keys, `add`, `remove`, `pop`, `len` and membership.

const LINEAR_PROBES: usize = 9;
const PERTURB_SHIFT: u32 = 5;
const MIN_SIZE: usize = 8;
/// Large enough for any table a set of at most a few small keys ever grows to.
const MAX_SLOTS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Unused,
    Dummy,
    Key(u8),
}

/// A CPython-compatible set of small integers (keys 0..=255; the allocator uses 0..=2).
#[derive(Debug, Clone)]
pub struct PySet {
    table: [Slot; MAX_SLOTS],
    mask: usize,
    fill: usize,
    used: usize,
    finger: usize,
}

impl Default for PySet {
    fn default() -> PySet {
        PySet::new()
    }
}

impl PySet {
    /// An empty set (`set()`).
    pub fn new() -> PySet {
        PySet {
            table: [Slot::Unused; MAX_SLOTS],
            mask: MIN_SIZE - 1,
            fill: 0,
            used: 0,
            finger: 0,
        }
    }

    /// A set built by adding `keys` in the given order (the reference builds triads' sets from
    /// ascending z).
    pub fn from_keys(keys: impl IntoIterator<Item = u8>) -> PySet {
        let mut s = PySet::new();
        for k in keys {
            s.add(k);
        }
        s
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.used
    }

    /// True if there are no keys.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// The slot holding `k`, if any.
    fn find(&self, k: u8) -> Option<usize> {
        let mask = self.mask;
        let mut perturb = k as usize;
        let mut i = k as usize & mask;
        loop {
            let probes = if i + LINEAR_PROBES <= mask { LINEAR_PROBES } else { 0 };
            for j in i..=i + probes {
                match self.table[j] {
                    Slot::Unused => return None,
                    Slot::Key(x) if x == k => return Some(j),
                    _ => {}
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i * 5 + 1 + perturb) & mask;
        }
    }

    /// True if `k` is in the set.
    pub fn contains(&self, k: u8) -> bool {
        self.find(k).is_some()
    }

    /// Adds `k` (no effect if present).
    pub fn add(&mut self, k: u8) {
        let mask = self.mask;
        let mut perturb = k as usize;
        let mut i = k as usize & mask;
        let mut freeslot = None;
        let unused = 'probe: loop {
            let probes = if i + LINEAR_PROBES <= mask { LINEAR_PROBES } else { 0 };
            for j in i..=i + probes {
                match self.table[j] {
                    Slot::Unused => break 'probe j,
                    Slot::Key(x) if x == k => return,
                    Slot::Dummy => freeslot = Some(j),
                    Slot::Key(_) => {}
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i * 5 + 1 + perturb) & mask;
        };
        if let Some(j) = freeslot {
            self.table[j] = Slot::Key(k);
            self.used += 1;
            return;
        }
        self.table[unused] = Slot::Key(k);
        self.fill += 1;
        self.used += 1;
        if self.fill * 5 >= mask * 3 {
            self.resize(self.used * 4);
        }
    }

    fn resize(&mut self, minused: usize) {
        let mut newsize = MIN_SIZE;
        while newsize <= minused {
            newsize <<= 1;
        }
        assert!(newsize <= MAX_SLOTS, "PySet only models small sets");
        let old = self.table;
        let old_len = self.mask + 1;
        self.table = [Slot::Unused; MAX_SLOTS];
        self.mask = newsize - 1;
        for slot in &old[..old_len] {
            if let Slot::Key(k) = *slot {
                self.insert_clean(k);
            }
        }
        self.fill = self.used;
    }

    fn insert_clean(&mut self, k: u8) {
        let mask = self.mask;
        let mut perturb = k as usize;
        let mut i = k as usize & mask;
        loop {
            if self.table[i] == Slot::Unused {
                self.table[i] = Slot::Key(k);
                return;
            }
            if i + LINEAR_PROBES <= mask {
                for j in i + 1..=i + LINEAR_PROBES {
                    if self.table[j] == Slot::Unused {
                        self.table[j] = Slot::Key(k);
                        return;
                    }
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i * 5 + 1 + perturb) & mask;
        }
    }

    /// Removes `k`; returns whether it was present.
    pub fn remove(&mut self, k: u8) -> bool {
        match self.find(k) {
            Some(j) => {
                self.table[j] = Slot::Dummy;
                self.used -= 1;
                true
            }
            None => false,
        }
    }

    /// Removes and returns the key CPython's `set.pop()` would return.
    pub fn pop(&mut self) -> Option<u8> {
        if self.used == 0 {
            return None;
        }
        let mut j = self.finger & self.mask;
        loop {
            if let Slot::Key(k) = self.table[j] {
                self.table[j] = Slot::Dummy;
                self.used -= 1;
                self.finger = j + 1;
                return Some(k);
            }
            j = (j + 1) & self.mask;
        }
    }

    /// The keys in table order (iteration order of the CPython set).
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        self.table[..=self.mask]
            .iter()
            .filter_map(|s| if let Slot::Key(k) = s { Some(*k) } else { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_from_the_reference_notes() {
        let mut s = PySet::from_keys([0, 1, 2]);
        assert_eq!(s.pop(), Some(0));
        assert_eq!(s.pop(), Some(1));
        s.add(0);
        // Probe 0 -> 1 -> 6: dummies at 0 and 1, unused at 6: the last dummy (slot 1) wins.
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(s.table[1], Slot::Key(0));
        assert_eq!(s.pop(), Some(2));
        s.add(1);
        assert_eq!(s.table[6], Slot::Key(1));
        // A naive "smallest key" model would say 0 here.
        assert_eq!(s.pop(), Some(1));
        assert_eq!(s.pop(), Some(0));
        assert_eq!(s.pop(), None);
    }

    #[test]
    fn resize_happens_when_fill_reaches_three_fifths() {
        let mut s = PySet::new();
        for k in [0, 1, 2] {
            s.add(k);
        }
        // Remove/re-add cycles accumulate dummies until fill * 5 >= 21 triggers a rebuild.
        for _ in 0..10 {
            let k = s.pop().unwrap();
            s.add(k);
            assert_eq!(s.len(), 3);
            assert!(s.fill <= s.mask + 1);
        }
        let mut keys: Vec<u8> = s.iter().collect();
        keys.sort();
        assert_eq!(keys, vec![0, 1, 2]);
    }

    #[test]
    fn remove_and_contains() {
        let mut s = PySet::from_keys([0, 2]);
        assert!(s.contains(2) && !s.contains(1));
        assert!(s.remove(2));
        assert!(!s.remove(2));
        assert_eq!(s.len(), 1);
        s.add(1);
        assert!(s.contains(1));
    }
}

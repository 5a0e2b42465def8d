//! The reference server's guillotine packer over triads (`PackTree`).
//!
//! A binary tree of rectangles: leaves are free or allocated; a split node has two children
//! (bottom/top or left/right). Allocation visits split nodes' children smallest area first and
//! offers a free leaf's four corners, in a fixed order, to a candidate filter; the first
//! accepted corner is carved out with at most two guillotine cuts. Every choice here (child
//! order, corner order, cut position, which side is carved) matches the reference exactly, so
//! that allocations are decision-for-decision identical.
//!
//! Nodes live in one arena (`Vec`) with a free list of sibling pairs, so allocating and
//! freeing never touches the system allocator once the tree has reached its working size.

/// Index of a node in the arena.
type NodeId = u32;
const NO_CHILDREN: NodeId = 0;

#[derive(Debug, Clone, Copy)]
struct Node {
    x: u16,
    y: u16,
    w: u16,
    h: u16,
    allocated: bool,
    /// Index of the first child (the second is `children + 1`), or [`NO_CHILDREN`].
    children: NodeId,
}

impl Node {
    fn area(&self) -> u32 {
        self.w as u32 * self.h as u32
    }
    fn contains(&self, x: u16, y: u16) -> bool {
        x >= self.x && y >= self.y && (x - self.x) < self.w && (y - self.y) < self.h
    }
}

/// Freeing something that is not an allocation's origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot free ({x}, {y}): {why}")]
pub struct FreeError {
    /// Requested x.
    pub x: u16,
    /// Requested y.
    pub y: u16,
    /// What was wrong.
    pub why: &'static str,
}

/// A guillotine packer over a `width × height` grid of triads.
#[derive(Debug, Clone)]
pub struct PackTree {
    nodes: Vec<Node>,
    free_pairs: Vec<NodeId>,
}

const ROOT: NodeId = 0;

impl PackTree {
    /// An empty tree covering `(x, y, w, h)`.
    pub fn new(x: u16, y: u16, w: u16, h: u16) -> PackTree {
        PackTree {
            nodes: vec![Node {
                x,
                y,
                w,
                h,
                allocated: false,
                children: NO_CHILDREN,
            }],
            free_pairs: Vec::new(),
        }
    }

    fn n(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    fn n_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    fn new_pair(&mut self, a: Node, b: Node) -> NodeId {
        if let Some(id) = self.free_pairs.pop() {
            self.nodes[id as usize] = a;
            self.nodes[id as usize + 1] = b;
            id
        } else {
            let id = self.nodes.len() as NodeId;
            self.nodes.push(a);
            self.nodes.push(b);
            id
        }
    }

    fn leaf(x: u16, y: u16, w: u16, h: u16) -> Node {
        Node {
            x,
            y,
            w,
            h,
            allocated: false,
            children: NO_CHILDREN,
        }
    }

    /// Splits a free leaf horizontally at row `yc`: children (bottom, top).
    fn hsplit(&mut self, id: NodeId, yc: u16) {
        let n = *self.n(id);
        debug_assert!(n.children == NO_CHILDREN && !n.allocated && yc > n.y && yc < n.y + n.h);
        let lo = yc - n.y;
        let c = self.new_pair(Self::leaf(n.x, n.y, n.w, lo), Self::leaf(n.x, yc, n.w, n.h - lo));
        self.n_mut(id).children = c;
    }

    /// Splits a free leaf vertically at column `xc`: children (left, right).
    fn vsplit(&mut self, id: NodeId, xc: u16) {
        let n = *self.n(id);
        debug_assert!(n.children == NO_CHILDREN && !n.allocated && xc > n.x && xc < n.x + n.w);
        let lo = xc - n.x;
        let c = self.new_pair(Self::leaf(n.x, n.y, lo, n.h), Self::leaf(xc, n.y, n.w - lo, n.h));
        self.n_mut(id).children = c;
    }

    /// Children of a split node in visiting order: smaller area first, ties keep order.
    fn ordered_children(&self, id: NodeId) -> [NodeId; 2] {
        let c = self.n(id).children;
        if self.n(c + 1).area() < self.n(c).area() {
            [c + 1, c]
        } else {
            [c, c + 1]
        }
    }

    /// Allocates a `w × h` rectangle, offering candidates to `filter(x, y, w, h)`; returns the
    /// bottom-left corner, or `None` (and changes nothing) if no offered candidate is accepted.
    pub fn alloc(&mut self, w: u16, h: u16, filter: &mut impl FnMut(u16, u16, u16, u16) -> bool) -> Option<(u16, u16)> {
        if w == 0 || h == 0 {
            return None;
        }
        self.alloc_at(ROOT, w, h, filter)
    }

    fn alloc_at(
        &mut self,
        id: NodeId,
        w: u16,
        h: u16,
        filter: &mut impl FnMut(u16, u16, u16, u16) -> bool,
    ) -> Option<(u16, u16)> {
        let n = *self.n(id);
        if n.allocated || w > n.w || h > n.h {
            return None;
        }
        if n.children != NO_CHILDREN {
            for c in self.ordered_children(id) {
                if let Some(xy) = self.alloc_at(c, w, h, filter) {
                    return Some(xy);
                }
            }
            return None;
        }
        let (x, y) = Self::find_acceptable(&n, w, h, filter)?;
        if w == n.w && h == n.h {
            self.n_mut(id).allocated = true;
            return Some((n.x, n.y));
        }
        let dw = n.w - w;
        let dh = n.h - h;
        let child = if dh > dw {
            self.hsplit(id, if y != n.y { y } else { y + h });
            let c = self.n(id).children;
            if y == n.y { c } else { c + 1 }
        } else {
            self.vsplit(id, if x != n.x { x } else { x + w });
            let c = self.n(id).children;
            if x == n.x { c } else { c + 1 }
        };
        let cn = *self.n(child);
        let target = if cn.w != w {
            self.vsplit(child, if x != cn.x { x } else { cn.x + w });
            let c = self.n(child).children;
            if x == cn.x { c } else { c + 1 }
        } else if cn.h != h {
            self.hsplit(child, if y != cn.y { y } else { cn.y + h });
            let c = self.n(child).children;
            if y == cn.y { c } else { c + 1 }
        } else {
            child
        };
        let t = self.n_mut(target);
        t.allocated = true;
        Some((t.x, t.y))
    }

    /// The leaf's corners in the reference order — (left, bottom), (left, top), (right,
    /// bottom), (right, top) — each offered once.
    fn find_acceptable(
        n: &Node,
        w: u16,
        h: u16,
        filter: &mut impl FnMut(u16, u16, u16, u16) -> bool,
    ) -> Option<(u16, u16)> {
        let xs = [n.x, n.x + (n.w - w)];
        let ys = [n.y, n.y + (n.h - h)];
        let mut tried: [(u16, u16); 4] = [(u16::MAX, u16::MAX); 4];
        let mut k = 0;
        for x in xs {
            for y in ys {
                if tried[..k].contains(&(x, y)) {
                    continue;
                }
                if filter(x, y, w, h) {
                    return Some((x, y));
                }
                tried[k] = (x, y);
                k += 1;
            }
        }
        None
    }

    /// Allocates at least `area` cells shaped by [`super::area::area_to_rect`] within the
    /// bounds of each free leaf visited; returns `(x, y, w, h)`.
    pub fn alloc_area(
        &mut self,
        area: u32,
        min_ratio: f64,
        filter: &mut impl FnMut(u16, u16, u16, u16) -> bool,
    ) -> Option<(u16, u16, u16, u16)> {
        if area == 0 {
            return None;
        }
        // A bad ratio fails in every leaf alike.
        let shape = super::area::AreaShape::new(area, min_ratio).ok()?;
        self.alloc_area_at(ROOT, area, &shape, filter)
    }

    fn alloc_area_at(
        &mut self,
        id: NodeId,
        area: u32,
        shape: &super::area::AreaShape,
        filter: &mut impl FnMut(u16, u16, u16, u16) -> bool,
    ) -> Option<(u16, u16, u16, u16)> {
        let n = *self.n(id);
        if n.allocated || area > n.area() {
            return None;
        }
        if n.children != NO_CHILDREN {
            for c in self.ordered_children(id) {
                if let Some(r) = self.alloc_area_at(c, area, shape, filter) {
                    return Some(r);
                }
            }
            return None;
        }
        let (w, h) = shape.within(n.w as u32, n.h as u32).ok()??;
        let (w, h) = (w as u16, h as u16);
        let (x, y) = self.alloc_at(id, w, h, filter)?;
        Some((x, y, w, h))
    }

    /// Allocates the specific 1 × 1 cell `(x, y)`, splitting around it; `None` if it is
    /// outside the tree or not free.
    pub fn request(&mut self, x: u16, y: u16) -> Option<(u16, u16)> {
        self.request_at(ROOT, x, y)
    }

    fn request_at(&mut self, mut id: NodeId, x: u16, y: u16) -> Option<(u16, u16)> {
        loop {
            let n = *self.n(id);
            if !n.contains(x, y) {
                return None;
            }
            if n.children != NO_CHILDREN {
                let c = n.children;
                // Exactly one child contains the point.
                id = if self.n(c).contains(x, y) { c } else { c + 1 };
                continue;
            }
            if n.allocated {
                return None;
            }
            if n.w == 1 && n.h == 1 {
                self.n_mut(id).allocated = true;
                return Some((x, y));
            }
            let l = x - n.x;
            let r = n.x + n.w - x - 1;
            let a = n.y + n.h - y - 1;
            let b = y - n.y;
            let largest = l.max(r).max(a).max(b);
            if l == largest {
                self.vsplit(id, x);
            } else if r == largest {
                self.vsplit(id, x + 1);
            } else if a == largest {
                self.hsplit(id, y + 1);
            } else {
                self.hsplit(id, y);
            }
        }
    }

    /// Is the cell `(x, y)` inside the tree and in a free leaf?
    pub fn is_free(&self, x: u16, y: u16) -> bool {
        let mut id = ROOT;
        loop {
            let n = self.n(id);
            if !n.contains(x, y) {
                return false;
            }
            if n.children == NO_CHILDREN {
                return !n.allocated;
            }
            let c = n.children;
            id = if self.n(c).contains(x, y) { c } else { c + 1 };
        }
    }

    /// Frees the allocation whose bottom-left corner is `(x, y)`, merging empty siblings.
    pub fn free(&mut self, x: u16, y: u16) -> Result<(), FreeError> {
        self.free_at(ROOT, x, y)
    }

    fn free_at(&mut self, id: NodeId, x: u16, y: u16) -> Result<(), FreeError> {
        let n = *self.n(id);
        if n.children == NO_CHILDREN && n.x == x && n.y == y {
            if !n.allocated {
                return Err(FreeError {
                    x,
                    y,
                    why: "not allocated",
                });
            }
            self.n_mut(id).allocated = false;
            return Ok(());
        }
        if n.children != NO_CHILDREN {
            for c in [n.children, n.children + 1] {
                if self.n(c).contains(x, y) {
                    self.free_at(c, x, y)?;
                    let (a, b) = (*self.n(n.children), *self.n(n.children + 1));
                    if !a.allocated && a.children == NO_CHILDREN && !b.allocated && b.children == NO_CHILDREN {
                        self.free_pairs.push(n.children);
                        self.n_mut(id).children = NO_CHILDREN;
                    }
                    return Ok(());
                }
            }
        }
        Err(FreeError {
            x,
            y,
            why: "outside any allocation",
        })
    }

    /// True if nothing is allocated (the tree has collapsed to a free root).
    pub fn is_empty(&self) -> bool {
        let r = self.n(ROOT);
        r.children == NO_CHILDREN && !r.allocated
    }

    /// Free leaves as `(x, y, w, h)` in visiting order (for reports and tests).
    pub fn free_leaves(&self) -> Vec<(u16, u16, u16, u16)> {
        let mut out = Vec::new();
        self.collect_leaves(ROOT, false, &mut out);
        out
    }

    /// Allocated leaves as `(x, y, w, h)`.
    pub fn allocated_leaves(&self) -> Vec<(u16, u16, u16, u16)> {
        let mut out = Vec::new();
        self.collect_leaves(ROOT, true, &mut out);
        out
    }

    fn collect_leaves(&self, id: NodeId, allocated: bool, out: &mut Vec<(u16, u16, u16, u16)>) {
        let n = *self.n(id);
        if n.children != NO_CHILDREN {
            self.collect_leaves(n.children, allocated, out);
            self.collect_leaves(n.children + 1, allocated, out);
        } else if n.allocated == allocated {
            out.push((n.x, n.y, n.w, n.h));
        }
    }

    /// Number of live nodes (for memory accounting in benchmarks).
    pub fn node_count(&self) -> usize {
        self.nodes.len() - 2 * self.free_pairs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(answers: &[bool]) -> impl FnMut(u16, u16, u16, u16) -> bool + '_ {
        let mut i = 0;
        move |_, _, _, _| {
            let a = answers.get(i).copied().unwrap_or(false);
            i += 1;
            a
        }
    }

    fn all(_: u16, _: u16, _: u16, _: u16) -> bool {
        true
    }

    fn child_dims(t: &PackTree, id: NodeId) -> [(u16, u16, u16, u16); 2] {
        let c = t.n(id).children;
        assert_ne!(c, NO_CHILDREN);
        let a = t.n(c);
        let b = t.n(c + 1);
        [(a.x, a.y, a.w, a.h), (b.x, b.y, b.w, b.h)]
    }

    #[test]
    fn alloc_reference_examples() {
        let mut t = PackTree::new(1, 2, 3, 4);
        assert_eq!(t.alloc(1, 4, &mut all), Some((1, 2)));
        let [a, b] = child_dims(&t, ROOT);
        assert_eq!((a.2, b.2), (1, 2));

        let mut t = PackTree::new(1, 2, 3, 4);
        assert_eq!(t.alloc(1, 4, &mut seq(&[false, true])), Some((3, 2)));

        let mut t = PackTree::new(1, 2, 3, 4);
        assert_eq!(t.alloc(3, 1, &mut all), Some((1, 2)));
        let [a, b] = child_dims(&t, ROOT);
        assert_eq!((a.3, b.3), (1, 3));

        let mut t = PackTree::new(1, 2, 3, 4);
        assert_eq!(t.alloc(3, 1, &mut seq(&[false, true])), Some((1, 5)));

        // vsplit then hsplit: children[0] is 1 x 4 split into 1 x 3 (allocated) + 1 x 1.
        let mut t = PackTree::new(1, 2, 3, 4);
        assert_eq!(t.alloc(1, 3, &mut all), Some((1, 2)));
        let [a, _] = child_dims(&t, ROOT);
        assert_eq!(a, (1, 2, 1, 4));
        let c0 = t.n(ROOT).children;
        let [g0, g1] = child_dims(&t, c0);
        assert_eq!(g0, (1, 2, 1, 3));
        assert_eq!(g1, (1, 5, 1, 1));
        assert!(t.n(t.n(c0).children).allocated);

        let mut t = PackTree::new(1, 2, 4, 3);
        assert_eq!(t.alloc(3, 1, &mut seq(&[false, false, true])), Some((2, 2)));

        // Smaller child first.
        let mut t = PackTree::new(0, 0, 3, 1);
        t.vsplit(ROOT, 2);
        assert_eq!(t.alloc(1, 1, &mut all), Some((2, 0)));
    }

    #[test]
    fn corners_are_offered_once_each_in_reference_order() {
        let mut offered = Vec::new();
        let mut t = PackTree::new(0, 0, 4, 3);
        let mut f = |x, y, _, _| {
            offered.push((x, y));
            false
        };
        assert_eq!(t.alloc(4, 1, &mut f), None);
        assert_eq!(offered, vec![(0, 0), (0, 2)]);
        offered.clear();
        let mut f = |x, y, _, _| {
            offered.push((x, y));
            false
        };
        assert_eq!(t.alloc(2, 1, &mut f), None);
        assert_eq!(offered, vec![(0, 0), (0, 2), (2, 0), (2, 2)]);
        assert!(t.is_empty());
    }

    #[test]
    fn alloc_area_reference_examples() {
        let mut t = PackTree::new(0, 0, 3, 3);
        assert_eq!(t.alloc_area(6, 0.0, &mut all), Some((0, 0, 3, 2)));
        let mut t = PackTree::new(0, 0, 3, 3);
        assert_eq!(t.alloc_area(6, 1.0, &mut all), Some((0, 0, 3, 3)));
        let mut t = PackTree::new(0, 0, 3, 1);
        assert_eq!(t.alloc_area(3, 1.0, &mut all), None);
        let mut t = PackTree::new(0, 0, 3, 1);
        t.vsplit(ROOT, 1);
        assert_eq!(t.alloc_area(1, 0.0, &mut all), Some((0, 0, 1, 1)));
        let mut t = PackTree::new(0, 0, 3, 1);
        t.vsplit(ROOT, 2);
        assert_eq!(t.alloc_area(1, 0.0, &mut all), Some((2, 0, 1, 1)));
    }

    #[test]
    fn request_reference_example() {
        let mut t = PackTree::new(0, 0, 10, 10);
        assert_eq!(t.request(8, 6), Some((8, 6)));
        let [l, r] = child_dims(&t, ROOT);
        assert_eq!(l, (0, 0, 8, 10));
        assert_eq!(r, (8, 0, 2, 10));
        let right = t.n(ROOT).children + 1;
        let [bottom, top] = child_dims(&t, right);
        assert_eq!(bottom, (8, 0, 2, 6));
        assert_eq!(top, (8, 6, 2, 4));
        let top_id = t.n(right).children + 1;
        let [tb, tt] = child_dims(&t, top_id);
        assert_eq!(tb, (8, 6, 2, 1));
        assert_eq!(tt, (8, 7, 2, 3));
        let tb_id = t.n(top_id).children;
        let [p, q] = child_dims(&t, tb_id);
        assert_eq!(p, (8, 6, 1, 1));
        assert_eq!(q, (9, 6, 1, 1));
        assert!(t.n(t.n(tb_id).children).allocated);
        assert_eq!(t.request(8, 6), None);
        assert_eq!(t.request(10, 0), None);
    }

    #[test]
    fn is_free_reads_the_leaves() {
        let mut t = PackTree::new(0, 0, 4, 3);
        assert!(t.is_free(3, 2));
        assert!(!t.is_free(4, 0));
        t.request(2, 1).unwrap();
        let a = t.alloc(2, 2, &mut all).unwrap();
        for x in 0..4 {
            for y in 0..3 {
                let held = (x, y) == (2, 1) || (a.0..a.0 + 2).contains(&x) && (a.1..a.1 + 2).contains(&y);
                assert_eq!(t.is_free(x, y), !held, "({x}, {y})");
            }
        }
    }

    #[test]
    fn free_collapses_the_tree() {
        let mut t = PackTree::new(0, 0, 4, 4);
        let a = t.alloc(2, 2, &mut all).unwrap();
        let b = t.alloc(1, 3, &mut all).unwrap();
        let c = t.request(3, 3).unwrap();
        assert!(t.free(1, 1).is_err());
        assert_eq!(t.free(9, 9).unwrap_err().why, "outside any allocation");
        t.free(b.0, b.1).unwrap();
        assert_eq!(t.free(b.0, b.1).unwrap_err().why, "not allocated");
        t.free(a.0, a.1).unwrap();
        t.free(c.0, c.1).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 1);
        assert_eq!(t.free_leaves(), vec![(0, 0, 4, 4)]);
    }
}

//! Directed acyclic graphs of steps: validation, topological order, levels.
//!
//! Nodes are indices `0..n` (the order steps appear in the template); edges
//! go parent → child. Ties in every ordering are broken by index, so output is
//! deterministic.

use std::collections::VecDeque;

/// A validated DAG over `n` nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    parents: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
    order: Vec<usize>,
    levels: Vec<usize>,
}

/// The graph has a cycle; `path` lists node indices `a → b → … → a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// The nodes of one cycle, the first repeated at the end.
    pub path: Vec<usize>,
}

impl Dag {
    /// Builds a DAG from `n` nodes and `(parent, child)` edges. Duplicate edges
    /// are merged. Returns one cycle when there is one.
    ///
    /// # Panics
    /// Never for indices `< n`; edges outside `0..n` are ignored.
    pub fn new(n: usize, edges: impl IntoIterator<Item = (usize, usize)>) -> Result<Dag, Cycle> {
        let mut parents = vec![Vec::new(); n];
        let mut children = vec![Vec::new(); n];
        for (p, c) in edges {
            if p >= n || c >= n || parents[c].contains(&p) {
                continue;
            }
            parents[c].push(p);
            children[p].push(c);
        }
        for list in parents.iter_mut().chain(children.iter_mut()) {
            list.sort_unstable();
        }

        // Kahn's algorithm; the queue is kept sorted by index for determinism.
        let mut indegree: Vec<usize> = parents.iter().map(Vec::len).collect();
        let mut queue: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        let mut levels = vec![0usize; n];
        while let Some(node) = queue.pop_first() {
            order.push(node);
            for &c in &children[node] {
                levels[c] = levels[c].max(levels[node] + 1);
                indegree[c] -= 1;
                if indegree[c] == 0 {
                    queue.insert(c);
                }
            }
        }
        if order.len() < n {
            return Err(Cycle {
                path: find_cycle(&children, &indegree),
            });
        }
        Ok(Dag {
            parents,
            children,
            order,
            levels,
        })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.parents.len()
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.parents.is_empty()
    }

    /// Direct parents of `node`, sorted.
    pub fn parents(&self, node: usize) -> &[usize] {
        &self.parents[node]
    }

    /// Direct children of `node`, sorted.
    pub fn children(&self, node: usize) -> &[usize] {
        &self.children[node]
    }

    /// A topological order (parents before children; ties by index).
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }

    /// Level of each node: 0 for roots, else 1 + the deepest parent level
    /// (the longest path from any root).
    pub fn levels(&self) -> &[usize] {
        &self.levels
    }

    /// Nodes with no parents.
    pub fn roots(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.parents[i].is_empty())
            .collect()
    }

    /// Nodes with no children.
    pub fn leaves(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.children[i].is_empty())
            .collect()
    }

    /// All edges `(parent, child)`, sorted.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (p, cs) in self.children.iter().enumerate() {
            out.extend(cs.iter().map(|&c| (p, c)));
        }
        out
    }

    /// Every node reachable from `node` by following child edges (excluding itself).
    pub fn descendants(&self, node: usize) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        let mut queue: VecDeque<usize> = self.children[node].iter().copied().collect();
        let mut out = Vec::new();
        while let Some(n) = queue.pop_front() {
            if !seen[n] {
                seen[n] = true;
                out.push(n);
                queue.extend(self.children[n].iter().copied());
            }
        }
        out.sort_unstable();
        out
    }
}

/// Finds one cycle among the nodes Kahn's algorithm could not order
/// (those with `indegree > 0`), by walking parent-ward... child-ward until a
/// node repeats.
fn find_cycle(children: &[Vec<usize>], indegree: &[usize]) -> Vec<usize> {
    let stuck = |i: usize| indegree[i] > 0;
    let Some(start) = (0..indegree.len()).find(|&i| stuck(i)) else {
        return Vec::new();
    };
    // Every stuck node has a stuck parent; walking *children* restricted to stuck
    // nodes may dead-end, so walk with a DFS that records the stack instead.
    let n = children.len();
    let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
    state[start] = 1;
    while let Some(&mut (node, ref mut next)) = stack.last_mut() {
        let kids: Vec<usize> = children[node]
            .iter()
            .copied()
            .filter(|&c| stuck(c))
            .collect();
        if *next < kids.len() {
            let c = kids[*next];
            *next += 1;
            match state[c] {
                0 => {
                    state[c] = 1;
                    stack.push((c, 0));
                }
                1 => {
                    let pos = stack.iter().position(|&(s, _)| s == c).unwrap_or(0);
                    let mut path: Vec<usize> = stack[pos..].iter().map(|&(s, _)| s).collect();
                    path.push(c);
                    return path;
                }
                _ => {}
            }
        } else {
            state[node] = 2;
            stack.pop();
            if stack.is_empty()
                && let Some(s) = (0..n).find(|&i| stuck(i) && state[i] == 0)
            {
                state[s] = 1;
                stack.push((s, 0));
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn diamond_order_and_levels() {
        // 0 → {1, 2} → 3
        let dag = Dag::new(4, [(0, 1), (0, 2), (1, 3), (2, 3)]).unwrap();
        assert_eq!(dag.topological_order(), &[0, 1, 2, 3]);
        assert_eq!(dag.levels(), &[0, 1, 1, 2]);
        assert_eq!(dag.roots(), vec![0]);
        assert_eq!(dag.leaves(), vec![3]);
        assert_eq!(dag.parents(3), &[1, 2]);
        assert_eq!(dag.descendants(0), vec![1, 2, 3]);
    }

    #[test]
    fn level_is_longest_path() {
        // 0 → 1 → 2 and 0 → 2: node 2 is at level 2, not 1.
        let dag = Dag::new(3, [(0, 1), (1, 2), (0, 2)]).unwrap();
        assert_eq!(dag.levels(), &[0, 1, 2]);
    }

    #[test]
    fn reports_cycle_path() {
        // 0 → 1 → 2 → 1
        let err = Dag::new(3, [(0, 1), (1, 2), (2, 1)]).unwrap_err();
        assert_eq!(err.path, vec![1, 2, 1]);
        let self_loop = Dag::new(2, [(1, 1)]).unwrap_err();
        assert_eq!(self_loop.path, vec![1, 1]);
    }

    fn edges_strategy() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
        (1usize..30).prop_flat_map(|n| (Just(n), proptest::collection::vec((0..n, 0..n), 0..80)))
    }

    proptest! {
        /// Forward edges (low index → high index) never form a cycle, and the
        /// order respects every edge.
        #[test]
        fn forward_edges_are_acyclic((n, raw) in edges_strategy()) {
            let edges: Vec<_> = raw.into_iter().filter(|(a, b)| a < b).collect();
            let dag = Dag::new(n, edges.clone()).unwrap();
            let pos: Vec<usize> = {
                let mut p = vec![0; n];
                for (i, &node) in dag.topological_order().iter().enumerate() { p[node] = i; }
                p
            };
            prop_assert_eq!(dag.topological_order().len(), n);
            for (a, b) in edges {
                prop_assert!(pos[a] < pos[b]);
                prop_assert!(dag.levels()[b] > dag.levels()[a]);
            }
        }

        /// Any graph either orders or yields a real cycle made of real edges.
        #[test]
        fn cycles_are_real((n, edges) in edges_strategy()) {
            match Dag::new(n, edges.clone()) {
                Ok(dag) => prop_assert_eq!(dag.topological_order().len(), n),
                Err(cycle) => {
                    prop_assert!(cycle.path.len() >= 2);
                    prop_assert_eq!(cycle.path.first(), cycle.path.last());
                    for w in cycle.path.windows(2) {
                        prop_assert!(edges.contains(&(w[0], w[1])), "edge {:?} not in graph", w);
                    }
                }
            }
        }
    }
}

//! The runtime graph: nodes with their state and level, edges, adjacency.

use super::*;

impl Ctx<'_> {
    pub(super) fn graph(&self) -> RuntimeGraph {
        let levels = self.dag.levels();
        let nodes = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| GraphNode {
                id: s.id,
                name: s.name.clone(),
                state: s.state,
                level: levels[i],
                dependencies_satisfied: self.facts[i].deps_ok,
                ready: self.facts[i].ready,
                status_reason: self.status_reason(i).to_string(),
            })
            .collect();
        let edges = self
            .dag
            .edges()
            .into_iter()
            .map(|(p, c)| GraphEdge {
                from: self.steps[p].id,
                to: self.steps[c].id,
                from_name: self.steps[p].name.clone(),
                to_name: self.steps[c].name.clone(),
            })
            .collect();
        let ids = |list: &[usize]| list.iter().map(|&j| self.steps[j].id).collect::<Vec<_>>();
        let adjacency_list = (0..self.n())
            .map(|i| (self.steps[i].id, ids(self.dag.children(i))))
            .collect();
        let reverse_adjacency_list = (0..self.n())
            .map(|i| (self.steps[i].id, ids(self.dag.parents(i))))
            .collect();
        let dependency_levels = (0..self.n())
            .map(|i| (self.steps[i].id, levels[i]))
            .collect();
        RuntimeGraph {
            nodes,
            edges,
            adjacency_list,
            reverse_adjacency_list,
            dependency_levels,
        }
    }
}

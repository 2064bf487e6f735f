//! Dependency ordering: a stable topological sort (ties keep declaration order) that reports
//! the cycles it cannot order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Orders nodes `0..edges.len()` so every node comes after the nodes it depends on
/// (`edges[n]` lists n's dependencies). Ties go to the lowest index. On failure, returns one
/// cycle per knot, each as a path that starts and ends on the same node.
pub(crate) fn topological_order(edges: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let count = edges.len();
    let mut dependents = vec![Vec::new(); count];
    let mut waiting: Vec<usize> = edges.iter().map(Vec::len).collect();
    for (node, dependencies) in edges.iter().enumerate() {
        for &dependency in dependencies {
            dependents[dependency].push(node);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..count).filter(|&n| waiting[n] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(count);
    while let Some(Reverse(node)) = ready.pop() {
        order.push(node);
        for &dependent in &dependents[node] {
            waiting[dependent] -= 1;
            if waiting[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    if order.len() == count {
        return Ok(order);
    }
    let mut placed = vec![false; count];
    for &node in &order {
        placed[node] = true;
    }
    Err(cycles(edges, &mut placed))
}

/// Walks from each unplaced node along unplaced dependencies until a node repeats.
fn cycles(edges: &[Vec<usize>], placed: &mut [bool]) -> Vec<Vec<usize>> {
    let mut found = Vec::new();
    while let Some(start) = placed.iter().position(|done| !done) {
        let mut path = vec![start];
        let mut current = start;
        loop {
            let Some(&next) = edges[current].iter().find(|&&d| !placed[d]) else {
                placed[current] = true;
                break;
            };
            if let Some(position) = path.iter().position(|&n| n == next) {
                let mut cycle = path.split_off(position);
                cycle.push(next);
                for &node in &cycle {
                    placed[node] = true;
                }
                found.push(cycle);
                break;
            }
            path.push(next);
            current = next;
        }
        // Nodes that only waited on the cycle are no longer interesting.
        for &node in &path {
            placed[node] = true;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_dependencies_first_with_stable_ties() {
        // 0 depends on 2, 1 on nothing, 2 on nothing, 3 on 0 and 1.
        let edges = vec![vec![2], vec![], vec![], vec![0, 1]];
        assert_eq!(topological_order(&edges), Ok(vec![1, 2, 0, 3]));
    }

    #[test]
    fn reports_cycles_as_closed_paths() {
        let edges = vec![vec![1], vec![0], vec![], vec![0]];
        assert_eq!(topological_order(&edges), Err(vec![vec![0, 1, 0]]));
        let edges = vec![vec![0]];
        assert_eq!(topological_order(&edges), Err(vec![vec![0, 0]]));
        let edges = vec![vec![1], vec![2], vec![1], vec![4], vec![3]];
        assert_eq!(topological_order(&edges), Err(vec![vec![1, 2, 1], vec![3, 4, 3]]));
    }
}

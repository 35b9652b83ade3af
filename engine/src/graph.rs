//! Key graphs: which clients of a DC net share an edge seed (DESIGN §1).
//!
//! Policy: every client has at least `k >= 3` neighbours, neighbours are drawn at random (by the
//! provider, never by a client) and the graph is connected. A curious provider knows the graph,
//! so these rules are what stops it from isolating a household with a few colluding neighbours.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand::seq::SliceRandom;

/// The smallest neighbour count DESIGN §1 allows as policy.
pub const MIN_DEGREE: usize = 3;

/// Why a key graph could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// The requested degree is below the policy minimum.
    #[error("degree k = {0} is below the minimum of {MIN_DEGREE} neighbours per client")]
    DegreeTooSmall(usize),
    /// Too few clients for every one of them to get `k` distinct neighbours.
    #[error("net {net} has {clients} clients; every client having {k} neighbours needs at least {} clients", k + 1)]
    TooFewClients { net: u32, clients: usize, k: usize },
    /// A client id appears twice in the client list.
    #[error("net {net}: client {client} is listed twice")]
    DuplicateClient { net: u32, client: u32 },
    /// An edge joins a client to itself.
    #[error("net {net}: client {client} cannot share an edge with itself")]
    SelfEdge { net: u32, client: u32 },
}

/// The key graph of one DC net: an undirected simple graph over client ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGraph {
    dc_net_id: u32,
    /// Client ids in ascending order; a client's position here indexes `neighbours`.
    clients: Vec<u32>,
    /// For each client, its neighbours' ids in ascending order.
    neighbours: Vec<Vec<u32>>,
}

impl KeyGraph {
    /// Builds the graph from its edge list, as read from `graph.csv`. The roster is every client
    /// that appears in an edge; repeated edges (in either direction) collapse into one.
    pub fn from_edges(
        dc_net_id: u32,
        edges: impl IntoIterator<Item = (u32, u32)>,
    ) -> Result<Self, GraphError> {
        let mut adjacency: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        for (a, b) in edges {
            if a == b {
                return Err(GraphError::SelfEdge {
                    net: dc_net_id,
                    client: a,
                });
            }
            adjacency.entry(a).or_default().insert(b);
            adjacency.entry(b).or_default().insert(a);
        }
        Ok(Self {
            dc_net_id,
            clients: adjacency.keys().copied().collect(),
            neighbours: adjacency
                .into_values()
                .map(|set| set.into_iter().collect())
                .collect(),
        })
    }

    /// A random connected graph over `clients` in which every client has at least `k`
    /// neighbours, fully determined by `rng`.
    ///
    /// A random ring makes the graph connected; then each client short of `k` neighbours is
    /// linked to random clients, preferring those that are short too, so degrees stay close to
    /// `k` and no client can predict or choose its neighbours.
    pub fn random(
        dc_net_id: u32,
        clients: &[u32],
        k: usize,
        rng: &mut impl Rng,
    ) -> Result<Self, GraphError> {
        if k < MIN_DEGREE {
            return Err(GraphError::DegreeTooSmall(k));
        }
        let n = clients.len();
        if n <= k {
            return Err(GraphError::TooFewClients {
                net: dc_net_id,
                clients: n,
                k,
            });
        }
        let mut sorted = clients.to_vec();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(GraphError::DuplicateClient {
                net: dc_net_id,
                client: pair[0],
            });
        }

        // Work on positions 0..n of the sorted roster, then translate back to ids.
        let mut adjacency: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        for (pos, &a) in order.iter().enumerate() {
            let b = order[(pos + 1) % n];
            adjacency[a].insert(b);
            adjacency[b].insert(a);
        }
        for &a in &order {
            while adjacency[a].len() < k {
                let b = pick_partner(a, &adjacency, k, rng);
                adjacency[a].insert(b);
                adjacency[b].insert(a);
            }
        }
        Ok(Self {
            dc_net_id,
            neighbours: adjacency
                .into_iter()
                .map(|set| set.into_iter().map(|p| sorted[p]).collect())
                .collect(),
            clients: sorted,
        })
    }

    /// The net this graph belongs to.
    pub fn dc_net_id(&self) -> u32 {
        self.dc_net_id
    }

    /// The roster: every client id, ascending.
    pub fn clients(&self) -> &[u32] {
        &self.clients
    }

    /// Number of clients in the roster.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether the roster is empty.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The position of `client` in [`Self::clients`], if it is on the roster.
    pub fn index_of(&self, client: u32) -> Option<usize> {
        self.clients.binary_search(&client).ok()
    }

    /// The neighbours of `client` (ascending), or `None` if it is not on the roster.
    pub fn neighbours(&self, client: u32) -> Option<&[u32]> {
        self.index_of(client).map(|i| self.neighbours[i].as_slice())
    }

    /// The neighbours of the client at roster position `index`.
    pub fn neighbours_at(&self, index: usize) -> &[u32] {
        &self.neighbours[index]
    }

    /// Every edge once, as `(lower id, higher id)`, in ascending order.
    pub fn edges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.clients
            .iter()
            .zip(&self.neighbours)
            .flat_map(|(&a, ns)| {
                ns.iter()
                    .copied()
                    .filter(move |&b| a < b)
                    .map(move |b| (a, b))
            })
    }

    /// Number of edges.
    pub fn edge_count(&self) -> usize {
        self.neighbours.iter().map(Vec::len).sum::<usize>() / 2
    }

    /// The smallest neighbour count of any client (0 for an empty graph).
    pub fn min_degree(&self) -> usize {
        self.neighbours.iter().map(Vec::len).min().unwrap_or(0)
    }

    /// Whether every client can reach every other one through edges.
    pub fn is_connected(&self) -> bool {
        let n = self.clients.len();
        if n == 0 {
            return true;
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0usize];
        seen[0] = true;
        let mut reached = 1;
        while let Some(i) = stack.pop() {
            for &b in &self.neighbours[i] {
                if let Some(j) = self.index_of(b) {
                    if !seen[j] {
                        seen[j] = true;
                        reached += 1;
                        stack.push(j);
                    }
                }
            }
        }
        reached == n
    }
}

impl KeyGraph {
    /// An empty graph for net `dc_net_id`, grown with [`Self::add_client`] and
    /// [`Self::add_edge`] as clients join.
    pub fn new(dc_net_id: u32) -> Self {
        Self {
            dc_net_id,
            clients: Vec::new(),
            neighbours: Vec::new(),
        }
    }

    /// Adds `client` without edges; returns whether it was new.
    pub fn add_client(&mut self, client: u32) -> bool {
        match self.clients.binary_search(&client) {
            Ok(_) => false,
            Err(pos) => {
                self.clients.insert(pos, client);
                self.neighbours.insert(pos, Vec::new());
                true
            }
        }
    }

    /// Removes `client` and its edges; returns its former neighbours, or `None` if it was not
    /// on the roster.
    pub fn remove_client(&mut self, client: u32) -> Option<Vec<u32>> {
        let pos = self.index_of(client)?;
        self.clients.remove(pos);
        let former = self.neighbours.remove(pos);
        for &b in &former {
            if let Some(j) = self.index_of(b) {
                remove_sorted(&mut self.neighbours[j], client);
            }
        }
        Some(former)
    }

    /// Adds edge {a, b}, adding either client to the roster if needed; returns whether the
    /// edge was new.
    pub fn add_edge(&mut self, a: u32, b: u32) -> Result<bool, GraphError> {
        if a == b {
            return Err(GraphError::SelfEdge {
                net: self.dc_net_id,
                client: a,
            });
        }
        self.add_client(a);
        self.add_client(b);
        let (i, j) = (self.position(a), self.position(b));
        let new = insert_sorted(&mut self.neighbours[i], b);
        insert_sorted(&mut self.neighbours[j], a);
        Ok(new)
    }

    /// Removes edge {a, b}; returns whether it existed. Both clients stay on the roster.
    pub fn remove_edge(&mut self, a: u32, b: u32) -> bool {
        match (self.index_of(a), self.index_of(b)) {
            (Some(i), Some(j)) => {
                let existed = remove_sorted(&mut self.neighbours[i], b);
                remove_sorted(&mut self.neighbours[j], a);
                existed
            }
            _ => false,
        }
    }

    /// Whether {a, b} is an edge.
    pub fn contains_edge(&self, a: u32, b: u32) -> bool {
        self.neighbours(a)
            .is_some_and(|ns| ns.binary_search(&b).is_ok())
    }

    /// The neighbour count of `client` (0 when it is not on the roster).
    pub fn degree(&self, client: u32) -> usize {
        self.neighbours(client).map_or(0, <[u32]>::len)
    }

    /// The connected components, each ascending, ordered by their smallest client.
    pub fn components(&self) -> Vec<Vec<u32>> {
        let n = self.clients.len();
        let mut seen = vec![false; n];
        let mut components = Vec::new();
        for start in 0..n {
            if seen[start] {
                continue;
            }
            seen[start] = true;
            let mut stack = vec![start];
            let mut members = Vec::new();
            while let Some(i) = stack.pop() {
                members.push(self.clients[i]);
                for &b in &self.neighbours[i] {
                    let j = self.position(b);
                    if !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
            members.sort_unstable();
            components.push(members);
        }
        components
    }

    /// Position of a client known to be on the roster (every neighbour id is).
    fn position(&self, client: u32) -> usize {
        self.clients
            .binary_search(&client)
            .unwrap_or_else(|_| unreachable!("neighbour lists only name roster clients"))
    }
}

fn insert_sorted(list: &mut Vec<u32>, value: u32) -> bool {
    match list.binary_search(&value) {
        Ok(_) => false,
        Err(pos) => {
            list.insert(pos, value);
            true
        }
    }
}

fn remove_sorted(list: &mut Vec<u32>, value: u32) -> bool {
    match list.binary_search(&value) {
        Ok(pos) => {
            list.remove(pos);
            true
        }
        Err(_) => false,
    }
}

/// Picks a random new neighbour for position `a`: a client still short of `k` neighbours when a
/// few random draws find one, any non-neighbour otherwise.
fn pick_partner(a: usize, adjacency: &[BTreeSet<usize>], k: usize, rng: &mut impl Rng) -> usize {
    let n = adjacency.len();
    let eligible = |b: usize| b != a && !adjacency[a].contains(&b);
    for _ in 0..64 {
        let b = rng.gen_range(0..n);
        if eligible(b) && adjacency[b].len() < k {
            return b;
        }
    }
    let candidates: Vec<usize> = (0..n).filter(|&b| eligible(b)).collect();
    // `n > k` and `a` has fewer than `k` neighbours, so at least one candidate exists.
    candidates[rng.gen_range(0..candidates.len())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn rejects_policy_violations() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            KeyGraph::random(1, &[1, 2, 3, 4, 5], 2, &mut rng),
            Err(GraphError::DegreeTooSmall(2))
        );
        assert!(matches!(
            KeyGraph::random(1, &[1, 2, 3], 3, &mut rng),
            Err(GraphError::TooFewClients {
                clients: 3,
                k: 3,
                ..
            })
        ));
        assert!(matches!(
            KeyGraph::random(1, &[1, 2, 3, 4, 2], 3, &mut rng),
            Err(GraphError::DuplicateClient { client: 2, .. })
        ));
        assert!(matches!(
            KeyGraph::from_edges(1, [(1, 2), (3, 3)]),
            Err(GraphError::SelfEdge { client: 3, .. })
        ));
    }

    #[test]
    fn from_edges_collapses_repeats_and_lists_the_roster() {
        let graph = KeyGraph::from_edges(9, [(5, 1), (1, 5), (1, 7)]).unwrap();
        assert_eq!(graph.clients(), &[1, 5, 7]);
        assert_eq!(graph.neighbours(1), Some(&[5, 7][..]));
        assert_eq!(graph.edges().collect::<Vec<_>>(), vec![(1, 5), (1, 7)]);
        assert_eq!(graph.edge_count(), 2);
        assert!(graph.is_connected());
        assert!(
            !KeyGraph::from_edges(9, [(1, 2), (3, 4)])
                .unwrap()
                .is_connected()
        );
    }

    #[test]
    fn mutation_keeps_adjacency_symmetric() {
        let mut graph = KeyGraph::new(3);
        assert!(graph.add_client(9));
        assert!(!graph.add_client(9));
        assert_eq!(graph.add_edge(4, 9), Ok(true));
        assert_eq!(graph.add_edge(9, 4), Ok(false));
        assert_eq!(graph.add_edge(1, 4), Ok(true));
        assert!(graph.add_edge(2, 2).is_err());
        assert_eq!(graph.clients(), &[1, 4, 9]);
        assert!(graph.contains_edge(9, 4) && graph.contains_edge(4, 1));
        assert_eq!(graph.degree(4), 2);
        assert_eq!(graph.remove_client(4), Some(vec![1, 9]));
        assert_eq!(graph.components(), vec![vec![1], vec![9]]);
        assert!(!graph.is_connected());
        assert_eq!(graph.add_edge(1, 9), Ok(true));
        assert!(graph.remove_edge(9, 1));
        assert!(!graph.remove_edge(9, 1));
        assert_eq!(graph.edge_count(), 0);
        assert_eq!(graph.len(), 2);
    }

    proptest! {
        #[test]
        fn random_graphs_follow_the_policy(seed in any::<u64>(), n in 4usize..200, k in 3usize..8) {
            prop_assume!(n > k);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let clients: Vec<u32> = (0..n as u32).map(|i| i * 7 + 3).collect();
            let graph = KeyGraph::random(4, &clients, k, &mut rng).unwrap();
            prop_assert!(graph.min_degree() >= k);
            prop_assert!(graph.is_connected());
            prop_assert_eq!(graph.len(), n);
            // Symmetric adjacency: the edge list rebuilds the same graph.
            let rebuilt = KeyGraph::from_edges(4, graph.edges()).unwrap();
            prop_assert_eq!(&rebuilt, &graph);
            // Deterministic from the seed.
            let again = KeyGraph::random(4, &clients, k, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            prop_assert_eq!(again, graph);
        }
    }
}

//! Key graphs: which clients of a DC net share an edge seed (DESIGN §1).
//!
//! Policy: every client has at least `k >= 3` neighbours, neighbours are drawn at random (by the
//! provider, never by a client) and the graph is connected. A curious provider knows the graph,
//! so these rules are what stops it from isolating a household with a few colluding neighbours.

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
    /// Client ids in ascending order; a client's position here indexes `offsets`.
    clients: Vec<u32>,
    /// The neighbours of the client at position `i` are `adjacency[offsets[i]..offsets[i + 1]]`,
    /// ids in ascending order (`offsets` has one entry more than `clients`, the first 0).
    /// Two flat vectors rather than a vector per client: a provider's graphs hold millions of
    /// clients, and a million small allocations dominated reading `graph.csv` and walking
    /// the lists (a pointer chase per client) when preparing them for aggregation.
    offsets: Vec<usize>,
    adjacency: Vec<u32>,
}

impl KeyGraph {
    /// Builds the graph from its edge list, as read from `graph.csv`. The roster is every client
    /// that appears in an edge; repeated edges (in either direction) collapse into one.
    pub fn from_edges(
        dc_net_id: u32,
        edges: impl IntoIterator<Item = (u32, u32)>,
    ) -> Result<Self, GraphError> {
        // Both directions of every edge, sorted and deduplicated, are the adjacency lists in
        // order: sorting instead of a tree insert per end (a provider's graph.csv holds
        // millions of edges). Each end is packed into one u64, client in the high half, so
        // that sorts compare single words: sorting `(u32, u32)` pairs took twice as long.
        // The ends as given and the reversed ends are sorted apart and merged: graph.csv
        // lists a net's edges in order, so the ends as given need no sort at all, and the
        // reversed ones are half the work of sorting both together.
        let edges = edges.into_iter();
        let mut given: Vec<u64> = Vec::with_capacity(edges.size_hint().0);
        let mut reversed: Vec<u64> = Vec::with_capacity(edges.size_hint().0);
        for (a, b) in edges {
            if a == b {
                return Err(GraphError::SelfEdge {
                    net: dc_net_id,
                    client: a,
                });
            }
            given.push((u64::from(a) << 32) | u64::from(b));
            reversed.push((u64::from(b) << 32) | u64::from(a));
        }
        if !given.is_sorted() {
            given.sort_unstable();
        }
        reversed.sort_unstable();
        let mut clients: Vec<u32> = Vec::new();
        let mut offsets: Vec<usize> = vec![0];
        let mut adjacency: Vec<u32> = Vec::with_capacity(2 * given.len());
        let mut last = None;
        for end in merged(&given, &reversed) {
            if last == Some(end) {
                continue;
            }
            last = Some(end);
            let (client, neighbour) = ((end >> 32) as u32, end as u32);
            if clients.last() != Some(&client) {
                if !clients.is_empty() {
                    offsets.push(adjacency.len());
                }
                clients.push(client);
            }
            adjacency.push(neighbour);
        }
        if !clients.is_empty() {
            offsets.push(adjacency.len());
        }
        Ok(Self {
            dc_net_id,
            clients,
            offsets,
            adjacency,
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
        // Sorted lists rather than sets: a client has about `k` neighbours, and a few thousand
        // tiny tree sets per net dominated building simulated populations.
        // Positions are u32 like the ids they stand for (a roster is a slice of u32 ids, and
        // no machine holds 2^32 of them), so each list becomes the client's neighbour list.
        let mut adjacency: Vec<Vec<u32>> = vec![Vec::with_capacity(k + 2); n];
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(rng);
        for (pos, &a) in order.iter().enumerate() {
            let b = order[(pos + 1) % n];
            insert_sorted(&mut adjacency[a as usize], b);
            insert_sorted(&mut adjacency[b as usize], a);
        }
        for &a in &order {
            while adjacency[a as usize].len() < k {
                let b = pick_partner(a, &adjacency, k, rng);
                insert_sorted(&mut adjacency[a as usize], b);
                insert_sorted(&mut adjacency[b as usize], a);
            }
        }
        // Positions ascend with ids, so the lists stay sorted when mapped to ids.
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        let mut flat = Vec::with_capacity(adjacency.iter().map(Vec::len).sum());
        for list in &adjacency {
            flat.extend(list.iter().map(|&p| sorted[p as usize]));
            offsets.push(flat.len());
        }
        Ok(Self {
            dc_net_id,
            clients: sorted,
            offsets,
            adjacency: flat,
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
        self.index_of(client).map(|i| self.neighbours_at(i))
    }

    /// The neighbours of the client at roster position `index`.
    pub fn neighbours_at(&self, index: usize) -> &[u32] {
        &self.adjacency[self.offsets[index]..self.offsets[index + 1]]
    }

    /// Every client's neighbour list, in roster order.
    fn lists(&self) -> impl Iterator<Item = &[u32]> + '_ {
        self.offsets
            .windows(2)
            .map(|range| &self.adjacency[range[0]..range[1]])
    }

    /// Every edge once, as `(lower id, higher id)`, in ascending order.
    pub fn edges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.clients.iter().zip(self.lists()).flat_map(|(&a, ns)| {
            ns.iter()
                .copied()
                .filter(move |&b| a < b)
                .map(move |b| (a, b))
        })
    }

    /// Number of edges.
    pub fn edge_count(&self) -> usize {
        self.adjacency.len() / 2
    }

    /// The smallest neighbour count of any client (0 for an empty graph).
    pub fn min_degree(&self) -> usize {
        self.lists().map(<[u32]>::len).min().unwrap_or(0)
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
            for &b in self.neighbours_at(i) {
                if let Some(j) = self.index_of(b)
                    && !seen[j]
                {
                    seen[j] = true;
                    reached += 1;
                    stack.push(j);
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
            offsets: vec![0],
            adjacency: Vec::new(),
        }
    }

    /// Adds `client` without edges; returns whether it was new.
    pub fn add_client(&mut self, client: u32) -> bool {
        match self.clients.binary_search(&client) {
            Ok(_) => false,
            Err(pos) => {
                self.clients.insert(pos, client);
                // An empty range where its list goes.
                self.offsets.insert(pos, self.offsets[pos]);
                true
            }
        }
    }

    /// Removes `client` and its edges; returns its former neighbours, or `None` if it was not
    /// on the roster.
    pub fn remove_client(&mut self, client: u32) -> Option<Vec<u32>> {
        let pos = self.index_of(client)?;
        let (start, end) = (self.offsets[pos], self.offsets[pos + 1]);
        let former: Vec<u32> = self.adjacency.drain(start..end).collect();
        self.clients.remove(pos);
        self.offsets.remove(pos + 1);
        for offset in &mut self.offsets[pos + 1..] {
            *offset -= end - start;
        }
        for &b in &former {
            if let Some(j) = self.index_of(b) {
                self.remove_neighbour(j, client);
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
        let new = self.insert_neighbour(i, b);
        self.insert_neighbour(j, a);
        Ok(new)
    }

    /// Removes edge {a, b}; returns whether it existed. Both clients stay on the roster.
    pub fn remove_edge(&mut self, a: u32, b: u32) -> bool {
        match (self.index_of(a), self.index_of(b)) {
            (Some(i), Some(j)) => {
                let existed = self.remove_neighbour(i, b);
                self.remove_neighbour(j, a);
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
                for &b in self.neighbours_at(i) {
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

    /// Adds `neighbour` to the list of the client at position `i`; returns whether it was new.
    /// Lists are slices of one vector, so a change shifts what follows: O(edges), which the
    /// few clients joining or leaving a net at a time can afford.
    fn insert_neighbour(&mut self, i: usize, neighbour: u32) -> bool {
        let start = self.offsets[i];
        match self.neighbours_at(i).binary_search(&neighbour) {
            Ok(_) => false,
            Err(at) => {
                self.adjacency.insert(start + at, neighbour);
                for offset in &mut self.offsets[i + 1..] {
                    *offset += 1;
                }
                true
            }
        }
    }

    /// Removes `neighbour` from the list of the client at position `i`; returns whether it
    /// was there.
    fn remove_neighbour(&mut self, i: usize, neighbour: u32) -> bool {
        let start = self.offsets[i];
        match self.neighbours_at(i).binary_search(&neighbour) {
            Ok(at) => {
                self.adjacency.remove(start + at);
                for offset in &mut self.offsets[i + 1..] {
                    *offset -= 1;
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Position of a client known to be on the roster (every neighbour id is).
    fn position(&self, client: u32) -> usize {
        self.clients
            .binary_search(&client)
            .unwrap_or_else(|_| unreachable!("neighbour lists only name roster clients"))
    }
}

/// How hard it is to isolate clients of a key graph (DESIGN §7: a curious provider colluding
/// with neighbours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connectivity {
    /// The vertex connectivity: the fewest clients whose removal (collusion with the provider,
    /// or dropping out) disconnects the rest; `n - 1` for a complete graph, 0 if already split.
    pub vertex_connectivity: usize,
    /// One smallest such set of clients (ascending); empty when the graph is already split or
    /// complete.
    pub separator: Vec<u32>,
    /// The clients that removing `separator` cuts off: the smaller side (ascending). For a
    /// split graph, the smallest component.
    pub isolated: Vec<u32>,
}

impl KeyGraph {
    /// Vertex connectivity by unit-capacity max flow (Even's reduction with Esfahanian and
    /// Hakimi's choice of pairs): with `v` a client of minimum degree, the minimum over `v`
    /// against every non-neighbour and over every non-adjacent pair of `v`'s neighbours. Each
    /// flow stops once it reaches the best bound so far, so sparse key graphs of a few
    /// thousand clients take well under a second.
    pub fn connectivity(&self) -> Connectivity {
        let n = self.clients.len();
        let components = self.components();
        if components.len() > 1 {
            let smallest = components
                .into_iter()
                .min_by_key(Vec::len)
                .unwrap_or_default();
            return Connectivity {
                vertex_connectivity: 0,
                separator: Vec::new(),
                isolated: smallest,
            };
        }
        let Some(v) = (0..n).min_by_key(|&i| self.neighbours_at(i).len()) else {
            return Connectivity {
                vertex_connectivity: 0,
                separator: Vec::new(),
                isolated: Vec::new(),
            };
        };
        let mut flow = SplitFlow::new(self);
        // Removing all of v's neighbours isolates v: the degree bound and its cut.
        let mut best = self.neighbours_at(v).len();
        let mut cut = (self.neighbours_at(v).to_vec(), vec![self.clients[v]]);
        let adjacent = |i: usize, j: usize| {
            self.neighbours_at(i)
                .binary_search(&self.clients[j])
                .is_ok()
        };
        let mut pairs: Vec<(usize, usize)> = (0..n)
            .filter(|&w| w != v && !adjacent(v, w))
            .map(|w| (v, w))
            .collect();
        let around: Vec<usize> = self
            .neighbours_at(v)
            .iter()
            .map(|&c| self.position(c))
            .collect();
        for (x, &a) in around.iter().enumerate() {
            for &b in &around[x + 1..] {
                if !adjacent(a, b) {
                    pairs.push((a, b));
                }
            }
        }
        for (s, t) in pairs {
            let paths = flow.max_paths(s, t, best);
            if paths < best {
                best = paths;
                cut = flow.min_cut(s);
            }
        }
        let (separator, side) = cut;
        let isolated = if side.len() * 2 <= n - separator.len() {
            side
        } else {
            let mut rest: Vec<u32> = self
                .clients
                .iter()
                .copied()
                .filter(|c| separator.binary_search(c).is_err() && side.binary_search(c).is_err())
                .collect();
            rest.sort_unstable();
            rest
        };
        if separator.len() + 1 == n && best == n - 1 {
            // Complete graph: no separator exists.
            return Connectivity {
                vertex_connectivity: best,
                separator: Vec::new(),
                isolated: Vec::new(),
            };
        }
        Connectivity {
            vertex_connectivity: best,
            separator,
            isolated,
        }
    }
}

/// The split-vertex flow network of a key graph: client `i` becomes `in(i) = 2i` and
/// `out(i) = 2i + 1` joined by a unit arc, so vertex-disjoint paths become unit flows.
struct SplitFlow<'g> {
    graph: &'g KeyGraph,
    /// Arcs grouped by tail (CSR): `start[node]..start[node + 1]` are a node's arcs, each with
    /// its head, residual capacity and the index of its reverse arc.
    head: Vec<usize>,
    partner: Vec<usize>,
    cap: Vec<u8>,
    initial: Vec<u8>,
    start: Vec<usize>,
    parent_arc: Vec<usize>,
    seen: Vec<u32>,
    stamp: u32,
}

impl<'g> SplitFlow<'g> {
    fn new(graph: &'g KeyGraph) -> Self {
        let n = graph.clients.len();
        // Per node the list of (head, capacity); every arc is stored with its reverse at
        // index ^ 1.
        let mut arcs: Vec<(usize, usize, u8)> = Vec::new();
        for i in 0..n {
            arcs.push((2 * i, 2 * i + 1, 1));
            arcs.push((2 * i + 1, 2 * i, 0));
            for &b in graph.neighbours_at(i) {
                let j = graph.position(b);
                arcs.push((2 * i + 1, 2 * j, 1));
                arcs.push((2 * j, 2 * i + 1, 0));
            }
        }
        // Group arcs by tail while keeping each pair's partner index: sort an index list.
        let mut order: Vec<usize> = (0..arcs.len()).collect();
        order.sort_by_key(|&a| arcs[a].0);
        let mut position = vec![0usize; arcs.len()];
        for (new, &old) in order.iter().enumerate() {
            position[old] = new;
        }
        let mut head = vec![0usize; arcs.len()];
        let mut cap = vec![0u8; arcs.len()];
        let mut partner = vec![0usize; arcs.len()];
        for (old, &(_, h, c)) in arcs.iter().enumerate() {
            let new = position[old];
            head[new] = h;
            cap[new] = c;
            partner[new] = position[old ^ 1];
        }
        let mut start = vec![0usize; 2 * n + 1];
        for &(tail, _, _) in &arcs {
            start[tail + 1] += 1;
        }
        for i in 0..2 * n {
            start[i + 1] += start[i];
        }
        Self {
            graph,
            head,
            partner,
            initial: cap.clone(),
            cap,
            start,
            parent_arc: vec![usize::MAX; 2 * n],
            seen: vec![0; 2 * n],
            stamp: 0,
        }
    }

    /// Vertex-disjoint paths from client `s` to client `t`, counted up to `limit`.
    fn max_paths(&mut self, s: usize, t: usize, limit: usize) -> usize {
        self.cap.copy_from_slice(&self.initial);
        let (source, sink) = (2 * s + 1, 2 * t);
        let mut paths = 0;
        while paths < limit && self.augment(source, sink) {
            paths += 1;
        }
        paths
    }

    /// One breadth-first augmenting path; flips capacities along it.
    fn augment(&mut self, source: usize, sink: usize) -> bool {
        self.stamp += 1;
        let stamp = self.stamp;
        let mut queue = std::collections::VecDeque::from([source]);
        self.seen[source] = stamp;
        while let Some(node) = queue.pop_front() {
            for arc in self.start[node]..self.start[node + 1] {
                let next = self.head[arc];
                if self.cap[arc] == 0 || self.seen[next] == stamp {
                    continue;
                }
                self.seen[next] = stamp;
                self.parent_arc[next] = arc;
                if next == sink {
                    let mut at = sink;
                    while at != source {
                        let arc = self.parent_arc[at];
                        self.cap[arc] -= 1;
                        self.cap[self.partner[arc]] += 1;
                        at = self.head[self.partner[arc]];
                    }
                    return true;
                }
                queue.push_back(next);
            }
        }
        false
    }

    /// After a maximum flow from `s`: the separator (clients whose in-node is reachable in the
    /// residual network but whose out-node is not) and the side reachable from `s`.
    fn min_cut(&mut self, s: usize) -> (Vec<u32>, Vec<u32>) {
        self.stamp += 1;
        let stamp = self.stamp;
        let source = 2 * s + 1;
        let mut queue = std::collections::VecDeque::from([source]);
        self.seen[source] = stamp;
        self.seen[2 * s] = stamp;
        while let Some(node) = queue.pop_front() {
            for arc in self.start[node]..self.start[node + 1] {
                let next = self.head[arc];
                if self.cap[arc] > 0 && self.seen[next] != stamp {
                    self.seen[next] = stamp;
                    queue.push_back(next);
                }
            }
        }
        let mut separator = Vec::new();
        let mut side = Vec::new();
        for (i, &client) in self.graph.clients.iter().enumerate() {
            match (self.seen[2 * i] == stamp, self.seen[2 * i + 1] == stamp) {
                (true, false) => separator.push(client),
                (true, true) => side.push(client),
                _ => {}
            }
        }
        (separator, side)
    }
}

fn insert_sorted<T: Ord>(list: &mut Vec<T>, value: T) -> bool {
    match list.binary_search(&value) {
        Ok(_) => false,
        Err(pos) => {
            list.insert(pos, value);
            true
        }
    }
}

/// Picks a random new neighbour for position `a`: a client still short of `k` neighbours when a
/// few random draws find one, any non-neighbour otherwise.
fn pick_partner(a: u32, adjacency: &[Vec<u32>], k: usize, rng: &mut impl Rng) -> u32 {
    let n = adjacency.len();
    let eligible = |b: u32| b != a && adjacency[a as usize].binary_search(&b).is_err();
    for _ in 0..64 {
        // Drawn as usize, as before positions became u32, so graphs stay the same.
        let b = rng.gen_range(0..n) as u32;
        if eligible(b) && adjacency[b as usize].len() < k {
            return b;
        }
    }
    let candidates: Vec<u32> = (0..n as u32).filter(|&b| eligible(b)).collect();
    // `n > k` and `a` has fewer than `k` neighbours, so at least one candidate exists.
    candidates[rng.gen_range(0..candidates.len())]
}

/// The words of two sorted slices in order, each as often as it occurs in either.
fn merged<'a>(left: &'a [u64], right: &'a [u64]) -> impl Iterator<Item = u64> + 'a {
    let (mut left, mut right) = (
        left.iter().copied().peekable(),
        right.iter().copied().peekable(),
    );
    std::iter::from_fn(move || match (left.peek(), right.peek()) {
        (Some(&l), Some(&r)) if r < l => right.next(),
        (Some(_), _) => left.next(),
        (None, _) => right.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::Rng;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    proptest! {
        #[test]
        fn from_edges_builds_the_sorted_unique_adjacency(
            mut edges in proptest::collection::vec((0u32..40, 0u32..40), 0..120),
            sorted: bool,
        ) {
            // Sorted, the edges come as graph.csv lists them, and the ends as given skip their
            // sort.
            if sorted {
                edges.sort_unstable();
            }
            // The adjacency built independently, with ordered sets.
            let mut expected: std::collections::BTreeMap<u32, std::collections::BTreeSet<u32>> =
                std::collections::BTreeMap::new();
            let mut self_edge = None;
            for &(a, b) in &edges {
                if a == b {
                    self_edge.get_or_insert(a);
                    break;
                }
                expected.entry(a).or_default().insert(b);
                expected.entry(b).or_default().insert(a);
            }
            let built = KeyGraph::from_edges(9, edges.iter().copied());
            match self_edge {
                Some(client) => prop_assert_eq!(
                    built.err(),
                    Some(GraphError::SelfEdge { net: 9, client })
                ),
                None => {
                    let graph = built.unwrap();
                    let clients: Vec<u32> = expected.keys().copied().collect();
                    prop_assert_eq!(graph.clients(), clients.as_slice());
                    for (slot, set) in expected.values().enumerate() {
                        let want: Vec<u32> = set.iter().copied().collect();
                        prop_assert_eq!(graph.neighbours_at(slot), want.as_slice());
                    }
                }
            }
        }
    }

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

    /// One change to a graph, for the model test below.
    #[derive(Debug, Clone)]
    enum Change {
        AddClient(u32),
        RemoveClient(u32),
        AddEdge(u32, u32),
        RemoveEdge(u32, u32),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (0u32..12).prop_map(Change::AddClient),
            (0u32..12).prop_map(Change::RemoveClient),
            (0u32..12, 0u32..12).prop_map(|(a, b)| Change::AddEdge(a, b)),
            (0u32..12, 0u32..12).prop_map(|(a, b)| Change::RemoveEdge(a, b)),
        ]
    }

    proptest! {
        /// Any sequence of joins, leaves and edge changes leaves the graph equal, client by
        /// client and list by list, to a plain map of sets given the same changes, with the
        /// same answers along the way; and equal to the graph built from its own edges.
        #[test]
        fn mutations_agree_with_a_map_of_sets(
            start in proptest::collection::vec((0u32..12, 0u32..12), 0..20),
            changes in proptest::collection::vec(change(), 0..60),
        ) {
            use std::collections::{BTreeMap, BTreeSet};
            let start: Vec<(u32, u32)> = start.into_iter().filter(|(a, b)| a != b).collect();
            let mut graph = KeyGraph::from_edges(5, start.iter().copied()).unwrap();
            let mut model: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
            for &(a, b) in &start {
                model.entry(a).or_default().insert(b);
                model.entry(b).or_default().insert(a);
            }
            for change in changes {
                match change {
                    Change::AddClient(c) => {
                        let new = !model.contains_key(&c);
                        model.entry(c).or_default();
                        prop_assert_eq!(graph.add_client(c), new);
                    }
                    Change::RemoveClient(c) => {
                        let former = model.remove(&c).map(|ns| {
                            for n in &ns {
                                if let Some(list) = model.get_mut(n) {
                                    list.remove(&c);
                                }
                            }
                            ns.into_iter().collect::<Vec<_>>()
                        });
                        prop_assert_eq!(graph.remove_client(c), former);
                    }
                    Change::AddEdge(a, b) if a == b => {
                        prop_assert!(graph.add_edge(a, b).is_err());
                    }
                    Change::AddEdge(a, b) => {
                        let new = model.entry(a).or_default().insert(b);
                        model.entry(b).or_default().insert(a);
                        prop_assert_eq!(graph.add_edge(a, b), Ok(new));
                    }
                    Change::RemoveEdge(a, b) => {
                        let existed = model.contains_key(&b)
                            && model.get_mut(&a).is_some_and(|ns| ns.remove(&b));
                        if existed {
                            model.get_mut(&b).map(|ns| ns.remove(&a));
                        }
                        prop_assert_eq!(graph.remove_edge(a, b), existed);
                    }
                }
                let clients: Vec<u32> = model.keys().copied().collect();
                prop_assert_eq!(graph.clients(), clients.as_slice());
                for (i, (c, ns)) in model.iter().enumerate() {
                    let ns: Vec<u32> = ns.iter().copied().collect();
                    prop_assert_eq!(graph.neighbours_at(i), ns.as_slice());
                    prop_assert_eq!(graph.neighbours(*c), Some(ns.as_slice()));
                    prop_assert_eq!(graph.degree(*c), ns.len());
                }
                let edges = model.values().map(BTreeSet::len).sum::<usize>() / 2;
                prop_assert_eq!(graph.edge_count(), edges);
            }
            // Clients without edges are not in an edge list, so compare the ones with edges.
            let rebuilt = KeyGraph::from_edges(5, graph.edges()).unwrap();
            let mut with_edges = graph.clone();
            for c in graph.clients() {
                if graph.degree(*c) == 0 {
                    with_edges.remove_client(*c);
                }
            }
            prop_assert_eq!(rebuilt, with_edges);
        }
    }

    /// Brute force: the smallest set of clients whose removal disconnects the rest.
    fn brute_connectivity(graph: &KeyGraph) -> usize {
        let n = graph.len();
        for size in 0..n.saturating_sub(1) {
            let found = (0u32..1 << n)
                .filter(|m| m.count_ones() as usize == size)
                .any(|mask| {
                    let kept: Vec<(u32, u32)> = graph
                        .edges()
                        .filter(|&(a, b)| {
                            let (i, j) = (graph.index_of(a).unwrap(), graph.index_of(b).unwrap());
                            mask & (1 << i) == 0 && mask & (1 << j) == 0
                        })
                        .collect();
                    let mut rest = KeyGraph::from_edges(0, kept).unwrap();
                    for (i, &c) in graph.clients().iter().enumerate() {
                        if mask & (1 << i) == 0 {
                            rest.add_client(c);
                        }
                    }
                    !rest.is_connected()
                });
            if found {
                return size;
            }
        }
        n - 1
    }

    #[test]
    fn connectivity_of_hand_made_graphs() {
        // Two triangles sharing client 3: removing 3 splits them.
        let bowtie =
            KeyGraph::from_edges(1, [(1, 2), (2, 3), (1, 3), (3, 4), (4, 5), (3, 5)]).unwrap();
        let c = bowtie.connectivity();
        assert_eq!(c.vertex_connectivity, 1);
        assert_eq!(c.separator, vec![3]);
        assert!(
            c.isolated == vec![1, 2] || c.isolated == vec![4, 5],
            "{c:?}"
        );
        // A 6-cycle: any two opposite clients separate it.
        let ring =
            KeyGraph::from_edges(1, [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 1)]).unwrap();
        assert_eq!(ring.connectivity().vertex_connectivity, 2);
        assert_eq!(ring.connectivity().separator.len(), 2);
        // K4 is complete: 3, with no separator.
        let k4 = KeyGraph::from_edges(1, [(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]).unwrap();
        assert_eq!(k4.connectivity().vertex_connectivity, 3);
        assert!(k4.connectivity().separator.is_empty());
        // A split graph: 0, and the smaller component is cut off.
        let split = KeyGraph::from_edges(1, [(1, 2), (2, 3), (3, 1), (7, 8)]).unwrap();
        assert_eq!(split.connectivity().vertex_connectivity, 0);
        assert_eq!(split.connectivity().isolated, vec![7, 8]);
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

        #[test]
        fn connectivity_matches_brute_force(seed in any::<u64>(), n in 2usize..11, density in 0.1f64..0.9) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut graph = KeyGraph::new(1);
            for a in 0..n as u32 {
                graph.add_client(a);
                for b in 0..a {
                    if rng.gen_bool(density) {
                        graph.add_edge(a, b).unwrap();
                    }
                }
            }
            let c = graph.connectivity();
            prop_assert_eq!(c.vertex_connectivity, brute_connectivity(&graph));
            // The reported separator really separates (unless there is none to report).
            if !c.separator.is_empty() {
                let mut rest = graph.clone();
                for s in &c.separator {
                    rest.remove_client(*s);
                }
                prop_assert!(!rest.is_connected());
                prop_assert!(c.isolated.iter().all(|i| rest.index_of(*i).is_some()));
            }
        }
    }
}

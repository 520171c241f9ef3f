"""The OpenPose-18 skeleton graph and ST-GCN's adjacency (uniform strategy).

With STG-NF's defaults (uniform strategy, max hop 8) every joint reaches every other within 8 hops,
so A is 1/18 everywhere: the graph convolution is a mean over joints.
"""
from __future__ import annotations

import numpy as np

# OpenPose-18 joint order (see data.prepare_arrays.OPENPOSE_ORDER)
OPENPOSE_EDGES = [(4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2),
                  (5, 1), (2, 1), (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)]
# body-part partition of the 18 joints (used by attention modules)
BODY_PARTS = {
    "head": [0, 14, 15, 16, 17],
    "torso": [1, 2, 5, 8, 11],
    "right_arm": [3, 4],
    "left_arm": [6, 7],
    "right_leg": [9, 10],
    "left_leg": [12, 13],
}


# the body parts as a tree rooted at the torso (indices into BODY_PARTS' order): a hierarchy
PART_EDGES = [(0, 1), (1, 2), (1, 3), (1, 4), (1, 5)]


def part_adjacency(n_parts: int = len(BODY_PARTS), edges=PART_EDGES) -> np.ndarray:
    """Body-part tree with self loops, column-normalised. Shape (P, P)."""
    adj = np.eye(n_parts)
    for i, j in edges:
        adj[i, j] = adj[j, i] = 1
    return (adj / adj.sum(0, keepdims=True)).astype(np.float32)


def hop_distance(n: int, edges, max_hop: int) -> np.ndarray:
    adj = np.eye(n)
    for i, j in edges:
        adj[i, j] = adj[j, i] = 1
    dist = np.full((n, n), np.inf)
    reach = [np.linalg.matrix_power(adj, d) > 0 for d in range(max_hop + 1)]
    for d in range(max_hop, -1, -1):
        dist[reach[d]] = d
    return dist


def uniform_adjacency(n: int = 18, edges=OPENPOSE_EDGES, max_hop: int = 8) -> np.ndarray:
    """ST-GCN 'uniform' strategy: joints within ``max_hop`` hops, column-normalised. Shape (1, V, V)."""
    adj = (hop_distance(n, edges, max_hop) <= max_hop).astype(np.float64)
    degree = adj.sum(0)
    return (adj / degree[None, :])[None].astype(np.float32)

"""The graph family (book ch. 13): small coloured random graphs, an MLP and a message-passing GNN.

**Task.** Each example is an Erdős–Rényi graph on ``GRAPH_NODES`` nodes (edge
probability ``GRAPH_P``) whose nodes carry one of ``GRAPH_COLOURS`` colours,
``GRAPH_NODES / GRAPH_COLOURS`` nodes of each, in random node order. The label is
the colour class with the most edges inside it (graphs whose maximum is tied are
redrawn). The colour classes have equal sizes, so no count of nodes or edges
tells the label: it is a sum over node pairs of ``A_ij [c_i = c] [c_j = c]``,
cubic in the input. One message-passing step computes it exactly (each node
counts its neighbours of its own colour; a sum over nodes reads out twice the
class's edge count), so it is within the 1-WL power of the GNN below, while an
MLP on the flattened adjacency must find those products among ~200 pairs of
input positions that the random node order moves around.

One example is one float tensor ``x`` (N, N + F): row ``i`` is node ``i``'s
adjacency row followed by its one-hot colour (F = ``GRAPH_COLOURS``). The MLP
flattens it; the GNN reads the first N columns as the graph and the rest as node
features.

Minority subgroup (``deployment_risk``): denser graphs (edge probability
``GRAPH_P_MINORITY``), ``MINORITY_TRAIN`` of training data, half of the
group-balanced test set, as in :mod:`runs_generator.tasks`. Label noise replaces
a fraction ``noise`` of the labels by another class. The ``augmentation`` lever
is the trainer's generic input jitter (Gaussian, std 0.1, on adjacency and
colours alike: the GNN then sees weakly weighted non-edges); a random node
relabelling would be the graph's own augmentation, but the trainer has no
per-family hook for it yet.

**GNN** (``arch='gnn'``, a custom :class:`~runs_generator.models.StackedArch`).
``depth`` GraphConv layers (Morris et al. 2019, as powerful as 1-WL) of width
``W``: for node features ``h`` (N, F_in),

    z = h W_self + (A h / sqrt(N)) W_nbr + b,  f = dropout(relu(norm(z))),
    h' = f (layer 0) or h + f (residual) or f,

the root weight ``W_self`` playing the part of a self-loop. The neighbour sum is
divided by sqrt(N), the std of a sum of N unit terms, so that with both
weights He-initialized the messages and the node's own features enter at a
comparable scale (a raw sum grows the pre-activations by ~sqrt(1 + degree^2) per
layer). Normalization is over node features: batch norm over all nodes of the
batch, layer norm over each node's W units. The readout is the mean over nodes
(the node count is fixed: a mean is a sum up to a constant) into the shared
linear head. Permuting the nodes of ``x`` (rows and adjacency columns) leaves
the output unchanged.

Stacked over R models: node maps are (R, B*N, W), linear maps are batched
matmuls over all nodes, and the aggregation is one batched matmul of the
adjacency (R*B, N, N) with the node maps; trained with autograd through this
forward (``fused=False``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

from runs_generator.models import LN_EPS, MLP, ArchSpec, StackedArch, dropout_uniform, normalize
from runs_generator.spec import RunConfig, TaskData
from runs_generator.tasks import MINORITY_GROUPS, MINORITY_TRAIN, N_TEST, N_VAL, _assemble, _group_ids, _noisy

__all__ = ["graph_data", "GNN", "GRAPH_NODES", "GRAPH_COLOURS", "GRAPH_P", "GRAPH_P_MINORITY", "permute_nodes"]

GRAPH_NODES = 12  # nodes per graph
GRAPH_COLOURS = 3  # colour classes (= classes of the label); GRAPH_NODES / GRAPH_COLOURS nodes each
GRAPH_P = 0.3  # edge probability of the majority group (mean degree 3.3)
GRAPH_P_MINORITY = 0.5  # edge probability of the minority subgroup (denser graphs)

_TAG_REPLICAS, _TAG_TEST, _TAG_GROUPS = 13, 12, 15  # as runs_generator.tasks, with _TASK_ID in every seed
_TASK_ID = 4  # keeps the graph family's streams apart from the other families' (same run seed, other data)


# --- data --------------------------------------------------------------------------
def _draw_graphs(rng: np.random.Generator, n: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` coloured graphs with a unique densest colour class: inputs (n, N, N + F) and labels (n,)."""
    nodes, k = GRAPH_NODES, GRAPH_COLOURS
    xs, ys, have = [], [], 0
    while have < n:
        m = 2 * (n - have) + 16  # ~68% of draws have a unique maximum
        upper = np.triu(rng.random((m, nodes, nodes)) < p, 1)
        adj = (upper | upper.transpose(0, 2, 1)).astype(np.float64)
        colours = rng.permuted(np.tile(np.arange(nodes) % k, (m, 1)), axis=1)  # balanced, in random node order
        onehot = np.eye(k)[colours]  # (m, N, F)
        counts = np.einsum("bij,bic,bjc->bc", adj, onehot, onehot) / 2  # edges inside each colour class
        top = np.sort(counts, axis=1)
        ok = top[:, -1] > top[:, -2]
        xs.append(np.concatenate([adj, onehot], axis=2)[ok])
        ys.append(counts.argmax(1)[ok])
        have += int(ok.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n].astype(np.int64)


def _draw_mixture(rng: np.random.Generator, n: int, minority: float):
    """``n`` graphs, a share ``minority`` of them from the denser subgroup (shuffled): x, y, group."""
    group = _group_ids(rng, n, minority)
    x = np.empty((n, GRAPH_NODES, GRAPH_NODES + GRAPH_COLOURS))
    y = np.empty(n, dtype=np.int64)
    for g, p in ((0, GRAPH_P), (1, GRAPH_P_MINORITY)):
        idx = np.flatnonzero(group == g)
        x[idx], y[idx] = _draw_graphs(rng, len(idx), p)
    return x, y, group


@functools.lru_cache(maxsize=8)
def _graph_test(sweep_seed: int, balanced: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shared in-distribution test set, or (``balanced``) the group-balanced one."""
    rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, _TAG_GROUPS if balanced else _TAG_TEST,
                                                        _TASK_ID]))
    return _draw_mixture(rng, N_TEST, MINORITY_GROUPS if balanced else MINORITY_TRAIN)


def graph_data(config: RunConfig, *, sweep_seed: int) -> TaskData:
    """The graph family's data of one run: K independent draws, the shared test sets.

    ``x`` is (N, N + F) per example (adjacency row, one-hot colour per node),
    ``GRAPH_COLOURS`` classes; see the module docstring and
    :func:`runs_generator.tasks.make_task_data`.

    Examples
    --------
    >>> from runs_generator._toydata import toy_config
    >>> d = graph_data(toy_config(task="graph", n_train=64, replicas=2), sweep_seed=0)
    >>> d.x_train.shape, d.n_outputs
    ((2, 64, 12, 15), 3)
    """
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _TAG_REPLICAS, _TASK_ID]))
    xs, ys = [], []
    for _ in range(config.replicas):  # one independent draw of train+val per replica
        x, y, _g = _draw_mixture(rng, config.n_train + N_VAL, MINORITY_TRAIN)
        xs.append(x)
        ys.append(_noisy(rng, y, config, GRAPH_COLOURS))
    x_test, y_test, _ = _graph_test(sweep_seed, False)
    x_groups, y_groups, groups = _graph_test(sweep_seed, True)
    meta = {"task": "graph", "input_dim": GRAPH_NODES * (GRAPH_NODES + GRAPH_COLOURS), "nodes": GRAPH_NODES}
    return _assemble(config, xs, ys, GRAPH_COLOURS, (x_test, y_test), (x_groups, y_groups, groups), meta)


def permute_nodes(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Relabel the nodes of graphs ``x`` (..., N, N + F) by ``perm``: node ``perm[i]`` becomes node ``i``."""
    n = x.shape[-2]
    x = x[..., perm, :]
    return torch.cat([x[..., perm], x[..., n:]], dim=-1)


# --- the GNN -------------------------------------------------------------------------
def _residual_scale(residual, like: torch.Tensor):
    return residual.to(like.dtype).view(-1, 1, 1) if isinstance(residual, torch.Tensor) else float(residual)


class _GNN(StackedArch):
    """GraphConv message passing on (R, B*N, W) node maps, mean readout (see the module docstring)."""

    name = "gnn"
    custom = True

    def length(self, spec: ArchSpec) -> int:  # hidden positions per example: the nodes
        return spec.input_shape[0]

    def fan_in(self, spec: ArchSpec, layer: int) -> int:
        return spec.input_shape[1] - spec.input_shape[0] if layer == 0 else spec.width

    def param_shapes(self, spec: ArchSpec) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        for i in range(spec.depth):
            fan_in = self.fan_in(spec, i)
            shapes[f"ws{i}"] = (fan_in, spec.width)  # the node's own features (the self-loop)
            shapes[f"wn{i}"] = (fan_in, spec.width)  # the sum over its neighbours
            if spec.normalization != "batch":  # batch norm removes a bias
                shapes[f"b{i}"] = (spec.width,)
            if spec.normalization != "none":
                shapes[f"g{i}"] = (spec.width,)
                shapes[f"be{i}"] = (spec.width,)
        shapes["wo"] = (spec.width, spec.n_outputs)
        shapes["bo"] = (spec.n_outputs,)
        return shapes

    def hidden(self, spec, params, x, *, mode, running, residual, dropout, rowmask, active, generator, preacts):
        r, b = x.shape[0], x.shape[1]
        nodes = spec.input_shape[0]
        adj = x[..., :nodes].reshape(r * b, nodes, nodes) * (1.0 / math.sqrt(nodes))  # (R*B, N, N), scaled
        h = x[..., nodes:].reshape(r, b * nodes, -1)  # (R, B*N, F) node features
        n = m = None
        if spec.normalization == "batch" and mode != "eval":  # statistics over the real graphs' nodes
            if rowmask is None:
                n = torch.full((r,), b * nodes, device=x.device, dtype=x.dtype)
            else:
                n = rowmask.sum(1) * nodes
                m = rowmask.repeat_interleave(nodes, dim=1).unsqueeze(2)  # (R, B*N, 1)
        if mode == "train" and dropout is not None:
            keep = 1.0 - dropout.to(x.dtype).view(-1, 1, 1)
        for i in range(spec.depth):
            agg = torch.bmm(adj, h.reshape(r * b, nodes, -1)).reshape(r, b * nodes, -1)  # (R, B*N, F_in)
            if spec.normalization != "batch":
                z = torch.baddbmm(params[f"b{i}"].unsqueeze(1), h, params[f"ws{i}"])  # (R, B*N, W)
            else:
                z = torch.bmm(h, params[f"ws{i}"])
            z = torch.baddbmm(z, agg, params[f"wn{i}"])  # the adds fused into the GEMMs
            if preacts is not None:
                preacts.append(z)
            z, _, _ = normalize(spec, MLP, params, i, z, b, mode=mode, running=running, n=n, m=m, active=active)
            f = torch.relu(z)
            if mode == "train" and dropout is not None:  # each model draws (rows, N*W): per graph, all its nodes
                u = dropout_uniform(f.view(r, b, -1), generator, False, b).view_as(f)
                f = f * (u < keep) / keep
            h = f if i == 0 else f + _residual_scale(residual, f) * h
        return h.view(r, b, nodes, -1).mean(dim=2)  # (R, B, W): mean over nodes

    def naive_module(self, spec, params, residual, dropout, noise=None):
        return GNNNet(spec, params, residual, dropout, noise)

    def module_params(self, spec, net):
        p, running = {}, {}
        for i in range(spec.depth):
            p[f"ws{i}"] = net.self_lin[i].weight.detach().t()
            p[f"wn{i}"] = net.nbr_lin[i].weight.detach().t()
            if net.self_lin[i].bias is not None:
                p[f"b{i}"] = net.self_lin[i].bias.detach()
            norm = net.norms[i]
            if spec.normalization != "none":
                p[f"g{i}"], p[f"be{i}"] = norm.weight.detach(), norm.bias.detach()
            if spec.normalization == "batch":
                running[f"rm{i}"], running[f"rv{i}"] = norm.running_mean.detach(), norm.running_var.detach()
        p["wo"], p["bo"] = net.head.weight.detach().t(), net.head.bias.detach()
        return p, running


class GNNNet(nn.Module):
    """One GNN as a plain ``nn.Module`` on graphs (B, N, N + F) (the naive engine's reference)."""

    def __init__(self, spec: ArchSpec, params: dict[str, torch.Tensor], residual: bool, dropout: float, noise=None):
        super().__init__()
        self.spec, self.residual, self.p, self.noise = spec, bool(residual), float(dropout), noise
        self.nodes = spec.input_shape[0]
        has_bias = spec.normalization != "batch"
        self.self_lin, self.nbr_lin, self.norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in range(spec.depth):
            fan_in = params[f"ws{i}"].shape[0]
            lin_s, lin_n = nn.Linear(fan_in, spec.width, bias=has_bias), nn.Linear(fan_in, spec.width, bias=False)
            lin_s.weight.data = params[f"ws{i}"].detach().t().contiguous()
            lin_n.weight.data = params[f"wn{i}"].detach().t().contiguous()
            if has_bias:
                lin_s.bias.data = params[f"b{i}"].detach().clone()
            self.self_lin.append(lin_s)
            self.nbr_lin.append(lin_n)
            if spec.normalization == "none":
                norm = nn.Identity()
            else:
                norm = nn.BatchNorm1d(spec.width) if spec.normalization == "batch" else nn.LayerNorm(spec.width,
                                                                                                     eps=LN_EPS)
                norm.weight.data = params[f"g{i}"].detach().clone()
                norm.bias.data = params[f"be{i}"].detach().clone()
            self.norms.append(norm)
        self.head = nn.Linear(spec.width, spec.n_outputs)
        self.head.weight.data = params["wo"].detach().t().contiguous()
        self.head.bias.data = params["bo"].detach().clone()
        self.to(params["wo"].dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, nodes = x.shape[0], self.nodes
        adj, h = x[..., :nodes], x[..., nodes:]  # (B, N, N), (B, N, F)
        for i in range(self.spec.depth):
            z = self.self_lin[i](h) + self.nbr_lin[i](adj @ h / math.sqrt(nodes))  # (B, N, W)
            f = torch.relu(self.norms[i](z.reshape(b * nodes, -1))).reshape(b, nodes, -1)
            if self.training and self.p > 0:
                keep = 1.0 - self.p
                if self.noise is None:
                    u = torch.rand_like(f)
                else:  # as the stacked engine draws them: (rows, N*W) per model
                    u = self.noise.hidden_uniform(f.reshape(1, b, -1), False, b)[0].view_as(f)
                f = f * (u < keep) / keep
            h = h + f if (self.residual and i > 0) else f
        return self.head(h.mean(dim=1))


GNN = _GNN()

"""The generative family: Gaussian-mixture data and the VAE, GAN, flow and diffusion models.

**Data** (:func:`generative_data`): samples of one fixed 2-D Gaussian mixture
with known modes, :data:`MIXTURE` (8 equal modes on a ring of radius 2, std
0.15 per axis). Each replica trains on its own i.i.d. draw of ``n_train``
points (from the run's seed); the held-out set of :data:`N_HELDOUT` true
samples (``TaskData.x_test``) is shared by every run of a sweep (from the
sweep seed) and is what precision, recall, coverage and density compare the
generated samples with. ``TaskData.y_*`` are empty (``(.., 0)``): there are no
targets, and ``n_outputs`` is the data dimension (so ``overparam`` is
parameters per training number).

**Models**: each architecture is a :class:`GenerativeArch`, written once as
functions of a parameter dict whose tensors may carry a leading model axis:
with stacked parameters (R, ...) and inputs (R, B, D) every matmul is a batched
matmul over the R models (the batched engine); with one replica's parameters
and inputs (B, D) the same code is one model (the naive engine's
``nn.Module``). Hidden layers are ReLU MLPs with ``depth`` hidden layers of
``width`` units (residual connections between hidden layers when the lever is
on); weights start at ``init_scale`` x He std, biases at 0.

=============  ==================================================================
arch           objective (per example) and sampler
=============  ==================================================================
``vae``        negative ELBO: Gaussian decoder (learned per-axis std) NLL of x
               given z = mu + sigma * eps (log sigma^2 soft-bounded to +-10),
               plus KL(q(z|x) || N(0, I)); samples:
               decoder mean at z ~ N(0, I) plus decoder noise
``gan``        non-saturating game: the discriminator minimizes
               softplus(-D(x)) + softplus(D(G(z))), then the generator
               softplus(-D(G(z))) (one update each per step); samples G(z)
``flow``       exact NLL of a RealNVP: :data:`COUPLINGS` affine couplings
               (scale tanh-bounded) alternating the conditioned half, then a
               learned per-axis log-scale; samples by inverting it from N(0, I)
``diffusion``  DDPM epsilon-prediction MSE (mean over axes) at a uniform
               timestep of :data:`TIMESTEPS` (cosine schedule); samples by
               ancestral sampling with variance beta_t
=============  ==================================================================

Per-example randomness of a training step (each model from its own stream, in
this order): vae ``eps`` (B, Z); gan ``z_d``, ``z_g`` (B, Z); diffusion ``t``
(B,) then ``eps`` (B, D); flow none.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from runs_generator.sample_quality import GaussianMixture
from runs_generator.spec import RunConfig, TaskData

__all__ = ["MIXTURE", "N_HELDOUT", "COUPLINGS", "TIMESTEPS", "GenerativeArch", "VAE", "GAN", "FLOW", "DIFFUSION",
           "GEN_ARCHS", "generative_data"]

#: the family's distribution: 8 modes on a ring, well separated (neighbours 10 std apart)
MIXTURE = GaussianMixture.ring(modes=8, radius=2.0, std=0.15)
N_HELDOUT = 1000  # held-out true samples (shared per sweep); also the samples drawn from each model
N_VAL = 256  # validation draws per replica (not used by the trainer; kept for the TaskData contract)
COUPLINGS = 6  # affine coupling layers of the flow
TIMESTEPS = 40  # diffusion steps
TIME_FREQS = 3  # sin/cos frequencies of the diffusion time embedding
MAX_BETA = 0.5  # the cosine schedule's largest step variance
LOGVAR_MAX = 10.0  # bound of the VAE encoder's log-variance
GAN_LATENT = 8  # the generator's noise dimension (a 2-D latent made the 8 modes hard to reach)
_TAG_HELDOUT, _TAG_TRAIN = 21, 22


# --- data --------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _heldout(sweep_seed: int) -> np.ndarray:
    return MIXTURE.sample(N_HELDOUT, np.random.default_rng(np.random.SeedSequence([sweep_seed, _TAG_HELDOUT])))


def generative_data(config: RunConfig, *, sweep_seed: int) -> TaskData:
    """One run's data: K i.i.d. training draws of :data:`MIXTURE` and the sweep's held-out samples.

    ``x_train`` (K, n_train, D), ``x_val`` (K, N_VAL, D), ``x_test`` (N_HELDOUT, D)
    float32; every ``y_*`` is an empty (.., 0) float32 array; ``meta['mixture']``
    is the true :class:`~runs_generator.sample_quality.GaussianMixture`.
    """
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _TAG_TRAIN]))
    k, n, d = config.replicas, config.n_train, MIXTURE.dim
    x = np.stack([MIXTURE.sample(n + N_VAL, rng) for _ in range(k)]).astype(np.float32)  # (K, n + n_val, D)
    x_test = _heldout(sweep_seed).astype(np.float32)
    empty = lambda *shape: np.zeros((*shape, 0), dtype=np.float32)  # noqa: E731
    return TaskData(
        problem="generation", n_outputs=d,
        x_train=np.ascontiguousarray(x[:, :n]), y_train=empty(k, n),
        x_val=np.ascontiguousarray(x[:, n:]), y_val=empty(k, N_VAL),
        x_test=x_test, y_test=empty(N_HELDOUT), y_test_noisy=empty(N_HELDOUT),
        meta={"task": "generative", "mixture": MIXTURE, "input_dim": d},
    )


# --- model pieces (any leading model axes) -------------------------------------------
def _mlp_shapes(prefix: str, n_in: int, width: int, depth: int, n_out: int) -> list[tuple[str, tuple, int]]:
    """(name, shape, fan_in) of an MLP's parameters; fan_in 0 marks a bias."""
    out, prev = [], n_in
    for layer in range(depth):
        out += [(f"{prefix}{layer}_w", (prev, width), prev), (f"{prefix}{layer}_b", (width,), 0)]
        prev = width
    return out + [(f"{prefix}out_w", (prev, n_out), prev), (f"{prefix}out_b", (n_out,), 0)]


def _linear(p: dict, name: str, x):
    return x @ p[f"{name}_w"] + p[f"{name}_b"].unsqueeze(-2)


def mlp(p: dict, prefix: str, x, depth: int, residual, pre: list | None = None):
    """ReLU MLP ``prefix`` on x (..., B, in) -> (..., B, out); ``residual`` is 0/1 (a float or an (R, 1, 1) tensor).

    ``pre`` collects the hidden pre-activations in order (gradient stability).
    """
    import torch

    h = x
    for layer in range(depth):
        a = _linear(p, f"{prefix}{layer}", h)
        if pre is not None:
            pre.append(a)
        a = torch.relu(a)
        h = a if layer == 0 else a + residual * h
    return _linear(p, f"{prefix}out", h)


@dataclass(frozen=True)
class GenerativeArch:
    """One generative architecture: its parameters, per-step noise, objective(s) and sampler.

    ``groups`` lists the parameter groups that are optimized separately (the
    GAN's generator and discriminator; one group otherwise); ``train_noise``
    the per-example draws of one training step, ``sample_noise`` those of
    drawing samples, each as (name, 'normal' | 'timestep', per-example shape).
    """

    name: str
    groups: tuple[str, ...] = ("model",)

    @property
    def zero_init(self) -> frozenset[str]:
        """Weights that start at zero instead of ``init_scale`` x He std."""
        return frozenset()

    # parameters ------------------------------------------------------------------
    def shapes(self, width: int, depth: int, dim: int) -> dict[str, list[tuple[str, tuple, int]]]:
        raise NotImplementedError

    def train_noise(self, dim: int) -> list[tuple[str, str, tuple]]:
        return []

    def sample_noise(self, dim: int) -> list[tuple[str, str, tuple]]:
        raise NotImplementedError


class _VAE(GenerativeArch):
    def shapes(self, width, depth, dim):
        return {"model": _mlp_shapes("enc", dim, width, depth, 2 * dim) + _mlp_shapes("dec", dim, width, depth, dim)
                + [("logstd", (dim,), 0)]}

    def train_noise(self, dim):
        return [("eps", "normal", (dim,))]

    def sample_noise(self, dim):
        return [("z", "normal", (dim,)), ("e", "normal", (dim,))]

    def objective(self, p, x, noise, depth, residual, pre=None):
        import torch

        d = x.shape[-1]
        o = mlp(p, "enc", x, depth, residual, pre)
        # log-variance soft-bounded to +-LOGVAR_MAX: a wide init otherwise starts at exp(50) (objectives ~1e22)
        mu, logvar = o[..., :d], LOGVAR_MAX * torch.tanh(o[..., d:] / LOGVAR_MAX)
        z = mu + torch.exp(0.5 * logvar) * noise["eps"]
        xm = mlp(p, "dec", z, depth, residual, pre)
        ls = p["logstd"].unsqueeze(-2)
        nll = 0.5 * ((x - xm) * torch.exp(-ls)).pow(2).sum(-1) + ls.sum(-1) + 0.5 * d * math.log(2 * math.pi)
        kl = 0.5 * (mu.pow(2) + torch.exp(logvar) - 1.0 - logvar).sum(-1)
        return nll + kl

    def sample(self, p, noise, depth, residual):
        import torch

        return mlp(p, "dec", noise["z"], depth, residual) + torch.exp(p["logstd"].unsqueeze(-2)) * noise["e"]


class _GAN(GenerativeArch):
    def shapes(self, width, depth, dim):
        return {"gen": _mlp_shapes("gen", GAN_LATENT, width, depth, dim),
                "disc": _mlp_shapes("disc", dim, width, depth, 1)}

    def train_noise(self, dim):
        return [("z_d", "normal", (GAN_LATENT,)), ("z_g", "normal", (GAN_LATENT,))]

    def sample_noise(self, dim):
        return [("z", "normal", (GAN_LATENT,))]

    def d_objective(self, p, x, fake, depth, residual):
        import torch.nn.functional as F

        real = mlp(p, "disc", x, depth, residual)[..., 0]
        fk = mlp(p, "disc", fake, depth, residual)[..., 0]
        return F.softplus(-real) + F.softplus(fk)

    def g_objective(self, p, z, depth, residual, pre=None):
        import torch.nn.functional as F

        return F.softplus(-mlp(p, "disc", mlp(p, "gen", z, depth, residual, pre), depth, residual)[..., 0])

    def sample(self, p, noise, depth, residual):
        return mlp(p, "gen", noise["z"], depth, residual)


def _halves(dim: int, c: int) -> tuple[slice, slice]:
    """(conditioning, transformed) axes of coupling ``c``: the halves alternate."""
    h = dim // 2
    return (slice(0, h), slice(h, dim)) if c % 2 == 0 else (slice(dim - h, dim), slice(0, dim - h))


class _Flow(GenerativeArch):
    @property
    def zero_init(self):  # every coupling starts as the identity (Dinh et al. 2017; Kingma & Dhariwal 2018)
        return frozenset(f"c{c}_out_w" for c in range(COUPLINGS))

    def shapes(self, width, depth, dim):
        out = []
        for c in range(COUPLINGS):
            a, b = _halves(dim, c)
            n_a, n_b = a.stop - a.start, b.stop - b.start
            out += _mlp_shapes(f"c{c}_", n_a, width, depth, 2 * n_b)
        return {"model": out + [("logscale", (dim,), 0)]}

    def sample_noise(self, dim):
        return [("z", "normal", (dim,))]

    def objective(self, p, x, noise, depth, residual, pre=None):
        import torch

        d = x.shape[-1]
        logdet = 0.0
        for c in range(COUPLINGS):
            a, b = _halves(d, c)
            st = mlp(p, f"c{c}_", x[..., a], depth, residual, pre)
            nb = b.stop - b.start
            s, t = torch.tanh(st[..., :nb]), st[..., nb:]
            xb = x[..., b] * torch.exp(s) + t
            x = torch.cat([x[..., a], xb], -1) if a.start == 0 else torch.cat([xb, x[..., a]], -1)
            logdet = logdet + s.sum(-1)
        ls = p["logscale"].unsqueeze(-2)
        z = x * torch.exp(ls)
        logdet = logdet + ls.sum(-1)
        return 0.5 * z.pow(2).sum(-1) + 0.5 * d * math.log(2 * math.pi) - logdet

    def sample(self, p, noise, depth, residual):
        import torch

        x = noise["z"] * torch.exp(-p["logscale"].unsqueeze(-2))
        d = x.shape[-1]
        for c in reversed(range(COUPLINGS)):
            a, b = _halves(d, c)
            st = mlp(p, f"c{c}_", x[..., a], depth, residual)
            nb = b.stop - b.start
            s, t = torch.tanh(st[..., :nb]), st[..., nb:]
            xb = (x[..., b] - t) * torch.exp(-s)
            x = torch.cat([x[..., a], xb], -1) if a.start == 0 else torch.cat([xb, x[..., a]], -1)
        return x


@functools.lru_cache(maxsize=1)
def _schedule() -> tuple[np.ndarray, np.ndarray]:
    """Cosine schedule (Nichol & Dhariwal 2021): (beta_t, alpha_bar_t), each (TIMESTEPS,) float64."""
    s = np.arange(TIMESTEPS + 1) / TIMESTEPS
    f = np.cos((s + 0.008) / 1.008 * np.pi / 2) ** 2
    ab = f / f[0]
    # beta <= 0.5, not the usual 0.999: with few steps the last reverse step divides by sqrt(1 - beta), and at
    # 0.999 that amplified an untrained denoiser's error 30x (samples at 1e3 std); alpha_bar still ends < 0.002
    beta = np.clip(1.0 - ab[1:] / ab[:-1], 0.0, MAX_BETA)
    return beta, np.cumprod(1.0 - beta)


def _time_features(t, like):
    """(..., B) integer timesteps -> (..., B, 1 + 2 TIME_FREQS) features in ``like``'s dtype."""
    import torch

    u = (t.to(like.dtype) + 0.5) / TIMESTEPS
    k = torch.arange(1, TIME_FREQS + 1, dtype=like.dtype, device=like.device)
    ang = math.pi * u.unsqueeze(-1) * k
    return torch.cat([u.unsqueeze(-1), torch.sin(ang), torch.cos(ang)], -1)


class _Diffusion(GenerativeArch):
    def shapes(self, width, depth, dim):
        return {"model": _mlp_shapes("den", dim + 1 + 2 * TIME_FREQS, width, depth, dim)}

    def train_noise(self, dim):
        return [("t", "timestep", ()), ("eps", "normal", (dim,))]

    def sample_noise(self, dim):
        return [("x", "normal", (dim,)), ("steps", "normal", (TIMESTEPS - 1, dim))]

    def objective(self, p, x, noise, depth, residual, pre=None):
        import torch

        ab_all = torch.as_tensor(_schedule()[1], dtype=x.dtype, device=x.device)
        ab = ab_all[noise["t"]].unsqueeze(-1)  # (..., B, 1)
        xt = ab.sqrt() * x + (1.0 - ab).sqrt() * noise["eps"]
        pred = mlp(p, "den", torch.cat([xt, _time_features(noise["t"], x)], -1), depth, residual, pre)
        return (noise["eps"] - pred).pow(2).mean(-1)

    def sample(self, p, noise, depth, residual):
        import torch

        x = noise["x"]
        beta_np, ab_np = _schedule()
        steps = noise["steps"]  # (..., N, T - 1, D)
        for t in reversed(range(TIMESTEPS)):
            tt = torch.full(x.shape[:-1], t, dtype=torch.int64, device=x.device)
            eps = mlp(p, "den", torch.cat([x, _time_features(tt, x)], -1), depth, residual)
            x = (x - beta_np[t] / math.sqrt(1.0 - ab_np[t]) * eps) / math.sqrt(1.0 - beta_np[t])
            if t > 0:
                x = x + math.sqrt(beta_np[t]) * steps[..., t - 1, :]
        return x


VAE = _VAE("vae")
GAN = _GAN("gan", groups=("gen", "disc"))
FLOW = _Flow("flow")
DIFFUSION = _Diffusion("diffusion")
GEN_ARCHS: dict[str, GenerativeArch] = {a.name: a for a in (VAE, GAN, FLOW, DIFFUSION)}

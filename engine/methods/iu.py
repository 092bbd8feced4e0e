"""IU (influence unlearning, WoodFisher; Unlearn-Sparse's ``Wfisher``): one Newton-like step.

  g_f = summed gradient of CE over D_f,  g_r = summed gradient over D_un (model in eval mode);
  v   = g_f / (n_f + n_r) - g_r * n_f / ((n_f + n_r) n_r);
  F   = I + (1/N) sum_i g_i g_i^T over per-sample gradients g_i of ``n_fisher`` retain samples
        (a seeded random subset of D_un), N = ``damping``;
  theta += alpha * F^-1 v.

F^-1 v is computed exactly by the Woodbury identity, which is what the sample-by-sample
Woodbury (Sherman-Morrison) recursion converges to after the last sample:
  F^-1 v = v - G^T (N I + G G^T)^-1 G v,   G = [g_1; ...; g_n]  (n x P).
(The baselines' code keeps only one running vector instead of the recursion's n, a known
simplification; we compute the recursion's exact result.) Per-sample gradients come from
``torch.func`` (functional_call + vmap(grad), BatchNorm in eval mode uses running statistics),
with a per-sample autograd loop as fallback. G is held in blocks that fit ``fisher_mem_mb``;
when all of G does not fit, G G^T is assembled block pair by block pair, recomputing gradients
instead of storing them (exact, slower, memory bounded)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..train import Diverged
from .base import EpochResult, Method, register
from .common import flat, per_sample_ce, trainable


def summed_grad(ctx, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Summed gradient of CE over ``idx`` (eval mode, no augmentation) and the mean CE."""
    model = ctx.model
    params = [p for _, p in trainable(model)]
    acc = [torch.zeros_like(p) for p in params]
    tot = 0.0
    was = model.training
    model.eval()
    try:
        for x, y, _ in ctx.batches(idx, shuffle=False, augment=False):
            loss = F.cross_entropy(model(x), y, reduction="sum")
            gs = torch.autograd.grad(loss, params)
            for a, g in zip(acc, gs):
                a += g
            tot += float(loss.detach())
    finally:
        model.train(was)
    return flat(acc), tot / max(1, len(idx))


class PerSampleGrads:
    """Flat per-sample gradients of CE at the current weights, model in eval mode."""

    def __init__(self, ctx, chunk: int = 64):
        self.ctx, self.chunk = ctx, chunk
        self.names = [n for n, _ in trainable(ctx.model)]
        self.params = {n: p.detach() for n, p in trainable(ctx.model)}
        self.buffers = {n: b for n, b in ctx.model.named_buffers()}
        self.use_vmap = True

    def _vmap(self, x, y):
        from torch.func import functional_call, grad, vmap

        model = self.ctx.model

        def loss_fn(prm, xi, yi):
            out = functional_call(model, (prm, self.buffers), (xi[None],))
            return F.cross_entropy(out, yi[None])

        g = vmap(grad(loss_fn), in_dims=(None, 0, 0))(self.params, x, y)
        return torch.cat([g[n].reshape(len(x), -1) for n in self.names], dim=1)

    def _loop(self, x, y):
        model = self.ctx.model
        ps = [p for _, p in trainable(model)]
        rows = []
        for i in range(len(x)):
            loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
            rows.append(flat(torch.autograd.grad(loss, ps)))
        return torch.stack(rows)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        model = self.ctx.model
        was = model.training
        model.eval()
        out = []
        try:
            for s in range(0, len(idx), self.chunk):
                b = idx[s:s + self.chunk]
                x = self.ctx.data.images(b, "train")
                y = self.ctx.data.y_train[b]
                if self.use_vmap:
                    try:
                        out.append(self._vmap(x, y))
                        continue
                    except Exception:  # an op without a batching rule: fall back for good
                        self.use_vmap = False
                out.append(self._loop(x, y))
        finally:
            model.train(was)
        return torch.cat(out)


def inverse_fisher_vp(grads: PerSampleGrads, idx: torch.Tensor, v: torch.Tensor, damping: float,
                      block: int) -> torch.Tensor:
    """F^-1 v with F = I + (1/damping) G^T G, G the per-sample gradients of ``idx``; exact
    Woodbury, G processed in blocks of ``block`` rows."""
    n = len(idx)
    blocks = [idx[s:s + block] for s in range(0, n, block)]
    gram = torch.zeros(n, n, dtype=torch.float64, device=v.device)
    gv = torch.zeros(n, dtype=torch.float64, device=v.device)
    cached = grads(idx) if len(blocks) == 1 else None
    offs = [i * block for i in range(len(blocks))]
    for i, bi in enumerate(blocks):
        gi = cached if cached is not None else grads(bi)
        oi = offs[i]
        gv[oi:oi + len(bi)] = (gi @ v).double()
        for j in range(i, len(blocks)):
            gj = gi if j == i else grads(blocks[j])
            oj = offs[j]
            kij = (gi @ gj.T).double()
            gram[oi:oi + len(bi), oj:oj + len(blocks[j])] = kij
            gram[oj:oj + len(blocks[j]), oi:oi + len(bi)] = kij.T
        if cached is None:
            del gi
    gram.diagonal().add_(damping)
    alpha = torch.linalg.solve(gram, gv).to(v.dtype)
    out = v.clone()
    for i, bi in enumerate(blocks):
        gi = cached if cached is not None else grads(bi)
        out -= gi.T @ alpha[offs[i]:offs[i] + len(bi)]
    return out


@register("iu")
class IU(Method):
    def epoch(self, e: int) -> EpochResult:
        ctx, p = self.ctx, self.p
        model = ctx.model
        n_f, n_r = len(ctx.d_f), len(ctx.d_un)
        g_f, ce_before = summed_grad(ctx, ctx.d_f)
        g_r, _ = summed_grad(ctx, ctx.d_un)
        v = g_f / (n_f + n_r) - g_r * (n_f / ((n_f + n_r) * n_r))
        n = min(int(p.n_fisher), n_r)
        pick = ctx.d_un[torch.randperm(n_r, generator=ctx.generator)[:n].to(ctx.device)]
        n_params = v.numel()
        block = max(1, min(n, int(p.fisher_mem_mb * 2**20 // (2 * 4 * n_params))))
        psg = PerSampleGrads(ctx)
        k = inverse_fisher_vp(psg, pick, v, p.damping, block) if n > 0 else v
        step = p.alpha * k
        if not torch.isfinite(step).all():
            raise Diverged("influence step is not finite")
        with torch.no_grad():
            at = 0
            for _, prm in trainable(model):
                m = prm.numel()
                prm.add_(step[at:at + m].view_as(prm))
                at += m
        probs = ctx.probs(ctx.d_f)
        ce_after = float(per_sample_ce(probs, ctx.data.y_train[ctx.d_f]).mean())
        if not math.isfinite(ce_after):
            raise Diverged(f"CE on D_f after the influence step is {ce_after}")
        return EpochResult(ce_after, extras={
            "ce_f_before": ce_before, "step_norm": float(step.norm()), "v_norm": float(v.norm()),
            "n_fisher": n, "fisher_blocks": math.ceil(n / block) if n else 0,
            "per_sample_grads": "vmap" if psg.use_vmap else "loop"})

"""SelfAttention2d against the naive softmax(QK^T / sqrt(d)) V formula, in float64 on tiny maps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from inpainting.models.analysis import NaiveSelfAttention2d, count_flops
from inpainting.models.attention import (
    SelfAttention2d,
    adaptive_pool_matrix,
    chunked_attention,
    export_attention,
)
from inpainting.models.layers import hole_tokens


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_valid=None) -> torch.Tensor:
    """Naive attention: q (n, d), k (m, d), v (m, d); ``key_valid`` (m,) bool excludes keys."""
    scores = q @ k.T / math.sqrt(q.shape[-1])
    if key_valid is not None:
        scores = scores.masked_fill(~key_valid[None, :], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def module_reference(
    mod: SelfAttention2d, x: torch.Tensor, known: torch.Tensor | None = None
) -> torch.Tensor:
    """The module's output recomputed from its own weights, one window and one head at a time.

    ``known``: B x H x W bool token map (True = may be a key) for mask-aware checks; a window with no known token
    attends to all of its tokens. Windows at the right/bottom border are simply smaller (padding is never a key).
    """
    b, c, h, w = x.shape
    heads, d = mod.num_heads, c // mod.num_heads
    qkv = F.conv2d(mod.norm(x), mod.qkv.weight, mod.qkv.bias, padding=mod.qkv.padding)
    q, k, v = (t.reshape(b, heads, d, h, w) for t in qkv.chunk(3, dim=1))
    wh, ww = (mod.window_size, mod.window_size) if mod.mode == "window" else (h, w)
    out = torch.zeros(b, heads, d, h, w, dtype=x.dtype)
    for bi in range(b):
        for top in range(0, h, wh):
            for left in range(0, w, ww):
                rows, cols = slice(top, top + wh), slice(left, left + ww)
                valid = None
                if known is not None:
                    valid = known[bi, rows, cols].reshape(-1)
                    if not valid.any():
                        valid = None
                for hi in range(heads):
                    qw, kw, vw = (t[bi, hi, :, rows, cols].reshape(d, -1).T for t in (q, k, v))
                    o = attention_reference(qw, kw, vw, valid)
                    out[bi, hi, :, rows, cols] = o.T.reshape(d, *q[bi, hi, 0, rows, cols].shape)
    out = out.reshape(b, c, h, w)
    return x + mod.gamma * F.conv2d(out, mod.proj.weight, mod.proj.bias)


def pooled_reference(
    mod: SelfAttention2d, x: torch.Tensor, known_keys: torch.Tensor | None = None
) -> torch.Tensor:
    """Global attention over ``kv_pool``-pooled keys/values (at most ``kv_grid`` per side, adaptive cells);
    ``known_keys``: B x hk x wk bool (None: all valid)."""
    b, c, h, w = x.shape
    heads, d, r = mod.num_heads, c // mod.num_heads, mod.kv_pool
    hk, wk = -(-h // r), -(-w // r)
    capped = mod.kv_grid and (hk > mod.kv_grid or wk > mod.kv_grid)
    if mod.kv_grid:
        hk, wk = min(hk, mod.kv_grid), min(wk, mod.kv_grid)
    qkv = F.conv2d(mod.norm(x), mod.qkv.weight, mod.qkv.bias, padding=mod.qkv.padding)
    q, k, v = qkv.chunk(3, dim=1)
    if (
        not capped and h % r == 0 and w % r == 0
    ):  # plain r x r cell means, independent of the module's adaptive pooling
        k, v = (t.reshape(b, c, hk, r, wk, r).mean(dim=(3, 5)) for t in (k, v))
    else:
        k, v = (F.adaptive_avg_pool2d(t, (hk, wk)) for t in (k, v))
    out = torch.zeros(b, heads, d, h * w, dtype=x.dtype)
    for bi in range(b):
        valid = None if known_keys is None else known_keys[bi].reshape(-1)
        if valid is not None and not valid.any():
            valid = None
        for hi in range(heads):
            qh, kh, vh = (t[bi, hi * d : (hi + 1) * d].reshape(d, -1).T for t in (q, k, v))
            out[bi, hi] = attention_reference(qh, kh, vh, valid).T
    out = out.reshape(b, c, h, w)
    return x + mod.gamma * F.conv2d(out, mod.proj.weight, mod.proj.bias)


def _naive_key_grid(mod: SelfAttention2d, h: int, w: int) -> tuple[int, int]:
    """The pooled key grid as :func:`pooled_reference` builds it: ``kv_pool``-pooled, at most ``kv_grid`` a side."""
    hk, wk = -(-h // mod.kv_pool), -(-w // mod.kv_pool)
    return (min(hk, mod.kv_grid), min(wk, mod.kv_grid)) if mod.kv_grid else (hk, wk)


def make(channels: int = 8, seed: int = 0, **kwargs) -> SelfAttention2d:
    """A float64 module with a non-zero gate and non-trivial norm affine, so every part shows in the output."""
    torch.manual_seed(seed)
    mod = SelfAttention2d(channels, **kwargs).double()
    with torch.no_grad():
        mod.gamma.fill_(0.7)
        mod.norm.weight.uniform_(0.5, 1.5)
        mod.norm.bias.uniform_(-0.5, 0.5)
    return mod


@pytest.mark.parametrize("size", [(6, 6), (7, 5)])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "global", "num_heads": 2},
        {"mode": "window", "num_heads": 2, "window_size": 3},  # 6x6 divides; 7x5 pads
        {"mode": "window", "num_heads": 2, "window_size": 4},  # pads both
        {"mode": "window", "num_heads": 1, "window_size": 2},
    ],
)
def test_matches_naive_formula(size: tuple[int, int], kwargs: dict) -> None:
    mod = make(**kwargs)
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    torch.testing.assert_close(mod(x), module_reference(mod, x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size", [(6, 6), (7, 5)])
@pytest.mark.parametrize("kv_pool", [2, 3])
def test_pooled_keys_match_naive_formula(size: tuple[int, int], kv_pool: int) -> None:
    mod = make(num_heads=2, mode="global", kv_pool=kv_pool)
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    torch.testing.assert_close(mod(x), pooled_reference(mod, x), rtol=1e-10, atol=1e-10)


def test_pooled_keys_mask_aware_match_naive_formula() -> None:
    mod = make(num_heads=2, mode="global", kv_pool=2, mask_aware=True)
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    torch.manual_seed(3)
    mask = (torch.rand(2, 1, 12, 12) > 0.5).double()  # mask at 2x the feature size: key cells are 4x4 pixels
    mask[0, :, :4, :8] = 1.0  # image 0: two hole key cells, the rest mixed
    mask[1] = 1.0
    mask[1, :, 4:8, 4:8] = 0.0  # image 1: exactly one known key cell
    known = _block_known(mask, 4)
    assert known[1].sum() == 1 and not known[0].all()
    out = mod(x, mask)
    torch.testing.assert_close(out, pooled_reference(mod, x, known), rtol=1e-10, atol=1e-10)
    assert not torch.allclose(out, pooled_reference(mod, x))


def test_window_larger_than_map_equals_global() -> None:
    glob = make(mode="global", num_heads=2)
    win = make(mode="window", num_heads=2, window_size=8)
    win.load_state_dict(glob.state_dict())
    x = torch.randn(2, 8, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(win(x), glob(x), rtol=1e-10, atol=1e-10)


def _block_known(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """Token is known if any pixel of its factor x factor cell is known (independent of hole_tokens)."""
    b, _, hh, ww = mask.shape
    cells = (mask[:, 0] < 0.5).reshape(b, hh // factor, factor, ww // factor, factor)
    return cells.any(dim=4).any(dim=2)


@pytest.mark.parametrize("mode,window", [("global", 8), ("window", 3)])
@pytest.mark.parametrize("factor", [1, 2])
def test_mask_aware_matches_naive_formula(mode: str, window: int, factor: int) -> None:
    mod = make(num_heads=2, mode=mode, window_size=window, mask_aware=True)
    h, w = 7, 5
    x = torch.randn(2, 8, h, w, dtype=torch.float64)
    torch.manual_seed(1)
    mask = (torch.rand(2, 1, h * factor, w * factor) > 0.5).double()
    mask[1, :, : 3 * factor, : 3 * factor] = 1.0  # image 1: the first 3x3 window is all hole -> fallback
    mask[1, :, -factor:, :] = 0.0  # ...but the image keeps some known tokens
    known = _block_known(mask, factor)
    assert not known[1, :3, :3].any()
    assert torch.equal(known, ~hole_tokens(mask, (h, w))[:, 0])
    expected = module_reference(mod, x, known)
    out = mod(x, mask)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    assert torch.isfinite(out).all()
    # and the mask really changes something
    assert not torch.allclose(out, module_reference(mod, x))


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("mode,kv_pool", [("global", 1), ("window", 1), ("global", 2)])
def test_mask_aware_all_known_or_all_hole_equals_plain(fill: float, mode: str, kv_pool: int) -> None:
    """All zeros: every key valid; all ones: no valid key anywhere -> fallback to all keys. Either way: plain."""
    plain = make(num_heads=2, mode=mode, window_size=3, kv_pool=kv_pool)
    aware = make(num_heads=2, mode=mode, window_size=3, kv_pool=kv_pool, mask_aware=True)
    aware.load_state_dict(plain.state_dict())
    x = torch.randn(2, 8, 7, 5, dtype=torch.float64)
    mask = torch.full((2, 1, 14, 10), fill, dtype=torch.float64)
    out = aware(x, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, plain(x), rtol=1e-10, atol=1e-10)


def test_float32_all_hole_is_finite() -> None:
    mod = SelfAttention2d(16, num_heads=4, mode="window", window_size=4, mask_aware=True)
    out = mod(torch.randn(1, 16, 9, 9), torch.ones(1, 1, 36, 36))
    assert torch.isfinite(out).all()


def test_hole_tokens_non_integer_scale() -> None:
    mask = torch.zeros(1, 1, 15, 11)
    mask[..., :8, :] = 1.0
    holes = hole_tokens(mask, (7, 5))
    assert holes.shape == (1, 1, 7, 5)
    assert holes[0, 0, 0].all() and not holes[0, 0, -1].any()


@pytest.mark.parametrize("mode,kv_pool", [("global", 1), ("window", 1), ("global", 2)])
def test_gradients_flow(mode: str, kv_pool: int) -> None:
    mod = SelfAttention2d(8, num_heads=2, mode=mode, window_size=3, mask_aware=True, kv_pool=kv_pool)
    with torch.no_grad():
        mod.gamma.fill_(0.5)
    x = torch.randn(2, 8, 7, 5, requires_grad=True)
    mask = (torch.rand(2, 1, 7, 5) > 0.5).float()
    mod(x, mask).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in mod.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_fresh_block_is_identity_and_gate_learns() -> None:
    mod = SelfAttention2d(8, num_heads=2)
    x = torch.randn(1, 8, 5, 5)
    y = mod(x)
    torch.testing.assert_close(y, x)
    y.sum().backward()
    assert mod.gamma.grad is not None


def test_sdpa_gets_unit_stride_qkv(monkeypatch: pytest.MonkeyPatch) -> None:
    """SDPA's CPU flash kernel (memory linear in N) needs a unit stride in the head dim, nothing more."""
    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen.append(([t.stride(-1) for t in (q, k, v)], q.shape, k.shape))
        return real(q, k, v, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    SelfAttention2d(8, num_heads=2, mode="window", window_size=4)(torch.randn(2, 8, 7, 9))
    SelfAttention2d(8, num_heads=2, mode="global")(torch.randn(2, 8, 7, 9))
    SelfAttention2d(8, num_heads=2, mode="global", kv_pool=2)(torch.randn(2, 8, 7, 9))
    SelfAttention2d(8, num_heads=2, mode="window", window_size=4, norm="layer")(torch.randn(2, 8, 7, 9))
    assert [s[0] for s in seen] == [[1, 1, 1]] * 4
    assert seen[0][1] == (2 * 2 * 3, 2, 16, 4)  # one call: B * windows, heads, tokens per window, head dim
    assert seen[1][1] == (2, 2, 63, 4)
    assert seen[2][1:] == ((2, 2, 63, 4), (2, 2, 20, 4))  # full-resolution queries over 4 x 5 pooled keys
    assert seen[3][1] == seen[0][1]


LAYOUT_CASES = [
    {"mode": "window", "window_size": 3},
    {"mode": "window", "window_size": 4, "mask_aware": True},
    {"mode": "global"},
    {"mode": "global", "mask_aware": True},
    {"mode": "global", "kv_pool": 2},
    {"mode": "global", "kv_pool": 2, "mask_aware": True},
    {"mode": "global", "kv_pool": 2, "kv_grid": 2},
]


@pytest.mark.parametrize("norm", ["group", "layer"])
@pytest.mark.parametrize("kwargs", LAYOUT_CASES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("size", [(7, 5), (8, 12)])  # windows of 3 and 4 pad the first, 4 tiles the second
def test_token_layout_matches_naive_formula_and_gradients(
    norm: str, kwargs: dict, channels_last: bool, size: tuple[int, int]
) -> None:
    """The GEMM/token path computes the naive softmax(QK^T / sqrt(d)) V of the module's own weights, for any input
    layout, with and without padding to whole windows, with the same gradients (the gate is folded into the
    output projection there); its output keeps the input's memory layout."""
    mod = make(num_heads=2, norm=norm, **kwargs)
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    mask = (
        torch.rand(2, 1, 2 * size[0], 2 * size[1], generator=torch.Generator().manual_seed(0)) > 0.5
    ).double()
    args = (x, mask) if mod.mask_aware else (x,)
    weights = torch.randn(2, 8, *size, dtype=torch.float64)

    def naive() -> torch.Tensor:
        if mod.kv_pool > 1 or mod.kv_grid > 0:
            hk, wk = _naive_key_grid(mod, *size)
            known = ~hole_tokens(mask, (hk, wk))[:, 0] if mod.mask_aware else None
            return pooled_reference(mod, x, known)
        return module_reference(mod, x, _block_known(mask, 2) if mod.mask_aware else None)

    def output_and_gradients(run) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = run()
        leaves = [x, *mod.parameters()]
        return out, list(torch.autograd.grad((out * weights).sum(), leaves))

    tokens, token_grads = output_and_gradients(lambda: mod(*args))
    reference, reference_grads = output_and_gradients(naive)
    torch.testing.assert_close(tokens, reference, rtol=1e-10, atol=1e-10)
    for token_grad, reference_grad in zip(token_grads, reference_grads, strict=True):
        torch.testing.assert_close(token_grad, reference_grad, rtol=1e-10, atol=1e-10)
    assert tokens.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_layer_norm_blocks_match_naive_formula(norm: str) -> None:
    for kwargs in ({"mode": "window", "window_size": 3}, {"mode": "global"}):
        mod = make(num_heads=2, norm=norm, **kwargs)
        x = torch.randn(2, 8, 7, 5, dtype=torch.float64)
        torch.testing.assert_close(mod(x), module_reference(mod, x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size,out", [(12, 4), (13, 4), (7, 7), (20, 6), (5, 3)])
def test_adaptive_pool_matrix_is_adaptive_avg_pool(size: int, out: int) -> None:
    x = torch.randn(2, 3, size, size + 3, dtype=torch.float64)
    rows = adaptive_pool_matrix(size, out, x)
    cols = adaptive_pool_matrix(size + 3, out, x)
    expected = F.adaptive_avg_pool2d(x, (out, out))
    torch.testing.assert_close(rows @ x @ cols.T, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [(6, 6), (13, 9), (20, 4)])
@pytest.mark.parametrize("kv_pool,kv_grid", [(2, 3), (1, 4), (2, 8)])
def test_key_grid_matches_naive_formula(size, kv_pool: int, kv_grid: int) -> None:
    """Capped keys are the adaptive-average cells of a <= kv_grid x kv_grid grid (a cap above the grid: no-op)."""
    mod = make(num_heads=2, mode="global", kv_pool=kv_pool, kv_grid=kv_grid)
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    torch.testing.assert_close(mod(x), pooled_reference(mod, x), rtol=1e-10, atol=1e-10)


def test_key_grid_mask_aware_matches_naive_formula() -> None:
    mod = make(num_heads=2, mode="global", kv_pool=2, kv_grid=3, mask_aware=True)
    x = torch.randn(2, 8, 12, 12, dtype=torch.float64)  # pooled 6x6, capped to 3x3: key cells of 4x4 tokens
    mask = torch.zeros(2, 1, 12, 12, dtype=torch.float64)
    mask[0, :, :4, :8] = 1.0  # two whole key cells are hole
    mask[1] = 1.0
    mask[1, :, 5, 5] = 0.0  # one known pixel: exactly one known key cell
    known = _block_known(mask, 4)
    assert known[1].sum() == 1 and known[0].sum() == 7
    out = mod(x, mask)
    torch.testing.assert_close(out, pooled_reference(mod, x, known), rtol=1e-10, atol=1e-10)
    assert not torch.allclose(out, pooled_reference(mod, x))


def test_key_grid_makes_attention_cost_linear_in_pixels() -> None:
    """Doubling the side quadruples the pixels: capped keys ~4x the FLOPs, today's growing keys ~16x."""

    def ratio(**kwargs) -> float:
        mod = SelfAttention2d(32, num_heads=4, mode="global", **kwargs)
        small, large = (count_flops(mod, torch.randn(1, 32, s, s)) for s in (64, 128))
        return large / small

    assert ratio(kv_pool=2, kv_grid=16) <= 4.2
    assert ratio(kv_pool=2) > 12  # the uncapped default, quadratic in pixels
    window = SelfAttention2d(32, num_heads=4, mode="window", window_size=8)
    assert count_flops(window, torch.randn(1, 32, 128, 128)) <= 4.2 * count_flops(
        window, torch.randn(1, 32, 64, 64)
    )


def test_count_flops_counts_attention() -> None:
    mod = SelfAttention2d(8, num_heads=2, mode="global")
    n, c = 6 * 5, 8
    projections = 2 * n * c * 3 * c + 2 * n * c * c
    assert count_flops(mod, torch.randn(1, c, 6, 5)) == projections + 4 * n * n * c


@pytest.mark.parametrize("kwargs", [{"kv_pool": 2}, {"kv_pool": 2, "mask_aware": True}, {"kv_grid": 2}, {}])
def test_export_attention_is_the_same_function(kwargs: dict) -> None:
    """Query-chunked global attention (what ONNX gets) equals SDPA; a tiny budget forces many chunks."""
    mod = make(num_heads=2, mode="global", **kwargs)
    x = torch.randn(2, 8, 9, 7, dtype=torch.float64)
    mask = torch.zeros(2, 1, 9, 7, dtype=torch.float64)
    mask[0, :, :5] = 1.0
    args = (x, mask) if mod.mask_aware else (x,)
    expected = mod(*args)
    calls = []
    with export_attention(mod, budget=2 * 2 * 16 * 5):  # 5 query rows per chunk at 16 keys
        got = mod(*args)
        calls.append(mod.export_score_budget)
    assert mod.export_score_budget == 0 and calls == [320]
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_chunked_attention_blocks() -> None:
    q, k, v = torch.randn(1, 2, 23, 4), torch.randn(1, 2, 6, 4), torch.randn(1, 2, 6, 4)
    bias = torch.zeros(1, 1, 1, 6).masked_fill(
        torch.tensor([True, False, False, True, False, False]), float("-inf")
    )
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    for budget in (1, 12 * 5, 10**9):
        torch.testing.assert_close(chunked_attention(q, k, v, bias, budget), expected)


@pytest.mark.parametrize(
    "kwargs,word",
    [
        ({"channels": 10, "num_heads": 4}, "num_heads"),
        ({"channels": 8, "mode": "local"}, "mode"),
        ({"channels": 8, "mode": "window", "window_size": 0}, "window_size"),
        ({"channels": 0}, "channels"),
        ({"channels": 8, "mode": "window", "kv_pool": 2}, "kv_pool"),
        ({"channels": 8, "kv_pool": 0}, "kv_pool"),
        ({"channels": 8, "mode": "window", "kv_grid": 4}, "kv_grid"),
        ({"channels": 8, "kv_grid": -1}, "kv_grid"),
    ],
)
def test_argument_validation(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        SelfAttention2d(**kwargs)


def test_mask_aware_requires_mask() -> None:
    with pytest.raises(ValueError, match="mask"):
        SelfAttention2d(8, num_heads=2, mask_aware=True)(torch.randn(1, 8, 4, 4))


def test_naive_block_matches_formula() -> None:
    torch.manual_seed(0)
    mod = NaiveSelfAttention2d(16).double()
    with torch.no_grad():
        mod.gamma.fill_(0.3)
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    out = mod(x)
    for b in range(2):
        q = mod.query(x[b : b + 1])[0].flatten(1).T
        k = mod.key(x[b : b + 1])[0].flatten(1).T
        v = mod.value(x[b : b + 1])[0].flatten(1).T
        attn = torch.softmax(q @ k.T, dim=-1)  # SAGAN: no 1/sqrt(d) scaling
        expected = x[b] + 0.3 * (attn @ v).T.reshape(16, 5, 6)
        torch.testing.assert_close(out[b], expected)
    assert NaiveSelfAttention2d.energy_bytes(256, 256) == 16 * 2**30

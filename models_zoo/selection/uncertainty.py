"""Uncertainty sampling: least confidence, margin, entropy and BALD.

Each scores every unlabelled item from the model's probabilities and takes the B most
uncertain ones: O(N C) work, O(N) extra memory (BALD: O(chunk T C)).

- Least confidence, margin, entropy: Settles, "Active Learning Literature Survey" (2009),
  sec. 3.1; margin after Scheffer et al. (2001).
- BALD: Houlsby et al., "Bayesian Active Learning for Classification and Preference
  Learning" (2011), with MC dropout samples as in Gal et al., "Deep Bayesian Active
  Learning with Image Data" (ICML 2017).
"""

from __future__ import annotations

import numpy as np

from models_zoo.selection.base import Selection, SelectionInput, register, take_top

_EPS = 1e-12
_CHUNK = 131_072


def _rowwise(probs: np.ndarray, score) -> np.ndarray:
    """``score(block, out)`` (a torch (rows, C) float32 block -> writes (rows,) into ``out``)
    over every row of ``probs`` (N, C), in blocks of _CHUNK rows: each block stays in cache
    across the few passes a score makes, and the scores reuse their buffers (fresh ones would
    page-fault on every block). (N,) float32."""
    import torch  # lazy: importing the registry stays cheap

    p = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))
    out = torch.empty(p.shape[0], dtype=torch.float32)
    for s in range(0, p.shape[0], _CHUNK):
        score(p[s : s + _CHUNK], out[s : s + _CHUNK])
    return out.numpy()


def _row_max(p, out) -> None:
    """Largest entry of each row of a contiguous torch block (rows, C) into ``out`` (rows,).

    torch.amax over a short last axis reduces row by row (0.22 ms at 50k x 10); here whole-block
    passes over the flat array instead: after pass i each position holds the maximum of the w = 2**i
    entries from it on (contiguous, vectorised), and a row's maximum is that of the window at
    its start and the one ending at its end (passes double w until two windows cover a row; a third
    strided read instead of the last pass measured no faster): 0.13 ms at 50k x 10; equal to amax.
    """
    import torch

    rows, c = p.shape
    src, w = p.reshape(-1), 1
    spare: tuple = ()  # the passes alternate between two buffers (none for C <= 2)
    while -(-c // w) > 2:
        spare = spare or (torch.empty(src.shape[0]), torch.empty(src.shape[0]))
        m = src.shape[0] - w
        dst = spare[w.bit_length() % 2][:m]
        torch.maximum(src[:m], src[w:], out=dst)  # dst[j] = max over the 2w entries from j
        src, w = dst, 2 * w
    if w == c:  # one class
        out.copy_(src[::c][:rows])
    else:  # w < c <= 2w: the window at the row's start and the one ending at its end
        torch.maximum(src[::c][:rows], src[c - w :: c][:rows], out=out)


def _least_confidence_block(p, out) -> None:
    # (rows, C) -> 1 - largest p (rows,)
    import torch

    _row_max(p, out)
    torch.sub(torch.tensor(1.0), out, out=out)  # 1 - max, while the block is in cache


def _neg_margin_block(p, out) -> None:
    # (rows, C) -> second largest - largest (rows,), <= 0: one pass per class column keeps
    # the two largest (no sort, which is 3-4x slower; a tie for the top gives 0).
    import torch

    if p.shape[1] == 1:
        torch.neg(p[:, 0], out=out)
        return
    first, low = p[:, 0].clone(), torch.empty_like(out)
    out.fill_(-torch.inf)  # second largest so far
    for col in p.T[1:]:  # strided column views: cheaper than a transposed copy
        torch.minimum(first, col, out=low)
        torch.maximum(out, low, out=out)
        torch.maximum(first, col, out=first)
    out.sub_(first)


def _entropy_block(p, out) -> None:
    # (rows, C) -> entropy in nats (rows,)
    import torch

    torch.sum(p * p.clamp_min(_EPS).log(), 1, out=out)
    out.neg_()


def _entropy(p: np.ndarray) -> np.ndarray:
    # (..., C) -> (...,) in nats
    return -np.sum(p * np.log(p + _EPS), axis=-1)


def margins(probs: np.ndarray) -> np.ndarray:
    """p(top class) - p(second class) per row: (N, C) -> (N,) float32; small = uncertain."""
    if probs.shape[0] > _SMALL or probs.shape[1] == 1:
        return -_rowwise(probs, _neg_margin_block)
    # A few rows (the candidates of margin's bound): numpy passes over the class rows of a
    # transposed copy, 3x faster than torch's strided columns at 3,000 rows and no thread start.
    cols = np.ascontiguousarray(probs.T, dtype=np.float32)  # (C, M)
    first, second, low = cols[0].copy(), np.full(cols.shape[1], -np.inf, np.float32), np.empty_like(cols[0])
    for col in cols[1:]:
        np.minimum(first, col, out=low)
        np.maximum(second, low, out=second)
        np.maximum(first, col, out=first)
    return first - second


_SMALL = 65_536


def _pick(inp: SelectionInput, uncertainty: np.ndarray, fmt: str) -> Selection:
    # uncertainty (N,) over the whole pool, higher = more wanted; labelled items never win.
    # Scoring all N rows and masking is cheaper than gathering the unlabelled rows first.
    uncertainty = uncertainty.astype(np.float32, copy=False)  # a temporary of the caller
    uncertainty[inp.labelled_mask] = -np.inf
    k = min(inp.batch_size, inp.labelled_mask.size - np.count_nonzero(inp.labelled_mask))
    top = _top_k(uncertainty, k)  # (B,)
    scores = uncertainty[top].astype(np.float32)
    return Selection(top, scores, _reasons(fmt, scores))


def _reasons(fmt: str, scores: np.ndarray) -> list[str]:
    """One reason per chosen item, as ``fmt.format(score)``.

    A float32 score times 1,000 is exact in float64 (24 + 10 significant bits), so rounding it
    half to even gives the 3 decimals '{:.3f}' prints; formats with that one field look the
    string up in a table of every such value (1,000 reasons: 0.03 against 0.2 ms formatted, a
    fifth of least confidence's time at 50k). Anything else (other formats, float64, negative,
    large or non-finite scores) is formatted.
    """
    if scores.dtype == np.float32 and scores.size and fmt.count("{") == 1 and "{:.3f}" in fmt:
        milli = np.rint(scores.astype(np.float64) * 1000)  # (B,) exact
        top = milli.max()
        if top < _TABLE_LIMIT and milli.min() >= 0 and not np.signbit(scores).any():  # NaN fails too
            table = _reason_table(fmt, int(top) + 1)  # object array: one fancy index, 2x a loop
            return table[milli.astype(np.intp)].tolist()
    return list(map(fmt.format, scores.tolist()))


_TABLE_LIMIT = 100_000  # scores up to 99.999
_TABLES: dict[str, np.ndarray] = {}


def _reason_table(fmt: str, size: int) -> np.ndarray:
    """``fmt`` applied to 0.000, 0.001, ... (at least ``size`` of them) as an object array, kept per
    format. A longer table replaces the old one whole, so a concurrent reader never sees a
    half-built one."""
    table = _TABLES.get(fmt, np.empty(0, object))
    if table.size < size:
        size = max(size, 2 * table.size, 1024)
        more = np.array([fmt.format(i / 1000) for i in range(table.size, size)], dtype=object)
        table = np.concatenate([table, more])
        _TABLES[fmt] = table
    return table


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """take_top over the whole pool, narrowed first by torch's top-k: only the items scoring
    at least the k-th best reach the exact, tie-breaking sort (so the result is the same)."""
    if 0 < k < scores.size:
        cand = _above_sampled_cut(scores, k)
        if cand is None:
            kth = scores[_some_top_k(scores, k)].min()
            cand = np.flatnonzero(scores >= kth)  # (>= k,)
    else:
        cand = np.arange(scores.size)
    return cand[take_top(scores[cand], cand, k)]


_SAMPLE_STEP = 8


def _sample_rank(k: int) -> int:
    """The rank j in the sample whose score is the cut: about 8 j scores of the pool pass it, give or
    take 8 sqrt(j) (the sample's count over a cut is about Poisson), so j = k/8 + 3 sqrt(j) keeps
    fewer than k passing three standard deviations away (on 2,000 random pools of 50,000: no fallback
    at k = 164 or 1,125, one at 10,000; 1.29 k pass at k = 1,125, where the earlier 1.5 k let a fifth
    more rows through to be scored for nothing)."""
    r = k / _SAMPLE_STEP
    return int(np.ceil((1.5 + np.sqrt(2.25 + r)) ** 2)) + 1  # j - 3 sqrt(j) = r, solved for j


def _above_sampled_cut(scores: np.ndarray, k: int) -> np.ndarray | None:
    """Positions of the scores at or above a cut read off every 8th score, set so that k pass with
    room to spare (:func:`_sample_rank`): a superset of the k best when at least k pass (checked),
    else None (then an exact top-k is needed). Cheaper than torch's top-k when k is large: at 200k
    x 1,000, 0.3 against 0.7 ms."""
    import torch

    sample = scores[::_SAMPLE_STEP]
    j = min(sample.size, _sample_rank(k))
    if scores.size < 50_000 or j >= sample.size:
        return None
    cut = torch.topk(torch.from_numpy(np.ascontiguousarray(sample)), j, sorted=False).values.min().item()
    if not np.isfinite(cut):  # mostly -inf (labelled): every row would pass
        return None
    cand = np.flatnonzero(scores >= cut)  # all finite, so none of them labelled
    return cand if cand.size >= k else None


def _some_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions (k,) of k largest scores, 0 < k < N, in no order; ties at the k-th go either way."""
    import torch

    s = torch.from_numpy(scores)
    rows = max(1, min(torch.get_num_threads(), scores.size // k))
    if rows == 1:
        return torch.topk(s, k, sorted=False).indices.numpy()
    # One row per thread: torch runs a row-wise top-k in parallel, not a 1-D one. Each row's k best
    # hold the k best of all; a remainder of < rows items joins the second round as it is.
    cut = scores.size - scores.size % rows
    per_row = torch.topk(s[:cut].view(rows, -1), k, dim=1, sorted=False)  # (rows, k)
    where = per_row.indices + torch.arange(0, cut, cut // rows)[:, None]  # positions in scores
    pool = torch.cat([where.ravel(), torch.arange(cut, scores.size)])
    return pool[torch.topk(s[pool], k, sorted=False).indices].numpy()


@register("least_confidence")
def least_confidence(inp: SelectionInput) -> Selection:
    """Score 1 - max_c p_c (higher = less confident)."""
    probs = inp.require_probs("least_confidence")
    return _pick(
        inp, _rowwise(probs, _least_confidence_block), "least confidence: top class p {:.3f} below 1"
    )


# Rows of probabilities sum to 1 up to rounding; the margin's bound below allows this much more.
_SUM_SLACK = 1e-3


def _margin_bound_block(p, out) -> None:
    # (rows, C) -> 1 + slack - 2 p_1 (rows,) >= -(p_1 - p_2): an upper bound on the negated margin,
    # since p_2 <= sum - p_1 <= 1 + slack - p_1 for non-negative rows. One reduction, like least
    # confidence, instead of the three passes per class of the exact margin.
    import torch

    _row_max(p, out)
    torch.add(torch.tensor(1.0 + _SUM_SLACK), out, alpha=-2.0, out=out)  # one pass, not mul_ + add_


@register("margin")
def margin(inp: SelectionInput) -> Selection:
    """Score = margin p_1 - p_2 between the two most likely classes; the smallest win.

    Exact, but the exact margin is only computed where it can matter: the bound p_1 - p_2 >=
    2 p_1 - 1 (rows are probabilities) is cheap for every row; the exact margins of the
    B + max(B/8, 64) rows with the lowest bound give a margin tau that the B-th smallest cannot
    exceed. Usually every row whose bound allows a margin <= tau is among those, and the B are
    picked from them; else the
    rows whose bound allows it (under 1 % of a confident model's pool in bench-select) are scored.
    Same selection, ties included, as scoring every row; a model that is unsure everywhere (more
    than a quarter of the rows left) is scored in full.
    """
    probs = inp.require_probs("margin")
    mask = inp.labelled_mask
    n = probs.shape[0]
    free = n - np.count_nonzero(mask)
    k = min(inp.batch_size, free)
    bound = _rowwise(probs, _margin_bound_block)  # (N,) >= -margin; labelled rows not masked (see below)
    if k > 0:
        # At least the k + max(k/8, 64) lowest bounds (all unlabelled if there are that many): the
        # k-th smallest of their exact margins is at least the k-th smallest of all (2k rows, as
        # before, cost 0.1 ms more at 50k x 1,000).
        seeds = min(k + max(k // 8, 64), free)
        # Rows over a cut on the bound, the labelled ones dropped from these few afterwards
        # (masking all N bounds first cost a tenth of the time at 50k x 1,000).
        first = _above_sampled_cut(bound, seeds) if seeds < n else np.arange(n)  # >= seeds rows, or None
        if first is not None:
            first = first[~mask[first]]
        if first is None or first.size < seeds:
            bound[mask] = -np.inf
            first = np.sort(_some_top_k(bound, seeds))
        exact = margins(np.take(probs, first, axis=0))  # (F,); np.take: 4x faster than probs[first]
        # ``first`` ascends, so a stable sort orders by margin and ties by pool index, as take_top.
        order = np.argsort(exact, kind="stable")[:k]
        tau = float(exact[order[-1]])
        if -tau > np.take(bound, first).min():
            # Every row whose margin can be <= tau has a bound >= -tau, above the least bound in
            # ``first``, so it is in ``first`` (which holds every unlabelled row over some cut, or the
            # top bounds with ties at its least one): the k smallest margins are among these.
            cand = first
        else:
            cand = np.flatnonzero((bound >= -tau) & ~mask)  # (M,) every row whose margin can be <= tau
            exact = None
    if k <= 0 or cand.size > n // 4:
        neg = _rowwise(probs, _neg_margin_block)  # (N,) -margin: the largest win
        neg[mask] = -np.inf
        top = _top_k(neg, k)
        scores = -neg[top]
    else:
        if exact is None:
            exact = margins(np.take(probs, cand, axis=0))  # (M,), cand ascending
            order = np.argsort(exact, kind="stable")[:k]
        top, scores = cand[order], exact[order]
    return Selection(top, scores, _reasons("margin {:.3f}", scores))


@register("entropy")
def entropy(inp: SelectionInput) -> Selection:
    """Score = predictive entropy in nats; the largest win."""
    probs = inp.require_probs("entropy")
    return _pick(inp, _rowwise(probs, _entropy_block), "entropy {:.3f} nats")


@register("bald")
def bald(inp: SelectionInput) -> Selection:
    """Score = mutual information between the label and the model parameters:
    H[mean_t p_t] - mean_t H[p_t], from T stochastic passes (T, N, C); the largest win."""
    mc = inp.require_mc_probs("bald")
    n = mc.shape[1]
    mi = np.empty(n, np.float32)
    for s in range(0, n, _CHUNK):
        p = mc[:, s : s + _CHUNK].astype(np.float32, copy=False)  # (T, chunk, C)
        mi[s : s + _CHUNK] = _entropy(p.mean(axis=0)) - _entropy(p).mean(axis=0)
    return _pick(inp, mi, "BALD mutual information {:.3f} nats")

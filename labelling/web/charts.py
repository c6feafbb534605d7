"""Small server-side SVG charts: no JavaScript, no CDN, readable in tests (data-* attributes)."""

from __future__ import annotations

from html import escape

from django.utils.safestring import SafeString, mark_safe

from labelling.selectors.metrics import newest_per_count

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 640, 260, 48, 16, 16, 36


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _nice_step(span: float, ticks: int = 4) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` intervals."""
    import math

    raw = max(span / ticks, 1e-9)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def learning_curve_svg(
    points: list[dict],
    target: float | None,
    forecast: dict | None = None,
    budget_images: float | None = None,
) -> SafeString:
    """Audit accuracy against labels: a line with its confidence band and the target line; with a
    ``forecast`` (the metrics selector's), the fitted curve ahead, dashed, with its interval, a mark
    where it reaches the target and one where the budget (``budget_images`` training images) runs out.
    """
    if not points:
        return mark_safe(
            '<p class="empty">No accuracy measured yet: it appears after the first retrain with audit labels.</p>'
        )
    # One point per label count, the newest version's, as the forecast's fit counts them.
    points = sorted(newest_per_count(points, lambda p: p["labels"]), key=lambda p: p["labels"])
    forecast = forecast or {}
    ahead = forecast.get("projection") or None
    reach = forecast.get("labels_to_target") if forecast.get("reachable") else None
    at_budget = forecast.get("accuracy_at_budget")
    xs = [p["labels"] for p in points] + (ahead["labels"] if ahead else [])
    if ahead:  # the forecast runs to the right edge
        x_hi = max(xs)
        step = _nice_step(x_hi)
    else:
        right = max(xs) * 1.05 + 1
        step = _nice_step(right)
        x_hi = step * -(-right // step)  # the next tick past the last point
    sx = _scale(0, x_hi, PAD_L, W - PAD_R)
    sy = _scale(0, 1, H - PAD_B, PAD_T)
    band_top = " ".join(f"{sx(p['labels']):.1f},{sy(p['high']):.1f}" for p in points)
    band_bottom = " ".join(f"{sx(p['labels']):.1f},{sy(p['low']):.1f}" for p in reversed(points))
    line = " ".join(f"{sx(p['labels']):.1f},{sy(p['accuracy']):.1f}" for p in points)
    parts = [
        f'<svg class="chart" id="learning-curve" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="Audit accuracy against number of labels{", and the forecast ahead" if ahead else ""}">'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = sy(tick)
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.0%}</text>')
    last_tick = int(x_hi / step + 1e-9)
    for i in range(last_tick + 1):
        v = step * i
        parts.append(f'<text x="{sx(v):.1f}" y="{H - PAD_B + 16}" text-anchor="middle">{v:,.0f}</text>')
    if x_hi - last_tick * step > 0.4 * step:  # the forecast's end, where no round tick falls
        parts.append(
            f'<text class="end-tick" x="{sx(x_hi):.1f}" y="{H - PAD_B + 16}" text-anchor="end">{x_hi:,.0f}</text>'
        )
    parts.append(f'<text x="{(W + PAD_L) / 2:.0f}" y="{H - 4}" text-anchor="middle">training labels</text>')
    parts.append(f'<polygon class="band" points="{band_top} {band_bottom}"/>')
    if ahead:
        pts = list(zip(ahead["labels"], ahead["accuracy"], ahead["low"], ahead["high"], strict=True))
        top = " ".join(f"{sx(n):.1f},{sy(hi):.1f}" for n, _, _, hi in pts)
        bottom = " ".join(f"{sx(n):.1f},{sy(lo):.1f}" for n, _, lo, _ in reversed(pts))
        parts.append(f'<polygon class="forecast-band" points="{top} {bottom}"/>')
        parts.append(
            f'<polyline class="forecast-line" data-from="{ahead["labels"][0]:g}" data-to="{ahead["labels"][-1]:g}" '
            f'points="{" ".join(f"{sx(n):.1f},{sy(a):.1f}" for n, a, _, _ in pts)}"/>'
        )
    if target is not None:
        y = sy(target)
        # the label at the left while a forecast runs to the right edge, where it nears the target
        lx, anchor = (PAD_L + 4, "start") if ahead else (W - PAD_R - 4, "end")
        parts.append(
            f'<line class="target" data-target="{target}" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="target-label" x="{lx}" y="{y - 5:.1f}" text-anchor="{anchor}">target {target:.0%}</text>'
        )
        if ahead and reach and points[-1]["labels"] < reach[0] <= x_hi:
            x = sx(reach[0])
            parts.append(
                f'<line class="reach" data-labels="{reach[0]:.0f}" x1="{x:.1f}" x2="{x:.1f}" '
                f'y1="{y:.1f}" y2="{H - PAD_B}"/>'
                f'<text class="reach-label" x="{x - 4:.1f}" y="{H - PAD_B - 6}" text-anchor="end">'
                f"target at ≈ {reach[0]:,.0f}</text>"
            )
    if ahead and at_budget and budget_images and points[-1]["labels"] <= budget_images <= x_hi:
        x, y = sx(budget_images), sy(at_budget[0])
        end = "pool labelled" if forecast.get("pool_ends_first") else "budget runs out"
        parts.append(
            f'<line class="budget-end" x1="{x:.1f}" x2="{x:.1f}" y1="{PAD_T}" y2="{H - PAD_B}"/>'
            f'<text class="budget-label" x="{x - 4:.1f}" y="{PAD_T + 10}" text-anchor="end">{end}</text>'
            f'<circle class="budget-point" cx="{x:.1f}" cy="{y:.1f}" r="4" data-labels="{budget_images:.0f}" '
            f'data-accuracy="{at_budget[0]:.4f}"><title>{end.capitalize()} ({budget_images:,.0f} '
            f"training labels): {at_budget[0]:.1%} ({at_budget[1]:.1%}–{at_budget[2]:.1%})</title></circle>"
        )
    parts.append(f'<polyline class="line" points="{line}"/>')
    for p in points:
        parts.append(
            f'<circle class="point" cx="{sx(p["labels"]):.1f}" cy="{sy(p["accuracy"]):.1f}" r="4" '
            f'data-labels="{p["labels"]}" data-accuracy="{p["accuracy"]:.4f}" data-low="{p["low"]:.4f}" '
            f'data-high="{p["high"]:.4f}"><title>{p["labels"]} labels: {p["accuracy"]:.1%} '
            f"({p['low']:.1%}–{p['high']:.1%})</title></circle>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def class_bars_svg(classes: list[dict]) -> SafeString:
    """Share of each class among human labels beside its share among the model's predictions."""
    if not classes:
        return mark_safe("")
    row, bar_w = 22, W - 200
    height = PAD_T + row * len(classes) + 24
    parts = [
        f'<svg class="chart" id="class-bars" viewBox="0 0 {W} {height}" role="img" aria-label="Class distribution">'
    ]
    for i, c in enumerate(classes):
        y = PAD_T + i * row
        parts.append(f'<text x="150" y="{y + 13}" text-anchor="end">{escape(c["label"])}</text>')
        parts.append(
            f'<rect class="labelled" x="160" y="{y + 2}" width="{bar_w * c["labelled_share"]:.1f}" height="8" '
            f'data-label="{escape(c["label"])}" data-count="{c["labelled"]}"><title>{c["labelled"]} labelled</title></rect>'
        )
        parts.append(
            f'<rect class="predicted" x="160" y="{y + 11}" width="{bar_w * c["predicted_share"]:.1f}" height="8" '
            f'data-label="{escape(c["label"])}" data-count="{c["predicted"]}"><title>{c["predicted"]} predicted</title></rect>'
        )
    y = PAD_T + len(classes) * row + 10
    parts.append(
        f'<rect class="labelled" x="160" y="{y}" width="12" height="8"/><text x="178" y="{y + 8}">labelled</text>'
    )
    parts.append(
        f'<rect class="predicted" x="260" y="{y}" width="12" height="8"/><text x="278" y="{y + 8}">predicted over the pool</text>'
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _no_kappa_yet(version_labels: list[int] | None, spacing: int | None) -> str:
    """Why there is no kappa: too few model versions, versions closer than the rule's spacing, or
    no pair that scored the same stop set (the worker draws a new one when the pool grows)."""
    apart = (
        f"at least {spacing:,} training labels apart" if spacing else "far enough apart in training labels"
    )
    counts = version_labels or []
    if len(counts) < 2:
        so_far = f"one so far, at {counts[0]:,} training labels" if counts else "none so far"
        why = f"it needs two model versions {apart}; {so_far}."
    elif spacing and max(counts) - min(counts) < spacing:
        why = (
            f"the stop rule compares model versions {apart}, and the {len(counts)} model versions so far "
            f"span {min(counts):,} to {max(counts):,} training labels; the first κ can come with a "
            f"version from {min(counts) + spacing:,} training labels on."
        )
    else:
        why = (
            f"the stop rule compares model versions {apart} that scored the same stop set, and the "
            "versions so far make no such pair yet (the stop set is drawn anew when the pool grows)."
        )
    return f'<p class="empty" id="stop-rule-empty">No agreement measured yet: {escape(why)}</p>'


def stop_rule_svg(
    kappas: list[float],
    labels: list[int] | None = None,
    threshold: float = 0.99,
    window: int = 3,
    last: int = 15,
    *,
    version_labels: list[int] | None = None,
    spacing: int | None = None,
) -> SafeString:
    """Cohen's kappa of each compared model version against the one before, its mean over the last
    ``window`` (what the stop rule reads) and the threshold line; the ``last`` points only, on a
    scale from 0.95 (or the lowest shown, or the threshold) to 1, where the decision is. ``labels``: the training
    labels of the later version of each kappa, marked on the x axis (forecasts stored before they
    were recorded have none: the versions are numbered instead). Without kappas, a sentence says
    why, from ``version_labels`` (the training labels of every model version) and ``spacing`` (the
    fewest training labels between two compared versions)."""
    by_labels = labels is not None and len(labels) == len(kappas)
    if not kappas:
        return mark_safe(_no_kappa_yet(version_labels, spacing))
    n = len(kappas)
    means = [sum(kappas[i + 1 - window : i + 1]) / window if i + 1 >= window else None for i in range(n)]
    first = max(0, n - last)  # kappas[i] compares version i + 1 with version i + 2 (1-based)
    shown = range(first, n)
    lo = int(min(0.95, threshold, *(kappas[i] for i in shown)) * 100) / 100  # down to a whole hundredth
    if by_labels:  # placed by training labels: versions come at uneven label counts (a review)
        at = _scale(labels[first], max(labels[-1], labels[first] + 1), PAD_L + 10, W - PAD_R - 10)

        def sx(i: int) -> float:
            return at(labels[i])
    else:
        sx = _scale(first, max(n - 1, first + 1), PAD_L + 10, W - PAD_R - 10)
    sy = _scale(lo, 1.0, H - PAD_B, PAD_T)
    parts = [
        f'<svg class="chart" id="stop-rule-chart" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="Agreement between successive model versions">'
    ]
    step = _nice_step(1.0 - lo)
    tick = 1.0
    while tick >= lo - 1e-9:
        y = sy(tick)
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
        tick = round(tick - step, 6)
    if by_labels:  # round label counts across the shown span, as the learning curve's axis
        step = max(1.0, _nice_step(labels[-1] - labels[first], ticks=6))
        tick = step * -(-labels[first] // step)
        while tick <= labels[-1]:
            x = at(tick)
            parts.append(f'<text x="{x:.1f}" y="{H - PAD_B + 16}" text-anchor="middle">{tick:,.0f}</text>')
            tick += step
    else:
        for i in shown:
            parts.append(f'<text x="{sx(i):.1f}" y="{H - PAD_B + 16}" text-anchor="middle">{i + 2}</text>')
    axis = (
        "training labels (κ against the version compared before)"
        if by_labels
        else "model version (κ against the one before)"
    )
    parts.append(f'<text x="{(W + PAD_L) / 2:.0f}" y="{H - 4}" text-anchor="middle">{axis}</text>')
    y = sy(threshold)
    parts.append(
        f'<line class="target" data-threshold="{threshold}" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}">'
        f"<title>the rule fires when the mean of {window} reaches {threshold:.2f}</title></line>"
    )
    mean_pts = " ".join(f"{sx(i):.1f},{sy(means[i]):.1f}" for i in shown if means[i] is not None)
    if mean_pts:
        parts.append(f'<polyline class="band-line" points="{mean_pts}"/>')
    parts.append(
        f'<polyline class="line" points="{" ".join(f"{sx(i):.1f},{sy(kappas[i]):.1f}" for i in shown)}"/>'
    )
    for i in shown:
        mean = "" if means[i] is None else f" (mean of {window}: {means[i]:.3f})"
        parts.append(
            f'<circle class="point" cx="{sx(i):.1f}" cy="{sy(kappas[i]):.1f}" r="4" data-kappa="{kappas[i]:.4f}">'
            f"<title>{f'{labels[i]:,} labels' if by_labels else f'version {i + 2}'}: κ {kappas[i]:.3f}{mean}</title></circle>"
        )
    # The mean's points are marked too (over the kappa's, where they coincide): with few kappas the
    # mean is a single point, and a one-point line draws nothing.
    for i in shown:
        if means[i] is not None:
            where = f"{labels[i]:,} labels" if by_labels else f"version {i + 2}"
            parts.append(
                f'<circle class="mean-point" cx="{sx(i):.1f}" cy="{sy(means[i]):.1f}" r="3.5" '
                f'data-mean="{means[i]:.4f}"><title>{where}: mean of {window} κ {means[i]:.3f}</title></circle>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))


CONFUSION_MAX_CLASSES = 20  # beyond, the table alone (a matrix of tiny cells says little)


def confusion_svg(by_class: dict) -> SafeString:
    """The current model's confusion matrix on the audit slice: a row per true class, a column per
    predicted class, each cell shaded by its share of the row (green on the diagonal: right; red
    off it: mistaken for that class) and labelled with its count."""
    classes = by_class.get("classes") or []
    if not by_class.get("confusion") or len(classes) > CONFUSION_MAX_CLASSES:
        return mark_safe("")
    index = {c["label"]: i for i, c in enumerate(classes)}
    k = len(classes)
    counts = [[0] * k for _ in range(k)]
    for t, p, n in by_class["confusion"]:
        counts[index[t]][index[p]] = n
    cell, left, top = min(36, 480 // k), 130, 96
    size_w, size_h = left + cell * k + 72, top + cell * k + 8  # room for the last slanted head
    parts = [
        # Drawn at the learning curve's scale (its 640 units fill a ~1,000 px panel), not
        # stretched to the panel's width: a 3-class matrix would be huge.
        f'<svg class="chart" id="confusion" viewBox="0 0 {size_w} {size_h}" '
        f'style="max-width: {1.6 * size_w:.0f}px" role="img" '
        f'aria-label="Confusion matrix of the audit slice: true class by row, predicted class by column">'
    ]
    for j, c in enumerate(classes):  # column heads, slanted
        x = left + j * cell + cell / 2
        parts.append(
            f'<text x="{x:.1f}" y="{top - 6}" transform="rotate(-45 {x:.1f} {top - 6})">{escape(c["name"][:14])}</text>'
        )
    for i, c in enumerate(classes):
        y = top + i * cell
        parts.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">{escape(c["name"][:18])}</text>'
        )
        row_total = sum(counts[i]) or 1
        for j in range(k):
            n = counts[i][j]
            share = n / row_total
            kind = "right" if i == j else "wrong"
            x = left + j * cell
            parts.append(
                f'<rect class="cell {kind}" x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                f'fill-opacity="{0.08 + 0.92 * share:.2f}" data-true="{escape(c["name"])}" '
                f'data-predicted="{escape(classes[j]["name"])}" data-count="{n}">'
                f"<title>{n} {escape(c['name'])} taken for {escape(classes[j]['name'])}</title></rect>"
            )
            if n:
                parts.append(
                    f'<text class="count{" strong" if share > 0.5 else ""}" x="{x + cell / 2:.1f}" '
                    f'y="{y + cell / 2 + 4:.1f}" text-anchor="middle">{n}</text>'
                )
    parts.append("</svg>")
    parts.append('<p class="muted">Rows: the true class; columns: the model\'s prediction.</p>')
    return mark_safe("".join(parts))

"""The binomial test the insight detector asks: how likely k or more failures in n requests are
when each fails with probability p.

Written here (fifteen lines over math.lgamma) rather than taking SciPy, a 40 MB dependency, for
one function. Exact for the counts a detector window holds: the terms fall geometrically past
the mean, so the sum stops once they no longer change it (at most n - k + 1 terms).
"""

from __future__ import annotations

import math


def upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k, n + 1):
        term = math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        total += term
        if i > n * p and term < total * 1e-12:
            break
    return min(1.0, total)

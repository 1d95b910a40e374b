"""The growing linear program behind data mixture inference (mixture.py): minimise cost . x over x >= 0 with
one equality row (the proportions sum to 1) and rows A x <= 0 added round after round (lazy constraints).

With `warm=True` the model lives in one HiGHS instance (the `_Highs` class scipy bundles for linprog's
"highs" method, scipy.optimize._highspy._core): added rows keep the previous basis dual feasible, so each
re-solve is a few dual simplex iterations from the last optimum instead of a cold solve. On the real
tokenizers' LPs (10^5 rows) that is 5-10x faster than re-running linprog. If that private class is missing
(another scipy version), or with `warm=False`, every solve is a cold `scipy.optimize.linprog(method="highs")`
on all rows so far; both give the same optimum (tests/tokenization/test_mixture.py).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix, vstack


def _bundled_highs():
    try:
        from scipy.optimize._highspy import _core
    except ImportError:
        return None
    return getattr(_core, "_Highs", None)


class IncrementalLP:
    """min cost . x  s.t.  eq . x = 1,  A x <= 0 (rows added with `add_rows`),  x >= 0."""

    def __init__(self, cost: np.ndarray, eq: np.ndarray, *, warm: bool = True) -> None:
        self.cost = np.asarray(cost, dtype=np.float64)
        self.eq = np.asarray(eq, dtype=np.float64)
        self.n = len(self.cost)
        self.rows: list[csr_matrix] = []
        highs = _bundled_highs() if warm else None
        self._h = None
        if highs is not None:
            h = highs()
            h.setOptionValue("output_flag", False)
            inf = h.getInfinity()
            h.addVars(self.n, np.zeros(self.n), np.full(self.n, inf))
            h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), self.cost)
            nz = np.flatnonzero(self.eq).astype(np.int32)
            h.addRow(1.0, 1.0, len(nz), nz, self.eq[nz])
            self._h, self._inf = h, inf

    @property
    def warm(self) -> bool:
        return self._h is not None

    def add_rows(self, a: csr_matrix) -> None:
        a = csr_matrix(a, dtype=np.float64)
        a.eliminate_zeros()
        if self._h is None:
            self.rows.append(a)
            return
        m = a.shape[0]
        self._h.addRows(m, np.full(m, -self._inf), np.zeros(m), a.nnz, a.indptr[:-1].astype(np.int32),
                        a.indices.astype(np.int32), a.data)

    def solve(self) -> tuple[np.ndarray, float]:
        if self._h is None:
            from scipy.optimize import linprog

            a_ub = vstack(self.rows).tocsr() if self.rows else None
            res = linprog(self.cost, A_ub=a_ub, b_ub=np.zeros(a_ub.shape[0]) if a_ub is not None else None,
                          A_eq=self.eq[None, :], b_eq=[1.0], bounds=[(0, None)] * self.n, method="highs")
            if res.status != 0:
                raise RuntimeError(f"the mixture LP failed: {res.message}")
            return np.asarray(res.x), float(res.fun)
        self._h.run()
        status = self._h.modelStatusToString(self._h.getModelStatus())
        if status != "Optimal":
            raise RuntimeError(f"the mixture LP failed: HiGHS model status {status}")
        return np.array(self._h.getSolution().col_value), float(self._h.getInfo().objective_function_value)

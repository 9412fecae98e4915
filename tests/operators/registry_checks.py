"""Reusable checks every operator must pass (the operator registry test and the Dirac degradations use them).

``check_linear_operator(op)`` runs all linear checks against dense references built from ``to_matrix()``:
forward = matrix product, adjointness, ``normal``, ``pinv`` = ``numpy.linalg.pinv``, the SVD
(``U diag(s) V^H`` reconstructs the matrix; U and V unitary), functions of the Gram through ``gram_diagonal``,
batching, dtype (float32/float64) and device preservation. ``check_nonlinear_operator(op)`` checks autograd against finite differences,
batching and dtypes. Each check is also a function of its own.

For a real-input operator with complex output, the adjoint and pinv live on the real space of images:
the reference is the real matrix ``[Re M; Im M]`` (real and imaginary parts as separate measurements).
"""

from __future__ import annotations

import numpy as np
import torch

from bayesinv.operators.base import LinearOperator, Operator, gram_function, inner

__all__ = ["random_input", "random_output", "check_forward_matches_matrix", "check_adjoint", "check_normal",
           "check_pinv", "check_svd", "check_gram_diagonal", "check_batching", "check_dtypes", "check_linear_operator",
           "check_gradient", "check_nonlinear_operator", "real_matrix"]


def random_input(op: Operator, batch: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """Standard normal images ``(batch, *in_shape)`` (complex when the operator acts on complex images)."""
    x = torch.randn(batch, *op.in_shape, generator=generator, dtype=dtype)
    if op.input_complex:
        x = torch.complex(x, torch.randn(batch, *op.in_shape, generator=generator, dtype=dtype))
    return x


def random_output(op: Operator, batch: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    y = torch.randn(batch, *op.out_shape, generator=generator, dtype=dtype)
    if op.output_complex:
        y = torch.complex(y, torch.randn(batch, *op.out_shape, generator=generator, dtype=dtype))
    return y


def real_matrix(op: LinearOperator) -> np.ndarray:
    """The dense matrix of ``op`` on its own scalar field (``[Re M; Im M]`` for real-in, complex-out operators)."""
    m = op.to_matrix(torch.float64).numpy()
    if not op.input_complex and np.iscomplexobj(m):
        return np.concatenate([m.real, m.imag])
    return m


def _realify(op: Operator, y: torch.Tensor) -> np.ndarray:
    flat = y.reshape(y.shape[0], -1).detach().numpy()
    if not op.input_complex and np.iscomplexobj(flat):
        return np.concatenate([flat.real, flat.imag], axis=1)
    return flat


def _flat(t: torch.Tensor) -> np.ndarray:
    return t.reshape(t.shape[0], -1).detach().numpy()


def check_forward_matches_matrix(op: LinearOperator, generator: torch.Generator) -> None:
    x = random_input(op, 2, generator)
    m = op.to_matrix(torch.float64).numpy()
    np.testing.assert_allclose(_flat(op(x)), _flat(x) @ m.T, rtol=1e-10, atol=1e-12)


def check_adjoint(op: LinearOperator, generator: torch.Generator) -> None:
    """``Re <A x, y> = Re <x, A^H y>`` to float64 precision, and ``adjoint`` equals ``M^H y``."""
    x, y = random_input(op, 3, generator), random_output(op, 3, generator)
    lhs, rhs = inner(op(x), y), inner(x, op.adjoint(y))
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12 * float(lhs.abs().max() + 1))
    np.testing.assert_allclose(_flat(op.adjoint(y)), _realify(op, y) @ real_matrix(op).conj(), rtol=1e-10, atol=1e-12)


def check_normal(op: LinearOperator, generator: torch.Generator) -> None:
    x = random_input(op, 2, generator)
    m = real_matrix(op)
    np.testing.assert_allclose(_flat(op.normal(x)), _flat(x) @ (m.conj().T @ m).T, rtol=1e-10, atol=1e-11)


def check_pinv(op: LinearOperator, generator: torch.Generator, *, rtol: float = 1e-8) -> None:
    """``pinv(y)`` equals ``numpy.linalg.pinv(M) y`` (the minimum-norm least-squares solution).

    The reference's cutoff is explicit: numpy's default (``rcond=1e-15``) lies inside the rounding noise
    of a rank-deficient M's zero singular values (up to 7e-15 for the MRI masks under numpy 2.5's
    LAPACK, which then inverted them into 1e13 entries), while every registered operator's smallest
    nonzero singular value is above 5e-4 of its largest; ``1e-10`` separates the two by 10^5 either way.
    """
    y = random_output(op, 2, generator)
    want = _realify(op, y) @ np.linalg.pinv(real_matrix(op), rcond=1e-10).T
    got = _flat(op.pinv(y))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(1.0, np.abs(want).max()))


def check_svd(op: LinearOperator, generator: torch.Generator) -> None:
    """``U diag(s) V^H = M``; V and U unitary; singular values positive, first; ``Vt``/``V``, ``Ut``/``U`` inverse."""
    svd = op.svd()
    s = svd.singulars.detach().numpy()
    r = s.shape[0]
    assert r <= min(op.in_dim, op.out_dim) and (s > 0).all()
    m_mat = op.to_matrix(torch.float64).numpy()
    cdtype = torch.complex128
    eye_in = torch.eye(op.in_dim, dtype=cdtype if op.input_complex else torch.float64)
    vt = _flat(svd.Vt(eye_in.reshape(-1, *op.in_shape))).T  # columns: V^H e_j -> V^H (n x n)
    n = vt.shape[0]
    np.testing.assert_allclose(vt @ vt.conj().T, np.eye(n), atol=1e-10)
    eye_coef = torch.eye(n, dtype=cdtype)
    v = _flat(svd.V(eye_coef)).T  # V (n x n)
    np.testing.assert_allclose(v, vt.conj().T, atol=1e-10)
    eye_m = torch.eye(op.out_dim, dtype=cdtype if op.output_complex else torch.float64).reshape(-1, *op.out_shape)
    ut = _flat(svd.Ut(eye_m)).T
    k = ut.shape[0]
    np.testing.assert_allclose(ut @ ut.conj().T, np.eye(k), atol=1e-10)
    u = _flat(svd.U(torch.eye(k, dtype=cdtype))).T
    np.testing.assert_allclose(u, ut.conj().T, atol=1e-10)
    recon = u[:, :r] @ np.diag(s) @ vt[:r]
    np.testing.assert_allclose(recon, m_mat, atol=1e-10)


def check_batching(op: Operator, generator: torch.Generator) -> None:
    """``B = 3`` and three ``B = 1`` calls give the same per-item results (forward, adjoint, pinv)."""
    x = random_input(op, 3, generator)
    whole = op(x)
    for i in range(3):
        torch.testing.assert_close(op(x[i : i + 1])[0], whole[i], rtol=1e-12, atol=1e-12)
    if isinstance(op, LinearOperator):
        y = random_output(op, 3, generator)
        for method in (op.adjoint, op.pinv):
            batch = method(y)
            for i in range(3):
                torch.testing.assert_close(method(y[i : i + 1])[0], batch[i], rtol=1e-9, atol=1e-9)


def check_dtypes(op: Operator, generator: torch.Generator) -> None:
    """float32 in -> float32/complex64 out (complex when the space is complex), close to the float64 result; same device."""
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-4)):
        x64 = random_input(op, 2, generator)
        x = x64.to(torch.complex64 if x64.is_complex() and dtype == torch.float32 else
                   (dtype if not x64.is_complex() else torch.complex128))
        out = op(x)
        real = dtype
        want = (torch.complex128 if real == torch.float64 else torch.complex64) if op.output_complex else real
        assert out.dtype == want, (out.dtype, want)
        assert out.device == x.device
        ref = op(x64)
        torch.testing.assert_close(out.to(ref.dtype), ref, rtol=tol, atol=tol * float(ref.abs().max() + 1))
        if isinstance(op, LinearOperator):
            y = random_output(op, 2, generator).to(out.dtype)
            back = op.adjoint(y)
            want_in = (torch.complex128 if real == torch.float64 else torch.complex64) if op.input_complex else real
            assert back.dtype == want_in, (back.dtype, want_in)
            assert op.pinv(y).dtype == want_in


def check_gram_diagonal(op: LinearOperator, generator: torch.Generator) -> None:
    """Where ``op`` declares its real-space Gram diagonal, ``f(A^T A) x`` through it equals the dense matrix
    function ``Q f(lambda) Q^T x`` (``A^T A = Q diag(lambda) Q^T`` from ``to_matrix()``), in both precisions."""
    gram = op.gram_diagonal()
    if gram is None:
        return
    assert not op.input_complex and gram.basis in ("pixel", "fourier")
    assert tuple(gram.values.shape) == tuple(op.in_shape) and bool((gram.values >= 0).all())
    m = real_matrix(op)
    lam, q = np.linalg.eigh(m.T @ m)
    top = max(float(lam.max()), 1e-12)
    x = random_input(op, 3, generator)
    for f, f_np in ((lambda v: v, lambda v: v), (lambda v: torch.sqrt(1 - 0.9 * v / top),
                                                  lambda v: np.sqrt(1 - 0.9 * np.clip(v, 0, None) / top))):
        expected = (q * f_np(lam)) @ q.T @ _flat(x).T
        np.testing.assert_allclose(_flat(gram_function(gram, f, x)), expected.T, rtol=1e-10, atol=1e-12)
        single = gram_function(gram, f, x.float())
        assert single.dtype == torch.float32
        np.testing.assert_allclose(_flat(single), expected.T, rtol=1e-4, atol=1e-5)


def check_linear_operator(op: LinearOperator, generator: torch.Generator | None = None, *,
                          pinv_rtol: float = 1e-8) -> None:
    """Every linear check (forward, adjoint, normal, pinv, SVD when ``op.has_svd``, batching, dtypes)."""
    generator = generator or torch.Generator().manual_seed(0)
    assert isinstance(op, LinearOperator)
    check_forward_matches_matrix(op, generator)
    check_adjoint(op, generator)
    check_normal(op, generator)
    check_pinv(op, generator, rtol=pinv_rtol)
    if op.has_svd:
        check_svd(op, generator)
    check_gram_diagonal(op, generator)
    check_batching(op, generator)
    check_dtypes(op, generator)


def check_gradient(op: Operator, generator: torch.Generator, *, eps: float = 1e-6) -> None:
    """Autograd gradient of ``sum(w * A(x))`` (real part) against central finite differences along a random direction."""
    x = random_input(op, 2, generator)
    w = random_output(op, 2, generator)
    d = random_input(op, 2, generator)

    def loss(z):
        return inner(w, op(z)).sum()

    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(xg), xg)
    directional = float(inner(grad, d).sum())  # d/dt loss(x + t d) = Re <grad, d> (Wirtinger convention of torch)
    fd = (float(loss(x + eps * d)) - float(loss(x - eps * d))) / (2 * eps)
    np.testing.assert_allclose(directional, fd, rtol=1e-6, atol=1e-8)


def check_nonlinear_operator(op: Operator, generator: torch.Generator | None = None) -> None:
    generator = generator or torch.Generator().manual_seed(0)
    check_gradient(op, generator)
    check_batching(op, generator)
    check_dtypes(op, generator)

"""The fused Triton kernels of the skip-gram negative-sampling step, and their launch constants.

Each kernel runs one Triton program per group of ``G`` pairs that share ``K`` negatives:
the program reads the group's ``G`` context rows, ``G`` center rows and ``K`` negative
rows straight from the tables (no gathered copies) and computes scores, sigmoids,
gradients and the loss in registers. Rows are walked in slices of :data:`SLICE` columns,
the negatives one at a time, so a program holds ``(G, 64)`` tiles (never a ``(G, K, D)``
tensor) at any dimension: a first pass sums the ``G (K + 1)`` scores, a second (reading
the same rows again, from cache) forms the gradients slice by slice.

* :func:`sgns_kernel`: scores, gradients and loss of a group. Batch-synchronous
  (``HOGWILD=False``), it writes the gradients to preallocated buffers (``dx`` ``(B, D)``,
  ``dout`` ``(B + M K, D)``) and, with ``TRUST``, adds its pairs' shares to per-row loads
  in ``(V,)`` buffers (float atomics); with ``HOGWILD=True`` it adds its updates to the
  tables with atomics as soon as they are computed (plain sum only), one launch for a
  whole chunk, as in Hogwild (Recht et al., 2011) and the GPU trainers that share
  negatives (BlazingText, FULL-W2V).
* :func:`apply_kernel`: a group's stored gradients, scaled by ``min(1, trust / load)``
  with ``TRUST``, added to the tables (float atomics: rows repeat across groups).
* :func:`reset_kernel`: the loads of a group's rows back to zero, for the next batch.

Kernels read the number of valid pairs, the batch index, the learning rates and the
losses from device tensors, and programs past the valid pairs return at once. All
arithmetic is float32. :class:`~w2v.triton_step.TritonSGNS` schedules the launches.

Without a GPU the kernels run on CPU tensors through Triton's interpreter: set
``TRITON_INTERPRET=1`` before this module is imported (tests do). Without triton the
module still imports, and holds no kernels (``triton`` is then ``None``).
"""

from __future__ import annotations

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the module still imports, w2v.triton_step.unavailable says why
    triton = tl = None

SLICE = 64  # columns of a row slice: (G, 64) tiles keep a program in registers at any dimension


if triton is not None:

    @triton.jit
    def _group_start(batch_ptr, count_ptr, capacity, batch_size, nb, G: tl.constexpr, HOGWILD: tl.constexpr):
        """The group's first pair, its batch, and whether it holds valid pairs."""
        m = tl.program_id(0).to(tl.int64)
        if HOGWILD:  # one launch over the chunk: program m is group m
            first = m * G
            j = first // batch_size
        else:  # one launch per batch: program m is group m of batch j
            j = tl.load(batch_ptr)
            first = j * batch_size + m * G
        count = tl.minimum(tl.load(count_ptr), capacity)
        usable = count - count % G  # a last partial group is dropped, as batching.batches does
        return first, j, (first < usable) & (j < nb)

    @triton.jit
    def _group_rows(
        rows_in, rows_out, rows_neg, first, G: tl.constexpr, K: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        """The group's pair and negative slots with their masks, its input and output rows, where its negatives are."""
        g = tl.arange(0, BLOCK_G)
        kk = tl.arange(0, BLOCK_K)
        mg = g < G
        mk = kk < K
        rin = tl.load(rows_in + first + g, mask=mg, other=0).to(tl.int64)
        rout = tl.load(rows_out + first + g, mask=mg, other=0).to(tl.int64)
        return g, kk, mg, mk, rin, rout, rows_neg + (first // G) * K

    @triton.jit
    def sgns_kernel(
        win, wout, rows_in, rows_out, rows_neg,
        count_ptr, batch_ptr, lrs, losses,
        dx_buf, dout_buf, load_in, load_out,
        capacity, batch_size, nb,
        D: tl.constexpr, K: tl.constexpr, G: tl.constexpr,
        STRIDE_IN: tl.constexpr, STRIDE_OUT: tl.constexpr, STRIDE_GRAD: tl.constexpr,
        BLOCK_G: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
        HOGWILD: tl.constexpr, TRUST: tl.constexpr,
    ):
        """Scores, gradients and loss of one group; stored (sync) or added to the tables (Hogwild).

        Rows are walked in slices of ``BLOCK_D`` columns twice, so that registers hold
        ``(G, BLOCK_D)`` tiles whatever the dimension: first the scores (``(G, K)`` of
        them), then the gradients, slice by slice (the second reads come from cache).
        """
        first, j, valid = _group_start(batch_ptr, count_ptr, capacity, batch_size, nb, G, HOGWILD)
        if valid:
            m = tl.program_id(0).to(tl.int64)
            lr = tl.load(lrs + j)
            g, kk, mg, mk, rin, rout, negs = _group_rows(rows_in, rows_out, rows_neg, first, G, K, BLOCK_G, BLOCK_K)
            pos = tl.zeros([BLOCK_G], dtype=tl.float32)  # x.y
            neg = tl.zeros([BLOCK_G, BLOCK_K], dtype=tl.float32)  # x.n_k
            norm_x = tl.zeros([BLOCK_G], dtype=tl.float32)  # |x|^2, |y|^2, |n_k|^2, for trust
            norm_y = tl.zeros([BLOCK_G], dtype=tl.float32)
            norm_n = tl.zeros([BLOCK_K], dtype=tl.float32)
            for c in range(0, D, BLOCK_D):
                d = c + tl.arange(0, BLOCK_D)
                md = d < D
                mask = mg[:, None] & md[None, :]
                x = tl.load(win + rin[:, None] * STRIDE_IN + d[None, :], mask=mask, other=0.0)  # (G, D')
                y = tl.load(wout + rout[:, None] * STRIDE_OUT + d[None, :], mask=mask, other=0.0)  # (G, D')
                pos += tl.sum(x * y, 1)
                if TRUST:
                    norm_x += tl.sum(x * x, 1)
                    norm_y += tl.sum(y * y, 1)
                for k in range(K):
                    n = tl.load(wout + tl.load(negs + k) * STRIDE_OUT + d, mask=md, other=0.0)  # (D',)
                    neg += tl.where(kk[None, :] == k, tl.sum(x * n[None, :], 1)[:, None], 0.0)
                    if TRUST:
                        norm_n += tl.where(kk == k, tl.sum(n * n, 0), 0.0)
            # -log s(z) = log(1 + e^-z), written without overflow, for the loss
            loss = tl.where(mg, tl.maximum(-pos, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(pos))), 0.0)
            both = mg[:, None] & mk[None, :]
            loss += tl.sum(tl.where(both, tl.maximum(neg, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(neg))), 0.0), 1)
            tl.atomic_add(losses + j, tl.sum(loss, 0), sem="relaxed")
            gpos = tl.where(mg, lr * tl.sigmoid(-pos), 0.0)  # a (1 - s(x.y)), (G,)
            gneg = tl.where(both, -lr * tl.sigmoid(neg), 0.0)  # -a s(x.n_k), (G, K)
            if TRUST:  # shares of the rows' loads: a/4 |p|^2 summed over each row's partners p
                q = 0.25 * lr
                rneg = tl.load(negs + kk, mask=mk, other=0)
                tl.atomic_add(load_in + rin, q * (norm_y + tl.sum(norm_n, 0)), mask=mg, sem="relaxed")
                tl.atomic_add(load_out + rout, q * norm_x, mask=mg, sem="relaxed")
                share_neg = q * tl.sum(norm_x, 0) + tl.zeros([BLOCK_K], dtype=tl.float32)
                tl.atomic_add(load_out + rneg, share_neg, mask=mk, sem="relaxed")
            for c in range(0, D, BLOCK_D):
                d = c + tl.arange(0, BLOCK_D)
                md = d < D
                mask = mg[:, None] & md[None, :]
                x = tl.load(win + rin[:, None] * STRIDE_IN + d[None, :], mask=mask, other=0.0)
                y = tl.load(wout + rout[:, None] * STRIDE_OUT + d[None, :], mask=mask, other=0.0)
                dx = gpos[:, None] * y  # x += g y + sum_k g_k n_k
                if HOGWILD:  # y += g x
                    tl.atomic_add(
                        wout + rout[:, None] * STRIDE_OUT + d[None, :], gpos[:, None] * x, mask=mask, sem="relaxed"
                    )
                else:
                    tl.store(dout_buf + (m * G + g)[:, None] * STRIDE_GRAD + d[None, :], gpos[:, None] * x, mask=mask)
                for k in range(K):
                    rn = tl.load(negs + k)
                    n = tl.load(wout + rn * STRIDE_OUT + d, mask=md, other=0.0)
                    gk = tl.sum(tl.where(kk[None, :] == k, gneg, 0.0), 1)  # (G,)
                    dx += gk[:, None] * n[None, :]
                    dn = tl.sum(gk[:, None] * x, 0)  # n_k += sum_g g_k x_g
                    if HOGWILD:
                        tl.atomic_add(wout + rn * STRIDE_OUT + d, dn, mask=md, sem="relaxed")
                    else:
                        tl.store(dout_buf + (batch_size + m * K + k) * STRIDE_GRAD + d, dn, mask=md)
                if HOGWILD:
                    tl.atomic_add(win + rin[:, None] * STRIDE_IN + d[None, :], dx, mask=mask, sem="relaxed")
                else:
                    tl.store(dx_buf + (m * G + g)[:, None] * STRIDE_GRAD + d[None, :], dx, mask=mask)

    @triton.jit
    def apply_kernel(
        win, wout, rows_in, rows_out, rows_neg,
        count_ptr, batch_ptr, dx_buf, dout_buf, load_in, load_out, trust,
        capacity, batch_size, nb,
        D: tl.constexpr, K: tl.constexpr, G: tl.constexpr,
        STRIDE_IN: tl.constexpr, STRIDE_OUT: tl.constexpr, STRIDE_GRAD: tl.constexpr,
        BLOCK_G: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, TRUST: tl.constexpr,
    ):
        """Add one group's stored gradients, damped by its rows' loads, to the tables."""
        first, j, valid = _group_start(batch_ptr, count_ptr, capacity, batch_size, nb, G, False)
        if valid:
            m = tl.program_id(0).to(tl.int64)
            g, kk, mg, mk, rin, rout, negs = _group_rows(rows_in, rows_out, rows_neg, first, G, K, BLOCK_G, BLOCK_K)
            scale_in = tl.full([BLOCK_G], 1.0, tl.float32)
            scale_out = tl.full([BLOCK_G], 1.0, tl.float32)
            scale_neg = tl.full([BLOCK_K], 1.0, tl.float32)
            if TRUST:  # min(1, trust / load), without dividing by a zero load
                scale_in = trust / tl.maximum(tl.load(load_in + rin, mask=mg, other=0.0), trust)
                scale_out = trust / tl.maximum(tl.load(load_out + rout, mask=mg, other=0.0), trust)
                rneg = tl.load(negs + kk, mask=mk, other=0)
                scale_neg = trust / tl.maximum(tl.load(load_out + rneg, mask=mk, other=0.0), trust)
            rows = (m * G + g)[:, None] * STRIDE_GRAD
            for c in range(0, D, BLOCK_D):
                d = c + tl.arange(0, BLOCK_D)
                md = d < D
                mask = mg[:, None] & md[None, :]
                dx = tl.load(dx_buf + rows + d[None, :], mask=mask, other=0.0) * scale_in[:, None]
                tl.atomic_add(win + rin[:, None] * STRIDE_IN + d[None, :], dx, mask=mask, sem="relaxed")
                dy = tl.load(dout_buf + rows + d[None, :], mask=mask, other=0.0) * scale_out[:, None]
                tl.atomic_add(wout + rout[:, None] * STRIDE_OUT + d[None, :], dy, mask=mask, sem="relaxed")
                for k in range(K):
                    dn = tl.load(dout_buf + (batch_size + m * K + k) * STRIDE_GRAD + d, mask=md, other=0.0)
                    dn *= tl.sum(tl.where(kk == k, scale_neg, 0.0), 0)
                    tl.atomic_add(wout + tl.load(negs + k) * STRIDE_OUT + d, dn, mask=md, sem="relaxed")

    @triton.jit
    def reset_kernel(
        rows_in, rows_out, rows_neg, count_ptr, batch_ptr, load_in, load_out,
        capacity, batch_size, nb, K: tl.constexpr, G: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        """The loads of one group's rows back to zero, for the next batch."""
        first, j, valid = _group_start(batch_ptr, count_ptr, capacity, batch_size, nb, G, False)
        if valid:
            g = tl.arange(0, BLOCK_G)
            kk = tl.arange(0, BLOCK_K)
            mg, mk = g < G, kk < K
            tl.store(load_in + tl.load(rows_in + first + g, mask=mg, other=0), 0.0, mask=mg)
            tl.store(load_out + tl.load(rows_out + first + g, mask=mg, other=0), 0.0, mask=mg)
            tl.store(load_out + tl.load(rows_neg + (first // G) * K + kk, mask=mk, other=0), 0.0, mask=mk)


def interpreted() -> bool:
    """Whether the kernels were built for Triton's interpreter (``TRITON_INTERPRET=1`` at import)."""
    return triton is not None and type(sgns_kernel).__name__ == "InterpretedFunction"


def launch_constants(dim: int, group: int, negatives: int, stride_in: int, stride_out: int, stride_grad: int) -> dict:
    """The kernels' compile-time arguments (and ``num_warps``) for a model and a step.

    Sizes and row strides are compile-time constants: a step keeps them for its whole
    life, and the compiler can then prove rows 16-byte aligned (vector loads and atomics)
    for any dimension divisible by 4, padded or not.
    """
    block_g = triton.next_power_of_2(group)
    block_d = min(triton.next_power_of_2(max(dim, 1)), SLICE)
    return dict(
        D=dim, K=negatives, G=group, STRIDE_IN=stride_in, STRIDE_OUT=stride_out, STRIDE_GRAD=stride_grad,
        BLOCK_G=block_g, BLOCK_K=triton.next_power_of_2(max(negatives, 1)), BLOCK_D=block_d,
        num_warps=max(1, min(8, block_g * block_d // (32 * 16))),  # ~16 floats of a (G, BLOCK_D) tile a thread
    )

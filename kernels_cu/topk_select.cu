// Per-row top-k selection: the k highest scores of each [S] row, returned as positions in ascending order.
//
//   out[r, :k_r] = sorted positions of the k_r largest scores[r, :],  out[r, k_r:] = -1 (PAD),
//   k_r = ks[r % G] (rows are (batch, KV head) pairs, G = KV heads: one budget per KV head).
//
// Order: by score (fp32 value of the stored fp32 / fp16 / bf16), higher first; equal scores (+0 and -0 are
// equal) go to the LOWER position when ties_higher == 0, to the HIGHER position otherwise. That makes the
// selected set unique, so the kernel and the PyTorch reference (workbench/kernels/topk_select.py, stable
// sorts) agree exactly. NaN scores are not ranked (the Python side refuses them).
//
// topk_select_rows<T>: grid (rows), 256 threads. One block per row:
// 1. Radix select (8 bits per pass, 4 passes, shared-memory histogram) of the k-th largest 32-bit order key
//    T_k; it also gives `need`, how many of the keys equal to T_k belong to the top k, and `eq`, how many
//    keys equal T_k in the row.
// 2. Ordered compaction: thread t owns the contiguous positions [t * per, (t + 1) * per); it counts its keys
//    above T_k and equal to T_k, an exclusive scan over the threads gives each thread its first output slot
//    and the rank (in position order) of its first equal key, and each thread writes its selected positions
//    in order. The output is therefore sorted without a sort.
// The row is read 6 times (4 histogram passes, 2 compaction passes); k does not change the work.
//
// Its only #include is the shared wb_scalar.cuh, pasted in by cupy_module.kernel_source for NVRTC.

#include "wb_scalar.cuh"

#define WB_TOPK_THREADS 256
#define WB_TOPK_BINS 256

// A 32-bit key whose unsigned order is the order of the float values (-0 mapped to +0 first).
__device__ __forceinline__ unsigned int wb_order_key(float f) {
    const unsigned int u = __float_as_uint(f == 0.f ? 0.f : f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

template <typename T>
__global__ void __launch_bounds__(WB_TOPK_THREADS) topk_select_rows(
    const T* __restrict__ scores,   // [rows, S], contiguous
    int S,
    const int* __restrict__ ks,     // [G]: k of the rows r with r % G == g
    int G,
    int K,                          // output columns: max(ks)
    int ties_higher,
    long long* __restrict__ out)    // [rows, K]
{
    __shared__ unsigned int hist[WB_TOPK_BINS];
    __shared__ unsigned int sh_prefix, sh_need, sh_eq;
    __shared__ unsigned int sh_gt[WB_TOPK_THREADS];
    __shared__ unsigned int sh_eqc[WB_TOPK_THREADS];

    const long long row = blockIdx.x;
    const int k = ks[row % G];
    const int tid = threadIdx.x;
    const T* __restrict__ x = scores + row * S;
    long long* __restrict__ o = out + row * K;
    for (int i = k + tid; i < K; i += WB_TOPK_THREADS) o[i] = -1;
    if (k <= 0) return;  // uniform across the block

    // 1. Radix select, most significant byte first, among the keys that match the prefix found so far.
    unsigned int prefix = 0u, mask = 0u, need = (unsigned int)k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = tid; i < WB_TOPK_BINS; i += WB_TOPK_THREADS) hist[i] = 0u;
        __syncthreads();
        for (int i = tid; i < S; i += WB_TOPK_THREADS) {
            const unsigned int key = wb_order_key(wb_load(x + i));
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xffu], 1u);
        }
        __syncthreads();
        if (tid == 0) {
            unsigned int above = 0u;
            int bin = WB_TOPK_BINS - 1;
            for (; bin > 0; --bin) {  // the bin holding the need-th largest key (bin 0 if none above)
                if (above + hist[bin] >= need) break;
                above += hist[bin];
            }
            sh_prefix = prefix | ((unsigned int)bin << shift);
            sh_need = need - above;
            sh_eq = hist[bin];
        }
        __syncthreads();
        prefix = sh_prefix;
        need = sh_need;
        mask |= 0xffu << shift;
    }
    const unsigned int threshold = prefix;
    const unsigned int eq_total = sh_eq;

    // 2. Ordered compaction over contiguous per-thread segments.
    const int per = (S + WB_TOPK_THREADS - 1) / WB_TOPK_THREADS;
    const int lo = min(S, tid * per);
    const int hi = min(S, lo + per);
    unsigned int gt = 0u, eq = 0u;
    for (int i = lo; i < hi; ++i) {
        const unsigned int key = wb_order_key(wb_load(x + i));
        gt += key > threshold;
        eq += key == threshold;
    }
    sh_gt[tid] = gt;
    sh_eqc[tid] = eq;
    __syncthreads();
    if (tid == 0) {  // exclusive scans of both counts
        unsigned int sum_gt = 0u, sum_eq = 0u;
        for (int t = 0; t < WB_TOPK_THREADS; ++t) {
            const unsigned int a = sh_gt[t], b = sh_eqc[t];
            sh_gt[t] = sum_gt;
            sh_eqc[t] = sum_eq;
            sum_gt += a;
            sum_eq += b;
        }
    }
    __syncthreads();
    // Equal keys, ranked in position order, are kept for ranks [0, need) (ties to the lower position) or
    // [eq_total - need, eq_total) (ties to the higher position).
    const unsigned int first = ties_higher ? eq_total - need : 0u;
    const unsigned int last = first + need;
    unsigned int rank = sh_eqc[tid];
    unsigned int slot = sh_gt[tid] + (rank < first ? 0u : min(rank, last) - first);
    for (int i = lo; i < hi; ++i) {
        const unsigned int key = wb_order_key(wb_load(x + i));
        if (key > threshold) {
            o[slot++] = i;
        } else if (key == threshold) {
            if (rank >= first && rank < last) o[slot++] = i;
            ++rank;
        }
    }
}

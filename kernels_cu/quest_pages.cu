// Quest page metadata and page scores (Tang et al., "Quest: Query-Aware Sparsity for Efficient Long-Context
// LLM Inference", 2024).
//
//   kmin[b, g, p, d] = min_{s in page p} k[b, g, s, d],   kmax likewise,   page p = [p * page_size, ...) ∩ [0, S)
//   score[b, g, p]   = max_{h in group g} sum_d max(q[b, h, d] * kmin[b, g, p, d], q[b, h, d] * kmax[b, g, p, d])
//
// The score is an upper bound of q.k over the page for every query head of the KV head's group (grouped-query
// attention: query head h reads KV head h / (H / H_kv)). Storage is fp32, fp16 or bf16; the bounds are stored
// in the keys' dtype (exact: each is one of the stored values) and every product and sum is fp32. The
// PyTorch reference in workbench/kernels/quest_pages.py defines the result. A NaN key gives NaN bounds as in
// torch; the score of a page is unspecified when q * bound is NaN (0 * inf), which finite caches never give.
//
// quest_page_bounds<T>: grid (ceil(P / pages_per_block), H_kv, B), 128 threads; thread t of a block walks
//   the (page, d) pairs of its pages, d fastest, so a warp reads 32 consecutive channels of one key row.
// quest_page_scores<T>: grid (ceil(P / pages_per_block), H_kv, B), 128 threads; each warp takes one page at
//   a time, lanes split the channels, a shuffle reduction sums them per query head.
//
// Its only #include is the shared wb_scalar.cuh, pasted in by cupy_module.kernel_source for NVRTC.

#include "wb_scalar.cuh"

#define WB_WARPS 4
#define WB_THREADS (WB_WARPS * 32)

// Min and max are moved, never computed: the stored element is copied unchanged (exact in every dtype).
template <typename T>
__global__ void __launch_bounds__(WB_THREADS) quest_page_bounds(
    const T* __restrict__ k,            // [B, H_kv, S, D], strides below (last dim contiguous)
    long long k_sb, long long k_sh, long long k_ss,
    int H_kv, int S, int D, int page_size, int pages_per_block,
    T* __restrict__ kmin,               // [B, H_kv, P, D], contiguous
    T* __restrict__ kmax)
{
    const int P = (S + page_size - 1) / page_size;
    const int g = blockIdx.y;
    const int b = blockIdx.z;
    const int p0 = blockIdx.x * pages_per_block;
    const int p1 = min(P, p0 + pages_per_block);
    const T* __restrict__ kb = k + b * k_sb + g * k_sh;
    const long long pairs = (long long)(p1 - p0) * D;
    for (long long t = threadIdx.x; t < pairs; t += WB_THREADS) {
        const int p = p0 + (int)(t / D);
        const int d = (int)(t % D);
        const int s0 = p * page_size;
        const int s1 = min(S, s0 + page_size);
        const T* lo_at = kb + (long long)s0 * k_ss + d;
        const T* hi_at = lo_at;
        float lo = wb_load(lo_at), hi = lo;
        for (int s = s0 + 1; s < s1; ++s) {
            const T* at = kb + (long long)s * k_ss + d;
            const float x = wb_load(at);
            // NaN, once met, stays: x < NaN and x > NaN are false.
            if (x < lo || x != x) { lo = x; lo_at = at; }
            if (x > hi || x != x) { hi = x; hi_at = at; }
        }
        const long long r = (((long long)b * H_kv + g) * P + p) * D + d;
        wb_copy(kmin + r, lo_at);
        wb_copy(kmax + r, hi_at);
    }
}

template <typename T>
__global__ void __launch_bounds__(WB_THREADS) quest_page_scores(
    const T* __restrict__ q,            // [B, H, D], contiguous
    const T* __restrict__ kmin,         // [B, H_kv, P, D], contiguous
    const T* __restrict__ kmax,
    int H, int H_kv, int P, int D, int pages_per_block,
    float* __restrict__ scores)         // [B, H_kv, P]
{
    const int group = H / H_kv;
    const int g = blockIdx.y;
    const int b = blockIdx.z;
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int p0 = blockIdx.x * pages_per_block;
    const int p1 = min(P, p0 + pages_per_block);
    const T* __restrict__ qg = q + ((long long)b * H + (long long)g * group) * D;
    for (int p = p0 + warp; p < p1; p += WB_WARPS) {  // uniform across the warp
        const long long r = (((long long)b * H_kv + g) * P + p) * D;
        float best = wb_neg_inf();
        for (int h = 0; h < group; ++h) {
            float part = 0.f;
            for (int d = lane; d < D; d += 32) {
                const float qd = wb_load(qg + (long long)h * D + d);
                part += fmaxf(qd * wb_load(kmin + r + d), qd * wb_load(kmax + r + d));
            }
            best = fmaxf(best, wb_warp_sum(part));
        }
        if (lane == 0) scores[((long long)b * H_kv + g) * P + p] = best;
    }
}

// TokenSelect soft votes (Wu et al., "TokenSelect: Efficient Long-Context Inference and Length Extrapolation
// for LLMs via Dynamic Token-Level KV Cache Selection", 2025):
//
//   votes[b, g, s] = sum_{h in group g} softmax_s(scale * q[b, h] . k[b, g, s])
//
// Each query head's softmax over all S cached keys, summed over the query heads that share KV head g
// (grouped-query attention: query head h reads KV head h / (H / H_kv)). Storage of q and k is fp32, fp16 or
// bf16; every product, sum and the output are fp32. The PyTorch reference in
// workbench/kernels/tokenselect_votes.py defines the result.
//
// Pass 1, tokenselect_logits<T, D>: grid (num_splits, H_kv, B), 128 threads. The group's queries, scaled by
//   scale * log2(e), are staged in shared memory; each warp takes one key of the block's chunk at a time
//   (lane l holds channels l, l+32, ...), so a key row is read once for all query heads of the group. The
//   logit of every (head, key) goes to an fp32 workspace [B, H, S] (log2 units), and each warp keeps a
//   running max and sum of exponentials per head (online softmax, Milakov & Gimelshein, arXiv:1805.02867);
//   the block merges its warps and writes (max, sum) per (head, split).
// Pass 2, tokenselect_vote: grid (ceil(S / chunk), H_kv, B), 128 threads. Each block merges the splits'
//   (max, sum) of its group's heads, then thread t writes votes for keys t, t+128, ... of its chunk:
//   sum_h exp2(logit - max_h) / sum_h.
// Finite inputs are assumed (an infinite logit makes the softmax NaN, as in torch).
//
// Its only #include is the shared wb_scalar.cuh, pasted in by cupy_module.kernel_source for NVRTC.

#include "wb_scalar.cuh"

#define WB_WARPS 4
#define WB_THREADS (WB_WARPS * 32)
#define WB_MAX_GROUP 64      // query heads per KV head
#define WB_MAX_QVALS 4096    // group * D staged in shared memory (16 KiB)

template <typename T, int D>
__global__ void __launch_bounds__(WB_THREADS) tokenselect_logits(
    const T* __restrict__ q,            // [B, H, D], contiguous
    const T* __restrict__ k,            // [B, H_kv, S, D], strides below (last dim contiguous)
    long long k_sb, long long k_sh, long long k_ss,
    int H, int H_kv, int S, int chunk, float qk_scale,
    float* __restrict__ logits,         // [B, H, S] workspace, log2 units
    float* __restrict__ part_m,         // [B, H, num_splits]
    float* __restrict__ part_l)
{
    constexpr int VEC = D / 32;
    __shared__ float sh_q[WB_MAX_QVALS];
    __shared__ float sh_m[WB_WARPS][WB_MAX_GROUP];
    __shared__ float sh_l[WB_WARPS][WB_MAX_GROUP];

    const int group = H / H_kv;
    const int split = blockIdx.x;
    const int num_splits = gridDim.x;
    const int g = blockIdx.y;
    const int b = blockIdx.z;
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const long long h0 = (long long)b * H + (long long)g * group;  // row of the group's first query head

    for (int t = threadIdx.x; t < group * D; t += WB_THREADS) sh_q[t] = wb_load(q + h0 * D + t) * qk_scale;
    for (int t = threadIdx.x; t < WB_WARPS * group; t += WB_THREADS) {
        sh_m[t / group][t % group] = wb_neg_inf();
        sh_l[t / group][t % group] = 0.f;
    }
    __syncthreads();

    const int start = split * chunk;
    const int end = min(S, start + chunk);
    const T* __restrict__ kb = k + b * k_sb + g * k_sh;
    for (int s = start + warp; s < end; s += WB_WARPS) {  // uniform across the warp
        float kr[VEC];
#pragma unroll
        for (int j = 0; j < VEC; ++j) kr[j] = wb_load(kb + (long long)s * k_ss + lane + 32 * j);
        for (int h = 0; h < group; ++h) {
            float dot = 0.f;
#pragma unroll
            for (int j = 0; j < VEC; ++j) dot += sh_q[h * D + lane + 32 * j] * kr[j];
            dot = wb_warp_sum(dot);
            if (lane == 0) {  // lane 0 alone updates this warp's statistics
                logits[(h0 + h) * S + s] = dot;
                const float m = sh_m[warp][h];
                const float mx = fmaxf(m, dot);
                sh_l[warp][h] = sh_l[warp][h] * exp2f(m - mx) + exp2f(dot - mx);
                sh_m[warp][h] = mx;
            }
        }
    }
    __syncthreads();

    // Merge the warps; a warp that saw no key has max -inf and sum 0 and gets weight 0.
    for (int h = threadIdx.x; h < group; h += WB_THREADS) {
        float mx = wb_neg_inf();
#pragma unroll
        for (int w = 0; w < WB_WARPS; ++w) mx = fmaxf(mx, sh_m[w][h]);
        float sum = 0.f;
        if (mx != wb_neg_inf()) {
#pragma unroll
            for (int w = 0; w < WB_WARPS; ++w) sum += exp2f(sh_m[w][h] - mx) * sh_l[w][h];
        }
        part_m[(h0 + h) * num_splits + split] = mx;
        part_l[(h0 + h) * num_splits + split] = sum;
    }
}

__global__ void __launch_bounds__(WB_THREADS) tokenselect_vote(
    const float* __restrict__ logits,   // [B, H, S], log2 units
    const float* __restrict__ part_m,   // [B, H, num_splits]
    const float* __restrict__ part_l,
    int H, int H_kv, int S, int num_splits, int chunk,
    float* __restrict__ votes)          // [B, H_kv, S]
{
    __shared__ float sh_m[WB_MAX_GROUP];
    __shared__ float sh_inv[WB_MAX_GROUP];
    const int group = H / H_kv;
    const int g = blockIdx.y;
    const int b = blockIdx.z;
    const long long h0 = (long long)b * H + (long long)g * group;
    for (int h = threadIdx.x; h < group; h += WB_THREADS) {
        const float* __restrict__ pm = part_m + (h0 + h) * num_splits;
        const float* __restrict__ pl = part_l + (h0 + h) * num_splits;
        float mx = wb_neg_inf();
        for (int i = 0; i < num_splits; ++i) mx = fmaxf(mx, pm[i]);
        float sum = 0.f;
        for (int i = 0; i < num_splits; ++i) sum += exp2f(pm[i] - mx) * pl[i];  // every split holds >= 1 key
        sh_m[h] = mx;
        sh_inv[h] = 1.f / sum;
    }
    __syncthreads();
    const int start = blockIdx.x * chunk;
    const int end = min(S, start + chunk);
    for (int s = start + threadIdx.x; s < end; s += WB_THREADS) {
        float vote = 0.f;
        for (int h = 0; h < group; ++h) vote += exp2f(logits[(h0 + h) * S + s] - sh_m[h]) * sh_inv[h];
        votes[((long long)b * H_kv + g) * S + s] = vote;
    }
}

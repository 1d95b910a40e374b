// Gathered (sparse) decode attention with a split-K ("flash-decoding") merge.
//
//   out[b, h] = sum_i softmax_i(scale * q[b, h] . k[b, g, n_i]) * v[b, g, n_i],   g = h / group,
//   n_i = indices[b, g, i] for i < lengths[b, g] (all K entries when no lengths are given).
//
// Storage is fp32, fp16 or bf16; every product and sum is fp32. The PyTorch reference in
// workbench/kernels/sparse_decode_attention.py defines the result.
//
// Pass 1, sparse_decode_partial<T, D, GB>: grid (num_splits, H_kv * group_blocks, B), 128 threads.
//   A block owns one chunk of one KV head's index list and up to GB query heads of that head's group,
//   so each gathered K/V row is read once for all of them. Its 4 warps take turns over the chunk,
//   UNROLL keys per step; lane l holds dims l, l+32, ... of q, k and v, so a row read is 32 consecutive
//   elements per instruction whatever the alignment. Each warp keeps an online softmax per head
//   (running max m, sum of exponentials l, unnormalised output acc); the warps are then merged through
//   shared memory. With one split the block writes the normalised output; otherwise it writes
//   (m, l, acc) for its (b, h, split) in fp32.
// Pass 2, sparse_decode_merge<T>: grid (H, B). Splits are rescaled by exp2(m_s - max_s m_s) before
//   summing, so no exponential ever overflows; an empty list (length 0) gives a zero output.
// Scores are kept in log2 units: q is pre-multiplied by scale * log2(e), so exp2f(s - m) = exp(...).
//
// Its only #include is the shared wb_scalar.cuh, pasted in by cupy_module.kernel_source for NVRTC.

#include "wb_scalar.cuh"

#define WB_WARPS 4
#define WB_THREADS (WB_WARPS * 32)

template <typename T, int D, int GB>
__global__ void __launch_bounds__(WB_THREADS) sparse_decode_partial(
    const T* __restrict__ q,            // [B, H, D], contiguous
    const T* __restrict__ k,            // [B, H_kv, S, D], strides below (last dim contiguous)
    const T* __restrict__ v,
    const long long* __restrict__ indices,  // [B, H_kv, K], contiguous int64
    const int* __restrict__ lengths,    // [B, H_kv], read only when use_lengths != 0
    int use_lengths,
    long long k_sb, long long k_sh, long long k_ss,
    long long v_sb, long long v_sh, long long v_ss,
    int H, int H_kv, int K, int group, int group_blocks, int chunk, float qk_scale,
    float* __restrict__ part_o,         // [B, H, num_splits, D]   (num_splits > 1)
    float* __restrict__ part_m,         // [B, H, num_splits]
    float* __restrict__ part_l,         // [B, H, num_splits]
    T* __restrict__ out)                // [B, H, D]               (num_splits == 1)
{
    constexpr int VEC = D / 32;
    constexpr int UNROLL = D <= 128 ? 4 : 2;
    const int split = blockIdx.x;
    const int num_splits = gridDim.x;
    const int kvh = blockIdx.y / group_blocks;
    const int h0 = kvh * group + (blockIdx.y % group_blocks) * GB;
    const int ng = min(GB, kvh * group + group - h0);
    const int b = blockIdx.z;
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;

    const long long list = (long long)b * H_kv + kvh;
    const int len = use_lengths ? lengths[list] : K;
    const int start = split * chunk;
    const int end = min(start + chunk, len);
    const long long* __restrict__ idx = indices + list * K;
    const T* __restrict__ kb = k + b * k_sb + kvh * k_sh;
    const T* __restrict__ vb = v + b * v_sb + kvh * v_sh;

    float qr[GB][VEC], acc[GB][VEC], m[GB], l[GB];
#pragma unroll
    for (int g = 0; g < GB; ++g) {
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            qr[g][j] = g < ng ? wb_load(q + ((long long)b * H + h0 + g) * D + lane + 32 * j) * qk_scale : 0.f;
            acc[g][j] = 0.f;
        }
        m[g] = wb_neg_inf();
        l[g] = 0.f;
    }

    for (int base = start + warp * UNROLL; base < end; base += WB_WARPS * UNROLL) {
        bool ok[UNROLL];
        long long row[UNROLL];
        float kr[UNROLL][VEC], vr[UNROLL][VEC];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            ok[u] = base + u < end;
            row[u] = ok[u] ? idx[base + u] : 0;
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                kr[u][j] = ok[u] ? wb_load(kb + row[u] * k_ss + lane + 32 * j) : 0.f;
                vr[u][j] = ok[u] ? wb_load(vb + row[u] * v_ss + lane + 32 * j) : 0.f;
            }
        }
#pragma unroll
        for (int g = 0; g < GB; ++g) {
            if (g < ng) {  // uniform across the block
                float s[UNROLL];
                float mx = m[g];
#pragma unroll
                for (int u = 0; u < UNROLL; ++u) {
                    float dot = 0.f;
#pragma unroll
                    for (int j = 0; j < VEC; ++j) dot += qr[g][j] * kr[u][j];
                    dot = wb_warp_sum(dot);
                    s[u] = ok[u] ? dot : wb_neg_inf();
                    mx = fmaxf(mx, s[u]);
                }
                // ok[0] holds in every step, so mx is finite and exp2f(-inf - mx) is a clean 0.
                const float alpha = exp2f(m[g] - mx);
                l[g] *= alpha;
#pragma unroll
                for (int j = 0; j < VEC; ++j) acc[g][j] *= alpha;
#pragma unroll
                for (int u = 0; u < UNROLL; ++u) {
                    const float p = exp2f(s[u] - mx);
                    l[g] += p;
#pragma unroll
                    for (int j = 0; j < VEC; ++j) acc[g][j] += p * vr[u][j];
                }
                m[g] = mx;
            }
        }
    }

    // Merge the warps. A warp that saw no key has m = -inf, l = 0, acc = 0 and gets weight 0.
    __shared__ float sh_m[WB_WARPS][GB];
    __shared__ float sh_l[WB_WARPS][GB];
    __shared__ float sh_o[WB_WARPS][GB][D];
#pragma unroll
    for (int g = 0; g < GB; ++g) {
        if (lane == 0) {
            sh_m[warp][g] = m[g];
            sh_l[warp][g] = l[g];
        }
#pragma unroll
        for (int j = 0; j < VEC; ++j) sh_o[warp][g][lane + 32 * j] = acc[g][j];
    }
    __syncthreads();

    for (int t = threadIdx.x; t < ng * D; t += WB_THREADS) {
        const int g = t / D;
        const int d = t % D;
        float mx = wb_neg_inf();
#pragma unroll
        for (int w = 0; w < WB_WARPS; ++w) mx = fmaxf(mx, sh_m[w][g]);
        float sum = 0.f, o = 0.f;
        if (mx != wb_neg_inf()) {
#pragma unroll
            for (int w = 0; w < WB_WARPS; ++w) {
                const float weight = exp2f(sh_m[w][g] - mx);
                sum += weight * sh_l[w][g];
                o += weight * sh_o[w][g][d];
            }
        }
        const long long bh = (long long)b * H + h0 + g;
        if (num_splits == 1) {
            wb_store(out + bh * D + d, sum > 0.f ? o / sum : 0.f);
        } else {
            const long long r = bh * num_splits + split;
            part_o[r * D + d] = o;
            if (d == 0) {
                part_m[r] = mx;
                part_l[r] = sum;
            }
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(WB_THREADS) sparse_decode_merge(
    const float* __restrict__ part_o, const float* __restrict__ part_m, const float* __restrict__ part_l,
    T* __restrict__ out, int H, int D, int num_splits)
{
    const long long bh = (long long)blockIdx.y * H + blockIdx.x;
    const float* __restrict__ pm = part_m + bh * num_splits;
    const float* __restrict__ pl = part_l + bh * num_splits;
    const float* __restrict__ po = part_o + bh * num_splits * D;
    float mx = wb_neg_inf();
    for (int s = 0; s < num_splits; ++s) mx = fmaxf(mx, pm[s]);
    float sum = 0.f;
    if (mx != wb_neg_inf()) {
        for (int s = 0; s < num_splits; ++s) sum += exp2f(pm[s] - mx) * pl[s];
    }
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.f;
        if (mx != wb_neg_inf()) {
            for (int s = 0; s < num_splits; ++s) o += exp2f(pm[s] - mx) * po[(long long)s * D + d];
        }
        wb_store(out + bh * D + d, sum > 0.f ? o / sum : 0.f);
    }
}

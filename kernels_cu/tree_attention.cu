// Tree attention for speculative verification, with a split-K ("flash-decoding") merge.
//
// The N tree-node queries of each head attend over S = P + N keys: the P cached prefix positions (all of
// them) and the N tree nodes themselves, node i seeing node j iff mask[i, j] (j an ancestor of i, or i):
//
//   out[b, h, i] = sum_s softmax_s(scale * q[b, h, i] . k[b, g, s]) * v[b, g, s],   g = h / group,
//   over s < P, and s = P + j with mask[i, j] != 0.
//
// Storage is fp32, fp16 or bf16; every product and sum is fp32. The PyTorch reference in
// workbench/kernels/tree_attention.py (masked SDPA) defines the result.
//
// Pass 1, tree_attention_partial<T, D, GR>: grid (num_splits, H_kv * row_blocks, B), 128 threads.
//   The query "rows" of KV head g are its group * N (head, node) pairs, row r = (head g * group + r / N,
//   node r % N). A block owns one chunk of the S keys and GR rows of one KV head, so each K/V row is read
//   once for all of them. Its 4 warps take turns over the chunk, UNROLL keys per step; lane l holds dims
//   l, l+32, ... Each warp keeps an online softmax per row (running max m, sum l, unnormalised output
//   acc); masked keys score -inf, and a step in which a row has seen no visible key yet leaves it as is.
//   The warps are merged through shared memory. With one split the block writes the normalised output,
//   otherwise (m, l, acc) of its (row, split) in fp32.
// Pass 2, tree_attention_merge<T>: grid (H * N, B). Splits are rescaled by exp2(m_s - max_s m_s) before
//   summing, so no exponential ever overflows.
// Scores are kept in log2 units: q is pre-multiplied by scale * log2(e), so exp2f(s - m) = exp(...).
//
// Its only #include is the shared wb_scalar.cuh, pasted in by cupy_module.kernel_source for NVRTC.

#include "wb_scalar.cuh"

#define WB_WARPS 4
#define WB_THREADS (WB_WARPS * 32)

template <typename T, int D, int GR>
__global__ void __launch_bounds__(WB_THREADS) tree_attention_partial(
    const T* __restrict__ q,              // [B, H, N, D], contiguous
    const T* __restrict__ k,              // [B, H_kv, S, D], strides below (last dim contiguous)
    const T* __restrict__ v,
    const unsigned char* __restrict__ mask,  // [N, N], contiguous: node i sees node j iff mask[i * N + j]
    long long k_sb, long long k_sh, long long k_ss,
    long long v_sb, long long v_sh, long long v_ss,
    int H, int H_kv, int N, int S, int group, int row_blocks, int chunk, float qk_scale,
    float* __restrict__ part_o,           // [B, H, N, num_splits, D]   (num_splits > 1)
    float* __restrict__ part_m,           // [B, H, N, num_splits]
    float* __restrict__ part_l,           // [B, H, N, num_splits]
    T* __restrict__ out)                  // [B, H, N, D]               (num_splits == 1)
{
    constexpr int VEC = D / 32;
    constexpr int UNROLL = D <= 128 ? 4 : 2;
    const int split = blockIdx.x;
    const int num_splits = gridDim.x;
    const int kvh = blockIdx.y / row_blocks;
    const int r0 = (blockIdx.y % row_blocks) * GR;
    const int nr = min(GR, group * N - r0);
    const int b = blockIdx.z;
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int P = S - N;

    const int start = split * chunk;
    const int end = min(start + chunk, S);
    const T* __restrict__ kb = k + b * k_sb + kvh * k_sh;
    const T* __restrict__ vb = v + b * v_sb + kvh * v_sh;

    int node[GR];
    long long qrow[GR];  // (b, h, i) flattened: the row's index in q, out and the split buffers
    float qr[GR][VEC], acc[GR][VEC], m[GR], l[GR];
#pragma unroll
    for (int g = 0; g < GR; ++g) {
        const int r = r0 + (g < nr ? g : 0);
        node[g] = r % N;
        qrow[g] = ((long long)b * H + kvh * group + r / N) * N + node[g];
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            qr[g][j] = g < nr ? wb_load(q + qrow[g] * D + lane + 32 * j) * qk_scale : 0.f;
            acc[g][j] = 0.f;
        }
        m[g] = wb_neg_inf();
        l[g] = 0.f;
    }

    for (int base = start + warp * UNROLL; base < end; base += WB_WARPS * UNROLL) {
        bool ok[UNROLL];
        float kr[UNROLL][VEC], vr[UNROLL][VEC];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) ok[u] = base + u < end;
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const long long s = ok[u] ? base + u : 0;
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                kr[u][j] = ok[u] ? wb_load(kb + s * k_ss + lane + 32 * j) : 0.f;
                vr[u][j] = ok[u] ? wb_load(vb + s * v_ss + lane + 32 * j) : 0.f;
            }
        }
#pragma unroll
        for (int g = 0; g < GR; ++g) {
            if (g < nr) {  // uniform across the block
                float s[UNROLL];
                float mx = m[g];
#pragma unroll
                for (int u = 0; u < UNROLL; ++u) {
                    float dot = 0.f;
#pragma unroll
                    for (int j = 0; j < VEC; ++j) dot += qr[g][j] * kr[u][j];
                    dot = wb_warp_sum(dot);
                    const int key = base + u;
                    const bool seen = ok[u] && (key < P || mask[(long long)node[g] * N + (key - P)] != 0);
                    s[u] = seen ? dot : wb_neg_inf();
                    mx = fmaxf(mx, s[u]);
                }
                if (mx != wb_neg_inf()) {  // else no visible key yet: nothing to add, and -inf - -inf is NaN
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
    }

    // Merge the warps. A warp that saw no visible key has m = -inf, l = 0, acc = 0 and gets weight 0.
    __shared__ float sh_m[WB_WARPS][GR];
    __shared__ float sh_l[WB_WARPS][GR];
    __shared__ float sh_o[WB_WARPS][GR][D];
#pragma unroll
    for (int g = 0; g < GR; ++g) {
        if (lane == 0) {
            sh_m[warp][g] = m[g];
            sh_l[warp][g] = l[g];
        }
#pragma unroll
        for (int j = 0; j < VEC; ++j) sh_o[warp][g][lane + 32 * j] = acc[g][j];
    }
    __syncthreads();

    for (int t = threadIdx.x; t < nr * D; t += WB_THREADS) {
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
        const int r = r0 + g;
        const long long row = ((long long)b * H + kvh * group + r / N) * N + r % N;
        if (num_splits == 1) {
            wb_store(out + row * D + d, sum > 0.f ? o / sum : 0.f);
        } else {
            const long long x = row * num_splits + split;
            part_o[x * D + d] = o;
            if (d == 0) {
                part_m[x] = mx;
                part_l[x] = sum;
            }
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(WB_THREADS) tree_attention_merge(
    const float* __restrict__ part_o, const float* __restrict__ part_m, const float* __restrict__ part_l,
    T* __restrict__ out, int rows_per_batch, int D, int num_splits)
{
    const long long row = (long long)blockIdx.y * rows_per_batch + blockIdx.x;
    const float* __restrict__ pm = part_m + row * num_splits;
    const float* __restrict__ pl = part_l + row * num_splits;
    const float* __restrict__ po = part_o + row * num_splits * D;
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
        wb_store(out + row * D + d, sum > 0.f ? o / sum : 0.f);
    }
}

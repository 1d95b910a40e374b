// Batched speculative rejection sampling with residual resampling, one thread block per row.
//
// Row b has target probabilities p[b, :V], draft probabilities q[b, :V], a drafted token x = draft[b]
// (-1: none, the row draws a bonus token from p) and two uniforms in [0, 1) supplied by the caller. In float64:
//   accepted = x >= 0 and u_accept * q[x] < p[x]            (probability min(1, p[x] / q[x]))
//   token    = x when accepted; else the inverse CDF at u_sample of the weights w:
//              w = max(p - q, 0) after a rejection (w = p if that is all zero), w = p without a draft;
//              C_j = w_0 + ... + w_j, target = u_sample * C_{V-1}; token = the first j with w_j > 0 and
//              C_j > target, or the last j with w_j > 0 if rounding left none.
// The PyTorch reference in workbench/kernels/rejection_sampling.py defines the result. Here thread t sums a
// contiguous chunk of w, thread 0 adds the chunk sums in order (so C_j is a sum in index order, grouped by
// chunk), and each thread then walks its own chunk from its prefix; the first thread holding a hit wins.
// The kernel's C_j can differ from a sequential cumulative sum in the last bit, so the token can differ from
// the reference only when target lies within float64 rounding of some C_j.
//
// Storage of p and q: fp32 or fp64. No #include: the file compiles under NVRTC with no include path.

#define WB_THREADS 256

__device__ __forceinline__ double wb_load(const float* p) { return (double)*p; }
__device__ __forceinline__ double wb_load(const double* p) { return *p; }

// w_j for the current pass: the residual max(p - q, 0), or p itself.
template <typename T>
__device__ __forceinline__ double wb_weight(const T* p, const T* q, long long j, bool residual) {
    const double pj = wb_load(p + j);
    if (!residual) return pj;
    const double d = pj - wb_load(q + j);
    return d > 0.0 ? d : 0.0;
}

template <typename T>
__global__ void __launch_bounds__(WB_THREADS) rejection_sample(
    const T* __restrict__ p, const T* __restrict__ q,  // [B, V], row strides below, entries contiguous
    long long p_stride, long long q_stride,
    const long long* __restrict__ draft,                 // [B]: drafted token or -1
    const double* __restrict__ u_accept,                 // [B]
    const double* __restrict__ u_sample,                 // [B]
    int V,
    unsigned char* __restrict__ accepted,                // [B] (0 / 1)
    long long* __restrict__ token)                       // [B]
{
    const int b = blockIdx.x;
    const int t = threadIdx.x;
    const T* __restrict__ pb = p + (long long)b * p_stride;
    const T* __restrict__ qb = q + (long long)b * q_stride;
    const long long x = draft[b];

    if (x >= 0 && u_accept[b] * wb_load(qb + x) < wb_load(pb + x)) {  // uniform across the block
        if (t == 0) {
            accepted[b] = 1;
            token[b] = x;
        }
        return;
    }

    __shared__ double sh_sum[WB_THREADS];
    __shared__ int sh_first[WB_THREADS];
    __shared__ int sh_last[WB_THREADS];
    __shared__ double sh_total;
    const int chunk = (V + WB_THREADS - 1) / WB_THREADS;
    const int lo = min(t * chunk, V);
    const int hi = min(lo + chunk, V);

    bool residual = x >= 0;
    for (int pass = 0; pass < 2; ++pass) {
        double s = 0.0;
        int last = -1;
        for (int j = lo; j < hi; ++j) {
            const double w = wb_weight(pb, qb, j, residual);
            s += w;
            if (w > 0.0) last = j;
        }
        sh_sum[t] = s;
        sh_last[t] = last;
        __syncthreads();
        if (t == 0) {  // exclusive prefix sums of the chunk sums, in order
            double c = 0.0;
            for (int i = 0; i < WB_THREADS; ++i) {
                const double si = sh_sum[i];
                sh_sum[i] = c;
                c += si;
            }
            sh_total = c;
        }
        __syncthreads();
        const double total = sh_total;
        if (total > 0.0 || !residual) break;  // an all-zero residual (p <= q everywhere): draw from p
        residual = false;
        __syncthreads();  // everyone has read sh_total before the next pass overwrites the arrays
    }

    const double target = u_sample[b] * sh_total;
    double c = sh_sum[t];
    int first = -1;
    for (int j = lo; j < hi; ++j) {
        const double w = wb_weight(pb, qb, j, residual);
        c += w;
        if (w > 0.0 && c > target) {
            first = j;
            break;
        }
    }
    sh_first[t] = first;
    __syncthreads();
    if (t == 0) {
        int chosen = -1, last = -1;
        for (int i = 0; i < WB_THREADS; ++i) {
            if (chosen < 0 && sh_first[i] >= 0) chosen = sh_first[i];
            if (sh_last[i] >= 0) last = sh_last[i];
        }
        accepted[b] = 0;
        token[b] = chosen >= 0 ? chosen : last;
    }
}

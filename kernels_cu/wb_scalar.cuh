// Scalar helpers shared by the kernels of kernels_cu/: 16-bit storage types, loads and stores that widen to
// and narrow from fp32, and a warp sum. A kernel source pulls this in with `#include "wb_scalar.cuh"`;
// workbench.kernels.cupy_module.kernel_source pastes it in place before NVRTC sees the source (NVRTC gets no
// include path), while nvcc and the g++ host emulation resolve the include next to the .cu file.
//
// This header includes nothing itself, and each kernel source includes it once.

struct wb_half { unsigned short bits; };
struct wb_bf16 { unsigned short bits; };

__device__ __forceinline__ float wb_neg_inf() { return __uint_as_float(0xff800000u); }

__device__ __forceinline__ float wb_half_to_float(unsigned short h) {
#ifdef __CUDA_ARCH__
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else  // host builds (the CPU emulation used by the tests) use the compiler's _Float16
    _Float16 x;
    __builtin_memcpy(&x, &h, 2);
    return (float)x;
#endif
}

__device__ __forceinline__ unsigned short wb_float_to_half(float f) {
#ifdef __CUDA_ARCH__
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#else
    _Float16 x = (_Float16)f;
    unsigned short h;
    __builtin_memcpy(&h, &x, 2);
    return h;
#endif
}

// bf16 is the top half of an fp32; rounding to nearest even, NaN kept quiet.
__device__ __forceinline__ unsigned short wb_float_to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

__device__ __forceinline__ float wb_load(const float* p) { return *p; }
__device__ __forceinline__ float wb_load(const wb_half* p) { return wb_half_to_float(p->bits); }
__device__ __forceinline__ float wb_load(const wb_bf16* p) {
    return __uint_as_float(((unsigned int)p->bits) << 16);
}

__device__ __forceinline__ void wb_store(float* p, float x) { *p = x; }
__device__ __forceinline__ void wb_store(wb_half* p, float x) { p->bits = wb_float_to_half(x); }
__device__ __forceinline__ void wb_store(wb_bf16* p, float x) { p->bits = wb_float_to_bf16(x); }

__device__ __forceinline__ void wb_copy(float* dst, const float* src) { *dst = *src; }
__device__ __forceinline__ void wb_copy(wb_half* dst, const wb_half* src) { dst->bits = src->bits; }
__device__ __forceinline__ void wb_copy(wb_bf16* dst, const wb_bf16* src) { dst->bits = src->bits; }

__device__ __forceinline__ float wb_warp_sum(float x) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
    return x;
}

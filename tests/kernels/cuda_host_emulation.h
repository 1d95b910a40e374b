// Runs CUDA kernels from kernels_cu/ on the CPU, for tests on machines without a GPU.
//
// Each thread of a block is an OS thread; blocks run one after another, so a `__shared__` array can be a
// function-local static. __syncthreads() is a barrier over the block, __shfl_xor_sync() an exchange
// through a per-warp buffer between two warp barriers (every lane of the warp must call it, which is also
// what the hardware requires with a full mask). Only what the kernels use is provided.
#pragma once

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* wb_block_barrier = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>> wb_warp_barriers;
inline std::vector<float> wb_exchange;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static

using std::max;
using std::min;

inline void __syncthreads() { wb_block_barrier->arrive_and_wait(); }

inline float __shfl_xor_sync(unsigned, float value, int lane_mask) {
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    wb_exchange[warp * 32 + lane] = value;
    wb_warp_barriers[warp]->arrive_and_wait();
    const float other = wb_exchange[warp * 32 + (lane ^ lane_mask)];
    wb_warp_barriers[warp]->arrive_and_wait();
    return other;
}

inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}

// Run `kernel()` for every block of `grid` with `block.x` threads (block.x a multiple of 32).
template <typename Kernel>
void wb_launch(dim3 grid, dim3 block, Kernel kernel) {
    gridDim = grid;
    blockDim = block;
    const unsigned n = block.x;
    std::barrier<> block_barrier(n);
    wb_block_barrier = &block_barrier;
    wb_warp_barriers.clear();
    for (unsigned w = 0; w < n / 32; ++w) wb_warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
    wb_exchange.assign(n, 0.f);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < n; ++t) {
        threads.emplace_back([&, t] {
            threadIdx = dim3{t, 0, 0};
            for (unsigned z = 0; z < grid.z; ++z)
                for (unsigned y = 0; y < grid.y; ++y)
                    for (unsigned x = 0; x < grid.x; ++x) {
                        blockIdx = dim3{x, y, z};
                        kernel();
                        block_barrier.arrive_and_wait();  // the next block reuses the static shared arrays
                    }
        });
    }
    for (auto& thread : threads) thread.join();
    wb_block_barrier = nullptr;
}

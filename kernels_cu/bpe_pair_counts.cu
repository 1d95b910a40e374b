// BPE pair counting over a word-frequency table, into an open-addressing hash table.
//
// Word w is the token ids ids[offsets[w] : offsets[w + 1]] and occurs counts[w] times. Every adjacent pair
// (a, b) inside a word adds counts[w] to the pair's count. The pair is packed into one 64-bit key
// (a << 32 | b; ids lie in [0, 2^31)), hashed (the splitmix64 finaliser), and inserted with linear probing:
// atomicCAS claims an empty slot (key all ones) or finds the pair's slot, atomicAdd adds the word's count.
// The table has a power-of-two capacity of at least twice the number of adjacent positions, so it is never
// more than half full and every probe sequence ends. Counts add in any order (integers), so the table is
// exact and, after the caller sorts the occupied slots by key (workbench/kernels/bpe_pair_counts.py), the
// result is deterministic and equal to the PyTorch reference.
//
// bpe_pair_count_insert<I>: one thread per word (grid-stride loop), I = int or long long token ids.
// No #include: the file compiles under NVRTC with no include path.

#define WB_THREADS 256
#define WB_EMPTY 0xffffffffffffffffull

__device__ __forceinline__ unsigned long long wb_mix(unsigned long long x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

template <typename I>
__global__ void __launch_bounds__(WB_THREADS) bpe_pair_count_insert(
    const I* __restrict__ ids,                // [T], token ids in [0, 2^31)
    const long long* __restrict__ offsets,    // [W + 1], nondecreasing, offsets[0] = 0, offsets[W] = T
    const long long* __restrict__ counts,     // [W], >= 0
    long long W,
    unsigned long long* __restrict__ keys,    // [capacity], all WB_EMPTY on entry
    unsigned long long* __restrict__ values,  // [capacity], all 0 on entry
    unsigned long long capacity_mask)         // capacity - 1 (capacity a power of two)
{
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long w = (long long)blockIdx.x * blockDim.x + threadIdx.x; w < W; w += stride) {
        const unsigned long long c = (unsigned long long)counts[w];
        if (c == 0) continue;
        const long long end = offsets[w + 1];
        for (long long t = offsets[w]; t + 1 < end; ++t) {
            const unsigned long long key =
                ((unsigned long long)ids[t] << 32) | (unsigned long long)(unsigned int)ids[t + 1];
            unsigned long long slot = wb_mix(key) & capacity_mask;
            while (true) {
                const unsigned long long prev = atomicCAS(keys + slot, WB_EMPTY, key);
                if (prev == WB_EMPTY || prev == key) {
                    atomicAdd(values + slot, c);
                    break;
                }
                slot = (slot + 1) & capacity_mask;
            }
        }
    }
}

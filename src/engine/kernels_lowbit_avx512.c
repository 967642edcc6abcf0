/*
 * kernels_lowbit_avx512.c - the AVX-512 kernels of Q2_K, Q3_K, IQ4_NL and IQ4_XS:
 * kernels_lowbit.h compiled with AVX-512 VNNI, which fuses the integer multiply-adds
 * (vpdpwssd for the scaled 16-bit sums, vpdpbusd for the IQ4_NL byte dot).
 *
 * DESIGN. See kernels_lowbit.h. The vectors stay 256 bits wide: a Q2_K/Q3_K super-block is
 * 2 x 32 bytes of codes and an IQ4 group 16 bytes, so wider vectors would only add shuffles.
 * Only for CPUs with VNNI (eng_kernels_avx512 checks); without it these types take AVX2.
 * IQ4_NL is laid out as Q4_0 and takes Q4_0's faster one-token and 16-token kernels
 * (kernels_avx512_q8.c), which eng_kernels_avx512 asks first; its set here is not reached.
 */
#define LB_ATTR __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define LB_MADD(acc, p, s) _mm256_dpwssd_epi32((acc), (p), (s))
#define LB_DOT4(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#include "kernels_lowbit.h"

int eng_kernels_avx512_lowbit(eng_type wtype, eng_kernel_set *ks)
{
    return lb_select(wtype, ks);
}

/*
 * kernels_lowbit_avx2.c - the AVX2 kernels of Q2_K, Q3_K, IQ4_NL and IQ4_XS: kernels_lowbit.h
 * compiled for AVX2 + FMA + F16C, the integer multiply-adds as madd + add.
 *
 * DESIGN. See kernels_lowbit.h; eng_kernels_avx2 asks eng_kernels_avx2_lowbit first.
 */
#define LB_ATTR __attribute__((target("avx2,fma,f16c")))
#define LB_MADD(acc, p, s) _mm256_add_epi32((acc), _mm256_madd_epi16((p), (s)))
#define LB_DOT4(acc, u, s)                                                                         \
    _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#include "kernels_lowbit.h"

int eng_kernels_avx2_lowbit(eng_type wtype, eng_kernel_set *ks)
{
    return lb_select(wtype, ks);
}

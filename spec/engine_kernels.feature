Feature: Engine tensor types and kernels
  The engine reads tensors in their GGUF types, dequantizes them bit-exactly, quantizes
  weights and activations with the reference algorithms, and dots weight rows with prepared
  activations using a scalar kernel or AVX2 / AVX-512 kernels chosen at run time.

  # ---- types and conversions (tests/unit/test_engine_quant.c) ----

  Scenario Outline: Type traits follow the GGUF block sizes
    When the traits of <type> are read
    Then a block holds <elements> elements in <bytes> bytes
    And a row of 4096 elements takes <row> bytes
    And the engine reports it as supported: <supported>

    Examples:
      | type | elements | bytes | row  | supported |
      | f32  | 1        | 4     | 16384| yes       |
      | f16  | 1        | 2     | 8192 | yes       |
      | bf16 | 1        | 2     | 8192 | yes       |
      | q4_0 | 32       | 18    | 2304 | yes       |
      | q4_1 | 32       | 20    | 2560 | yes       |
      | q5_0 | 32       | 22    | 2816 | yes       |
      | q5_1 | 32       | 24    | 3072 | yes       |
      | q8_0 | 32       | 34    | 4352 | yes       |
      | q8_1 | 32       | 36    | 4608 | no        |
      | q2_k | 256      | 84    | 1344 | yes       |
      | q3_k | 256      | 110   | 1760 | yes       |
      | q4_k | 256      | 144   | 2304 | yes       |
      | q5_k | 256      | 176   | 2816 | yes       |
      | q6_k | 256      | 210   | 3360 | yes       |
      | q8_k | 256      | 292   | 4672 | no        |
      | iq4_nl | 32     | 18    | 2304 | yes       |
      | iq4_xs | 256    | 136   | 2176 | yes       |
      | iq2_xxs | 256   | 66    | 1056 | no        |

  Scenario: Type names parse in either case
    When "q4_k" and "Q4_K" are parsed
    Then both give type 12
    And "q4_k_m" and "" give -1
    And type 99 is named "unknown"
    And a row of 100 Q4_0 elements (not whole blocks) takes 0 bytes

  Scenario: Half-precision conversion is exact and rounds to nearest even
    Then every one of the 65536 halves converts to float and back unchanged (NaNs stay NaN)
    And 0x3C00 is 1.0, 0xC000 is -2.0, 0x0001 is 2^-24, 0x7BFF is 65504, 0x7C00 is infinity
    And 1 + 2^-11 rounds down to 0x3C00 and 1 + 3 * 2^-11 rounds up to 0x3C02
    And 65519 gives 0x7BFF and 65520 gives infinity
    And 1 million random floats convert as the CPU's F16C instruction does

  Scenario: BF16 conversion rounds to nearest even
    Then 0x3F80 is 1.0 and 0xC0A0 is -5.0
    And 1 + 2^-8 rounds down to 0x3F80 and 1 + 3 * 2^-8 rounds up to 0x3F82
    And a NaN stays a NaN

  Scenario: Float rows dequantize to their values
    Given an F32 row 1.5, -2.25 and F16 halves 0x3C00, 0xC000, 0x0001, 0x3555 and BF16 0x3F80, 0xC0A0
    Then they read 1.5, -2.25; 1, -2, 2^-24, 0.33325195; 1, -5

  Scenario: Q8_0 dequantization matches the block definition
    Given a Q8_0 block with d = 0.5 (0x3800) and codes j - 16 for j = 0..31
    Then element j is (j - 16) * 0.5

  Scenario: Q4_0 dequantization matches the block definition
    Given a Q4_0 block with d = 2.0 (0x4000) and byte j = (j mod 16) | (15 - j) << 4
    Then element j is ((j mod 16) - 8) * 2 and element j + 16 is ((15 - j) - 8) * 2

  Scenario: Q4_1 dequantization matches the block definition
    Given a Q4_1 block with d = 0.5, m = -1.0 and byte j = j | (15 - j) << 4
    Then element j is j * 0.5 - 1 and element j + 16 is (15 - j) * 0.5 - 1

  Scenario: Q5_0 dequantization matches the block definition
    Given a Q5_0 block with d = 1.0, qh = 0xAAAA5555 and byte j = j | (15 - j) << 4
    Then element j is (nibble | bit j of qh << 4) - 16, so element 0 is 0 - 16 + 16 = 0 and element 1 is 1 - 16 = -15

  Scenario: Q5_1 dequantization matches the block definition
    Given a Q5_1 block with d = 0.25, m = 2.0, qh = 0xAAAA5555 and byte j = j | (15 - j) << 4
    Then element j is (nibble | bit j of qh << 4) * 0.25 + 2, so element 0 is 6 and element 16 is 5.75

  Scenario: Q4_K dequantization matches the block definition
    Given a Q4_K block with d = 1, dmin = 0.5, scales 1 2 3 63 17 33 48 62 and mins 0 5 63 10 20 40 61 1 packed as 41 82 C3 FF 40 85 FF 0A 41 81 D0 1E, and qs[i] = i
    Then element 64c + l is sc[2c] * (qs[32c + l] & 15) - 0.5 * m[2c] and element 64c + 32 + l uses the high nibble with sc[2c + 1], m[2c + 1]
    And elements 1, 32, 200, 255 are 1, -2.5, 353.5, 433.5

  Scenario: Q5_K dequantization matches the block definition
    Given the Q4_K block above with qh[l] = 37 * l mod 256
    Then sub-block j takes bit 4 of its codes from bit j of qh[l]
    And elements 1, 63, 200 are 17, 31.5, 353.5

  Scenario: Q6_K dequantization matches the block definition
    Given a Q6_K block with d = 0.5, scales 1 -1 2 -2 3 -3 4 -4 5 -5 6 -6 7 -7 127 -128, ql[i] = 7i mod 256 and qh[i] = 13i mod 256
    Then element e is 0.5 * scale[e / 16] * (6-bit code - 32)
    And elements 0, 1, 16, 128, 255 are -16, -4.5, 16, -80, 1600

  Scenario: Q2_K dequantization matches the block definition
    Given a Q2_K block with d = 0.5, dmin = 0.25, scales[k] = (k mod 15 + 1) | k << 4 and qs[i] = 29i + 7 mod 256
    Then element 128h + 32j + l is 0.5 * (scale of e / 16) * (bits 2j..2j+1 of qs[32h + l]) - 0.25 * (min of e / 16)
    And elements 0, 33, 255 are 1.5, 1, -3.75

  Scenario: Q3_K dequantization matches the block definition
    Given a Q3_K block with d = 0.25, hmask[l] = 37l + 11, qs[i] = 29i + 7 and 6-bit scales 13k + 5 mod 64
    Then element 128h + 32j + l is 0.25 * (scale - 32) * (2-bit code - (bit 4h + j of hmask[l] ? 0 : 4))
    And elements 0, 40, 200 are -20.25, -0.75, -1

  Scenario: IQ4_NL dequantization matches the block definition
    Given an IQ4_NL block with d = 0.5 and byte j = j | (15 - j) << 4
    Then element j is 0.5 * kvalues[j] and element j + 16 is 0.5 * kvalues[15 - j]
    And elements 0, 15, 31 are -63.5, 56.5, -63.5

  Scenario: IQ4_XS dequantization matches the block definition
    Given an IQ4_XS block with d = 0.5, sub-block scales 8 ib + 5 and qs[i] = 29i + 7
    Then element 32 ib + j is 0.5 * (scale - 32) * kvalues[nibble of qs[16 ib + j mod 16]]
    And elements 0 and 255 are 135 and -319

  Scenario: Q4_0 quantization picks the reference codes
    Given the block x_j = j - 16 for j = 0..31
    Then d is 2.0 (the largest magnitude, -16, maps to code 0)
    And x = -15 gets code 1, x = -1 gets code 8, x = 0 gets code 8 and x = 15 gets code 15

  Scenario: Q8_0 quantization rounds half away from zero
    Given the block with x_0 = 127 and x_1 = 2.5, x_2 = -2.5, x_3 = 0.4 and the rest 0
    Then d is 1.0 and the codes are 127, 3, -3, 0

  Scenario Outline: Quantizing random rows keeps the error within the type's bound
    Given 65536 normally distributed values (seed 42)
    When they are quantized to <type> and dequantized
    Then the RMS error over the RMS value is below <bound> (measured <measured>)

    Examples:
      | type | bound | measured |
      | f16  | 0.0005| 0.0002   |
      | bf16 | 0.004 | 0.0017   |
      | q8_0 | 0.008 | 0.0054   |
      | q8_k | 0.01  | 0.0070   |
      | q4_0 | 0.10  | 0.086    |
      | q4_k | 0.08  | 0.071    |
      | q6_k | 0.02  | 0.018    |
      | q5_k | 0.04  | 0.036    |
      | q3_k | 0.17  | 0.154    |
      | q2_k | 0.31  | 0.283    |
      | iq4_nl | 0.085 | 0.077  |
      | iq4_xs | 0.085 | 0.078  |

  Scenario: An all-zero row quantizes to exact zeros in every target type
    Given 512 zeros
    Then quantizing to f16, bf16, q8_0, q4_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs and q8_k gives back 512 exact zeros

  Scenario: A constant row comes back within 0.1 percent in every block type
    Given 256 copies of 0.37, and 256 copies of -0.37
    Then q8_0, q4_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs and q8_k give each value back within 0.1 percent

  Scenario: Large and small magnitudes keep the error bound
    Given the random rows scaled by 10000 and by 0.01
    Then every type stays within its bound from the table above

  Scenario: A single outlier is kept and disturbs only its own block
    Given 512 normal values with x_37 = 100
    Then the outlier comes back within 0.5 in q8_0, q4_0, q4_k and q6_k
    And the blocks without it have the bytes they have without the outlier

  Scenario: Block scales beyond the half-precision range saturate instead of becoming infinite
    Given 256 values alternating -1e9 and 1e9
    Then q8_0, q4_0, q4_k and q6_k dequantize to finite values with the right signs
    And q8_0 gives +-65504 * 127

  Scenario: A NaN quantizes to the code of zero
    Given a row with one NaN, as a broken model's activations can hold (found by fuzz_model under UBSan)
    Then q8_0 and q4_0 give it the code of zero and the other values their codes

  # ---- kernels (tests/unit/test_engine_kernels.c) ----

  Scenario: Forcing an instruction set is clamped to what the CPU has
    When avx512 is forced
    Then the set chosen is the best the CPU has, at most avx512
    And forcing scalar chooses scalar, and the names are "scalar", "avx2" and "avx512"

  Scenario Outline: The activation format follows the weight type
    Then weights of type <weights> dot activations of type <activations>

    Examples:
      | weights | activations |
      | f32     | f32         |
      | f16     | f32         |
      | bf16    | f32         |
      | q8_0    | q8_0        |
      | q4_0    | q8_0        |
      | q4_1    | q8_0        |
      | q5_0    | q8_0        |
      | q5_1    | q8_0        |
      | q4_k    | q8_k        |
      | q5_k    | q8_k        |
      | q6_k    | q8_k        |
      | q2_k    | q8_k        |
      | q3_k    | q8_k        |
      | iq4_nl  | q8_0        |
      | iq4_xs  | q8_k        |

  Scenario: Every fast kernel matches its scalar twin
    Given random weights of every supported type with 7 rows of n = 256, 512, 768 and 4352 elements
    And 1, 2, 3, 4, 5 and 9 activation rows
    When eng_matmul runs forced to scalar, to avx2 and to avx512
    Then every result matches the scalar one within 5e-7 of the sum of |w * x| (float types 2e-6)

  Scenario: The dot product approximates the float dot product
    Given random weights of every supported type and normal activations (n = 2048)
    When eng_vec_dot runs on every instruction set
    Then it is within 1e-5 (float activations) or 0.01 (8-bit activations) of |w| * |x| from the dot product of the dequantized weights with the float activations

  Scenario: Matrix products write only their rows and columns
    Given 10 weight rows, 5 activation rows and an output with a row stride of 13
    When rows 3 to 8 are computed
    Then Y[t * 13 + r] is the dot of row r and activation t for r in 3..7 and every other output keeps its sentinel

  Scenario: Unsupported weight types produce zeros
    When an IQ2_XXS matrix is multiplied
    Then every output is 0 and eng_vec_dot returns 0

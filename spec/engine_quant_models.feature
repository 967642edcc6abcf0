Feature: Low-bit model files
  rbee-gguf quantize (eng_quantize_file) writes the mixes people download: q2_k, q3_k_s,
  q3_k_m, iq4_nl and iq4_xs, with llama.cpp's per-tensor rules. The engine runs them close to
  the F16 original. (tests/unit/test_engine_quant_models.c)

  Scenario: Low-bit variants of the bundled model stay close to F16
    Given the bundled model (rows of 256; ffn_down's rows of 688 stay F16) quantized to each type
    When the engine runs the reference prompt and its 32-token greedy continuation (36 positions) in it and in F16
    Then the dequantized matrices of the main type, the mean KL(F16 || quantized) and the top-1 agreement stay within:
      | type   | weight rmse (measured) | KL bound (measured) | top-1 at least (measured) |
      | q2_k   | 0.31 (0.283)           | 0.03 (0.0166)       | 90% (36/36)               |
      | q3_k_s | 0.17 (0.153)           | 0.015 (0.0087)      | 90% (36/36)               |
      | q3_k_m | 0.17 (0.153)           | 0.006 (0.0031)      | 90% (36/36)               |
      | iq4_nl | 0.085 (0.077)          | 0.003 (0.0015)      | 90% (36/36)               |
      | iq4_xs | 0.085 (0.077)          | 0.003 (0.0017)      | 90% (36/36)               |

  Scenario: Low-bit variants of the random GQA model stay close to F16
    Given the random GQA fixture (rows of 64: the K-quant mixes fall back to Q8_0, IQ4_NL applies) quantized to each type
    When the engine runs the same 36 positions in it and in F16
    Then the fallbacks stay within KL 0.003 (measured 0.0015) and 75% top-1 (32/36)
    And iq4_nl stays within weight rmse 0.085 (0.077), KL 0.25 (0.16) and 50% top-1 (20/36), where q4_0 measures KL 0.195 and 15/36 on this sensitive random model

  Scenario: The Q3_K_M, Q3_K_S, Q2_K and IQ4 mixes follow llama.cpp's rules
    When the bundled model (6 layers, 8 heads on 4 KV heads, tied head) is quantized to q3_k_m, q3_k_s, q2_k, iq4_nl and iq4_xs
    Then token_embd.weight (the head) is Q6_K and the norms F32 in each
    And q3_k_m has attn_v Q5_K in layers 0-1 and Q4_K after, attn_output Q4_K, the rest Q3_K
    And q2_k has attn_v and attn_output Q3_K (2 heads per KV head, so not Q4_K), the rest Q2_K
    And q3_k_s, iq4_nl and iq4_xs use their type for every other matrix
    And ffn_down's rows of 688 fall back to F16 (not even whole Q8_0 blocks)
    And an unknown type is refused with the list of known ones

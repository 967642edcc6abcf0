Feature: Engine tokenizers
  The engine builds its tokenizer from a GGUF file's tokenizer.ggml.* metadata:
  SentencePiece with scores ("llama") and byte-level BPE with merges and the model's
  pre-tokenizer ("gpt2"). Its ids match llama.cpp's reference outputs, kept beside the
  vocabulary files in ../shared/data/tokenizer/ (ggml-vocab-NAME.gguf, .inp with the texts
  separated by "\n__ggml_vocab_test__\n", .out with one line of ids per text, no BOS,
  special-token text not parsed). Without that folder the suite that needs it prints one SKIP
  line and ctest reports it as skipped.
  An incremental detokenizer turns ids back into text that is always valid UTF-8.

  Scenario: SentencePiece tokenization matches the phi-3 reference ids
    Given ggml-vocab-phi-3.gguf (tokenizer "llama", 32064 pieces)
    When each of its 46 reference texts is tokenized without BOS
    Then all 46 id lists equal the reference, e.g. "Hello world" gives 15043 3186
      and " Hello world" gives 29871 15043 3186

  Scenario: GPT-2 byte-level tokenization matches the gpt-2 reference ids
    Given ggml-vocab-gpt-2.gguf (tokenizer "gpt2", pre-tokenizer "gpt-2", 50257 pieces)
    When each of its 46 reference texts is tokenized
    Then all 46 id lists equal the reference, e.g. "Hello world" gives 15496 995

  Scenario: Qwen2 tokenization matches the qwen2 reference ids
    Given ggml-vocab-qwen2.gguf (tokenizer "gpt2", pre-tokenizer "qwen2", 151936 pieces)
    When each of its 46 reference texts is tokenized
    Then all 46 id lists equal the reference, e.g. "Hello world" gives 9707 1879

  Scenario: Decoding the reference texts gives them back
    Given the ids of every reference text of the three files
    When they are decoded from the start of the text
    Then every one of the 138 texts comes back byte for byte

  Scenario: The incremental detokenizer holds back split UTF-8 characters
    Given the phi-3 ids 243 162 169 156 (the bytes F0 9F A6 99 of "🦙")
    When they are pushed one at a time
    Then the first three pushes give "" and the fourth gives "🦙"
    And for every reference text of the three files each delta is valid UTF-8 and the deltas join to the text

  Scenario: Invalid byte sequences decode to U+FFFD
    Given the phi-3 byte tokens for FF, then F0 9F followed by "▁a", then a lone E2 at the end
    When they are decoded incrementally and flushed
    Then the text is "\uFFFD", then "\uFFFD a", then "\uFFFD" from the flush

  Scenario: Control tokens are not printed unless asked
    Given the phi-3 ids 1 (BOS "<s>") and 15043 ("▁Hello")
    When they are decoded from the start
    Then the text is "Hello"
    And with ENG_DETOK_SPECIAL the text is "<s>Hello"

  Scenario: The space SentencePiece prepends is dropped only at the start of the text
    Given the phi-3 id 15043 ("▁Hello")
    When it is decoded from the start of the text, the result is "Hello"
    And when it continues earlier text, the result is " Hello"

  Scenario: BOS is added only when requested
    Given phi-3 (add_bos_token true) and qwen2 (no add_bos_token)
    Then eng_tokenizer_add_bos is 1 for phi-3 and 0 for qwen2
    And "Hello" tokenizes to 1 15043 with ENG_TOK_ADD_BOS and to 15043 without

  Scenario: Special token text is matched only when parsing special tokens
    Given qwen2 and the text "<|im_start|>user"
    When it is tokenized with ENG_TOK_PARSE_SPECIAL the ids are 151644 872
    And without it the ids do not contain 151644 and decode back to the text
    And phi-3's user-defined token "</s>" (id 2) is matched either way

  Scenario: End-of-generation tokens are recognised
    Given qwen2
    Then 151643 ("<|endoftext|>") and 151645 ("<|im_end|>") end generation and 151644 does not
    And for phi-3 the EOT id is 32007 ("<|end|>") and it ends generation

  Scenario: Bytes that are not UTF-8 survive byte-level tokenization
    Given the gpt-2 tokenizer and the bytes FF FE "ab"
    When they are tokenized
    Then the tokens' bytes join to FF FE "ab" and the detokenizer prints "\uFFFD\uFFFDab"

  Scenario: Each reference vocabulary's chat tokens become single ids when parsing special tokens
    Given qwen2 and "<|im_start|>user\nHi<|im_end|>\n<|endoftext|>"
    Then with ENG_TOK_PARSE_SPECIAL the ids are 151644 872 198 13048 151645 198 151643
    Given phi-3 and "<|user|>\nHi<|end|>\n<|assistant|>"
    Then the ids are 32010 6324 32007 32001: the chat tokens eat the newline after them and "Hi" gets SentencePiece's space ("▁Hi")
    And phi-3's "<|endoftext|>Hello" gives 32000 15043, gpt-2's "Hi<|endoftext|>Hello" gives 17250 50256 15496
    And without the flag none of the control ids appear

  Scenario: A short id buffer reports the size needed
    Given "Hello world" for qwen2 (2 ids) and room for 1 id
    Then eng_tokenize returns RB_ETOOBIG with a count of 2

  Scenario: The qwen2 vocabulary loads in under one second
    When ggml-vocab-qwen2.gguf's tokenizer is loaded
    Then it takes less than 1000 ms

  Scenario: A file without a tokenizer is refused
    Given a GGUF file with only "general.name"
    Then loading fails with RB_ENOTFOUND and "no tokenizer: key 'tokenizer.ggml.model' is missing"
    And a file whose tokenizer.ggml.model is "bert" fails with RB_EUNSUPPORTED naming "bert"

  Scenario: The default and llama3 pre-tokenizers split words as llama.cpp's regexes do
    Given a byte-level BPE vocabulary made in the test: the 256 byte pieces, a few whole words and the merges "3 4", "1 2", "12 3", "4 5"
    When "12345" is tokenized with tokenizer.ggml.pre "default", and with "gpt-2"
    Then default splits the digits in threes ("123" "45") and gpt-2 keeps one word, merged to "12" "34" "5"
    When "Hello 12345 world!!\n\n" is tokenized with tokenizer.ggml.pre "llama-bpe"
    Then the words are "Hello" " " "123" "45" " world" "!!\n\n", each a single token (llama3 ignores merges for whole pieces)

  Scenario: Each pre-tokenizer splits tricky text into the words its regexes give
    Given a byte-level BPE vocabulary made in the test with tokenizer.ggml.pre set to each of llama-bpe, qwen2, deepseek-r1-qwen, qwen35, smollm, gpt-2, tekken, gpt-4o, default, falcon, deepseek-coder, deepseek-v3
    When texts with contractions and digit runs, CJK, whitespace runs with newlines, upper-case contractions, punctuation before newlines, camel case and a combining mark are split into words
    Then the words are those worked out by hand from the pre-tokenizer's regexes (49 texts), e.g. "I'm 12345 apples" is "I" "'m" " " "123" "45" " apples" for llama-bpe, digit by digit for qwen2, "I'm" " " "123" "45" " apples" for gpt-4o
    And tekken cuts "camelCase getHTTPResponse" into "camel" "Case" " get" "HTTPResponse"

  Scenario: Pre-tokenizer names select llama.cpp's settings
    Given the same vocabulary under the names llama.cpp accepts
    Then llama-bpe and falcon3 report "llama3", deepseek-r1-qwen reports "qwen2", starcoder "smollm", llama4 "gpt-4o"
    And a file without tokenizer.ggml.pre gets "default" (and a warning in the log)
    And llama3 and tekken advise a BOS and take a word that is a piece whole ("!!\n\n" without merges for it), the others do not

  Scenario: An unknown pre-tokenizer is refused, naming it and the supported ones
    Given the vocabulary with tokenizer.ggml.pre set to "mystery"
    Then loading fails with RB_EUNSUPPORTED and an error naming "mystery" and the supported pre-tokenizers

  Scenario: Special tokens are cut out longest first, control ones only when asked
    Given the vocabulary with the control token "<|x|>" and the user-defined token "<|x|>!"
    When "a<|x|>!b<|x|>" is tokenized with ENG_TOK_PARSE_SPECIAL the ids are "a", "<|x|>!", "b", "<|x|>"
    And without the flag "<|x|>!" is still one id and "<|x|>" is text that decodes back to itself

  Scenario: Gemma's SentencePiece settings: no space prefix, byte fallback, BOS
    Given a SentencePiece vocabulary laid out like Gemma's (<pad> <eos> <bos> <unk>, <start_of_turn> and <end_of_turn> as control tokens, byte tokens) with tokenizer.ggml.add_space_prefix false and add_bos_token true
    Then "Hi" is the piece "Hi" (without the key it is "▁Hi"), "é" is the byte tokens C3 A9
    And "<start_of_turn>user\nHi<end_of_turn>" with ENG_TOK_PARSE_SPECIAL and ENG_TOK_ADD_BOS is <bos> <start_of_turn> "user" <0x0A> "Hi" <end_of_turn>
    And <end_of_turn> is the EOT id and ends generation, and decoding from the start keeps a space the text had

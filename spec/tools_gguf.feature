Feature: Tools rbee-gguf
  rbee-gguf looks inside GGUF model files and runs their tokenizer. It exits 0 on success,
  1 when the work fails (a model it cannot open, bad input) with one line on stderr, and 2
  on usage errors.

  Scenario: rbee-gguf info lists metadata and tensors
    Given a written file with the key "general.name" = "tiny" and the f32 tensor "a" of 4 x 3
    When "rbee-gguf info FILE" runs
    Then it exits 0 and prints "version: 3", "general.name (str) = \"tiny\"", "f32", "4 x 3"
      and "total: 1 tensors, 12 elements, 48 bytes"

  Scenario: rbee-gguf reports a file it cannot open
    When "rbee-gguf info /nonexistent/x.gguf" runs
    Then it exits 1 and prints "rbee-gguf: cannot open model '/nonexistent/x.gguf': no such file or directory"
    And "rbee-gguf frobnicate" and "rbee-gguf tokenize" without a file exit 2

  Scenario: rbee-gguf tokenize prints the reference ids
    Given each of ggml-vocab-{phi-3,gpt-2,qwen2}.gguf in ../shared/data/tokenizer and its 46 reference texts
    When "rbee-gguf tokenize FILE" reads each text on standard input
    Then it exits 0 and prints the reference ids separated by spaces on one line, for all 138 texts

  Scenario: rbee-gguf tokenize honours --bos and --special
    Given ggml-vocab-qwen2.gguf and the text "<|im_start|>user"
    When "rbee-gguf tokenize FILE --special --bos" reads it
    Then it prints "151643 151644 872"
    And without the flags the output does not start with "151643" and does not contain "151644"
    And for ggml-vocab-phi-3.gguf "<|user|>\nHi<|end|>\n<|assistant|>" with "--special --bos" prints "1 32010 6324 32007 32001"
    And for ggml-vocab-gpt-2.gguf "Hi<|endoftext|>Hello" with "--special" prints "17250 50256 15496", without it no 50256

  Scenario: rbee-gguf chat-render prints the prompt a template makes
    Given messages.json with a system and a user message, and a template file that prints
      bos_token, the messages, eos_token and strftime_now('%d %b %Y')
    When "rbee-gguf chat-render MODEL --template t.jinja --today 2026-12-01 < messages.json" runs
    Then it exits 0 and prints exactly what chat_apply returns: no leading "<s>" (the tokenizer
      adds BOS), "</s>", "01 Dec 2026", and no newline added at the end
    And without --template it uses the model's tokenizer.chat_template, or ChatML when the
      model has none (the bundled model)

  Scenario: rbee-gguf chat-render reports bad input on one line
    When the template has a syntax error, the messages are not a JSON array, or the model
      does not exist
    Then it exits 1 with one line on stderr, the syntax error with its line and column
    And a malformed --today is a usage error (exit 2)

Feature: worker_openai
  The worker answers OpenAI's API (/v1/chat/completions, /v1/completions, /v1/models) on the
  same job queue as /v1/inference, in OpenAI's exact shapes, refusing what it cannot honour.

  Scenario: The models list holds the worker's one model
    When a client GETs /v1/models
    Then it gets {"object":"list","data":[{"id":<model ref>,"object":"model","owned_by":"rbee"}]}

  Scenario: A completion answers one text_completion with usage
    Given the prompt "In the beginning" and max_tokens 5 at temperature 0
    When it is POSTed to /v1/completions without stream
    Then one text_completion comes back with finish_reason "length" and 5 completion tokens

  Scenario: A streamed chat sends the role, the content, a finish chunk and DONE
    When a chat with one user message is POSTed with stream true and include_usage
    Then the first chunk's delta is the assistant role with empty content
    And content chunks follow, then an empty delta with a finish_reason, a usage chunk and [DONE]

  Scenario: Text parts are joined as llama.cpp joins them
    When a user message's content is the parts "In the" and "beginning"
    Then the prompt has as many tokens as with the content "In the\nbeginning"

  Scenario: Every unsupported field is a 400 naming it
    When a chat or completion carries tools, tool_choice, functions, logit_bias or another field
    Then the answer is 400 invalid_request_error with param set to that field

  Scenario: Bad types and values are a 400 naming the field
    When temperature is a string, max_tokens a fraction, stop a number or a content part an image
    Then the answer is 400 with param naming the field

  Scenario: n above 1 and a JSON response format are refused
    When n is 2 or response_format is {"type":"json_object"}
    Then the answer is 400 naming n or response_format

  Scenario: A prompt longer than the context is a 400 before any stream
    When the prompt has more tokens than the context holds
    Then the answer is 400 with code "context_length_exceeded" and param "prompt"
    And a max_tokens the context cannot hold after the prompt is a 400 with that code and param "max_tokens", naming how many tokens can be generated
    And without max_tokens the same prompt is served

  Scenario: Errors use OpenAI's shape
    When the body is not JSON
    Then the answer is {"error":{"message","type":"invalid_request_error","param":null,"code"}}

  Scenario: A full queue answers 503 in OpenAI's shape
    Given one slot, no queue, and the slot taken
    When a completion is POSTed
    Then the answer is 503 with error code "all_slots_busy" and Retry-After

  Scenario: OpenAI chunks arrive spread over the generation
    Given a streamed chat and a streamed completion of 200 tokens at temperature 0
    When the client records when each content chunk arrives
    Then the arrivals span at least half of the generation time the worker logs for the job

  Scenario: A model's chat template renders the prompt with its special tokens
    Given a model with llama.cpp's phi-3 vocabulary and its tokenizer.chat_template
    When a chat with one user message is POSTed
    Then prompt_tokens is the count of "<|user|>\nHello<|end|>\n<|assistant|>\n" tokenized with
    BOS and special tokens parsed: the template's BOS is not doubled, its markers are single tokens

  Scenario: Errors the HTTP layer answers on the OpenAI routes are in OpenAI's shape
    Given a worker in network mode
    When /v1/chat/completions is posted without a token, with a wrong one, or with a body that is not JSON by content type
    Then the 401 and 415 answers are {"error":{"message","type":"invalid_request_error","param":null,"code"}} with codes missing_api_key, invalid_api_key and unsupported_media_type
    And /v1/inference keeps the project's envelope

Feature: Chat templates
  A model's GGUF file carries its chat template (tokenizer.chat_template), a Jinja program
  that turns a conversation into the prompt text the model was trained on. rb_chat runs it
  as Hugging Face's apply_chat_template does (jinja2 with trim_blocks and lstrip_blocks;
  globals messages, bos_token, eos_token, add_generation_prompt, tools = none,
  raise_exception, strftime_now), and chat_apply adds what llama.cpp's server does on top.
  Ten real templates with four conversations each, as llama.cpp rendered them, are kept in
  ../shared/data/chat-templates/; without that folder the suite that needs it prints one
  SKIP line and ctest reports it as skipped. A construct rb_chat does not support fails by
  name; it never renders different text.

  Scenario: Every golden template renders its conversations byte for byte
    Given the ten templates in ../shared/data/chat-templates with their bos_token,
      eos_token, today and add_generation_prompt
    When each of their 40 conversations goes through chat_apply
    Then every prompt equals the golden one byte for byte

  Scenario: Cases the reference could not render fail here too
    Given a golden case that holds an error instead of a prompt
    When it goes through chat_apply
    Then chat_apply fails with a message

  Scenario: Every golden template parses and renders twice the same
    When each golden template is parsed once and rendered twice
    Then both renderings are the same text

  Scenario: Text and print tags render values as Python prints them
    When "{{ 1.5 }} {{ none }} {{ true }} {{ [1, 'a'] }}" is rendered
    Then the text is "1.5 None True [1, 'a']", and one trailing newline of a template is dropped

  Scenario: Trim_blocks and lstrip_blocks remove a block tag's line
    When a block tag stands alone on an indented line
    Then neither its indentation nor its newline reach the output

  Scenario: A minus sign strips whitespace on its side and a plus keeps it
    When "a  {%- if true -%}  b" is rendered
    Then the text is "ab", and "{%+" keeps the indentation lstrip_blocks would remove

  Scenario: Comments render nothing and follow the block whitespace rules
    When a comment stands alone on a line
    Then the line disappears

  Scenario: If, elif and else choose one branch
    When an if has elif and else branches
    Then only the first true branch renders

  Scenario: Loop variables count the iterations
    When a loop prints loop.index, index0, first, last, length, revindex, revindex0,
      previtem and nextitem
    Then they count as jinja2 counts

  Scenario: A for loop walks lists, dict items, strings and filters with if
    When loops run over a list, dict.items(), a string and "xs if cond"
    Then they see the items, the key-value pairs, the characters and the kept items

  Scenario: A for loop's else runs when nothing was iterated
    When a loop over an empty list has an else
    Then the else renders

  Scenario: Break and continue leave or skip an iteration
    When a loop over range(5) continues at 1 and breaks at 3
    Then it prints "02"

  Scenario: A set inside a loop does not leak and a namespace carries state out
    When a loop sets x and ns.a
    Then x outside the loop is unchanged and ns.a holds the loop's last value

  Scenario: A block set captures the text it renders
    When "{% set b %}inner{% endset %}" is rendered
    Then b holds "inner"

  Scenario: Macros take defaults and keyword arguments
    When a macro with a default is called positionally, with keywords and recursively
    Then each call returns its own text

  Scenario: Arithmetic follows Python and Jinja precedence
    When "-7 // 2", "-7 % 3", "7 / 2" and "'a' + x | upper" are rendered
    Then they give -4, 2, 3.5 and the filter binds before +

  Scenario: Comparisons, membership, logic and inline if
    When ==, <, chained <, in, not in, and, or, not and x if c else y are rendered
    Then they give Python's values

  Scenario: Attributes, subscripts and slices reach into values
    When messages[0]['content'], m.role, s[::-1], xs[1:] and s[1] are rendered
    Then they give the parts, counting characters, not bytes

  Scenario: Undefined values print nothing and are false but using them fails
    When an undefined name is printed, tested, iterated and added to a string
    Then it prints nothing, is false and empty, and the addition fails naming it

  Scenario: Tests classify values
    When defined, none, string, mapping, iterable, number, integer, boolean, odd,
      divisibleby, equalto and the comparison tests are applied
    Then they answer as jinja2's tests do

  Scenario: Tojson renders as json.dumps with ensure_ascii false
    When a dict with non-ASCII text is passed through tojson and tojson(indent=2)
    Then the text is json.dumps' with ", " and ": " separators and the characters as they are

  Scenario: String filters transform text
    When trim, default, upper, lower, title, capitalize, replace, indent, int, float,
      round and escape are applied
    Then each gives jinja2's result

  Scenario: Sequence filters pick, map and order items
    When first, last, list, map, select, reject, selectattr, rejectattr, items, unique,
      sort, reverse, join, batch, sum and max are applied
    Then each gives jinja2's result

  Scenario: String and dict methods work as in Python
    When strip, split, startswith, endswith, upper, lower, title, replace, get, keys,
      values and items are called
    Then each gives Python's result, and methods that change a value are refused

  Scenario: The globals a chat template expects are set
    When bos_token, eos_token, add_generation_prompt, tools and strftime_now('%d %b %Y')
      are rendered with today 2026-12-01
    Then they are "<s>", "</s>", True, None and "01 Dec 2026"

  Scenario: Raise_exception fails with the template's own message
    When a template calls raise_exception('System role not supported')
    Then rendering fails with RB_EINVAL and exactly that message

  Scenario: Syntax errors name the line and column
    When templates with a missing expression, an unclosed if, an unterminated string or
      mismatched brackets are parsed
    Then parsing fails with RB_EFORMAT and "line L, column C: <what>"

  Scenario: Runtime errors name the line and column
    When "{{ 'a' + 1 }}" on line 2 is rendered
    Then rendering fails with "line 2, column 10: can only concatenate str (not "int") to str"

  Scenario: Unsupported constructs fail by name
    When a template uses include, call, a recursive loop, % formatting or the dictsort filter
    Then it fails saying that construct is not supported

  Scenario: Chat_apply renders ChatML when the model has no template
    When chat_apply gets no template
    Then the prompt is <|im_start|>role\ncontent<|im_end|>\n per message and the assistant header

  Scenario: Chat_apply folds the system message when the template refuses it
    Given a template that raises on a system message
    When chat_apply renders a conversation that starts with one
    Then the system text is put before the first user message, joined by a newline

  Scenario: Chat_apply removes a leading BOS so it is not doubled
    When the rendered prompt starts with bos_token
    Then chat_apply returns it without that BOS, because the tokenizer adds it

  Scenario: Chat_apply joins text content parts
    When a message's content is a list of text parts
    Then the template sees one string, the parts joined by newlines, and other parts are refused

  Scenario: Messages that are not a JSON array are refused
    When chat_apply gets an object, or an array holding a number
    Then it fails with RB_EINVAL naming the problem

  Scenario: One parsed template renders from several threads at once
    When four threads render the same chat_template 200 times each
    Then every rendering is the same correct text

/*
 * test_chat_templates.c - the scenarios of spec/chat_templates.feature that need no data:
 * the Jinja language feature by feature, each with small templates and the exact text
 * jinja2 (trim_blocks, lstrip_blocks, as Hugging Face configures it) renders for them, the
 * errors with their line and column, and chat_apply's pipeline. The golden renderings of real
 * models' templates are in test_chat_templates_data.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "rb_test.h"

#define MSGS                                                                                       \
    "[{\"role\":\"system\",\"content\":\"Sys\"},{\"role\":\"user\",\"content\":\"Hi\"},"           \
    "{\"role\":\"assistant\",\"content\":\"Yo\"}]"

static json_t *parse_json(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    ck_assert_msg(j, "bad test JSON: %s", je.text);
    return j;
}

/* Renders src with messages (JSON text) and the test options; *err gets the error. */
static rb_err render(const char *src, const char *messages, char **out, char *err, size_t errlen)
{
    chat_template *t = NULL;
    chat_render_opts o = chat_render_opts_default();
    o.bos_token = "<s>";
    o.eos_token = "</s>";
    o.today = "2026-12-01";
    *out = NULL;
    rb_err rc = chat_template_parse(src, strlen(src), &t, err, errlen);
    if (rc == RB_OK) {
        json_t *m = parse_json(messages);
        rc = chat_template_render(t, m, &o, out, err, errlen);
        json_decref(m);
    }
    chat_template_free(t);
    return rc;
}

#define expect(src, want) expect_msgs(src, MSGS, want)
static void expect_msgs(const char *src, const char *messages, const char *want)
{
    char *out = NULL, err[512] = "";
    rb_err rc = render(src, messages, &out, err, sizeof err);
    ck_assert_msg(rc == RB_OK, "template %s: %s", src, err);
    ck_assert_msg(strcmp(out, want) == 0, "template %s:\n got: [%s]\nwant: [%s]", src, out, want);
    free(out);
}

/* The render fails with code rc and an error containing want. */
static void expect_error(const char *src, rb_err want_rc, const char *want)
{
    char *out = NULL, err[512] = "";
    rb_err rc = render(src, MSGS, &out, err, sizeof err);
    ck_assert_msg(rc == want_rc, "template %s: rc %d (%s), want %d", src, rc, err, want_rc);
    ck_assert_msg(strstr(err, want), "template %s:\n error: [%s]\n want: [%s]", src, err, want);
    ck_assert_ptr_null(out);
}

START_TEST(test_chat_templates__text_and_print_tags_render_values_as_python_prints_them)
{
    expect("a {{ 1 + 2 }} b", "a 3 b");
    expect("{{ 1 }} {{ 1.5 }} {{ 2.0 }} {{ 1e20 }} {{ 0.0001 }} {{ 1/3 }}",
           "1 1.5 2.0 1e+20 0.0001 0.3333333333333333");
    expect("{{ true }} {{ none }} {{ True }} {{ None }} {{ False }}", "True None True None False");
    expect("{{ [1, 'a', none, true] }} {{ {'k': 'v'} }} {{ (1, 2) }} {{ (1,) }}",
           "[1, 'a', None, True] {'k': 'v'} (1, 2) (1,)");
    expect("{{ \"quote ' here\" }} {{ [\"it's\"] }} {{ ['a\"b'] }} {{ ['\\n'] }}",
           "quote ' here [\"it's\"] ['a\"b'] ['\\n']");
    expect("{{ 'a\\tb\\n\\x41\\u00e9\\'\"' }}", "a\tb\nA\xc3\xa9'\"");
    expect("{{ \"a\" \"b\" }} {{ -1 }} {{ - 2 + 3 }}", "ab -1 1");
    expect("{% raw %}{{ not }}{% endraw %}", "{{ not }}");
    expect("{% raw %}\nx\n  {% endraw %}\ny", "\nx\ny");
    expect("x\n", "x"); /* one trailing newline is dropped, as jinja2 does */
    expect("a\r\nb", "a\nb");
}
END_TEST

START_TEST(test_chat_templates__trim_blocks_and_lstrip_blocks_remove_a_block_tag_s_line)
{
    expect("{% if true %}\n  yes\n{% endif %}\nx", "  yes\nx");
    expect("  {% if true %}\n  yes\n  {% endif %}\nx", "  yes\nx");
    expect("  {{ 'x' }}\n  {% if true %}y{% endif %}\n\t{% if true %}\nt\n\t{%- endif %}",
           "  x\nyt");
    expect("{{ 'a' }}  {% if 1 %}x{% endif %}", "a  x");
    expect("{% for a in [1,2] %}\n  {% for b in [3,4] %}\n    {{ a }}{{ b }}\n  {% endfor "
           "%}\n{% endfor %}\n",
           "    13\n    14\n    23\n    24\n");
}
END_TEST

START_TEST(test_chat_templates__a_minus_sign_strips_whitespace_on_its_side_and_a_plus_keeps_it)
{
    expect("a  {%- if true -%}  b  {%- endif -%}  c", "abc");
    expect("a\n  {{- 'b' -}}  \n c", "abc");
    expect("    {%- set x = 3 -%}\n    {{ x }}", "3");
    expect("a\n{%- if true %}\nb\n{% endif -%}\n  c", "ab\nc");
    expect("{%+ if true %}\n  k\n{%+ endif +%}\nz", "  k\n\nz");
    expect("  {%+ if true %}k{% endif %}", "  k");
}
END_TEST

START_TEST(test_chat_templates__comments_render_nothing_and_follow_the_block_whitespace_rules)
{
    expect("line1\n    {# a comment #}\nline2\n  {#- c -#}\nline3", "line1\nline2line3");
    expect("{# {{ x }} {% if %} #}ok", "ok");
    expect("a{# c #}  \nb", "a  \nb");
}
END_TEST

START_TEST(test_chat_templates__if_elif_and_else_choose_one_branch)
{
    expect("{% if x is not defined or x is none %}A{% elif x %}B{% else %}C{% endif %}", "A");
    expect("{% set x = 0 %}{% if x %}A{% elif x == 0 %}B{% else %}C{% endif %}", "B");
    expect("{% set x = 2 %}{% if x == 1 %}A{% elif x == 3 %}B{% else %}C{% endif %}", "C");
    expect("{% if true %}{% if false %}no{% else %}yes{% endif %}{% endif %}", "yes");
}
END_TEST

START_TEST(test_chat_templates__loop_variables_count_the_iterations)
{
    expect("{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.first }}/"
           "{{ loop.last }}/{{ loop.length }}/{{ loop.revindex }}/{{ loop.revindex0 }} "
           "{{ m.role }}\n{% endfor %}",
           "1/0/True/False/3/3/2 system\n2/1/False/False/3/2/1 user\n"
           "3/2/False/True/3/1/0 assistant\n");
    expect("{% for x in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }},{% endfor %}",
           "-2,1-3,2-,");
    expect("{% for a in [1,2] %}{% for b in 'xy' %}{{ loop.index }}{% endfor %}{{ loop.index "
           "}};{% endfor %}",
           "121;122;");
}
END_TEST

START_TEST(test_chat_templates__a_for_loop_walks_lists_dict_items_strings_and_filters_with_if)
{
    expect("{% for k, v in {'a': 1, 'b': [1, 2]}.items() %}{{ k }}={{ v }};{% endfor %}",
           "a=1;b=[1, 2];");
    expect("{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}", "ba");
    expect("{% for c in 'h\xc3\xa9llo' %}[{{ c }}]{% endfor %}", "[h][\xc3\xa9][l][l][o]");
    expect("{% for x in [1,2,3,4,5] if x is odd %}{{ x }}{{ loop.length }} {% endfor %}",
           "13 33 53 ");
    expect("{% for m in messages[::-1] %}{{ m.role[0] }}{% endfor %}", "aus");
    expect("{% for x in undefined_name %}x{% endfor %}.", ".");
}
END_TEST

START_TEST(test_chat_templates__a_for_loop_s_else_runs_when_nothing_was_iterated)
{
    expect("{% for x in [] %}a{% else %}empty{% endfor %}", "empty");
    expect("{% for x in [1] %}a{% else %}empty{% endfor %}", "a");
    expect("{% for x in [1, 2] if x > 5 %}a{% else %}none kept{% endfor %}", "none kept");
}
END_TEST

START_TEST(test_chat_templates__break_and_continue_leave_or_skip_an_iteration)
{
    expect("{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}"
           "{% break %}{% endif %}{{ i }}{% endfor %}",
           "02");
}
END_TEST

START_TEST(test_chat_templates__a_set_inside_a_loop_does_not_leak_and_a_namespace_carries_state_out)
{
    expect("{% set x = 1 %}{% for i in [1,2] %}{% set x = i * 10 %}{{ x }}{% endfor %} {{ x }}",
           "1020 1");
    expect("{% for i in [1] %}{% set inner = 1 %}{% endfor %}[{{ inner }}] [{{ i }}]", "[] []");
    expect("{% if true %}{% set leak = 'yes' %}{% endif %}{{ leak }}", "yes");
    expect("{% set ns = namespace(a=0, b='s') %}{% for i in [1,2,3] %}{% set ns.a = ns.a + i %}"
           "{% endfor %}{{ ns.a }} {{ ns.b }}",
           "6 s");
    expect("{% set ns = namespace() %}{% set ns.x = 'q' %}{{ ns.x }}", "q");
    expect("{% set a, b = 1, 2 %}{{ a }}{{ b }}", "12");
    expect_error("{% set x = 1 %}{% set x.y = 2 %}", RB_EINVAL, "not a namespace");
}
END_TEST

START_TEST(test_chat_templates__a_block_set_captures_the_text_it_renders)
{
    expect("{% set b %}inner {{ 1 }}{% endset %}[{{ b }}]", "[inner 1]");
    expect("{% filter upper %}abc {{ 1 }}{% endfilter %}", "ABC 1");
}
END_TEST

START_TEST(test_chat_templates__macros_take_defaults_and_keyword_arguments)
{
    expect("{% macro hi(name, p='!') %}Hi {{ name }}{{ p }}{% endmacro %}{{ hi('a') }} "
           "{{ hi('b', '?') }} {{ hi(name='c', p='.') }}",
           "Hi a! Hi b? Hi c.");
    expect("{% macro a(x) %}<{{ b(x) }}>{% endmacro %}{% macro b(y) %}[{{ y }}]{% endmacro %}"
           "{{ a(1) }}",
           "<[1]>");
    expect("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
           "{{ f(3) }}",
           "321");
    expect("{% macro m(x) %}{{ x }}{% endmacro %}[{{ m() }}]", "[]");
    expect_error("{% macro m(x) %}{% endmacro %}{{ m(1, 2) }}", RB_EINVAL,
                 "line 1, column 35: macro 'm' takes not more than 1 argument(s)");
    expect_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", RB_EINVAL,
                 "nested deeper than 64");
}
END_TEST

START_TEST(test_chat_templates__arithmetic_follows_python_and_jinja_precedence)
{
    expect("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}",
           "3 -4 1 2 3.5 1024");
    expect("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }}",
           "7 9 a1None ababab");
    expect("{{ [1, 2] + [3] }} {{ 'a' + 'b' }} {{ 3 - 1.5 }} {{ 10 // 4.0 }} {{ 2 ** -1 }} "
           "{{ true + 1 }}",
           "[1, 2, 3] ab 1.5 2.0 0.5 2");
    expect("{{ 'a' + 'x' | upper }} {{ -2 | abs }} {{ 0.1 + 0.2 }}", "aX 2 0.30000000000000004");
    expect("{{ '%s|%r|%5d|%-3s|%05.1f|%x|%%' % ('Ã©', 'a', 42, 'b', 2.25, 255) }} "
           "{{ '%s' % [1] }} {{ '%d items' % 3 }}",
           "Ã©|'a'|   42|b  |002.2|ff|% [1] 3 items");
    expect_error("{{ '%s %s' % 1 }}", RB_EINVAL, "not enough arguments for format string");
    expect_error("{{ 'abc' % 5 }}", RB_EINVAL, "not all arguments converted");
    expect_error("{{ 1 / 0 }}", RB_EINVAL, "line 1, column 6: division by zero");
    expect_error("{{ 9223372036854775807 + 1 }}", RB_EINVAL, "integer overflow");
}
END_TEST

START_TEST(test_chat_templates__comparisons_membership_logic_and_inline_if)
{
    expect("{{ 1 < 2 }} {{ 'a' == 'a' }} {{ 1 == 1.0 }} {{ 'x' in 'xyz' }} "
           "{{ 'q' not in ['a'] }} {{ 'a' in {'a': 1} }}",
           "True True True True True True");
    expect("{{ not 1 }} {{ 1 and 2 }} {{ 0 or 'z' }} {{ 1 < 2 < 3 }} {{ 3 < 2 < 5 }}",
           "False 2 z True False");
    expect("{{ 'y' if false else 'n' }} [{{ 'y' if false }}] {{ 1 if 0 else 2 if 0 else 3 }}",
           "n [] 3");
    expect("{{ not x is defined }} {{ not (1 == 2) }} {{ 'b' > 'a' }}", "True True True");
    expect("{{ {'role': 'user', 'content': 'Hi'} in messages }}", "True");
    expect_error("{{ 1 < 'a' }}", RB_EINVAL, "'<' not supported between instances of 'int'");
}
END_TEST

START_TEST(test_chat_templates__attributes_subscripts_and_slices_reach_into_values)
{
    expect("{{ messages[0]['content'] + 'x' }} [{{ messages[5] }}] [{{ messages[0].nothing }}]",
           "Sysx [] []");
    expect("{{ [1,2,3][1:] }} {{ 'hello'[::-1] }} {{ 'hello'[1:3] }} {{ [1,2,3][-1] }} "
           "{{ 'h\xc3\xa9llo'[1] }} {{ [1,2,3,4][::2] }} {{ 'abc'[:-1] }}",
           "[2, 3] olleh el 3 \xc3\xa9 [1, 3] ab");
    expect("{{ messages[1:] | length }} {{ (messages[::-1] | first).role }} {{ messages.0.role }}",
           "2 assistant system");
    expect("{% set d = {'a': {'b': 1}} %}{{ d.a.b }} {{ d['a']['b'] }}", "1 1");
    /* obj.name finds the method first, obj['name'] the key first, as jinja2 does */
    expect("{% set d = {'items': 1} %}{{ d['items'] }} {{ d.items() | list }}", "1 [('items', 1)]");
}
END_TEST

START_TEST(test_chat_templates__undefined_values_print_nothing_and_are_false_but_using_them_fails)
{
    expect("[{{ nothing }}] {{ nothing is defined }} {% if nothing %}x{% else %}y{% endif %}",
           "[] False y");
    expect("{{ nothing | length }} {{ nothing | default('d') }} {{ 'a' in nothing }}", "0 d False");
    expect("{{ none.attr is defined }} {{ nothing == nothing }}", "False True");
    expect("{{ [nothing, 1] }}", "[Undefined, 1]");
    expect_error("{{ undefined_thing.attr }}", RB_EINVAL, "'undefined_thing' is undefined");
    expect_error("{{ 'x' + nothing }}", RB_EINVAL, "line 1, column 8: 'nothing' is undefined");
    expect_error("{{ messages[0].nope.deeper }}", RB_EINVAL,
                 "'dict object' has no attribute 'nope'");
}
END_TEST

START_TEST(test_chat_templates__tests_classify_values)
{
    expect("{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 's' is string }} "
           "{{ {} is mapping }} {{ [] is iterable }} {{ 'a' is sequence }} {{ 1 is number }}",
           "False True True True True True True True");
    expect("{{ 1 is integer }} {{ 1.0 is integer }} {{ 1.0 is float }} {{ true is boolean }} "
           "{{ true is true }} {{ false is false }} {{ 1 is true }}",
           "True False True True True True False");
    expect("{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} "
           "{{ 'a' is equalto 'a' }} {{ 1 is eq 1 }} {{ x is not defined }} {{ 2 is gt 1 }}",
           "True True True False True True True True");
    expect("{{ 'x' is in ['x'] }} {{ 10 is ge 10 }} {{ 'abc' is lower }} {{ 'ABC' is upper }} "
           "{{ none is sameas none }} {{ [] is sameas [] }}",
           "True True True True True False");
    expect_error("{{ 1 is frobnicated }}", RB_EINVAL, "test 'frobnicated' is not supported");
    expect_error("{{ 3 is odd 1 }}", RB_EINVAL, "test 'odd' takes no argument");
}
END_TEST

START_TEST(test_chat_templates__tojson_renders_as_json_dumps_with_ensure_ascii_false)
{
    expect("{{ {'a': [1, '\xc3\xa9', none, true, 1.5]} | tojson }}",
           "{\"a\": [1, \"\xc3\xa9\", null, true, 1.5]}");
    expect("{{ {'a': {'b': []}, 'c': {}} | tojson(indent=2) }}",
           "{\n  \"a\": {\n    \"b\": []\n  },\n  \"c\": {}\n}");
    expect("{{ \"a\\\"b\\n\\x01\" | tojson }} {{ messages[1] | tojson }}",
           "\"a\\\"b\\n\\u0001\" {\"role\": \"user\", \"content\": \"Hi\"}");
    expect("{{ [1, [2]] | tojson(indent=4) }}", "[\n    1,\n    [\n        2\n    ]\n]");
    expect("{{ {'b': [1, {'z': 'x'}], 'a': 2} | tojson(separators=(',', ':')) }}|"
           "{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|"
           "{{ '\xc3\xa9\xf0\x9f\x98\x80' | tojson(ensure_ascii=true) }}",
           "{\"b\":[1,{\"z\":\"x\"}],\"a\":2}|{\"a\": 2, \"b\": 1}|\"\\u00e9\\ud83d\\ude00\"");
    expect_error("{{ nothing | tojson }}", RB_EINVAL, "'nothing' is undefined");
}
END_TEST

START_TEST(test_chat_templates__string_filters_transform_text)
{
    expect("[{{ '  x  ' | trim }}] {{ 'héé' | length }} {{ '' | default('d', true) }} "
           "[{{ '' | default('d') }}] {{ false | default('f', boolean=true) }}",
           "[x] 3 d [] f");
    expect("{{ 'aB' | upper }} {{ 'aB' | lower }} {{ 'hello world-x' | title }} "
           "{{ 'hELLO' | capitalize }} {{ 'aaa' | replace('a', 'b', 2) }} {{ '\xc3\x89' | lower }}",
           "AB ab Hello World-X Hello bba \xc3\xa9");
    expect("{{ 'x\\ny\\n\\nz' | indent(2) }}|{{ 'x\\ny' | indent(2, true) }}|"
           "{{ 'a\\n\\nb' | indent(2, blank=true) }}",
           "x\n  y\n\n  z|  x\n  y|a\n  \n  b");
    expect("{{ 1 | string }} {{ '42' | int }} {{ 'x' | int }} {{ '1.5' | float }} {{ -3 | abs }} "
           "{{ 2.5 | round }} {{ 3.14159 | round(2) }} {{ '<a>' | safe }} {{ '<&>' | escape }}",
           "1 42 0 1.5 3 2.0 3.14 <a> &lt;&amp;&gt;");
}
END_TEST

START_TEST(test_chat_templates__sequence_filters_pick_map_and_order_items)
{
    expect("{{ [3,1,2] | first }} {{ [3,1,2] | last }} {{ 'abc' | list }} {{ [1,2] | length }}",
           "3 2 ['a', 'b', 'c'] 2");
    expect("{{ messages | map(attribute='role') | list }} "
           "{{ messages | selectattr('role', 'equalto', 'user') | list | length }} "
           "{{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='content') | "
           "join(',') }}",
           "['system', 'user', 'assistant'] 1 Sys,Yo");
    expect("{{ [1,2,3,4] | select('odd') | list }} {{ [1,2,3,4] | reject('odd') | list }} "
           "{{ [0, 1, ''] | select | list }} {{ ['a ', ' b'] | map('trim') | list }}",
           "[1, 3] [2, 4] [1] ['a', 'b']");
    expect("{{ {'a': 1} | items | list }} {{ [1,2,1,'A','a'] | unique | list }} {{ [3,1,2] | sort "
           "}} {{ ['b','A','c'] | sort }} {{ [1,2,3] | reverse | list }} {{ [3,1] | "
           "sort(reverse=true) }}",
           "[('a', 1)] [1, 2, 'A'] [1, 2, 3] ['A', 'b', 'c'] [3, 2, 1] [3, 1]");
    expect(
        "{{ [{'n': 'b', 'v': 2}, {'n': 'a', 'v': 1}] | sort(attribute='n') | "
        "map(attribute='v') | list }} {{ [1, 'a', 2.5] | join }} {{ [1,2,3] | batch(2) | list }}",
        "[1, 2] 1a2.5 [[1, 2], [3]]");
    expect("{{ messages | selectattr('role', 'in', ['user', 'system']) | map(attribute='role') | "
           "join(',') }} {{ [1,2,3] | sum }} {{ [1,3,2] | max }}",
           "system,user 6 3");
    expect("{{ {'b': 1, 'A': 3, 'a': 2} | dictsort }} {{ {'b': 1, 'a': 2} | dictsort(by='value') "
           "}}",
           "[('A', 3), ('a', 2), ('b', 1)] [('b', 1), ('a', 2)]");
    /* select, map, unique, batch, items and reverse give one-pass generators, as in jinja2:
     * always true, consumed by a loop, no len(), not printable */
    expect(
        "{% if [] | select %}T{% endif %} {% set g = [1, 2, 3] | select %}{{ 2 in g }} "
        "{{ g | list }} {% for x in g %}{{ x }}{% endfor %}|{{ [1, 2] | map('string') | first }}",
        "T True [3] |1");
    expect_error("{{ [1, 2] | select | length }}", RB_EINVAL,
                 "object of type 'generator' has no len()");
    expect_error("{{ [1, 2] | select }}", RB_EINVAL,
                 "a generator (what select, map, unique, ... "
                 "return) cannot be printed; add '| list'");
    expect_error("{{ [1,2] | nosuchfilter }}", RB_EINVAL, "filter 'nosuchfilter' is not supported");
}
END_TEST

START_TEST(test_chat_templates__string_and_dict_methods_work_as_in_python)
{
    expect("{{ '  ab  '.strip() }}|{{ 'xxabxx'.strip('x') }}|{{ 'a b  c'.split() }}|"
           "{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(None, 1) }}|{{ 'a,b,c'.split(',', 1) }}",
           "ab|ab|['a', 'b', 'c']|['a', 'b', '', 'c']|['a', 'b c']|['a', 'b,c']");
    expect("{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith('bc') }}|{{ 'abc'.startswith(('x', "
           "'a')) }}|{{ 'abc'.upper() }}|{{ 'ABC'.lower() }}|{{ \"they're bill's\".title() }}|"
           "{{ 'aXa'.replace('a', 'y') }}|{{ '\\n\\nx'.lstrip() }}|{{ 'x\\n\\n'.rstrip('\\n') }}",
           "True|True|True|ABC|abc|They'Re Bill'S|yXy|x|x");
    expect("{% set d = {'a': 1, 'b': 2} %}{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 5) }} "
           "{{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }}",
           "1 None 5 ['a', 'b'] [1, 2] [('a', 1), ('b', 2)]");
    expect_error("{{ messages.append(1) }}", RB_EINVAL, "not allowed");
    expect("{{ 'a\\nb\\r\\nc\\n\\nd\\n'.splitlines() }} {{ '{} and {x}'.format(1, x='b') }} "
           "{{ '{1}{0}{{}}'.format('a', 'b') }}",
           "['a', 'b', 'c', '', 'd'] 1 and b ba{}");
    expect_error("{{ '{:>5}'.format(1) }}", RB_EINVAL, "format field '{:>5}' is not supported");
    expect_error("{{ 'x'.zfill(3) }}", RB_EINVAL, "'str object' has no attribute 'zfill'");
}
END_TEST

START_TEST(test_chat_templates__the_globals_a_chat_template_expects_are_set)
{
    expect("{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools }}|"
           "{{ tools is none }}|{{ messages | length }}",
           "<s>|</s>|True|None|True|3");
    expect(
        "{{ strftime_now('%d %b %Y') }} {{ strftime_now('%B %d, %Y') }} {{ strftime_now('%A') }}",
        "01 Dec 2026 December 01, 2026 Tuesday");
    expect("{% for i in range(2, 8, 3) %}{{ i }}{% endfor %} {{ dict(a=1) }}", "25 {'a': 1}");
}
END_TEST

START_TEST(test_chat_templates__raise_exception_fails_with_the_template_s_own_message)
{
    char *out = NULL, err[256] = "";
    ck_assert_int_eq(render("{% if messages[0].role == 'system' %}{{ raise_exception('System "
                            "role not supported') }}{% endif %}",
                            MSGS, &out, err, sizeof err),
                     RB_EINVAL);
    ck_assert_str_eq(err, "System role not supported");
    ck_assert_ptr_null(out);
}
END_TEST

START_TEST(test_chat_templates__syntax_errors_name_the_line_and_column)
{
    struct {
        const char *src, *want;
    } cases[] = {
        {"{% if %}{% endif %}", "line 1, column 7: expected an expression, got end of statement"},
        {"a\nb {% for x in %}{% endfor %}", "line 2, column 15: expected an expression"},
        {"{% if true %}\nno end", "line 2, column 7: unexpected end of template, expected 'endif' "
                                  "to close 'if' (line 1, column 4)"},
        {"x\n  {{ 1 + }}", "line 2, column 10: expected an expression, got end of print"},
        {"{% endfor %}", "line 1, column 4: unexpected 'endfor'"},
        {"{{ 'abc }}", "line 1, column 4: unterminated string"},
        {"{% frob %}", "line 1, column 4: unknown tag 'frob'"},
        {"{# open", "line 1, column 1: unterminated comment"},
        {"{{ a $ b }}", "line 1, column 6: unexpected character '$'"},
        {"{{ (1 }}", "line 1, column 7: unexpected '}', expected ')'"},
        {"{{ [1, 2 }}", "line 1, column 10: unexpected '}', expected ']'"},
        {"{{ 1 +}}", "line 1, column 7: expected an expression, got end of print statement"},
        {"x\n{{ 'a\\x00b' }}", "line 2, column 4: a NUL character in a string is not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        chat_template *t = NULL;
        char err[256] = "";
        ck_assert_int_eq(
            chat_template_parse(cases[i].src, strlen(cases[i].src), &t, err, sizeof err),
            RB_EFORMAT);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(err, cases[i].want), "template %s:\n error: [%s]\n want: [%s]",
                      cases[i].src, err, cases[i].want);
    }
}
END_TEST

START_TEST(test_chat_templates__runtime_errors_name_the_line_and_column)
{
    expect_error("ok\n  {{ 'a' + 1 }}", RB_EINVAL,
                 "line 2, column 10: can only concatenate str (not \"int\") to str");
    expect_error("{% for x in 5 %}{% endfor %}", RB_EINVAL,
                 "line 1, column 13: 'int' object is not iterable");
    expect_error("{{ foo() }}", RB_EINVAL, "'foo' is undefined");
    expect_error("{{ messages | length + 'x' }}", RB_EINVAL,
                 "unsupported operand type(s) for +: 'int' and 'str'");
}
END_TEST

START_TEST(test_chat_templates__unsupported_constructs_fail_by_name)
{
    struct {
        const char *src, *want;
    } parse_cases[] = {
        {"{% include 'x' %}", "tag 'include' is not supported"},
        {"{% call foo() %}{% endcall %}", "tag 'call' is not supported"},
        {"{% for x in y recursive %}{% endfor %}", "recursive loops are not supported"},
        {"{% extends 'base' %}", "tag 'extends' is not supported"},
    };
    for (size_t i = 0; i < sizeof parse_cases / sizeof *parse_cases; i++) {
        chat_template *t = NULL;
        char err[256] = "";
        ck_assert_int_eq(chat_template_parse(parse_cases[i].src, strlen(parse_cases[i].src), &t,
                                             err, sizeof err),
                         RB_EFORMAT);
        ck_assert_msg(strstr(err, parse_cases[i].want), "%s: %s", parse_cases[i].src, err);
    }
    expect_error("{{ '%c' % 65 }}", RB_EINVAL, "%c in % formatting is not supported");
    /* found by fuzz_chat: a width of 52 digits overflowed a long (UBSan) */
    expect_error("{{ ' %9999999999999999999999999999999999999999999999999999ss%' % 1 }}", RB_EINVAL,
                 "% format width or precision too large");
    expect_error("{{ '%.99999999999999999999999999f' % 1 }}", RB_EINVAL,
                 "% format width or precision too large");
    expect_error("{{ 'x' | wordwrap(3) }}", RB_EINVAL, "filter 'wordwrap' is not supported");
    expect_error("{{ {'a': 1} | tojson(separators=',') }}", RB_EINVAL,
                 "tojson separators must be two strings");
    expect_error("{{ cycler(1) }}", RB_EINVAL, "'cycler' is undefined");
}
END_TEST

/* Builds prefix + count * unit + suffix (caller frees). */
static char *repeat_text(const char *prefix, const char *unit, int count, const char *suffix)
{
    size_t n = strlen(prefix) + strlen(unit) * (size_t)count + strlen(suffix) + 1;
    char *s = malloc(n), *p = s;
    ck_assert_ptr_nonnull(s);
    p += sprintf(p, "%s", prefix);
    for (int i = 0; i < count; i++)
        p += sprintf(p, "%s", unit);
    sprintf(p, "%s", suffix);
    return s;
}

START_TEST(test_chat_templates__templates_that_nest_or_loop_without_bound_fail_with_a_limit)
{
    char *src = repeat_text("{{ ", "not ", 100000, "1 }}");
    expect_error(src, RB_EFORMAT, "nested deeper than 200");
    free(src);
    src = repeat_text("{{ ", "1 + ", 100000, "1 }}");
    expect_error(src, RB_EINVAL, "expressions and blocks nested deeper than 500");
    free(src);
    src = repeat_text("{{ ", "(", 70, "1 }}");
    expect_error(src, RB_EFORMAT, "brackets nested too deep");
    free(src);
    expect_error("{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}"
                 "{% endfor %}",
                 RB_EINVAL, "values nested deeper than 256");
    expect_error("{{ range(100000) | reverse | sort | length }}", RB_EINVAL,
                 "the template ran over 50000000 steps");
    expect_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                 RB_ETOOBIG, "the template needs more than 256 MiB of memory");
    expect_error("{{ 'x' * 100000000 }}", RB_EINVAL, "string repetition over the output limit");
}
END_TEST

static rb_err apply(const char *src, const char *messages, const char *bos, char **out, char *err,
                    size_t errlen)
{
    chat_render_opts o = chat_render_opts_default();
    o.bos_token = bos;
    o.today = "2026-12-01";
    json_t *m = parse_json(messages);
    rb_err rc = chat_apply(src, m, &o, out, err, errlen);
    json_decref(m);
    return rc;
}

START_TEST(test_chat_templates__chat_apply_renders_chatml_when_the_model_has_no_template)
{
    char *out = NULL, err[256] = "";
    ck_assert_int_eq(apply(NULL, MSGS, "", &out, err, sizeof err), RB_OK);
    ck_assert_str_eq(out, "<|im_start|>system\nSys<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                          "<|im_start|>assistant\nYo<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    ck_assert_int_eq(apply("", "[]", "", &out, err, sizeof err), RB_OK);
    ck_assert_str_eq(out, "<|im_start|>assistant\n");
    free(out);
}
END_TEST

START_TEST(test_chat_templates__chat_apply_folds_the_system_message_when_the_template_refuses_it)
{
    const char *gemma = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System "
                        "role not supported') }}{% endif %}{% for m in messages %}<{{ m.role }}>"
                        "{{ m.content }}{% endfor %}";
    char *out = NULL, err[256] = "";
    ck_assert_int_eq(apply(gemma, MSGS, "", &out, err, sizeof err), RB_OK);
    ck_assert_str_eq(out, "<user>Sys\nHi<assistant>Yo");
    free(out);
    /* a template that raises for another reason still fails, with its message */
    ck_assert_int_eq(apply("{{ raise_exception('no') }}", MSGS, "", &out, err, sizeof err),
                     RB_EINVAL);
    ck_assert_str_eq(err, "no");
    ck_assert_ptr_null(out);
}
END_TEST

START_TEST(test_chat_templates__chat_apply_removes_a_leading_bos_so_it_is_not_doubled)
{
    char *out = NULL, err[256] = "";
    ck_assert_int_eq(apply("{{ bos_token }}[{{ messages[0].content }}]{{ bos_token }}", MSGS, "<s>",
                           &out, err, sizeof err),
                     RB_OK);
    ck_assert_str_eq(out, "[Sys]<s>");
    free(out);
}
END_TEST

START_TEST(test_chat_templates__chat_apply_joins_text_content_parts)
{
    char *out = NULL, err[256] = "";
    ck_assert_int_eq(
        apply("{{ messages[0].content }}",
              "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"\"},"
              "{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}]",
              "", &out, err, sizeof err),
        RB_OK);
    ck_assert_str_eq(out, "a\nb");
    free(out);
    ck_assert_int_eq(apply("x",
                           "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                           "\"image_url\":{}}]}]",
                           "", &out, err, sizeof err),
                     RB_EUNSUPPORTED);
    ck_assert_msg(strstr(err, "only text content parts"), "%s", err);
}
END_TEST

START_TEST(test_chat_templates__messages_that_are_not_a_json_array_are_refused)
{
    char *out = NULL, err[256] = "";
    ck_assert_int_eq(apply("x", "{\"role\":\"user\"}", "", &out, err, sizeof err), RB_EINVAL);
    ck_assert_msg(strstr(err, "messages must be a JSON array"), "%s", err);
    ck_assert_int_eq(apply("x", "[1]", "", &out, err, sizeof err), RB_EINVAL);
    ck_assert_msg(strstr(err, "message 0 is not an object"), "%s", err);
    ck_assert_ptr_null(out);
}
END_TEST

typedef struct shared_render {
    chat_template *t;
    json_t *msgs;
    int ok;
} shared_render;

static void *render_many(void *arg)
{
    shared_render *s = arg;
    chat_render_opts o = chat_render_opts_default();
    s->ok = 1;
    for (int i = 0; i < 200; i++) {
        char *out = NULL, err[128];
        if (chat_template_render(s->t, s->msgs, &o, &out, err, sizeof err) ||
            strcmp(out, "system:Sys|user:Hi|assistant:Yo|"))
            s->ok = 0;
        free(out);
    }
    return NULL;
}

START_TEST(test_chat_templates__one_parsed_template_renders_from_several_threads_at_once)
{
    const char *src = "{% set ns = namespace(s='') %}{% for m in messages %}{% set ns.s = ns.s "
                      "+ m.role + ':' + m.content + '|' %}{% endfor %}{{ ns.s }}";
    char err[256];
    shared_render s[4];
    pthread_t th[4];
    chat_template *t = NULL;
    json_t *msgs = parse_json(MSGS);

    ck_assert_int_eq(chat_template_parse(src, strlen(src), &t, err, sizeof err), RB_OK);
    for (int i = 0; i < 4; i++) {
        s[i].t = t;
        s[i].msgs = msgs;
        ck_assert_int_eq(pthread_create(&th[i], NULL, render_many, &s[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert(s[i].ok);
    }
    chat_template_free(t);
    json_decref(msgs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chat_templates");
    TCase *tc = rbt_tcase(s, "language", 30);
    tcase_add_test(tc,
                   test_chat_templates__text_and_print_tags_render_values_as_python_prints_them);
    tcase_add_test(tc,
                   test_chat_templates__trim_blocks_and_lstrip_blocks_remove_a_block_tag_s_line);
    tcase_add_test(
        tc, test_chat_templates__a_minus_sign_strips_whitespace_on_its_side_and_a_plus_keeps_it);
    tcase_add_test(
        tc, test_chat_templates__comments_render_nothing_and_follow_the_block_whitespace_rules);
    tcase_add_test(tc, test_chat_templates__if_elif_and_else_choose_one_branch);
    tcase_add_test(tc, test_chat_templates__loop_variables_count_the_iterations);
    tcase_add_test(
        tc, test_chat_templates__a_for_loop_walks_lists_dict_items_strings_and_filters_with_if);
    tcase_add_test(tc, test_chat_templates__a_for_loop_s_else_runs_when_nothing_was_iterated);
    tcase_add_test(tc, test_chat_templates__break_and_continue_leave_or_skip_an_iteration);
    tcase_add_test(
        tc,
        test_chat_templates__a_set_inside_a_loop_does_not_leak_and_a_namespace_carries_state_out);
    tcase_add_test(tc, test_chat_templates__a_block_set_captures_the_text_it_renders);
    tcase_add_test(tc, test_chat_templates__macros_take_defaults_and_keyword_arguments);
    tcase_add_test(tc, test_chat_templates__arithmetic_follows_python_and_jinja_precedence);
    tcase_add_test(tc, test_chat_templates__comparisons_membership_logic_and_inline_if);
    tcase_add_test(tc, test_chat_templates__attributes_subscripts_and_slices_reach_into_values);
    tcase_add_test(
        tc, test_chat_templates__undefined_values_print_nothing_and_are_false_but_using_them_fails);
    tcase_add_test(tc, test_chat_templates__tests_classify_values);
    tcase_add_test(tc, test_chat_templates__tojson_renders_as_json_dumps_with_ensure_ascii_false);
    tcase_add_test(tc, test_chat_templates__string_filters_transform_text);
    tcase_add_test(tc, test_chat_templates__sequence_filters_pick_map_and_order_items);
    tcase_add_test(tc, test_chat_templates__string_and_dict_methods_work_as_in_python);
    tcase_add_test(tc, test_chat_templates__the_globals_a_chat_template_expects_are_set);
    tcase_add_test(tc, test_chat_templates__raise_exception_fails_with_the_template_s_own_message);

    tc = rbt_tcase(s, "errors", 30);
    tcase_add_test(tc, test_chat_templates__syntax_errors_name_the_line_and_column);
    tcase_add_test(tc, test_chat_templates__runtime_errors_name_the_line_and_column);
    tcase_add_test(tc, test_chat_templates__unsupported_constructs_fail_by_name);
    tcase_add_test(
        tc, test_chat_templates__templates_that_nest_or_loop_without_bound_fail_with_a_limit);

    tc = rbt_tcase(s, "apply", 30);
    tcase_add_test(tc,
                   test_chat_templates__chat_apply_renders_chatml_when_the_model_has_no_template);
    tcase_add_test(
        tc, test_chat_templates__chat_apply_folds_the_system_message_when_the_template_refuses_it);
    tcase_add_test(tc, test_chat_templates__chat_apply_removes_a_leading_bos_so_it_is_not_doubled);
    tcase_add_test(tc, test_chat_templates__chat_apply_joins_text_content_parts);
    tcase_add_test(tc, test_chat_templates__messages_that_are_not_a_json_array_are_refused);
    tcase_add_test(tc,
                   test_chat_templates__one_parsed_template_renders_from_several_threads_at_once);
    return rbt_run_counted(s, 33);
}

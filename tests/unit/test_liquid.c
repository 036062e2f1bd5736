/* Unit tests for cli/stackfile/liquid.c: the Liquid 4 subset stack files are rendered with
 * (reference/stack-file.md §8). Expected results follow the Liquid 4 gem in strict mode. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/stackfile/liquid.h"
#include "common/buf.h"

static json_t *vars_of(const char *vars)
{
    json_error_t je;
    json_t *v = json_loads(vars ? vars : "{}", 0, &je);
    cr_assert_not_null(v, "bad test vars %s: %s", vars, je.text);
    return v;
}

static void expect(const char *tmpl, const char *vars, const char *want)
{
    json_t *v = vars_of(vars);
    char *out = NULL;
    struct err e = ERR_INIT;
    enum status st = liquid_render(tmpl, v, &out, &e);
    json_decref(v);
    cr_assert_eq(st, ST_OK, "render of '%.200s' failed: %s", tmpl, e.msg);
    cr_assert_str_eq(out, want, "render of '%.200s'", tmpl);
    free(out);
}

static void expect_err(const char *tmpl, const char *vars, const char *want)
{
    json_t *v = vars_of(vars);
    char *out = NULL;
    struct err e = ERR_INIT;
    enum status st = liquid_render(tmpl, v, &out, &e);
    json_decref(v);
    cr_assert_eq(st, ST_INVALID, "render of '%.200s' should fail, gave '%.200s'", tmpl,
                 out ? out : "(null)");
    cr_assert_null(out);
    cr_assert_str_eq(e.msg, want, "error of '%s'", tmpl);
}

/* Any status, never a crash (ASan/UBSan builds check the memory side). */
static void no_crash(const char *tmpl, size_t len)
{
    char *copy = malloc(len + 1);
    memcpy(copy, tmpl, len);
    copy[len] = 0;
    json_t *v = vars_of("{\"a\":[1,2,{\"b\":\"x\"}],\"s\":\"str\",\"n\":3,\"h\":{\"k\":null}}");
    char *out = NULL;
    struct err e = ERR_INIT;
    enum status st = liquid_render(copy, v, &out, &e);
    cr_assert(st == ST_OK || st == ST_INVALID);
    if (st == ST_OK)
        cr_assert_not_null(out);
    else
        cr_assert(strncmp(e.msg, "Liquid ", 7) == 0, "message '%s'", e.msg);
    free(out);
    json_decref(v);
    free(copy);
}

/* ---- output ---- */

Test(liquid, plain_text_and_empty)
{
    expect("", NULL, "");
    expect("no tags here\n", NULL, "no tags here\n");
    expect("a { b } % c {", NULL, "a { b } % c {");
    expect("{{ }}x{{}}", NULL, "x");
}

Test(liquid, output_literals)
{
    expect("{{ 'single' }} {{ \"double\" }} {{ 12 }} {{ -3 }} {{ 1.5 }} {{ 2.0 }}", NULL,
           "single double 12 -3 1.5 2.0");
    expect("[{{ nil }}][{{ null }}][{{ true }}][{{ false }}][{{ empty }}][{{ blank }}]", NULL,
           "[][][true][false][][]");
    expect("{{ (1..3) }}", NULL, "1..3");
}

Test(liquid, output_values_like_ruby)
{
    const char *v = "{\"i\":42,\"f\":1.5,\"g\":2.0,\"big\":1e20,\"small\":0.00001,"
                    "\"tiny\":0.0001,\"n\":null,\"t\":true,\"arr\":[1,[2,\"x\"],null,2.5],"
                    "\"h\":{\"a\":1,\"b\":[1,null],\"c\":\"q\\\"x\",\"d\":{\"e\":false}}}";
    expect("{{ i }}|{{ f }}|{{ g }}|{{ big }}|{{ small }}|{{ tiny }}", v,
           "42|1.5|2.0|1.0e+20|1.0e-05|0.0001");
    expect("[{{ n }}]{{ t }}", v, "[]true");
    expect("{{ arr }}", v, "12x2.5");
    expect("{{ h }}", v, "{\"a\"=>1, \"b\"=>[1, nil], \"c\"=>\"q\\\"x\", \"d\"=>{\"e\"=>false}}");
}

Test(liquid, lookups)
{
    const char *v = "{\"a\":{\"b\":{\"c\":\"deep\"},\"size\":\"own\"},\"l\":[10,20,30],"
                    "\"s\":\"h\u00e9llo\",\"k\":\"b\",\"i\":1,\"e\":[],\"my-var\":5}";
    expect("{{ a.b.c }} {{ a['b'].c }} {{ a[\"b\"][\"c\"] }} {{ a[k].c }}", v,
           "deep deep deep deep");
    expect("{{ l[0] }} {{ l[i] }} {{ l[-1] }} [{{ l[7] }}]", v, "10 20 30 []");
    expect("{{ l.size }} {{ l.first }} {{ l.last }} {{ s.size }} {{ a.size }}", v, "3 10 30 5 own");
    expect("{{ a.b.size }} [{{ e.first }}] {{ my-var }}", v, "1 [] 5");
    expect("{% assign p = a.b | size %}{{ p }}", v, "1");
}

Test(liquid, null_values_are_defined)
{
    expect("[{{ x }}]{% if x %}T{% else %}F{% endif %}", "{\"x\":null}", "[]F");
}

/* ---- truthiness and operators ---- */

Test(liquid, truthiness_table)
{
    const char *v = "{\"n\":null,\"f\":false,\"t\":true,\"z\":0,\"es\":\"\",\"sf\":\"false\","
                    "\"ea\":[],\"eh\":{},\"zf\":0.0}";
    const char *tmpl = "{% if n %}1{% endif %}{% if f %}2{% endif %}{% if t %}3{% endif %}"
                       "{% if z %}4{% endif %}{% if es %}5{% endif %}{% if sf %}6{% endif %}"
                       "{% if ea %}7{% endif %}{% if eh %}8{% endif %}{% if zf %}9{% endif %}"
                       "{% if empty %}E{% endif %}{% if nil %}N{% endif %}";
    expect(tmpl, v, "3456789E");
    expect("{% unless n %}a{% endunless %}{% unless t %}b{% endunless %}", v, "a");
}

Test(liquid, comparison_operators)
{
    const char *v = "{\"i\":3,\"f\":3.0,\"s\":\"3\",\"str\":\"abc\",\"l\":[1,\"two\"],"
                    "\"h\":{\"k\":1},\"n\":null}";
    expect("{% if i == 3 %}a{% endif %}{% if i == f %}b{% endif %}{% if i == s %}X{% endif %}"
           "{% if i != s %}c{% endif %}{% if i <> 4 %}d{% endif %}",
           v, "abcd");
    expect("{% if i < 4 %}a{% endif %}{% if i > 2 %}b{% endif %}{% if i <= 3 %}c{% endif %}"
           "{% if i >= 3.5 %}X{% endif %}{% if 'abc' < 'abd' %}d{% endif %}"
           "{% if n < 1 %}X{% endif %}{% if l > 1 %}X{% endif %}",
           v, "abcd");
    expect("{% if str contains 'b' %}a{% endif %}{% if str contains 'z' %}X{% endif %}"
           "{% if l contains 'two' %}b{% endif %}{% if l contains 1 %}c{% endif %}"
           "{% if l contains '1' %}X{% endif %}{% if h contains 'k' %}d{% endif %}"
           "{% if n contains 'x' %}X{% endif %}{% if s contains 3 %}e{% endif %}",
           v, "abcde");
    expect("{% if l == l %}a{% endif %}{% if h == h %}b{% endif %}{% if n == nil %}c{% endif %}", v,
           "abc");
}

Test(liquid, empty_and_blank)
{
    const char *v = "{\"es\":\"\",\"ws\":\"  \",\"ea\":[],\"eh\":{},\"s\":\"x\",\"n\":null,"
                    "\"a\":[1]}";
    expect("{% if es == empty %}a{% endif %}{% if ea == empty %}b{% endif %}"
           "{% if eh == empty %}c{% endif %}{% if s == empty %}X{% endif %}"
           "{% if n == empty %}X{% endif %}{% if a != empty %}d{% endif %}"
           "{% if empty == es %}e{% endif %}",
           v, "abcde");
    expect("{% if n == blank %}a{% endif %}{% if ws == blank %}b{% endif %}"
           "{% if ea == blank %}c{% endif %}{% if s == blank %}X{% endif %}",
           v, "abc");
}

Test(liquid, and_or_right_to_left)
{
    /* Liquid: `false and true or true` is false and (true or true) */
    expect("{% if false and true or true %}T{% else %}F{% endif %}", NULL, "F");
    expect("{% if true or false and false %}T{% else %}F{% endif %}", NULL, "T");
    expect("{% if a and b or c %}T{% else %}F{% endif %}", "{\"a\":1,\"b\":false,\"c\":1}", "T");
    expect("{% if 1 == 1 and 2 > 1 and 'x' contains 'x' %}T{% endif %}", NULL, "T");
    /* evaluation stops once the result is known: the undefined name is never looked up */
    expect("{% if false and nope %}T{% else %}F{% endif %}", NULL, "F");
    expect("{% if true or nope %}T{% endif %}", NULL, "T");
}

Test(liquid, if_elsif_else_unless)
{
    const char *tmpl = "{% if x == 1 %}one{% elsif x == 2 %}two{% elsif x == 3 %}three"
                       "{% else %}other{% endif %}";
    expect(tmpl, "{\"x\":1}", "one");
    expect(tmpl, "{\"x\":2}", "two");
    expect(tmpl, "{\"x\":3}", "three");
    expect(tmpl, "{\"x\":4}", "other");
    expect("{% unless x %}no{% elsif y %}y{% else %}else{% endunless %}", "{\"x\":true,\"y\":true}",
           "y");
    expect("{% unless x %}no{% else %}yes{% endunless %}", "{\"x\":false}", "no");
    expect("{% if a %}{% if b %}ab{% else %}a{% endif %}{% endif %}", "{\"a\":1,\"b\":0}", "ab");
}

/* ---- for ---- */

Test(liquid, for_ranges)
{
    expect("{% for i in (1..3) %}{{ i }}{% endfor %}", NULL, "123");
    expect("{% for i in (1..n) %}{{ i }}{% endfor %}", "{\"n\":4}", "1234");
    expect("{% for i in (a..b) %}{{ i }}{% endfor %}", "{\"a\":\"2\",\"b\":\"4x\"}", "234");
    expect("{% for i in (1..n) %}{{ i }}{% else %}none{% endfor %}", "{\"n\":null}", "none");
    expect("{% for i in (1..n) %}{{ i }}{% endfor %}", "{\"n\":2.9}", "12");
    expect("{% for i in (3..1) %}{{ i }}{% else %}empty{% endfor %}", NULL, "empty");
    expect("{% for i in (-2..0) %}{{ i }},{% endfor %}", NULL, "-2,-1,0,");
}

Test(liquid, for_lists_and_attributes)
{
    const char *v = "{\"l\":[\"a\",\"b\",\"c\",\"d\"],\"h\":{\"x\":1,\"y\":2},\"s\":\"str\","
                    "\"e\":[],\"two\":2}";
    expect("{% for x in l %}{{ x }}{% endfor %}", v, "abcd");
    expect("{% for x in l reversed %}{{ x }}{% endfor %}", v, "dcba");
    expect("{% for x in l limit: 2 %}{{ x }}{% endfor %}", v, "ab");
    expect("{% for x in l offset: 1 %}{{ x }}{% endfor %}", v, "bcd");
    expect("{% for x in l limit: two offset: 1 %}{{ x }}{% endfor %}", v, "bc");
    expect("{% for x in l reversed limit: 2 offset: 1 %}{{ x }}{% endfor %}", v, "cb");
    expect("{% for x in (1..10) limit: 3 offset: 2 %}{{ x }}{% endfor %}", v, "345");
    expect("{% for p in h %}{{ p[0] }}={{ p[1] }};{% endfor %}", v, "x=1;y=2;");
    expect("{% for c in s %}[{{ c }}]{% endfor %}", v, "[str]");
    expect("{% for x in e %}{{ x }}{% else %}empty{% endfor %}", v, "empty");
    expect("{% for x in nil %}{{ x }}{% else %}none{% endfor %}", v, "none");
}

Test(liquid, forloop_variables)
{
    expect("{% for x in (5..7) %}{{ forloop.index }}/{{ forloop.index0 }}/{{ forloop.rindex }}/"
           "{{ forloop.rindex0 }}/{{ forloop.length }}/{{ forloop.first }}/{{ forloop.last }} "
           "{% endfor %}",
           NULL, "1/0/3/2/3/true/false 2/1/2/1/3/false/false 3/2/1/0/3/false/true ");
    expect("{% for x in l %}{{ forloop.name }}{% endfor %}", "{\"l\":[1]}", "x-l");
    expect("{% for i in (1..2) %}{% for j in (1..2) %}{{ forloop.parentloop.index }}{{ j }} "
           "{% endfor %}{% endfor %}",
           NULL, "11 12 21 22 ");
}

Test(liquid, break_and_continue)
{
    expect("{% for i in (1..10) %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", NULL,
           "123");
    expect("{% for i in (1..5) %}{% if i == 2 or i == 4 %}{% continue %}{% endif %}{{ i }}"
           "{% endfor %}",
           NULL, "135");
    expect("{% for i in (1..2) %}{% for j in (1..3) %}{% if j == 2 %}{% break %}{% endif %}"
           "{{ i }}{{ j }} {% endfor %}{% endfor %}",
           NULL, "11 21 ");
    /* outside a loop, break stops the rendering */
    expect("a{% break %}b", NULL, "a");
}

Test(liquid, loop_scope)
{
    expect("{% for i in (1..2) %}{% assign last = i %}{% endfor %}{{ last }}", NULL, "2");
    expect_err("{% for i in (1..2) %}{% endfor %}{{ i }}", NULL,
               "Liquid error: undefined variable i (line 1)");
    expect("{% for x in (1..2) %}{{ x }}{% endfor %}{{ x }}", "{\"x\":\"outer\"}", "12outer");
}

/* ---- assign, capture, raw, comment ---- */

Test(liquid, assign_and_capture)
{
    expect("{% assign a = 'x' | upcase | append: '!' %}{{ a }}", NULL, "X!");
    expect("{% assign v = 5 %}{{ v }}", "{\"v\":1}", "5");
    expect("{% assign l = 'b,a' | split: ',' | sort %}{{ l | join: '+' }}", NULL, "a+b");
    expect("{% capture c %}[{{ n | plus: 1 }}]{% endcapture %}{{ c }}{{ c }}", "{\"n\":1}",
           "[2][2]");
    expect("{% capture 'q' %}yes{% endcapture %}{{ q }}", NULL, "yes");
    expect("{% for i in (1..3) %}{% capture acc %}{{ acc }}{{ i }}{% endcapture %}{% endfor %}"
           "{{ acc }}",
           "{\"acc\":\"\"}", "123");
}

Test(liquid, raw_and_comment)
{
    /* a bad token inside raw is text; {{ a } ends at its first brace, as in Liquid */
    expect("{% raw %}{{ x }} {% if %} {{ a }{% endraw %}!", NULL, "{{ x }} {% if %} {{ a }!");
    expect("a{% comment %} {{ nope }} {% if x %} {% comment %}in{% endcomment %} "
           "{% endcomment %}b",
           NULL, "ab");
    expect("{%- raw -%}  {{ keep }}  {%- endraw -%}", NULL, "  {{ keep }}  ");
}

Test(liquid, whitespace_control)
{
    expect("a  {{- 'b' -}}  c", NULL, "abc");
    expect("a \n {%- if true -%} \n b \n {%- endif -%} \n c", NULL, "abc");
    expect("a  {{ 'b' -}}  c  {{- 'd' }}  e", NULL, "a  bcd  e");
    expect("a  {{ 'b' -}}{{ 'c' }}  d", NULL, "a  bc  d");
    expect("x\n  {%- assign y = 1 %}\n{{ y }}", NULL, "x\n1");
}

Test(liquid, blank_blocks_render_nothing)
{
    expect("[{% if true %}\n  {% assign x = 1 %}\n{% endif %}]{{ x }}", NULL, "[]1");
    expect("[{% for i in (1..3) %} {% endfor %}]", NULL, "[]");
    expect("[{% if true %} x {% endif %}]", NULL, "[ x ]");
}

/* ---- filters ---- */

Test(liquid, string_filters)
{
    expect("{{ 'aBc' | upcase }} {{ 'aBc' | downcase }} {{ 'hELLO world' | capitalize }}", NULL,
           "ABC abc Hello world");
    expect("[{{ '  a b  ' | strip }}][{{ '  a ' | lstrip }}][{{ ' a  ' | rstrip }}]", NULL,
           "[a b][a ][ a]");
    expect("{{ s | strip_newlines }}|{{ s | newline_to_br }}", "{\"s\":\"a\\r\\nb\\nc\"}",
           "abc|a\r<br />\nb<br />\nc");
    expect("{{ s | escape }}", "{\"s\":\"<a href=\\\"x\\\">&'\"}",
           "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    expect("{{ 'a' | append: 'b' | prepend: 'c' }} {{ 1 | append: 2 }}", NULL, "cab 12");
    expect("{{ 'aXbXc' | remove: 'X' }} {{ 'aXbXc' | remove_first: 'X' }}", NULL, "abc abXc");
    expect("{{ 'aXbXc' | replace: 'X', '-' }} {{ 'aXbXc' | replace_first: 'X', '-' }} "
           "{{ 'aXb' | replace: 'X' }}",
           NULL, "a-b-c a-bXc ab");
    expect("{{ 'ab' | replace: '', '-' }}", NULL, "-a-b-");
    expect("{{ 'hello world' | truncate: 8 }}|{{ 'hi' | truncate: 8 }}|"
           "{{ 'hello world' | truncate: 7, '' }}|{{ 'hello' | truncate: 2 }}",
           NULL, "hello...|hi|hello w|...");
    expect("{{ 'one two three four' | truncatewords: 2 }}|{{ 'one two' | truncatewords: 5 }}|"
           "{{ 'a b c' | truncatewords: 1, '!' }}",
           NULL, "one two...|one two|a!");
    /* Liquid 4 appends the ellipsis when the text has exactly `words` words */
    expect("{{ 'one two three' | truncatewords: 3 }}", NULL, "one two three...");
    expect("{{ 'h\u00e9llo' | slice: 1 }} {{ 'hello' | slice: 1, 3 }} {{ 'hello' | slice: -3, 2 }}"
           " [{{ 'hello' | slice: 9 }}]",
           NULL, "\u00e9 ell ll []");
    expect("{{ 'a b&c/\u00e9~' | url_encode }} {{ 'a+b%26c%2Fx%zz' | url_decode }}", NULL,
           "a+b%26c%2F%C3%A9~ a b&c/x%zz");
    expect("{{ 'hello' | base64_encode }} {{ 'aGVsbG8=' | base64_decode }}", NULL,
           "aGVsbG8= hello");
    expect("[{{ nil | escape }}][{{ nil | url_encode }}][{{ nil | truncate }}]", NULL, "[][][]");
}

Test(liquid, array_filters)
{
    const char *v = "{\"l\":[3,1,2],\"s\":[\"b\",\"a\",\"b\"],\"n\":[1,null,2,null],"
                    "\"h\":[{\"k\":2,\"v\":\"x\"},{\"k\":1,\"v\":\"y\"},{\"k\":2,\"v\":\"z\"}],"
                    "\"nested\":[[1,2],[3,[4]]],\"m\":[\"b\",1]}";
    expect("{{ 'a,b,,c,,' | split: ',' | join: '-' }}|{{ '  a  b ' | split: ' ' | join: '-' }}|"
           "{{ 'abc' | split: '' | join: '-' }}|{{ '' | split: ',' | size }}",
           v, "a-b--c|a-b|a-b-c|0");
    expect("{{ l | join }} {{ l | join: ', ' }} {{ nested | join: '' }}", v, "3 1 2 3, 1, 2 1234");
    expect("{{ l | size }} {{ 'h\u00e9' | size }} {{ h | size }} {{ nil | size }} {{ 5 | size }}",
           v, "3 2 3 0 8");
    expect("{{ l | first }} {{ l | last }} [{{ 'str' | first }}]", v, "3 2 []");
    expect("{{ l | sort | join }} {{ s | sort | join }} {{ h | sort: 'k' | map: 'v' | join }}", v,
           "1 2 3 a b b y x z");
    expect("{{ n | sort | join: ',' }}", v, "1,2,,");
    expect("{{ s | uniq | join }} {{ h | uniq: 'k' | map: 'v' | join }}", v, "b a x y");
    expect("{{ l | reverse | join }} {{ 'abc' | reverse }}", v, "2 1 3 abc");
    expect("{{ n | compact | join: ',' }} {{ h | compact: 'v' | size }}", v, "1,2 3");
    expect("{{ h | map: 'k' | join: ',' }} {{ h | map: 'missing' | size }}", v, "2,1,2 3");
    expect("{{ l | concat: s | join: ',' }} {{ nested | concat: l | size }}", v, "3,1,2,b,a,b 7");
    expect("{{ l | slice: 1, 2 | join: ',' }} {{ l | slice: -1 | join }}", v, "1,2 2");
    expect("{{ l | json }} {{ h[0] | json }} {{ nil | json }} {{ 's' | json }}", v,
           "[3,1,2] {\"k\":2,\"v\":\"x\"} null \"s\"");
    expect_err("{{ m | sort }}", v, "Liquid error: comparison of String with 1 failed (line 1)");
    expect_err("{{ l | concat: 1 }}", v,
               "Liquid error: concat filter requires an array argument (line 1)");
}

Test(liquid, default_filter)
{
    const char *v = "{\"n\":null,\"f\":false,\"e\":\"\",\"ea\":[],\"z\":0,\"s\":\"x\"}";
    expect("{{ n | default: 'd' }} {{ f | default: 'd' }} {{ e | default: 'd' }} "
           "{{ ea | default: 'd' }} {{ z | default: 'd' }} {{ s | default: 'd' }} "
           "[{{ n | default }}] {{ f | default: 'd', allow_false: true }}",
           v, "d d d d 0 x [] false");
}

Test(liquid, math_filters)
{
    expect("{{ 1 | plus: 2 }} {{ '3' | plus: 1 }} {{ 1.5 | plus: 1 }} {{ 0.1 | plus: 0.2 }} "
           "{{ 'x' | plus: 1 }} {{ '1.5' | plus: 1 }}",
           NULL, "3 4 2.5 0.3 1 2.5");
    expect("{{ 5 | minus: 7 }} {{ 3 | times: 4 }} {{ 1.1 | times: 3 }} {{ 2.0 | times: 2 }}", NULL,
           "-2 12 3.3 4.0");
    expect("{{ 10 | divided_by: 4 }} {{ -7 | divided_by: 2 }} {{ 10 | divided_by: 4.0 }} "
           "{{ 1 | divided_by: 3.0 }}",
           NULL, "2 -4 2.5 0.3333333333333333");
    expect("{{ 7 | modulo: 3 }} {{ -7 | modulo: 3 }} {{ 7 | modulo: -3 }} {{ 5.5 | modulo: 2 }}",
           NULL, "1 2 -2 1.5");
    expect("{{ -3 | abs }} {{ -2.5 | abs }} {{ '-4' | abs }}", NULL, "3 2.5 4");
    expect(
        "{{ 1.2 | ceil }} {{ 1.8 | floor }} {{ -1.2 | ceil }} {{ 4 | ceil }} {{ '3.7' | floor }}",
        NULL, "2 1 -1 4 3");
    expect("{{ 2.5 | round }} {{ -2.5 | round }} {{ 2.675 | round: 2 }} {{ 1.23456 | round: 3 }} "
           "{{ 1250 | round: -2 }} {{ 7 | round }}",
           NULL, "3 -3 2.68 1.235 1300 7");
    expect(
        "{{ 3 | at_least: 5 }} {{ 7 | at_least: 5 }} {{ 3 | at_most: 2.5 }} {{ 1 | at_most: 2 }}",
        NULL, "5 7 2.5 1");
}

Test(liquid, date_filter)
{
    expect("{{ 0 | date: '%s' }} {{ '86400' | date: '%s' }} {{ 'garbage' | date: '%s' }} "
           "{{ 5 | date: '' }}",
           NULL, "0 86400 garbage 5");
    json_t *v = json_object();
    char *out = NULL;
    cr_assert_eq(liquid_render("{{ 'now' | date: '%s' }}", v, &out, NULL), ST_OK);
    long long now = (long long)time(NULL), got = atoll(out);
    cr_assert(got >= now - 5 && got <= now + 5, "now rendered as %s", out);
    free(out);
    json_decref(v);
}

/* ---- errors ---- */

Test(liquid, error_undefined_variable_with_line)
{
    expect_err("line1\nline2\n  {{ missing }}\n", NULL,
               "Liquid error: undefined variable missing (line 3)");
    expect_err("\n{{ a.b.c }}", "{\"a\":{\"b\":{}}}",
               "Liquid error: undefined variable c (line 2)");
    expect_err("{{ a.nope }}", "{\"a\":{}}", "Liquid error: undefined variable nope (line 1)");
    expect_err("{{ n.x }}", "{\"n\":null}", "Liquid error: undefined variable x (line 1)");
    expect_err("{{ s.first }}", "{\"s\":\"str\"}",
               "Liquid error: undefined variable first (line 1)");
    expect_err("\n\n{% if x == 1 %}{% endif %}", NULL,
               "Liquid error: undefined variable x (line 3)");
    expect_err("{% for i in (1..n) %}{% endfor %}", NULL,
               "Liquid error: undefined variable n (line 1)");
}

Test(liquid, error_undefined_filter)
{
    expect_err("a\n{{ 'x' | upcase | shout }}", NULL,
               "Liquid error: undefined filter shout (line 2)");
}

Test(liquid, error_unknown_tag)
{
    expect_err("\n{% include 'x' %}", NULL, "Liquid syntax error: Unknown tag 'include' (line 2)");
    expect_err("{% if true %}\n{% case x %}{% endif %}", NULL,
               "Liquid syntax error: Unknown tag 'case' (line 2)");
}

Test(liquid, error_never_closed_gives_opening_line)
{
    expect_err("a\n{% if x %}\nb\n", "{\"x\":1}",
               "Liquid syntax error: 'if' tag was never closed (line 2)");
    expect_err("{% for i in (1..2) %}\n{% if true %}{% endif %}", NULL,
               "Liquid syntax error: 'for' tag was never closed (line 1)");
    expect_err("\n\n{% unless x %}", NULL,
               "Liquid syntax error: 'unless' tag was never closed (line 3)");
    expect_err("{% capture c %}", NULL,
               "Liquid syntax error: 'capture' tag was never closed (line 1)");
    expect_err("x\n{% raw %}{{ a }}", NULL,
               "Liquid syntax error: 'raw' tag was never closed (line 2)");
    expect_err("{% comment %}", NULL,
               "Liquid syntax error: 'comment' tag was never closed (line 1)");
}

Test(liquid, error_unexpected_tags)
{
    expect_err("ok\n{% endif %}", NULL,
               "Liquid syntax error: Unexpected outer 'endif' tag (line 2)");
    expect_err("{% else %}", NULL, "Liquid syntax error: Unexpected outer 'else' tag (line 1)");
    expect_err("{% endfor %}", NULL, "Liquid syntax error: Unexpected outer 'endfor' tag (line 1)");
    expect_err("{% if true %}\n\n{% endfor %}", NULL,
               "Liquid syntax error: 'endfor' is not a valid delimiter for if tags. use endif "
               "(line 3)");
    expect_err("{% capture x %}{% else %}{% endcapture %}", NULL,
               "Liquid syntax error: capture tag does not expect 'else' tag (line 1)");
    expect_err("{% for i in (1..2) %}{% elsif %}{% endfor %}", NULL,
               "Liquid syntax error: Unknown tag 'elsif' (line 1)");
}

Test(liquid, error_unterminated_tokens)
{
    expect_err("a\nb {{ x ", "{\"x\":1}",
               "Liquid syntax error: Variable '{{' was not properly terminated with regexp: "
               "/\\}\\}/ (line 2)");
    expect_err("{{ x }", "{\"x\":1}",
               "Liquid syntax error: Variable '{{ x }' was not properly terminated with regexp: "
               "/\\}\\}/ (line 1)");
    expect_err("\n{% if x ", NULL,
               "Liquid syntax error: Tag '{%' was not properly terminated with regexp: /\\%\\}/ "
               "(line 2)");
    expect_err("{% %}", NULL,
               "Liquid syntax error: Tag '{% %}' was not properly terminated with regexp: "
               "/\\%\\}/ (line 1)");
}

Test(liquid, error_markup_syntax)
{
    expect_err("{{ a & b }}", "{\"a\":1}",
               "Liquid syntax error: Unexpected character & in \"a & b\" (line 1)");
    expect_err("{{ a b }}", "{\"a\":1}",
               "Liquid syntax error: Expected end_of_string but found id in \"a b\" (line 1)");
    expect_err("{% if %}{% endif %}", NULL,
               "Liquid syntax error: [:end_of_string] is not a valid expression in \"\" (line 1)");
    expect_err("{{ x | }}", "{\"x\":1}",
               "Liquid syntax error: Expected id but found end_of_string in \"x |\" (line 1)");
    expect_err("{% for x l %}{% endfor %}", NULL,
               "Liquid syntax error: For loops require an 'in' clause in \"x l\" (line 1)");
    expect_err("{% for x in l by: 2 %}{% endfor %}", "{\"l\":[]}",
               "Liquid syntax error: Invalid attribute in for loop. Valid attributes are limit "
               "and offset in \"x in l by: 2\" (line 1)");
    expect_err("{% assign = 1 %}", NULL,
               "Liquid syntax error: Syntax Error in 'assign' - Valid syntax: assign [var] = "
               "[source] (line 1)");
    expect_err("{% capture %}{% endcapture %}", NULL,
               "Liquid syntax error: Syntax Error in 'capture' - Valid syntax: capture [var] "
               "(line 1)");
    expect_err("{% raw x %}{% endraw %}", NULL,
               "Liquid syntax error: Syntax Error in 'raw' - Valid syntax: raw (line 1)");
}

Test(liquid, error_runtime)
{
    expect_err("{{ 1 | divided_by: 0 }}", NULL, "Liquid error: divided by 0 (line 1)");
    expect_err("{{ 1.5 | modulo: 0 }}", NULL, "Liquid error: divided by 0 (line 1)");
    expect_err("{{ 'x' | upcase: 1 }}", NULL,
               "Liquid error: wrong number of arguments (given 2, expected 1) (line 1)");
    expect_err("{{ 'x' | replace }}", NULL,
               "Liquid error: wrong number of arguments (given 1, expected 2..3) (line 1)");
    expect_err("{{ 'x' | slice: 'a' }}", NULL, "Liquid error: invalid integer (line 1)");
    expect_err("{% if 1 < 'a' %}{% endif %}", NULL,
               "Liquid error: comparison of Integer with String failed (line 1)");
    expect_err("{% if 'a' < 1 %}{% endif %}", NULL,
               "Liquid error: comparison of String with 1 failed (line 1)");
    expect_err("{{ 'not base64!' | base64_decode }}", NULL,
               "Liquid error: invalid base64 provided to base64_decode (line 1)");
    expect_err("{{ 9223372036854775807 | plus: 1 }}", NULL,
               "Liquid error: integer overflow (line 1)");
    expect_err("{% for i in (1..t) %}{% endfor %}", "{\"t\":true}",
               "Liquid error: invalid integer (TrueClass has no to_i) (line 1)");
}

/* ---- caps ---- */

Test(liquid, cap_loop_iterations)
{
    expect_err("{% for i in (1..100000000) %}{% endfor %}", NULL,
               "Liquid error: too many loop iterations (over 1000000) (line 1)");
    expect_err("\n{% for i in (1..2000) %}{% for j in (1..1000) %}{% endfor %}{% endfor %}", NULL,
               "Liquid error: too many loop iterations (over 1000000) (line 2)");
    expect_err("{% for i in (-9223372036854775807..9223372036854775807) %}{% endfor %}", NULL,
               "Liquid error: too many loop iterations (over 1000000) (line 1)");
    /* breaking early keeps a huge loop cheap only if it stays under the cap */
    expect("{% for i in (1..1000000) %}{% break %}{% endfor %}ok", NULL, "ok");
}

Test(liquid, cap_output_size)
{
    expect_err("{% assign s = 'xxxxxxxxxxxxxxxx' %}{% for i in (1..40) %}"
               "{% assign s = s | append: s %}{% endfor %}",
               NULL, "Liquid error: output too large (line 1)");
    expect_err("{% for i in (1..300000) %}{{ s }}{% endfor %}",
               "{\"s\":\"0123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789\"}",
               "Liquid error: output too large (line 1)");
}

Test(liquid, cap_nesting)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < 150; i++)
        cr_assert_eq(buf_puts(&b, "{% if true %}"), ST_OK);
    expect_err(b.ptr, NULL, "Liquid error: nesting too deep (line 1)");
    buf_reset(&b);
    cr_assert_eq(buf_puts(&b, "{{ "), ST_OK);
    for (int i = 0; i < 150; i++)
        cr_assert_eq(buf_puts(&b, "a["), ST_OK);
    cr_assert_eq(buf_puts(&b, " }}"), ST_OK);
    expect_err(b.ptr, "{\"a\":[]}", "Liquid error: nesting too deep (line 1)");
    buf_reset(&b);
    cr_assert_eq(buf_puts(&b, "{{ "), ST_OK);
    for (int i = 0; i < 150; i++)
        cr_assert_eq(buf_puts(&b, "("), ST_OK);
    cr_assert_eq(buf_puts(&b, " }}"), ST_OK);
    expect_err(b.ptr, NULL, "Liquid error: nesting too deep (line 1)");
    /* 50 levels are fine */
    buf_reset(&b);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(buf_puts(&b, "{% if true %}"), ST_OK);
    cr_assert_eq(buf_puts(&b, "x"), ST_OK);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(buf_puts(&b, "{% endif %}"), ST_OK);
    expect(b.ptr, NULL, "x");
    buf_release(&b);
}

/* ---- the reference example and malformed input ---- */

Test(liquid, stack_file_example_12_3)
{
    const char *tmpl = "stack: acme/web\n"
                       "variables:\n"
                       "  tls:\n"
                       "    type: boolean\n"
                       "    default: false\n"
                       "    from:\n"
                       "      prompt: Enable HTTPS?\n"
                       "  domain:\n"
                       "    type: string\n"
                       "    only_if: tls\n"
                       "    from:\n"
                       "      prompt: Domain name\n"
                       "  workers:\n"
                       "    type: integer\n"
                       "    value: 3\n"
                       "services:\n"
                       "  lb:\n"
                       "    image: kontena/lb\n"
                       "    ports:\n"
                       "      - \"80:80\"\n"
                       "      # {% if tls %}\n"
                       "      - \"443:443\"\n"
                       "      # {% endif %}\n"
                       "  # {% for i in (1..workers) %}\n"
                       "  worker-{{ i }}:\n"
                       "    image: acme/worker\n"
                       "    environment:\n"
                       "      - WORKER_INDEX={{ i }}\n"
                       "  # {% endfor %}\n";
    const char *want = "stack: acme/web\n"
                       "variables:\n"
                       "  tls:\n"
                       "    type: boolean\n"
                       "    default: false\n"
                       "    from:\n"
                       "      prompt: Enable HTTPS?\n"
                       "  domain:\n"
                       "    type: string\n"
                       "    only_if: tls\n"
                       "    from:\n"
                       "      prompt: Domain name\n"
                       "  workers:\n"
                       "    type: integer\n"
                       "    value: 3\n"
                       "services:\n"
                       "  lb:\n"
                       "    image: kontena/lb\n"
                       "    ports:\n"
                       "      - \"80:80\"\n"
                       "      # \n"
                       "  # \n"
                       "  worker-1:\n"
                       "    image: acme/worker\n"
                       "    environment:\n"
                       "      - WORKER_INDEX=1\n"
                       "  # \n"
                       "  worker-2:\n"
                       "    image: acme/worker\n"
                       "    environment:\n"
                       "      - WORKER_INDEX=2\n"
                       "  # \n";
    const char *vars = "{\"tls\":false,\"workers\":2,\"domain\":null,\"GRID\":\"test\","
                       "\"STACK\":\"web\",\"PLATFORM\":\"test\"}";
    expect(tmpl, vars, want);

    /* with tls on, the 443 port line stays */
    json_t *v = vars_of("{\"tls\":true,\"workers\":1,\"domain\":\"x\"}");
    char *out = NULL;
    cr_assert_eq(liquid_render(tmpl, v, &out, NULL), ST_OK);
    cr_assert_not_null(strstr(out, "      # \n      - \"443:443\"\n      # \n  # \n  worker-1:"));
    cr_assert_null(strstr(out, "worker-2"));
    free(out);
    json_decref(v);
}

Test(liquid, null_vars_and_template)
{
    char *out = NULL;
    cr_assert_eq(liquid_render("a{{ 1 }}", NULL, &out, NULL), ST_OK);
    cr_assert_str_eq(out, "a1");
    free(out);
    struct err e = ERR_INIT;
    cr_assert_eq(liquid_render("{{ x }}", NULL, &out, &e), ST_INVALID);
    cr_assert_str_eq(e.msg, "Liquid error: undefined variable x (line 1)");
}

Test(liquid, malformed_inputs_do_not_crash)
{
    static const char *const bad[] = {
        "{{",
        "{%",
        "{{{",
        "{%%}",
        "{%-%}",
        "{{-}}",
        "{{ - }}",
        "}}",
        "%}",
        "{{ 'abc }}",
        "{{ \"abc }}",
        "{% if %}",
        "{% if 1 == %}{% endif %}",
        "{% for %}",
        "{% for x in %}",
        "{% for x in (1.. %}",
        "{% for x in (1..3 %}{% endfor %}",
        "{{ (1..) }}",
        "{{ a[ }}",
        "{{ a[] }}",
        "{{ a.[0] }}",
        "{{ a. }}",
        "{{ .a }}",
        "{{ a | }}",
        "{{ a | upcase: }}",
        "{{ a | upcase: , }}",
        "{{ a | replace: x: }}",
        "{% assign %}",
        "{% assign x %}",
        "{% assign x = %}",
        "{% assign x = | upcase %}",
        "{% capture %}",
        "{% endcapture %}",
        "{% raw %}",
        "{% endraw %}",
        "{% comment %}{% endcomment",
        "{% elsif x %}",
        "{% break %}{% continue %}",
        "{% if x %}{% else %}{% else %}{% endif %}",
        "{% for i in (1..3) %}{% else %}{% else %}{% endfor %}",
        "{{ 99999999999999999999999 }}",
        "{{ -9223372036854775808 | abs }}",
        "{{ 1e }}",
        "{{ 1.5.5 }}",
        "{{ a < }}",
        "{% if a contains %}{% endif %}",
        "{{ '\xff\xfe' | upcase | size }}",
        "{{ s | slice: -9223372036854775807, 9223372036854775807 }}",
        "{{ s | truncate: -9223372036854775807 }}",
        "{{ 1 | round: -9223372036854775807 }}",
        "{{ 1.5 | round: 9223372036854775807 }}",
        "{{ 1e308 }}",
        "{{ 1 | times: 1.0e308 | times: 10.0 }}",
        "{% for i in (n..-9223372036854775807) %}{% endfor %}",
        "{{ a | map: 'b' | sort | uniq | compact | reverse | join | split: '' | first }}",
        "{{ h | first | last }}",
        "{{ h.first }}",
        "{{ s | date: '%Y %% %' }}",
        "{{ 4611686018427387904 | times: 2 }}",
        "{{ -9223372036854775807 | minus: 2 }}",
        "{{ -9223372036854775807 | divided_by: -1 }}",
        "{{ n | modulo: -1 }}",
        "{% for x in a offset: -5 limit: -9223372036854775807 %}{{ x }}{% endfor %}",
        "{% for x in a offset: 9223372036854775807 limit: 9223372036854775807 %}{% endfor %}",
        "{{ 'x' | base64_decode }}",
        "{{ '====' | base64_decode }}",
        "{{ 'a=b=' | base64_decode }}",
        "{{ s | url_decode: }}",
        "{{ 's' | default: allow_false: true }}",
        "{{ a[-9223372036854775807] }}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        no_crash(bad[i], strlen(bad[i]));
}

/* Random templates built from Liquid fragments: every result is OK or a Liquid error. */
Test(liquid, random_fragments_do_not_crash)
{
    static const char *const frag[] = {
        "{{",
        "}}",
        "{%",
        "%}",
        "{{-",
        "-}}",
        "{%-",
        "-%}",
        " if ",
        " endif ",
        " for ",
        " endfor ",
        " in ",
        " (1..3) ",
        " a ",
        " s ",
        " h ",
        " n ",
        " | ",
        " upcase ",
        " split: ',' ",
        " join ",
        " . ",
        "[",
        "]",
        "0",
        "'q'",
        "\"",
        "'",
        " and ",
        " or ",
        " == ",
        " contains ",
        " else ",
        " elsif ",
        " raw ",
        " endraw ",
        " comment ",
        " endcomment ",
        " assign x = ",
        " capture x ",
        " endcapture ",
        " break ",
        " unless ",
        "\n",
        "text",
        " x ",
        " forloop.index ",
        " limit: 2 ",
        " reversed ",
        "{",
        "}",
        "%",
        " size ",
        " first ",
        " plus: 1 ",
        " divided_by: 0 ",
        "(",
        ")",
        "..",
        " nil ",
        " empty ",
    };
    unsigned seed = 12345;
    char tmpl[512];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 0;
        int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 24;
        for (int p = 0; p < parts; p++) {
            seed = seed * 1103515245u + 12345u;
            const char *f = frag[(seed >> 16) % (sizeof(frag) / sizeof(frag[0]))];
            size_t fl = strlen(f);
            if (len + fl >= sizeof(tmpl))
                break;
            memcpy(tmpl + len, f, fl);
            len += fl;
        }
        no_crash(tmpl, len);
    }
}

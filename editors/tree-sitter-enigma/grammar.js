/**
 * @file Tree-sitter grammar for `.enigma` experiment files.
 * @license MIT OR Apache-2.0
 *
 * This grammar mirrors `grammar/enigma.pest`, the compiler's own grammar and
 * the source of truth for the syntax (explained construct by construct in
 * `docs/language.md`). Each rule below names the pest rule it corresponds to.
 * The aim is that every file the compiler parses gives a tree here without an
 * ERROR or MISSING node; where the two differ, this grammar is slightly more
 * lenient (it is used for highlighting, folding and indentation, not for
 * reporting errors: `enigma check` does that).
 *
 * Differences from the pest grammar:
 *
 * - pest's flat `expr = unary ~ (infix_op ~ unary)*`, folded by precedence in
 *   `src/syntax/parser.rs`, becomes a `binary_expression` tree built with
 *   tree-sitter precedences, using the same levels as the compiler
 *   (docs/language.md section 13.6).
 * - pest's `postfix` chain becomes nested `call_expression`,
 *   `index_expression` and `field_expression` nodes.
 * - pest's `paren` is split into `parenthesized_expression` (`(e)`) and
 *   `tuple` (`()`, `(a,)`, `(a, b)`).
 * - pest's `item` wrapper and `item_label` are not nodes: each item is a
 *   direct child of `source_file` (its `///` lines are its first children),
 *   and the label of a `loss` or `metric` is its `name` field.
 * - Keywords are "contextual" here: a keyword is only recognised where the
 *   grammar expects it, so a key written as a keyword (`by_time(train: 0.8)`,
 *   `rec.data`, `train { model: ... }`) needs no special rule. The other side
 *   of this is that a keyword used as a plain name (`let x = train`), which
 *   the compiler rejects, parses here as an identifier.
 * - Nested block comments, the text of strings and the units of numbers are
 *   read by the external scanner in `src/scanner.c` (a regular expression
 *   cannot count nesting; see `number` for the units).
 *
 * Regenerate `src/` with `tree-sitter generate --abi 14` (see README.md).
 */

/// <reference types="tree-sitter-cli/dsl" />
// @ts-check

// Binary operator precedence, lowest first (pest: `infix_op`, folded by
// precedence in `src/syntax/parser.rs`; docs/language.md section 13.6).
// Prefix operators and postfix chains are not in this table: they are
// expressed structurally (`_unary`, `_postfix`), which also makes `- -x` and
// `not not x` errors, as in the compiler.
const PREC = {
  or: 1,
  and: 2,
  compare: 3,
  add: 4,
  mul: 5,
  pow: 6,
};

/**
 * `rule (, rule)* ,?` or nothing: a comma-separated list with an optional
 * trailing comma, as used by every bracketed list of the pest grammar.
 *
 * @param {RuleOrLiteral} rule
 * @returns {RuleOrLiteral}
 */
function commaSep(rule) {
  return optional(seq(rule, repeat(seq(',', rule)), optional(',')));
}

/**
 * `rule (sep rule)*`: one or more, without a trailing separator.
 *
 * @param {RuleOrLiteral} sep
 * @param {RuleOrLiteral} rule
 * @returns {RuleOrLiteral}
 */
function sep1(sep, rule) {
  return seq(rule, repeat(seq(sep, rule)));
}

module.exports = grammar({
  name: 'enigma',

  // pest: WHITESPACE and COMMENT, which are skipped between any two tokens.
  // Doc comments are not here: they are part of the grammar (see `_docs`).
  extras: $ => [
    /\s/,
    '\uFEFF',
    $.line_comment,
    $.block_comment,
  ],

  // Read by src/scanner.c. `_error_sentinel` is never produced: it is valid
  // only during error recovery, which lets the scanner tell that case apart.
  externals: $ => [
    $.block_comment,
    $.string_content,
    $.unit,
    $._error_sentinel,
  ],

  // Keyword extraction: every keyword is first read as an `identifier`, and
  // is a keyword only where the parser can accept that keyword. This is how
  // keys, named arguments, fields and index labels may be keywords.
  word: $ => $.identifier,

  supertypes: $ => [
    $._item,
    $._statement,
    $._expression,
  ],

  conflicts: $ => [
    // `use a::b::{x}` against `use a::b`: after `b`, a `::` may continue
    // the path or open the group; the token after `::` decides.
    [$.module_path],
  ],

  rules: {
    // -----------------------------------------------------------------------
    // Files and items
    // -----------------------------------------------------------------------

    // pest: `file = { SOI ~ inner_doc* ~ item* ~ EOI }`
    source_file: $ => seq(
      repeat($.inner_doc),
      repeat(seq($._item, optional(';'))),
    ),

    // pest: `item` (less its `doc_comment*`, which each item rule holds).
    _item: $ => choice(
      $.use_item,
      $.dim_item,
      $.let_item,
      $.data_item,
      $.modality_item,
      $.tokenizer_item,
      $.fn_item,
      $.module_item,
      $.model_item,
      $.loss_item,
      $.metric_item,
      $.train_item,
      $.parallel_item,
    ),

    // The `///` lines before an item, a parameter, a `param` statement or a
    // configuration entry (pest: `doc_comment*` in those rules).
    _docs: $ => repeat1($.doc_comment),

    // use std::nn::{Linear, Transformer as Tx}
    // use std::nn
    // use blocks::Encoder as Enc
    // pest: `use_item = { kw_use ~ module_path ~ (use_group | use_alias)? }`
    use_item: $ => seq(
      optional($._docs),
      'use',
      field('path', $.module_path),
      optional(choice(
        field('group', $.use_group),
        field('alias', $.use_alias),
      )),
    ),

    // pest: `module_path = { ident ~ ("::" ~ ident)* }`
    module_path: $ => sep1('::', $.identifier),

    // pest: `use_group = { "::" ~ "{" ~ (use_name ~ ("," ~ use_name)* ~ ","?)? ~ "}" }`
    use_group: $ => seq('::', '{', commaSep($.use_name), '}'),

    // pest: `use_name = { ident ~ use_alias? }`
    use_name: $ => seq(
      field('name', $.identifier),
      optional(field('alias', $.use_alias)),
    ),

    // pest: `use_alias = { kw_as ~ ident }`
    use_alias: $ => seq('as', field('name', $.identifier)),

    // dim T = 2s    dim d = 256    dim N per session    dim N = 64 per session
    // pest: `dim_item = { kw_dim ~ ident ~ ("=" ~ expr)? ~ per_session? }`
    dim_item: $ => seq(
      optional($._docs),
      'dim',
      field('name', $.identifier),
      optional(seq('=', field('value', $._expression))),
      optional($.per_session),
    ),

    // pest: `per_session = { kw_per ~ kw_session }`. `per` and `session` are
    // not reserved words; keyword extraction makes them keywords only here.
    per_session: _ => seq('per', 'session'),

    // let base_lr = 3e-4    let warmup_steps: int = 200
    // pest: `let_item = { kw_let ~ ident ~ (":" ~ type_expr)? ~ "=" ~ expr }`
    let_item: $ => seq(
      optional($._docs),
      'let',
      field('name', $.identifier),
      optional(seq(':', field('type', $.type_expr))),
      '=',
      field('value', $._expression),
    ),

    // data v1 = synthetic.mouse_v1(sessions: 2) { window: 2s }
    // pest: `data_item = { kw_data ~ ident ~ "=" ~ expr ~ config_block? }`
    data_item: $ => seq(
      optional($._docs),
      'data',
      field('name', $.identifier),
      '=',
      field('value', $._expression),
      optional(field('config', $.config_block)),
    ),

    // modality video: video<f32>[T @ 30Hz, 1, 36, 64] from v1.video | (x - 0.5) / 0.25
    // pest: `modality_item = { kw_modality ~ ident ~ ":" ~ type_expr ~ kw_from ~ expr ~ transform* ~ config_block? }`
    modality_item: $ => seq(
      optional($._docs),
      'modality',
      field('name', $.identifier),
      ':',
      field('type', $.type_expr),
      'from',
      field('source', $._expression),
      repeat(field('transform', $.transform)),
      optional(field('config', $.config_block)),
    ),

    // pest: `transform = { "|" ~ expr }`
    transform: $ => seq('|', $._expression),

    // tokenizer vt = Tubelets(size: [2, 6, 8], d: 256)(video)
    // pest: `tokenizer_item = { kw_tokenizer ~ ident ~ "=" ~ expr }`
    tokenizer_item: $ => seq(
      optional($._docs),
      'tokenizer',
      field('name', $.identifier),
      '=',
      field('value', $._expression),
    ),

    // fn poisson_nll(rate: [..., N], target: [..., N]) -> [] { return ... }
    // pest: `fn_item = { kw_fn ~ ident ~ param_list ~ return_type? ~ body }`
    fn_item: $ => seq(
      optional($._docs),
      'fn',
      field('name', $.identifier),
      field('parameters', $.param_list),
      optional(field('return_type', $.return_type)),
      field('body', $.body),
    ),

    // module Linear(d_in: dim, d_out: dim)(x: [..., d_in]) -> [..., d_out] { ... }
    // pest: `module_item = { kw_module ~ ident ~ param_list ~ param_list ~ return_type? ~ body }`
    module_item: $ => seq(
      optional($._docs),
      'module',
      field('name', $.identifier),
      field('hyperparameters', $.param_list),
      field('inputs', $.param_list),
      optional(field('return_type', $.return_type)),
      field('body', $.body),
    ),

    // model brain(d: int = 256) { ... predict response = ... }
    // pest: `model_item = { kw_model ~ ident ~ param_list? ~ body }`
    model_item: $ => seq(
      optional($._docs),
      'model',
      field('name', $.identifier),
      optional(field('parameters', $.param_list)),
      field('body', $.body),
    ),

    // pest: `param_list = { "(" ~ (param_decl ~ ("," ~ param_decl)* ~ ","?)? ~ ")" }`
    param_list: $ => seq('(', commaSep($.param_decl), ')'),

    // pest: `param_decl = { doc_comment* ~ ident ~ (":" ~ type_expr)? ~ ("=" ~ expr)? }`
    param_decl: $ => seq(
      optional($._docs),
      field('name', $.identifier),
      optional(seq(':', field('type', $.type_expr))),
      optional(seq('=', field('default', $._expression))),
    ),

    // pest: `return_type = { "->" ~ type_expr }`
    return_type: $ => seq('->', $.type_expr),

    // loss recon = poisson_nll(brain.response, response) { weight: 0.5 }
    // loss poisson_nll(brain.response, response)
    // pest: `loss_item = { kw_loss ~ item_label? ~ expr ~ config_block? }`
    // with `item_label = { ident ~ "=" ~ !"=" }`. `=` and `==` are different
    // tokens, so `loss a == b` is an unlabelled loss, as in the compiler.
    loss_item: $ => seq(
      optional($._docs),
      'loss',
      optional(seq(field('name', $.identifier), '=')),
      field('value', $._expression),
      optional(field('config', $.config_block)),
    ),

    // pest: `metric_item = { kw_metric ~ item_label? ~ expr ~ config_block? }`
    metric_item: $ => seq(
      optional($._docs),
      'metric',
      optional(seq(field('name', $.identifier), '=')),
      field('value', $._expression),
      optional(field('config', $.config_block)),
    ),

    // train { steps: 2000, optimizer: adamw(lr: 3e-4) }
    // pest: `train_item = { kw_train ~ config_block }`
    train_item: $ => seq(
      optional($._docs),
      'train',
      field('config', $.config_block),
    ),

    // parallel { mesh { node: 8, gpu: 8 }, batch -> (node, gpu) }
    // pest: `parallel_item = { kw_parallel ~ config_block }`
    parallel_item: $ => seq(
      optional($._docs),
      'parallel',
      field('config', $.config_block),
    ),

    // -----------------------------------------------------------------------
    // Configuration blocks (train, parallel, data, modalities, losses)
    // -----------------------------------------------------------------------

    // pest: `config_block = { "{" ~ (config_entry ~ (";" | ",")?)* ~ "}" }`
    config_block: $ => seq(
      '{',
      repeat(seq($._config_entry, optional(choice(';', ',')))),
      '}',
    ),

    // pest: `config_entry = { doc_comment* ~ (mapping | setting | config_sub) }`
    // (the `///` lines are held by each of the three entry rules).
    _config_entry: $ => choice($.setting, $.mapping, $.config_sub),

    // A configuration key may be any word, keywords included (pest: `key`).
    _key: $ => alias($.identifier, $.key),

    // steps: 2000
    // pest: `setting = { key ~ ":" ~ expr }`
    setting: $ => seq(
      optional($._docs),
      field('key', $._key),
      ':',
      field('value', $._expression),
    ),

    // heads, kv_heads, ffn -> tp        batch -> (node, gpu)
    // pest: `mapping = { key ~ ("," ~ key)* ~ "->" ~ expr }`
    mapping: $ => seq(
      optional($._docs),
      sep1(',', field('key', $._key)),
      '->',
      field('value', $._expression),
    ),

    // checkpoint { every: 500, keep: 3 }
    // pest: `config_sub = { key ~ config_block }`
    config_sub: $ => seq(
      optional($._docs),
      field('key', $._key),
      field('config', $.config_block),
    ),

    // -----------------------------------------------------------------------
    // Statements (fn, module and model bodies)
    // -----------------------------------------------------------------------

    // pest: `body = { "{" ~ (stmt ~ ";"?)* ~ "}" }`
    body: $ => seq('{', repeat(seq($._statement, optional(';'))), '}'),

    // pest: `stmt = { let_stmt | param_stmt | predict_stmt | return_stmt | if_stmt }`
    _statement: $ => choice(
      $.let_stmt,
      $.param_stmt,
      $.predict_stmt,
      $.return_stmt,
      $.if_stmt,
    ),

    // pest: `let_stmt = { kw_let ~ ident ~ (":" ~ type_expr)? ~ "=" ~ expr }`
    let_stmt: $ => seq(
      'let',
      field('name', $.identifier),
      optional(seq(':', field('type', $.type_expr))),
      '=',
      field('value', $._expression),
    ),

    // pest: `param_stmt = { doc_comment* ~ kw_param ~ ident ~ ":" ~ type_expr ~ ("=" ~ expr)? }`
    param_stmt: $ => seq(
      optional($._docs),
      'param',
      field('name', $.identifier),
      ':',
      field('type', $.type_expr),
      optional(seq('=', field('init', $._expression))),
    ),

    // pest: `predict_stmt = { kw_predict ~ ident ~ (":" ~ type_expr)? ~ "=" ~ expr }`
    predict_stmt: $ => seq(
      'predict',
      field('name', $.identifier),
      optional(seq(':', field('type', $.type_expr))),
      '=',
      field('value', $._expression),
    ),

    // pest: `return_stmt = { kw_return ~ expr }`
    return_stmt: $ => seq('return', field('value', $._expression)),

    // pest: `if_stmt = { kw_if ~ expr ~ body ~ (kw_else ~ (if_stmt | body))? }`
    if_stmt: $ => seq(
      'if',
      field('condition', $._expression),
      field('consequence', $.body),
      optional(seq(
        'else',
        field('alternative', choice($.if_stmt, $.body)),
      )),
    ),

    // -----------------------------------------------------------------------
    // Types
    // -----------------------------------------------------------------------

    // f32[T @ 30Hz, N]   video<f32>[T, 1, H, W]   [..., d]   dim   int[3]
    // pest: `type_expr = { shape | type_name ~ generic_args? ~ shape? }`
    type_expr: $ => choice(
      field('shape', $.shape),
      seq(
        field('name', $._type_name),
        optional(field('arguments', $.generic_args)),
        optional(field('shape', $.shape)),
      ),
    ),

    // pest: `type_name = @{ ("dim" | "module") ~ !ident_char | ident }`:
    // `dim` and `module` are keywords but also the types of hyperparameters.
    // The node is `type_name` in all three cases.
    _type_name: $ => choice(
      alias($.identifier, $.type_name),
      alias('dim', $.type_name),
      alias('module', $.type_name),
    ),

    // pest: `generic_args = { "<" ~ ident ~ ("," ~ ident)* ~ ">" }`
    generic_args: $ => seq('<', sep1(',', alias($.identifier, $.type_name)), '>'),

    // pest: `shape = { "[" ~ (shape_dim ~ ("," ~ shape_dim)* ~ ","?)? ~ "]" }`
    shape: $ => seq('[', commaSep($._shape_dim), ']'),

    // pest: `shape_dim = { ellipsis | expr ~ rate? }`
    _shape_dim: $ => choice($.ellipsis, $._expression, $.rated_dim),

    // T @ 30Hz   (pest: `expr ~ rate` with `rate = { "@" ~ expr }`)
    rated_dim: $ => seq(
      field('dim', $._expression),
      '@',
      field('rate', $._expression),
    ),

    // pest: `ellipsis = { "..." }`
    ellipsis: _ => '...',

    // -----------------------------------------------------------------------
    // Expressions
    // -----------------------------------------------------------------------

    // pest: `expr = { unary ~ (infix_op ~ unary)* }`
    _expression: $ => choice($.binary_expression, $._unary),

    // From lowest to highest precedence: or, and, comparisons, + -, * / %,
    // ** (right-associative). Comparisons do not chain specially:
    // `a < b < c` is `(a < b) < c`, as in the compiler.
    binary_expression: $ => {
      const table = [
        [prec.left, PREC.or, 'or'],
        [prec.left, PREC.and, 'and'],
        [prec.left, PREC.compare, choice('==', '!=', '<', '<=', '>', '>=')],
        [prec.left, PREC.add, choice('+', '-')],
        [prec.left, PREC.mul, choice('*', '/', '%')],
        [prec.right, PREC.pow, '**'],
      ];
      return choice(...table.map(([assoc, level, operator]) =>
        // @ts-ignore
        assoc(level, seq(
          field('left', $._expression),
          // @ts-ignore
          field('operator', operator),
          field('right', $._expression),
        )),
      ));
    },

    // pest: `unary = { prefix_op? ~ postfix }`
    _unary: $ => choice($.unary_expression, $._postfix),

    // -x   not enabled. The operand is a postfix expression, so a prefix
    // operator binds tighter than every binary operator, `**` included
    // (`-x ** 2` is `(-x) ** 2`), and cannot be doubled.
    // pest: `prefix_op = _{ op_neg | op_not }`
    unary_expression: $ => seq(
      field('operator', choice('-', 'not')),
      field('operand', $._postfix),
    ),

    // pest: `postfix = { primary ~ (call_args | index_args | field)* }`
    _postfix: $ => choice(
      $.call_expression,
      $.index_expression,
      $.field_expression,
      $._primary,
    ),

    // Linear(d_in: d, d_out: 4 * d)(x)
    call_expression: $ => seq(
      field('function', $._postfix),
      field('arguments', $.call_args),
    ),

    // pest: `call_args = { "(" ~ (arg ~ ("," ~ arg)* ~ ","?)? ~ ")" }`
    call_args: $ => seq(
      '(',
      commaSep(choice($._expression, $.named_argument)),
      ')',
    ),

    // pest: `arg = { (key ~ ":" ~ !":")? ~ expr }` with a key. `::` is a
    // token of its own, so `f(nn::Linear(...))` is a positional argument.
    named_argument: $ => seq(
      field('name', $._label),
      ':',
      field('value', $._expression),
    ),

    // The name of a named argument or the dim label of an index item may be
    // any word (pest: `key`). Keyword extraction already turns keywords that
    // the parser cannot accept there into identifiers; these four can also
    // start an expression, so they are listed explicitly.
    _label: $ => choice(
      $.identifier,
      alias(choice('if', 'not', 'true', 'false'), $.identifier),
    ),

    // x[T: 0..16]   h[nt]   reshape[d -> (heads, head_dim)]   concat[seq]
    index_expression: $ => seq(
      field('value', $._postfix),
      field('index', $.index_args),
    ),

    // pest: `index_args = { "[" ~ (index_item ~ ("," ~ index_item)* ~ ","?)? ~ "]" }`
    index_args: $ => seq('[', commaSep($._index_item), ']'),

    // pest: `index_item = { (key ~ ":" ~ !":")? ~ (range_to | expr ~ (range_from | arrow_to)?) }`
    _index_item: $ => choice($.labeled_index, $._index_value),

    // T: 0..16
    labeled_index: $ => seq(
      field('label', $._label),
      ':',
      field('value', $._index_value),
    ),

    _index_value: $ => choice($._expression, $.range, $.dim_rewrite),

    // a..b   ..b   a..   ..   (pest: `range_to` and `expr ~ range_from`)
    range: $ => choice(
      seq(
        field('start', $._expression),
        '..',
        optional(field('end', $._expression)),
      ),
      seq('..', optional(field('end', $._expression))),
    ),

    // d -> (heads, head_dim)   (pest: `expr ~ arrow_to`, `arrow_to = { "->" ~ expr }`)
    dim_rewrite: $ => seq(
      field('from', $._expression),
      '->',
      field('to', $._expression),
    ),

    // v1.video   brain.response   (pest: `field = { "." ~ key }`)
    field_expression: $ => seq(
      field('value', $._postfix),
      '.',
      field('field', alias($.identifier, $.field_identifier)),
    ),

    // pest: `primary = { if_expr | number | string | boolean | path | paren | list }`
    _primary: $ => choice(
      $.if_expr,
      $.number,
      $.string,
      $.boolean,
      $.identifier,
      $.path,
      $.parenthesized_expression,
      $.tuple,
      $.list,
    ),

    // if kind == "gelu" { gelu(y) } else if kind == "relu" { relu(y) } else { y }
    // pest: `if_expr = { kw_if ~ expr ~ "{" ~ expr ~ "}" ~ kw_else ~ (if_expr | "{" ~ expr ~ "}") }`
    if_expr: $ => seq(
      'if',
      field('condition', $._expression),
      '{',
      field('consequence', $._expression),
      '}',
      'else',
      choice(
        field('alternative', $.if_expr),
        seq('{', field('alternative', $._expression), '}'),
      ),
    ),

    // (e): grouping (pest: `paren` without a comma).
    parenthesized_expression: $ => seq('(', $._expression, ')'),

    // ()   (a,)   (a, b)   (a, b,)   (pest: `paren` with a comma, or empty)
    tuple: $ => seq(
      '(',
      optional(seq(
        $._expression,
        ',',
        optional(seq(sep1(',', $._expression), optional(','))),
      )),
      ')',
    ),

    // [2, 6, 8]   [vt, bt, nt,]
    // pest: `list = { "[" ~ (expr ~ ("," ~ expr)* ~ ","?)? ~ "]" }`
    list: $ => seq('[', commaSep($._expression), ']'),

    // nn::Linear (pest: `path = { ident ~ ("::" ~ ident)* }`; a single name
    // is an `identifier`).
    path: $ => seq($.identifier, repeat1(seq('::', $.identifier))),

    // pest: `boolean = { kw_true | kw_false }`
    boolean: _ => choice('true', 'false'),

    // -----------------------------------------------------------------------
    // Tokens
    // -----------------------------------------------------------------------

    // 2s   30Hz   25ms   80GB   3e-4   50_257   1.5E3
    // pest: `number = ${ number_value ~ unit? ~ !ident_char }`. A fraction
    // needs a digit after the `.`, so `0..16` is `0`, `..`, `16`.
    number: $ => seq(
      /[0-9][0-9_]*(\.[0-9][0-9_]*)?([eE][+-]?[0-9]+)?/,
      optional(field('unit', $.unit)),
    ),

    // `unit` (pest: `unit`) is read by the external scanner, right after the
    // digits and with no space between: kHz Hz ms us min s KiB MiB GiB TiB
    // KB MB GB TB B. Like pest's `unit ~ !ident_char`, the unit must end the
    // word, so `2sx` has no unit (and is an error). It is not an ordinary
    // token because the units are words: as tokens they would take part in
    // keyword extraction and cut `use` or `session` short after `us` or `s`.

    // "../shared/data/real/F.npy"   "a \"quoted\" word"
    // pest: `string = ${ "\"" ~ string_inner ~ "\"" }`. A string ends on the
    // line it starts; the text between escapes is read by the external
    // scanner, so `//` and `/*` inside a string are not comments.
    string: $ => seq(
      '"',
      repeat(choice($.string_content, $.escape_sequence)),
      // Immediate: the string ends where its text stops, so a string cut
      // short by the end of its line is an error (E0005 in the compiler).
      token.immediate('"'),
    ),

    // pest: `"\\" ~ ANY` in `string_inner`.
    escape_sequence: _ => token.immediate(/\\(.|\n)/),

    // pest: `ident` (and `key`, which also admits keywords).
    identifier: _ => /[A-Za-z_][A-Za-z0-9_]*/,

    // -----------------------------------------------------------------------
    // Comments and doc comments
    // -----------------------------------------------------------------------

    // pest: `line_comment = _{ "//" ~ !(("/" ~ !"/") | "!") ~ (!"\n" ~ ANY)* }`:
    // `//` not followed by exactly one more `/` or by `!`. `////` and more
    // slashes make an ordinary comment. (`block_comment` is external.)
    line_comment: _ => token(seq('//', optional(choice(
      /[^/!\n][^\n]*/,
      /\/\/[^\n]*/,
    )))),

    // pest: `doc_comment = @{ "///" ~ !"/" ~ (!"\n" ~ ANY)* }`
    doc_comment: _ => token(seq('///', optional(/[^/\n][^\n]*/))),

    // pest: `inner_doc = @{ "//!" ~ (!"\n" ~ ANY)* }`
    inner_doc: _ => token(seq('//!', /[^\n]*/)),
  },
});

; Indentation for .enigma files, in nvim-treesitter's current capture names:
; `@indent.begin` indents the lines inside a node, a closing bracket is an
; `@indent.branch` (its own line goes back to the opening line's level) and
; an `@indent.end` (the lines after it too).

[
  (body)
  (config_block)
  (param_list)
  (call_args)
  (index_args)
  (use_group)
  (list)
  (tuple)
  (parenthesized_expression)
  (shape)
  (if_expr)
] @indent.begin

[
  "}"
  "]"
  ")"
] @indent.branch @indent.end

(block_comment) @indent.auto

(string) @indent.ignore

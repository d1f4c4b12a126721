; Folding for .enigma files (nvim-treesitter `@fold`): bodies, configuration
; blocks, parameter and argument lists, multi-line lists and tuples, `if`
; expressions and block comments.

[
  (body)
  (config_block)
  (param_list)
  (call_args)
  (index_args)
  (use_group)
  (list)
  (tuple)
  (shape)
  (if_expr)
  (block_comment)
] @fold

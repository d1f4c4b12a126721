; Scopes, definitions and references for .enigma files (docs/language.md,
; section 19). Only local names are described: the file scope is
; order-independent (an item may be used before it is defined), which
; `@local.*` queries cannot express, so items are not definitions here.

; A fn, module or model opens a scope for its parameters; every `{ }` body,
; including the branches of an `if` statement, opens one for its statements.
[
  (fn_item)
  (module_item)
  (model_item)
  (body)
] @local.scope

(param_decl
  name: (identifier) @local.definition.parameter)

(let_stmt
  name: (identifier) @local.definition.var)

(param_stmt
  name: (identifier) @local.definition.var)

(predict_stmt
  name: (identifier) @local.definition.var)

(identifier) @local.reference

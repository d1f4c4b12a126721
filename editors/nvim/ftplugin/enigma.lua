-- Editing settings for .enigma files: comments, indentation.
if vim.b.did_ftplugin then
  return
end
vim.b.did_ftplugin = 1

-- `gc` (0.10+ or a comment plugin) and 'formatoptions' use these.
vim.bo.commentstring = "// %s"
-- Doc comments `///` and `//!` before plain `//`, then C-style block comments
-- (which nest in enigma).
vim.bo.comments = "s1:/*,mb:*,ex:*/,:///,://!,://"
-- Continue comments on Enter and `o`, wrap comments at 'textwidth', but not code.
vim.opt_local.formatoptions:remove("t")
vim.opt_local.formatoptions:append("croql")

-- Two spaces, as `enigma fmt` writes.
vim.bo.expandtab = true
vim.bo.shiftwidth = 2
vim.bo.softtabstop = 2
vim.bo.tabstop = 2

-- `gf` on a path written without its extension.
vim.bo.suffixesadd = ".enigma"

vim.b.undo_ftplugin = "setlocal commentstring< comments< formatoptions< expandtab<"
  .. " shiftwidth< softtabstop< tabstop< suffixesadd<"

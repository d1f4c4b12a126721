-- Configuration of the enigma language server for Neovim 0.11+'s
-- `vim.lsp.enable("enigma")`. With this folder on 'runtimepath' that one call
-- is enough; `require("enigma").setup()` calls it too and merges its options
-- over these.
return {
  cmd = { "enigma", "lsp" },
  filetypes = { "enigma" },
  root_markers = { ".git" },
}

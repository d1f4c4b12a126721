-- A minimal Neovim configuration that loads only the plugin in editors/nvim,
-- for trying it by hand and for capture.sh:
--
--   ENIGMA_BIN=target/debug/enigma nvim -u editors/tests/nvim/init.lua FILE.enigma
--
-- ENIGMA_TS_DIR=<folder with parser/enigma.so and queries/> also loads the
-- tree-sitter parser (tree-sitter highlighting).
local here = debug.getinfo(1, "S").source:sub(2):match("(.*)/") or "."
local root = vim.fn.fnamemodify(here .. "/../../..", ":p"):gsub("/$", "")
vim.opt.runtimepath:prepend(root .. "/editors/nvim")
vim.cmd("filetype plugin on")
vim.cmd("syntax on")
vim.opt.number = true
vim.opt.signcolumn = "yes"
vim.opt.laststatus = 2

local ts = os.getenv("ENIGMA_TS_DIR")
require("enigma").setup({
  cmd = { os.getenv("ENIGMA_BIN") or (root .. "/target/debug/enigma"), "lsp" },
  treesitter_dir = (ts ~= nil and ts ~= "") and ts or nil,
})

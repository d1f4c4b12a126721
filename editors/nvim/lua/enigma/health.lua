-- :checkhealth enigma
local M = {}

function M.check()
  local h = vim.health or require("health")
  local start = h.start or h.report_start
  local ok = h.ok or h.report_ok
  local warn = h.warn or h.report_warn
  local err = h.error or h.report_error
  local info = h.info or h.report_info

  local enigma = require("enigma")
  local v = vim.version()
  start("enigma")
  info(("Neovim %d.%d.%d"):format(v.major, v.minor, v.patch))
  local cfg = enigma.config
  if not cfg then
    warn('setup() has not run: call require("enigma").setup({})')
    return
  end

  if cfg.lsp then
    info("language server registered with " .. tostring(enigma.state.lsp_api))
    local exe = cfg.cmd[1]
    if vim.fn.executable(exe) == 1 then
      local version = vim.fn.system({ exe, "--version" }):gsub("%s+$", "")
      ok(("`%s` runs: %s"):format(vim.fn.exepath(exe), version))
    else
      err(("`%s` is not executable"):format(exe), {
        "build it (cargo build) and put it on PATH, or",
        'require("enigma").setup({ cmd = { "/path/to/enigma", "lsp" } })',
      })
    end
    local get = vim.lsp.get_clients or vim.lsp.get_active_clients
    local n = #get({ name = cfg.name })
    if n > 0 then
      ok(("%d `%s` client(s) running"):format(n, cfg.name))
    else
      info("no client running yet (one starts when an .enigma file is opened)")
    end
  else
    info("language server disabled (lsp = false)")
  end

  if enigma.state.parser then
    ok(("tree-sitter parser %s, queries: %s"):format(enigma.state.parser, table.concat(enigma.state.queries, ", ")))
  elseif enigma.state.parser_error then
    err("tree-sitter: " .. enigma.state.parser_error, {
      "cd editors/tree-sitter-enigma && tree-sitter build -o parser/enigma.so",
    })
  else
    info("tree-sitter: treesitter_dir not set (see editors/nvim/README.md)")
  end
end

return M

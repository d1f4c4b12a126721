-- Drives headless Neovim with the plugin in editors/nvim against `enigma lsp`.
-- Run by editors/tests/nvim.sh:
--
--   ENIGMA_ROOT=<repo> ENIGMA_BIN=<enigma> \
--     nvim --headless -u NONE -i NONE -c "luafile editors/tests/nvim/drive.lua"
--
-- Loads the plugin the way a user does (its folder on 'runtimepath', then
-- require("enigma").setup{}), opens the fixture with a shape error and checks:
-- filetype detection and the ftplugin, that the server attached, exactly one
-- diagnostic E0211 on line 28 with the expected message, and that hover on
-- `h` (line 27) shows its tensor type with `d=32`. Exits 0 on success, 1
-- with "nvim.sh: FAILED: <what>" on stderr otherwise.
--
-- Optional: ENIGMA_TS_DIR=<folder with parser/enigma.so and queries/> also
-- passes treesitter_dir to setup() and checks that the parser loaded and
-- highlights the buffer.

local t0 = vim.loop.hrtime()
local root = assert(os.getenv("ENIGMA_ROOT"), "ENIGMA_ROOT is not set")
local bin = assert(os.getenv("ENIGMA_BIN"), "ENIGMA_BIN is not set")
local ts_dir = os.getenv("ENIGMA_TS_DIR")
if ts_dir == "" then
  ts_dir = nil
end
local fixture = root .. "/editors/tests/fixtures/shape_error.enigma"
local EXPECTED_MESSAGE = "`x` needs `width` = `16` here"

local function out(line)
  io.stdout:write(line .. "\n")
end

local function fail(what)
  error({ failed = what }, 0)
end

local function check(ok, what)
  if not ok then
    fail(what)
  end
end

local function version()
  local v = vim.version()
  local s = ("NVIM v%d.%d.%d"):format(v.major, v.minor, v.patch)
  if v.prerelease then
    s = s .. "-dev"
  end
  return s
end

local function buf_clients(buf)
  if vim.lsp.get_clients then -- 0.10+
    return vim.lsp.get_clients({ bufnr = buf })
  end
  local list = {}
  for _, c in pairs(vim.lsp.buf_get_clients(buf)) do
    table.insert(list, c)
  end
  return list
end

-- Hover contents (MarkupContent, MarkedString or a list of them) as text.
local function hover_text(contents)
  if type(contents) == "string" then
    return contents
  end
  if type(contents) ~= "table" then
    return ""
  end
  if contents.value then
    return contents.value
  end
  local parts = {}
  for _, c in ipairs(contents) do
    table.insert(parts, hover_text(c))
  end
  return table.concat(parts, "\n")
end

local function run()
  -- The plugin, as a user installs it: its folder on 'runtimepath'. Filetype
  -- detection and ftplugins are off under -u NONE; turn them on after the
  -- runtimepath change so that ftdetect/enigma.vim is read.
  vim.opt.runtimepath:prepend(root .. "/editors/nvim")
  vim.cmd("filetype plugin on")
  check(
    vim.fn.exists("#filetypedetect#BufRead#*.enigma") == 1,
    "ftdetect/enigma.vim was not read (no BufRead *.enigma autocommand in group filetypedetect)"
  )
  local enigma = require("enigma")
  enigma.setup({ cmd = { bin, "lsp" }, treesitter_dir = ts_dir })

  vim.cmd("edit " .. vim.fn.fnameescape(fixture))
  local buf = vim.api.nvim_get_current_buf()
  check(vim.bo[buf].filetype == "enigma", "filetype is '" .. vim.bo[buf].filetype .. "', want 'enigma' (ftdetect)")
  check(
    vim.bo[buf].commentstring == "// %s" and vim.bo[buf].shiftwidth == 2 and vim.bo[buf].expandtab,
    ("ftplugin settings: commentstring=%q shiftwidth=%d expandtab=%s"):format(
      vim.bo[buf].commentstring,
      vim.bo[buf].shiftwidth,
      tostring(vim.bo[buf].expandtab)
    )
  )

  local attached = vim.wait(10000, function()
    return #buf_clients(buf) > 0
  end, 20)
  check(attached, "no language client attached to the buffer within 10 s (" .. tostring(enigma.state.lsp_api) .. ")")
  local client = buf_clients(buf)[1]
  check(client.name == "enigma", "the attached client is called '" .. tostring(client.name) .. "', want 'enigma'")

  local got = vim.wait(20000, function()
    return #vim.diagnostic.get(buf) > 0
  end, 20)
  check(got, "no diagnostics within 20 s")
  vim.wait(200) -- let a second publication, if any, arrive
  local diags = vim.diagnostic.get(buf)
  local listed = {}
  for _, d in ipairs(diags) do
    table.insert(listed, ("%d:%d %s %s"):format(d.lnum + 1, d.col + 1, tostring(d.code), d.message:match("[^\n]*")))
  end
  check(#diags == 1, ("want exactly one diagnostic, got %d: %s"):format(#diags, table.concat(listed, " | ")))
  local d = diags[1]
  check(d.code == "E0211", "diagnostic code is " .. tostring(d.code) .. ", want E0211: " .. listed[1])
  check(d.lnum + 1 == 28, ("diagnostic is on line %d, want 28: %s"):format(d.lnum + 1, listed[1]))
  check(
    d.message:sub(1, #EXPECTED_MESSAGE) == EXPECTED_MESSAGE,
    ("diagnostic message starts %q, want %q"):format(d.message:sub(1, 60), EXPECTED_MESSAGE)
  )

  -- Hover on the `h` of `let h = Transformer(...)`.
  local line27 = vim.api.nvim_buf_get_lines(buf, 26, 27, true)[1]
  local s = line27:find("let h", 1, true)
  check(s ~= nil, "line 27 has no `let h`: " .. line27)
  local col = s + 3 -- 0-based column of `h`
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = 26, character = col },
  }
  local responses = vim.lsp.buf_request_sync(buf, "textDocument/hover", params, 10000)
  check(responses ~= nil, "no answer to textDocument/hover within 10 s")
  local text = ""
  for _, r in pairs(responses) do
    check(r.err == nil, "hover failed: " .. vim.inspect(r.err))
    if r.result then
      text = text .. hover_text(r.result.contents)
    end
  end
  check(text:find("d=32", 1, true) ~= nil, "hover on `h` (27:" .. (col + 1) .. ") lacks d=32: " .. vim.inspect(text))

  local ts_note = ""
  if ts_dir then
    check(enigma.state.parser ~= nil, "tree-sitter parser not loaded: " .. tostring(enigma.state.parser_error))
    local active = vim.treesitter.highlighter.active[buf]
    check(active ~= nil, "tree-sitter highlighting is not active in the buffer")
    ts_note = (", tree-sitter parser + %d queries (%s)"):format(
      #enigma.state.queries,
      table.concat(enigma.state.queries, ",")
    )
  end

  local first_hover = text:match("[^\n]*d=32[^\n]*") or text:match("[^\n]*")
  return ("%s via %s: diagnostic %s..., hover `h`: %s%s"):format(
    version(),
    enigma.state.lsp_api,
    listed[1]:sub(1, 48),
    vim.trim(first_hover),
    ts_note
  )
end

local ok, res = xpcall(run, function(e)
  if type(e) == "table" and e.failed then
    return e
  end
  return { failed = "Lua error: " .. debug.traceback(tostring(e), 2) }
end)
if ok then
  out(("nvim.sh: ok in %.2f s: %s"):format((vim.loop.hrtime() - t0) / 1e9, res))
  -- Shut the server down cleanly (shutdown request, then exit) before quitting.
  local clients = (vim.lsp.get_clients or vim.lsp.get_active_clients)()
  for _, c in ipairs(clients) do
    vim.lsp.stop_client(c.id)
  end
  vim.wait(5000, function()
    for _, c in ipairs(clients) do
      if vim.lsp.get_client_by_id(c.id) then
        return false
      end
    end
    return true
  end, 20)
  vim.cmd("qall!")
else
  io.stderr:write("nvim.sh: FAILED: " .. res.failed .. "\n")
  vim.cmd("cquit 1")
end

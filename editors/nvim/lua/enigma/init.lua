-- Neovim support for enigma experiment files (.enigma).
--
--   require("enigma").setup({ cmd = { "enigma", "lsp" } })
--
-- registers the language server `enigma lsp` for filetype `enigma`, with the
-- API the running Neovim has:
--   0.11+      vim.lsp.config + vim.lsp.enable
--   0.8-0.10   vim.lsp.start from a FileType autocommand
--   0.7        vim.lsp.start_client + vim.lsp.buf_attach_client from a
--              FileType autocommand (one client per project root)
-- and, with `treesitter_dir` set, the tree-sitter parser and its queries.
-- See editors/nvim/README.md.

local M = {}

local defaults = {
  -- The server command. Use an absolute path if `enigma` is not on PATH.
  cmd = { "enigma", "lsp" },
  -- The client's name (`:LspInfo`, vim.lsp.get_clients({ name = ... })).
  name = "enigma",
  filetypes = { "enigma" },
  -- The project root is the nearest directory above the file that holds one
  -- of these; without one, the file's own directory.
  root_markers = { ".git" },
  -- false: do not start the language server (tree-sitter only).
  lsp = true,
  -- Passed on to the client unchanged when set.
  on_attach = nil,
  capabilities = nil,
  settings = nil,
  init_options = nil,
  -- The tree-sitter grammar's folder (editors/tree-sitter-enigma). When set,
  -- the parser at `treesitter_parser` (default <dir>/parser/enigma.so, built
  -- there by `tree-sitter build -o parser/enigma.so`) is registered, and the
  -- queries in <dir>/queries/*.scm become the `enigma` queries.
  treesitter_dir = nil,
  treesitter_parser = nil,
  -- Start tree-sitter highlighting in enigma buffers (when the parser loaded
  -- and nothing, e.g. nvim-treesitter, highlights the buffer already).
  treesitter_highlight = true,
  -- Fold by the grammar's folds.scm (Neovim 0.9+; sets foldmethod=expr in
  -- windows that show enigma buffers).
  treesitter_folds = false,
}

-- The options in effect after setup(); nil before.
M.config = nil
-- What setup() did, for :checkhealth enigma.
M.state = { lsp_api = nil, parser = nil, parser_error = nil, queries = {} }

local function has(version)
  return vim.fn.has("nvim-" .. version) == 1
end

local function notify(msg, level)
  vim.schedule(function()
    vim.notify("enigma: " .. msg, level or vim.log.levels.WARN)
  end)
end

local function merge(user)
  local cfg = vim.tbl_extend("force", {}, defaults)
  for k, v in pairs(user or {}) do
    cfg[k] = v
  end
  if type(cfg.cmd) == "string" then
    cfg.cmd = { cfg.cmd, "lsp" }
  end
  return cfg
end

-- The project root of buffer `bufnr`: the nearest ancestor directory holding
-- one of `markers`, else the file's directory (works on 0.7, without vim.fs).
function M.root_dir(bufnr, markers)
  local name = vim.api.nvim_buf_get_name(bufnr)
  local dir = name ~= "" and vim.fn.fnamemodify(name, ":p:h") or vim.loop.cwd()
  local d = dir
  while true do
    for _, marker in ipairs(markers or {}) do
      if vim.loop.fs_stat(d .. "/" .. marker) then
        return d
      end
    end
    local parent = vim.fn.fnamemodify(d, ":h")
    if parent == d then
      return dir
    end
    d = parent
  end
end

-- The client configuration for one project root (the 0.7-0.10 paths).
local function client_config(cfg, root)
  return {
    name = cfg.name,
    cmd = cfg.cmd,
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    on_attach = cfg.on_attach,
    capabilities = cfg.capabilities,
    settings = cfg.settings,
    init_options = cfg.init_options,
  }
end

local warned_missing = false
local function executable(cfg)
  if vim.fn.executable(cfg.cmd[1]) == 1 then
    return true
  end
  if not warned_missing then
    warned_missing = true
    notify(
      ("`%s` is not executable; build enigma or pass its path: "
        .. 'require("enigma").setup({ cmd = { "/path/to/enigma", "lsp" } })'):format(cfg.cmd[1]),
      vim.log.levels.ERROR
    )
  end
  return false
end

-- 0.7 only: client ids by project root, so that buffers of one project share
-- one server (vim.lsp.start does this itself from 0.8 on).
local clients_by_root = {}

local function start_lsp(cfg, bufnr)
  if vim.bo[bufnr].buftype ~= "" or not executable(cfg) then
    return
  end
  local root = M.root_dir(bufnr, cfg.root_markers)
  local config = client_config(cfg, root)
  if vim.lsp.start then
    vim.lsp.start(config, { bufnr = bufnr })
    return
  end
  local id = clients_by_root[root]
  local client = id and vim.lsp.get_client_by_id(id)
  if not client or client.is_stopped() then
    id = vim.lsp.start_client(config)
    clients_by_root[root] = id
  end
  if id then
    vim.lsp.buf_attach_client(bufnr, id)
    -- 0.8+ sets this on attach; 0.7 leaves it to the user.
    if vim.bo[bufnr].omnifunc == "" then
      vim.bo[bufnr].omnifunc = "v:lua.vim.lsp.omnifunc"
    end
  end
end

local function setup_lsp(cfg, group)
  if has("0.11") and vim.lsp.config and vim.lsp.enable then
    M.state.lsp_api = "vim.lsp.config + vim.lsp.enable"
    vim.lsp.config(cfg.name, {
      cmd = cfg.cmd,
      filetypes = cfg.filetypes,
      root_markers = cfg.root_markers,
      on_attach = cfg.on_attach,
      capabilities = cfg.capabilities,
      settings = cfg.settings,
      init_options = cfg.init_options,
    })
    if executable(cfg) then
      vim.lsp.enable(cfg.name)
    end
    return
  end
  M.state.lsp_api = vim.lsp.start and "vim.lsp.start" or "vim.lsp.start_client + vim.lsp.buf_attach_client"
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = cfg.filetypes,
    desc = "enigma: start the language server",
    callback = function(args)
      start_lsp(cfg, args.buf)
    end,
  })
end

-- ---------------------------------------------------------------------------
-- tree-sitter
-- ---------------------------------------------------------------------------

local function read_file(path)
  local f = io.open(path, "r")
  if not f then
    return nil
  end
  local text = f:read("*a")
  f:close()
  return text
end

local function language_loaded()
  local inspect = (vim.treesitter.language and vim.treesitter.language.inspect)
    or (vim.treesitter.language and vim.treesitter.language.inspect_language)
    or vim.treesitter.inspect_language
  return inspect ~= nil and pcall(inspect, "enigma")
end

-- Loads the enigma language from `so`, or from parser/enigma.* on
-- 'runtimepath' (e.g. installed by nvim-treesitter) when `so` is nil.
local function add_language(so)
  local ok, res, msg
  if vim.treesitter.language and vim.treesitter.language.add then -- 0.9+
    ok, res, msg = pcall(vim.treesitter.language.add, "enigma", so and { path = so } or nil)
  else -- 0.7, 0.8
    ok, res, msg = pcall(vim.treesitter.require_language, "enigma", so, so == nil)
  end
  if not ok then
    return false, res
  end
  -- 0.10+ returns nil and a message instead of raising; 0.7 (silent) false.
  if res == false or (res == nil and msg) then
    return false, msg or "not found"
  end
  return true
end

local function setup_treesitter(cfg)
  M.state.parser, M.state.parser_error, M.state.queries = nil, nil, {}
  if not cfg.treesitter_dir and not cfg.treesitter_parser then
    return false
  end
  local dir = cfg.treesitter_dir and vim.fn.fnamemodify(vim.fn.expand(cfg.treesitter_dir), ":p"):gsub("[/\\]$", "")
  local so = cfg.treesitter_parser and vim.fn.expand(cfg.treesitter_parser) or (dir .. "/parser/enigma.so")
  local ok, err
  if vim.fn.filereadable(so) == 1 then
    ok, err = add_language(so)
    ok = ok and language_loaded()
    M.state.parser = ok and so or nil
  elseif not cfg.treesitter_parser then
    -- No parser in the grammar's folder: one on 'runtimepath' will do.
    ok = add_language(nil) and language_loaded() or false
    M.state.parser = ok and "parser/enigma.so on 'runtimepath'" or nil
    err = "no parser at " .. so .. " nor on 'runtimepath'"
  else
    err = "no parser at " .. so
  end
  if not ok then
    M.state.parser_error = tostring(err or "the parser did not load")
    notify(
      ("tree-sitter: %s; build it with `tree-sitter build -o parser/enigma.so` in %s"):format(
        M.state.parser_error,
        dir or "editors/tree-sitter-enigma"
      ),
      vim.log.levels.WARN
    )
    return false
  end

  -- The grammar keeps its queries in queries/*.scm, not in the
  -- queries/enigma/ layout Neovim searches on 'runtimepath', so they are set
  -- directly (this replaces queries/enigma/*.scm found on 'runtimepath').
  if dir then
    local set = (vim.treesitter.query and vim.treesitter.query.set) or vim.treesitter.query.set_query
    for _, name in ipairs({ "highlights", "folds", "indents", "locals", "injections" }) do
      local text = read_file(dir .. "/queries/" .. name .. ".scm")
      if text then
        local qok, qerr = pcall(set, "enigma", name, text)
        if qok then
          table.insert(M.state.queries, name)
        else
          notify(("queries/%s.scm: %s"):format(name, tostring(qerr)), vim.log.levels.ERROR)
        end
      end
    end
  end
  return true
end

local function start_treesitter(cfg, bufnr)
  if cfg.treesitter_highlight then
    local active = vim.treesitter.highlighter and vim.treesitter.highlighter.active
    if not (active and active[bufnr]) then
      if vim.treesitter.start then -- 0.8+
        pcall(vim.treesitter.start, bufnr, "enigma")
      else -- 0.7
        pcall(function()
          vim.treesitter.highlighter.new(vim.treesitter.get_parser(bufnr, "enigma"))
        end)
      end
    end
  end
  if cfg.treesitter_folds and vim.treesitter.foldexpr and bufnr == vim.api.nvim_get_current_buf() then
    vim.opt_local.foldmethod = "expr"
    vim.opt_local.foldexpr = "v:lua.vim.treesitter.foldexpr()"
  end
end

-- ---------------------------------------------------------------------------

-- *.enigma -> filetype enigma, also when the plugin's folder was added to
-- 'runtimepath' after `filetype on` had read the ftdetect/ scripts.
local function register_filetype(group)
  if vim.filetype and vim.filetype.add and has("0.8") then
    vim.filetype.add({ extension = { enigma = "enigma" } })
  else
    vim.api.nvim_create_autocmd({ "BufRead", "BufNewFile" }, {
      group = group,
      pattern = "*.enigma",
      command = "setfiletype enigma",
    })
  end
end

function M.setup(opts)
  local cfg = merge(opts)
  M.config = cfg
  M.state.lsp_api = nil
  local group = vim.api.nvim_create_augroup("enigma", { clear = true })
  register_filetype(group)

  local ts = setup_treesitter(cfg)
  if cfg.lsp then
    setup_lsp(cfg, group)
  end
  if ts then
    vim.api.nvim_create_autocmd("FileType", {
      group = group,
      pattern = cfg.filetypes,
      desc = "enigma: tree-sitter highlighting",
      callback = function(args)
        start_treesitter(cfg, args.buf)
      end,
    })
  end

  -- Buffers that were already open when setup() ran.
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) and vim.tbl_contains(cfg.filetypes, vim.bo[buf].filetype) then
      if cfg.lsp and M.state.lsp_api ~= "vim.lsp.config + vim.lsp.enable" then
        start_lsp(cfg, buf)
      elseif cfg.lsp and vim.v.vim_did_enter == 0 then
        -- vim.lsp.enable() attaches open buffers itself only after VimEnter;
        -- before it (e.g. `nvim file.enigma -c 'lua ...setup()'`) run its
        -- FileType autocommand for this buffer (the group's name varies).
        for _, group_name in ipairs({ "nvim.lsp.enable", "vim.lsp.enable" }) do
          pcall(vim.api.nvim_exec_autocmds, "FileType", { group = group_name, buffer = buf, modeline = false })
        end
      end
      if ts then
        start_treesitter(cfg, buf)
      end
    end
  end
  return M
end

return M

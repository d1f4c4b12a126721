" Files ending in .enigma are enigma experiment files. Vim script rather than
" Lua so that every Neovim (0.7 and later) and Vim itself read it.
autocmd BufRead,BufNewFile *.enigma setfiletype enigma

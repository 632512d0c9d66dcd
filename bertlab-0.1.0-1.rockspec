-- bertlab-0.1.0-1.rockspec: `luarocks make` in the checkout builds build/bertlab.so with the project's
-- Makefile (its first step, scripts/deps.sh, installs the Debian packages where they are missing) and
-- installs the module into the rocks tree: bertlab.so and the Lua parts bertlab/*.lua.
rockspec_format = "3.0"
package = "bertlab"
version = "0.1.0-1"
source = {
  url = "git+file://.", -- `luarocks make` builds the checkout it runs in; nothing is fetched
}
description = {
  summary = "Fine-tune BERT text classifiers from Lua 5.4, the math in C (OpenBLAS, OpenMP)",
  detailed = [[
    require("bertlab") gives tensors, a WordPiece tokenizer, safetensors I/O, BERT for sequence
    classification with backward, AdamW, schedules, data loaders and metrics.
  ]],
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  type = "make",
  build_target = "module",
  install_target = "install-module",
  -- LuaRocks' CFLAGS are not passed: the Makefile's own (-O3 -march=native, -fPIC for the module) apply.
  build_variables = {},
  install_variables = {
    LUA_CMODDIR = "$(LIBDIR)",
    LUA_LMODDIR = "$(LUADIR)",
  },
}

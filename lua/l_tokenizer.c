/* l_tokenizer.c: Lua bindings for the tokenizer part of bertlab (filled in by its issue). */
#include "lbl.h"

void bl_open_tokenizer(lua_State *L) { (void)L; }

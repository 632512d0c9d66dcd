/* l_io.c: Lua bindings for the io part of bertlab (filled in by its issue). */
#include "lbl.h"

void bl_open_io(lua_State *L) { (void)L; }

/* l_data.c: Lua bindings for the data part of bertlab (filled in by its issue). */
#include "lbl.h"

void bl_open_data(lua_State *L) { (void)L; }

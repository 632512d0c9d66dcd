/* l_model.c: Lua bindings for the model part of bertlab (filled in by its issue). */
#include "lbl.h"

void bl_open_model(lua_State *L) { (void)L; }

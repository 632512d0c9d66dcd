/* l_train.c: Lua bindings for the train part of bertlab (filled in by its issue). */
#include "lbl.h"

void bl_open_train(lua_State *L) { (void)L; }

/* l_util.c: small OS helpers for scripts that record their runs and draw progress: bl.sha256_file,
 * bl.sha256 (runtime/sha256.c), bl.terminal_width (runtime/term.c); for safe stops and durable
 * training states: the signal flag (bl.trap_signals, bl.signal_pending, bl.untrap_signals),
 * bl.fsync_path, bl.write_file_durable (runtime/fileio.c) and bl.link_file. */
#include "lbl.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "../runtime/sha256.h"
#include "../runtime/term.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* bl.sha256_file(path) -> 64 hex digits; a missing or unreadable file raises an error naming it. */
static int util_sha256_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    char hex[65];
    lbl_check(L, sha256_file(path, hex), "sha256_file");
    lua_pushstring(L, hex);
    return 1;
}

/* bl.sha256(s) -> 64 hex digits of the bytes of string s. */
static int util_sha256(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    sha256_t st;
    uint8_t d[32];
    char hex[65];
    sha256_init(&st);
    sha256_update(&st, s, n);
    sha256_final(&st, d);
    sha256_hex(d, hex);
    lua_pushstring(L, hex);
    return 1;
}

/* bl.terminal_width([f]) -> columns of the terminal behind f (an io file or a descriptor number;
 * default io.stderr), asked at each call; nil when f is not a terminal. */
static int util_terminal_width(lua_State *L) {
    int fd = 2;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        fd = (int)luaL_checkinteger(L, 1);
    } else if (!lua_isnoneornil(L, 1)) {
        luaL_Stream *s = luaL_testudata(L, 1, LUA_FILEHANDLE);
        if (!s) return luaL_argerror(L, 1, "file handle or descriptor number expected");
        if (!s->closef || !s->f) return luaL_argerror(L, 1, "file is closed");
        fd = fileno(s->f);
    }
    int w = term_width(fd);
    if (w < 0) lua_pushnil(L); else lua_pushinteger(L, w);
    return 1;
}

/* ---- the stop flag ------------------------------------------------------------------------------ */

/* The first SIGINT/SIGTERM only sets the flag (training finishes its step and saves a state); a
 * second one while the flag is set exits at once, without running any more Lua (nothing is written:
 * a save in progress leaves only its temporary folder, never a half-written state). */
static volatile sig_atomic_t pending_signal = 0;
static struct sigaction old_int, old_term;
static int trapped = 0;

static void on_stop_signal(int sig) {
    if (pending_signal) _exit(128 + sig);
    pending_signal = sig;
}

/* bl.trap_signals(): from now on SIGINT/SIGTERM set the flag that bl.signal_pending() reads. */
static int util_trap_signals(lua_State *L) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    pending_signal = 0;
    if (!trapped) {
        if (sigaction(SIGINT, &sa, &old_int) || sigaction(SIGTERM, &sa, &old_term))
            return luaL_error(L, "trap_signals: sigaction: %s", strerror(errno));
        trapped = 1;
    }
    return 0;
}

/* bl.untrap_signals(): the handlers from before bl.trap_signals() (the flag is cleared). */
static int util_untrap_signals(lua_State *L) {
    (void)L;
    if (trapped) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        trapped = 0;
    }
    pending_signal = 0;
    return 0;
}

/* bl.signal_pending() -> "SIGINT" | "SIGTERM", its number; or nil when no stop was asked for. */
static int util_signal_pending(lua_State *L) {
    int sig = pending_signal;
    if (!sig) return 0;
    lua_pushstring(L, sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal");
    lua_pushinteger(L, sig);
    return 2;
}

/* ---- durable files --------------------------------------------------------------------------------- */

/* bl.fsync_path(path): fsync of a file or a folder (after its entries changed); errors name it. */
static int util_fsync_path(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return luaL_error(L, "fsync_path: cannot open '%s': %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) return luaL_error(L, "fsync_path: '%s': %s", path, strerror(e));
    return 0;
}

/* bl.write_file_durable(path, text): writes a temporary file beside `path`, fsyncs it, renames it
 * over `path` and fsyncs the folder (runtime/fileio.c); a failure (full disk, read-only folder)
 * raises naming the file and leaves any previous `path` untouched. */
static int util_write_file_durable(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *text = luaL_checklstring(L, 2, &n);
    atomic_file_t af;
    memset(&af, 0, sizeof af);
    if (atomic_open(&af, path) != 0) return luaL_error(L, "write_file_durable: %s", bl_errmsg());
    if (n && fwrite(text, 1, n, af.f) != n) {
        int e = errno;
        atomic_abort(&af);
        return luaL_error(L, "write_file_durable: cannot write '%s': %s", path, strerror(e));
    }
    if (atomic_commit(&af) != 0) return luaL_error(L, "write_file_durable: %s", bl_errmsg());
    return 0;
}

/* bl.link_file(src, dst) -> true | nil, why: dst becomes a hard link to src (link(2): the same file
 * under a second name, no bytes copied). Fails, without raising, where links cannot be made (dst
 * exists, another filesystem, a filesystem without them): the caller then writes the file. */
static int util_link_file(lua_State *L) {
    const char *src = luaL_checkstring(L, 1), *dst = luaL_checkstring(L, 2);
    if (link(src, dst) != 0) {
        luaL_pushfail(L);
        lua_pushfstring(L, "link_file: '%s' -> '%s': %s", src, dst, strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* bl.remove_tree(path): rm -rf in-process (no shell); errors name the entry that could not go. */
static int util_remove_tree(lua_State *L) {
    lbl_check(L, remove_tree(luaL_checkstring(L, 1)), "remove_tree");
    return 0;
}

/* bl.make_dirs(path): mkdir -p in-process; errors name the folder. */
static int util_make_dirs(lua_State *L) {
    lbl_check(L, mkdir_p(luaL_checkstring(L, 1)), "make_dirs");
    return 0;
}

static const luaL_Reg util_funcs[] = {
    {"remove_tree", util_remove_tree}, {"make_dirs", util_make_dirs},
    {"sha256_file", util_sha256_file}, {"sha256", util_sha256}, {"terminal_width", util_terminal_width},
    {"trap_signals", util_trap_signals}, {"untrap_signals", util_untrap_signals},
    {"signal_pending", util_signal_pending}, {"fsync_path", util_fsync_path},
    {"write_file_durable", util_write_file_durable}, {"link_file", util_link_file},
    {NULL, NULL}};

void bl_open_util(lua_State *L) { luaL_setfuncs(L, util_funcs, 0); }

/* error.h: the runtime's one error channel.
 * Runtime functions return 0 (or a non-NULL pointer) on success and -1 (or NULL) on failure,
 * after recording a message that names the thing at fault; the Lua layer turns it into an error. */
#ifndef BL_ERROR_H
#define BL_ERROR_H

/* Records a printf-style message as the current error and returns -1, so `return bl_fail(...)` works. */
int bl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prefixes the current error with a printf-style context ("model.safetensors: " + message); returns -1. */
int bl_fail_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Returns the message of the last failure on this thread ("" if none). */
const char *bl_errmsg(void);

#endif

/* error.c: a thread-local message buffer behind bl_fail / bl_errmsg. */
#include "error.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];

int bl_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return -1;
}

int bl_fail_prefix(const char *fmt, ...) {
    char prefix[512], old[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, errbuf, sizeof old);
    size_t n = strlen(prefix);
    if (n >= sizeof errbuf) n = sizeof errbuf - 1;
    memcpy(errbuf, prefix, n);
    size_t room = sizeof errbuf - 1 - n, m = strlen(old);
    if (m > room) m = room;
    memcpy(errbuf + n, old, m);
    errbuf[n + m] = 0;
    return -1;
}

const char *bl_errmsg(void) { return errbuf; }

/* term.c: terminal size through the TIOCGWINSZ ioctl (no Lua, no curses). */
#include "term.h"
#include <sys/ioctl.h>
#include <unistd.h>

int term_width(int fd) {
    struct winsize ws;
    if (fd < 0 || !isatty(fd)) return -1;
    if (ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return -1;
    return ws.ws_col;
}

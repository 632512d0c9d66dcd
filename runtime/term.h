/* term.h: the terminal's width, asked afresh at each call, so a progress bar follows a resize. */
#ifndef BL_TERM_H
#define BL_TERM_H

/* Columns of the terminal on file descriptor fd (TIOCGWINSZ), or -1 when fd is not a terminal or the
 * terminal does not report a width. */
int term_width(int fd);

#endif

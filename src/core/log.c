#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int terse__log_level_current = TERSE_LOG_LEVEL_WARN;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void terse__log(terse__log_level_t level, const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    const char *base = strrchr(file, '/');

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* One fprintf per line so lines from concurrent ranks/threads do not interleave. */
    fprintf(stderr, "[terse %d %s:%d %s] %s\n", (int)getpid(), base ? base + 1 : file, line,
            level_names[level], msg);
}

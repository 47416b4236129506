/* Small helpers shared by the topology tests: checks and stderr capture. */
#ifndef TERSE_TESTS_TOPO_UTIL_H
#define TERSE_TESTS_TOPO_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A failed check ends the test process: CTest reports the line. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Captures what the library writes to stderr (its log) so tests can check warnings. */
static int cap_saved_fd = -1;
static FILE *cap_file;
static char cap_buf[65536];

static inline void capture_begin(void)
{
    fflush(stderr);
    cap_file = tmpfile();
    CHECK(cap_file);
    cap_saved_fd = dup(2);
    CHECK(cap_saved_fd >= 0);
    CHECK(dup2(fileno(cap_file), 2) >= 0);
}

/* Ends the capture, echoes it (so CTest logs show it) and returns it. */
static inline const char *capture_end(void)
{
    fflush(stderr);
    CHECK(dup2(cap_saved_fd, 2) >= 0);
    close(cap_saved_fd);
    rewind(cap_file);
    size_t n = fread(cap_buf, 1, sizeof(cap_buf) - 1, cap_file);
    cap_buf[n] = '\0';
    fclose(cap_file);
    fputs(cap_buf, stderr);
    return cap_buf;
}

/* 1 when the log holds a warning line containing @needle. */
static inline int has_warning(const char *log, const char *needle)
{
    for (const char *line = log; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char tmp[1200];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)(len < sizeof(tmp) - 1 ? len : sizeof(tmp) - 1),
                 line);
        if (strstr(tmp, " warn]") && strstr(tmp, needle))
            return 1;
        line = end ? end + 1 : NULL;
    }
    return 0;
}

#endif

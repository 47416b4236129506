/* Logging: level from TERSE_LOG_LEVEL, lowercase messages, to stderr. */
#ifndef TERSE_CORE_LOG_H
#define TERSE_CORE_LOG_H

typedef enum terse__log_level {
    TERSE_LOG_LEVEL_ERROR = 0,
    TERSE_LOG_LEVEL_WARN = 1,
    TERSE_LOG_LEVEL_INFO = 2,
    TERSE_LOG_LEVEL_DEBUG = 3,
    TERSE_LOG_LEVEL_TRACE = 4
} terse__log_level_t;

extern int terse__log_level_current;

void terse__log(terse__log_level_t level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Checks the level before evaluating arguments so disabled logs cost one compare. */
#define terse_log_at(level, ...)                                                                   \
    do {                                                                                           \
        if ((int)(level) <= terse__log_level_current)                                              \
            terse__log((level), __FILE__, __LINE__, __VA_ARGS__);                                  \
    } while (0)

#define terse_log_error(...) terse_log_at(TERSE_LOG_LEVEL_ERROR, __VA_ARGS__)
#define terse_log_warn(...)  terse_log_at(TERSE_LOG_LEVEL_WARN, __VA_ARGS__)
#define terse_log_info(...)  terse_log_at(TERSE_LOG_LEVEL_INFO, __VA_ARGS__)
#define terse_log_debug(...) terse_log_at(TERSE_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define terse_log_trace(...) terse_log_at(TERSE_LOG_LEVEL_TRACE, __VA_ARGS__)

#endif

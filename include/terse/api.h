/* terse: symbol export and version macros. */
#ifndef TERSE_API_H
#define TERSE_API_H

#if defined(__GNUC__)
#define TERSE_API __attribute__((visibility("default")))
#else
#define TERSE_API
#endif

#define TERSE_VERSION_MAJOR 0
#define TERSE_VERSION_MINOR 1
#define TERSE_VERSION_PATCH 0
#define TERSE_VERSION_STRING "0.1.0"

#endif

/*
 * The cache library is built with hidden visibility (tools/build.ts): a symbol is exported only
 * when its declaration says so.
 */
#ifndef RCACHE_VISIBILITY_H
#define RCACHE_VISIBILITY_H

/* The library's interface (rcache.h). */
#define RCACHE_API __attribute__((visibility("default")))

/* Internal functions and data that the tests' native library reaches (tests/native/): exported,
 * but no part of the interface. */
#define RCACHE_TESTABLE __attribute__((visibility("default")))

#endif /* RCACHE_VISIBILITY_H */

/*
 * Test support: how a forked child of a native probe ended.
 */
#ifndef TESTS_CHILD_STATUS_H
#define TESTS_CHILD_STATUS_H

#include <sys/types.h>
#include <sys/wait.h>

/* Waits for child `pid`: its exit status, 128 + the signal that ended it, or -1. */
static inline int child_status(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#endif /* TESTS_CHILD_STATUS_H */

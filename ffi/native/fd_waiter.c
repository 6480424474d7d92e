/*
 * The one waiter: an epoll set holding every descriptor a wait is pending on (completion
 * channels, the device's async descriptor, connection-manager channels), served by one
 * nonblocking FFI call of drv_waiter_wait() at a time on one of Deno's worker threads. It only
 * reports which descriptors are ready; the JavaScript thread reads them (never this thread, which
 * must not call into JavaScript) and re-arms them.
 *
 * Descriptors are registered EPOLLONESHOT: a ready one is reported once and then stays disarmed
 * until the JavaScript thread re-arms it for its next wait, so only that thread ever changes a
 * registration, and a readiness reported late (for a wait cancelled meanwhile) is recognised by
 * its token and ignored. An eventfd in the set lets the JavaScript thread end the pending call
 * when the last wait is gone, so no call stays outstanding (and keeps the process alive) without
 * a wait.
 */
#include "verbs_shim.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* The token of the wake-up eventfd: JavaScript's tokens are below 2^53. */
#define WAKE_TOKEN UINT64_MAX

/* Ready descriptors reported per call at most; the rest wait for the next call. */
#define MAX_READY 64

struct drv_waiter {
    int epoll_fd;
    int wake_fd;
};

/* Creates a waiter and stores it in *out. Returns 0 or -errno. */
EXPORT int32_t drv_waiter_create(struct drv_waiter **out)
{
    struct drv_waiter *waiter = malloc(sizeof *waiter);
    if (waiter == NULL)
        return -ENOMEM;
    waiter->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    waiter->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event wake = {.events = EPOLLIN, .data.u64 = WAKE_TOKEN};
    if (waiter->epoll_fd < 0 || waiter->wake_fd < 0 ||
        epoll_ctl(waiter->epoll_fd, EPOLL_CTL_ADD, waiter->wake_fd, &wake) < 0) {
        int err = errno;
        if (waiter->epoll_fd >= 0)
            close(waiter->epoll_fd);
        if (waiter->wake_fd >= 0)
            close(waiter->wake_fd);
        free(waiter);
        return -err;
    }
    *out = waiter;
    return 0;
}

/*
 * Arms `fd` for one readiness report carrying `token` (registering it, or re-arming a
 * registration a report disarmed). Returns 0 or -errno.
 */
EXPORT int32_t drv_waiter_arm(struct drv_waiter *waiter, int32_t fd, uint64_t token)
{
    struct epoll_event event = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = token};
    if (epoll_ctl(waiter->epoll_fd, EPOLL_CTL_MOD, fd, &event) == 0)
        return 0;
    if (errno != ENOENT)
        return -errno;
    return epoll_ctl(waiter->epoll_fd, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : -errno;
}

/*
 * Removes `fd` from the set (a wait cancelled, or its descriptor about to be closed). Returns 0
 * or -errno; a descriptor already gone from the set (ENOENT, EBADF) is not an error.
 */
EXPORT int32_t drv_waiter_disarm(struct drv_waiter *waiter, int32_t fd)
{
    if (epoll_ctl(waiter->epoll_fd, EPOLL_CTL_DEL, fd, NULL) == 0 || errno == ENOENT ||
        errno == EBADF)
        return 0;
    return -errno;
}

/*
 * Waits until a registered descriptor is ready, drv_waiter_wake() is called or timeout_ms pass,
 * then stores the ready descriptors' tokens in `tokens` (at most `max`, up to MAX_READY).
 * Nonblocking FFI symbol: it runs on a worker thread, so it returns the error itself. Returns the
 * number of tokens (0 after a wake-up, a timeout or a signal) or -errno. The caller bounds the
 * timeout so that a thread whose isolate ended (a terminated Worker) does not wait forever.
 */
EXPORT int32_t drv_waiter_wait(struct drv_waiter *waiter, uint64_t *tokens, int32_t max,
                               int32_t timeout_ms)
{
    struct epoll_event events[MAX_READY];
    int n = epoll_wait(waiter->epoll_fd, events, max < MAX_READY ? max : MAX_READY, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    int32_t reported = 0;
    for (int i = 0; i < n; i++) {
        if (events[i].data.u64 == WAKE_TOKEN) {
            uint64_t count;
            /* Consumed here, so the next call waits again; nonblocking, so a read racing another
             * wake-up's write cannot block. */
            ssize_t ignored = read(waiter->wake_fd, &count, sizeof count);
            (void)ignored;
            continue;
        }
        tokens[reported++] = events[i].data.u64;
    }
    return reported;
}

/* Makes the pending (or the next) drv_waiter_wait() return. Returns 0 or -errno. */
EXPORT int32_t drv_waiter_wake(struct drv_waiter *waiter)
{
    uint64_t one = 1;
    return write(waiter->wake_fd, &one, sizeof one) == (ssize_t)sizeof one || errno == EAGAIN
               ? 0
               : -errno;
}

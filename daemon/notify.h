/* daemon/notify.h -- tell systemd how the service is doing (Type=notify): sd_notify(3)
 * without libsystemd.
 *
 * The protocol is one datagram of newline-separated VARIABLE=VALUE assignments on the
 * AF_UNIX socket named by $NOTIFY_SOCKET: a path ("/run/systemd/notify") or, with a
 * leading '@', a name in the abstract namespace. systemd learns the sender's pid from the
 * kernel (SCM_CREDENTIALS), so any thread of the main process may send. The ones cprofd
 * uses:
 *
 *     READY=1             start-up is done: listening, targets attached
 *     STATUS=...          one line for `systemctl status`
 *     RELOADING=1         a reload (SIGHUP) begins; READY=1 again when it is done
 *     STOPPING=1          shutting down (SIGTERM)
 *
 * $NOTIFY_SOCKET is left in the environment (cprofd starts no children). */
#pragma once

#include "macro.h"

#define NOTIFY_MESSAGE_MAX 4096         /* bytes of one message: a STATUS= line is short */
#define NOTIFY_SEND_TIMEOUT_SEC 5       /* a send waits this long for room in the queue */

/* Sends STATE, e.g. "READY=1\nSTATUS=Serving 3 targets". Returns 1 when sent, 0 when
 * $NOTIFY_SOCKET is unset or empty (not started by systemd as Type=notify: nothing to
 * do), or negative errno: -EAFNOSUPPORT for a $NOTIFY_SOCKET that is neither an absolute
 * path nor '@'-abstract (systemd ≥ 254's vsock: form included), -EINVAL for one too long
 * for sockaddr_un or an empty STATE, -EMSGSIZE for STATE over NOTIFY_MESSAGE_MAX, or the
 * errno of socket()/sendto() (-ECONNREFUSED when nobody listens, -EAGAIN when the receiver's
 * queue stayed full for NOTIFY_SEND_TIMEOUT_SEC). Never raises SIGPIPE. */
int notify_send(const char *state);
/* As notify_send(), STATE formatted from FMT. */
int notify_sendf(const char *fmt, ...) _printf_(1, 2);

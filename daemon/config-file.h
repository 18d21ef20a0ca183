/* daemon/config-file.h -- read cprofd.conf (/etc/cprofd/cprofd.conf, or --config PATH) into
 * a Config: the same settings as the command line, plus those only a service needs.
 *
 * (Not "config.h": main.c includes meson's generated config.h, and a quoted include looks
 * in the including file's directory first, so a daemon/config.h would shadow it.)
 *
 * The format, one setting per line:
 *
 *     # a comment: '#' as the first non-blank character of a line
 *     key = value
 *
 * Blank lines are ignored; blanks (space, tab, CR) around the key and the value are
 * dropped, and so is a UTF-8 byte order mark at the start of the file. There is no
 * quoting, no escaping and no comment after a value: everything from the first non-blank
 * character after '=' to the last non-blank one of the line is the value, '#' included
 * (a path may hold one). Keys are lower-case and exact:
 *
 *   pid, exe, comm,        target selectors, as --pid … --unit; repeatable, kept in file
 *   cgroup, unit           order (the first is the default target)
 *   listen                 HOST:PORT ("127.0.0.1:6060", "[::1]:6060", port 0 for any),
 *                          or unix:/ABSOLUTE/PATH
 *   interval               as --interval: 0 (off) or a duration ≥ 100ms ("10s", "1m30s")
 *   history                as --history: a snapshot count ("360") or a memory budget
 *                          ("64M"); may be given twice, once for each bound
 *   max-targets            1 … CONFIG_MAX_TARGETS_MAX
 *   stack-max              bytes, 4096 … SNAPSHOT_STACK_MAX_LIMIT
 *   log-level              err, warning, notice, info, debug (or 0 … 7)
 *   token-file             absolute path of the file holding the bearer token (not read
 *                          here: the caller reads it, so its errors name the token file)
 *   listen-mode            octal permissions of a unix socket, 0 … 0777 ("0660")
 *   allow-remote           yes/no (also true/false, on/off, 1/0): listening on an address
 *                          that is not loopback must be asked for
 *   max-seconds            profiles' seconds=N must stay below this, 1 … CONFIG_MAX_SECONDS_MAX
 *   max-requests           requests in progress at once, 1 … CONFIG_MAX_REQUESTS_MAX
 *   max-profiles           CPU and wall profiles running at once, 1 … CONFIG_MAX_REQUESTS_MAX
 *   max-connections        client connections open at once, 1 … CONFIG_MAX_CONNECTIONS_MAX
 *   header-timeout         a request must arrive whole within this duration, 1s … 1h
 *
 * Every other key, and every key but the selectors given twice, is an error. Values are
 * validated here, with the parsers the command line uses, so that an error names its line;
 * what can only be checked by using a value (binding the address, reading the token file,
 * attaching to the pid) is the caller's. Everything is capped: the file at
 * CONFIG_FILE_SIZE_MAX bytes, a line at CONFIG_LINE_MAX, selectors at
 * CONFIG_SELECTORS_MAX. The file must be UTF-8 without NUL bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "discover.h"

#define CONFIG_FILE_SIZE_MAX (1024u * 1024u)    /* bytes of the whole file */
#define CONFIG_LINE_MAX 4096u                   /* bytes of one line, without its '\n' */
#define CONFIG_SELECTORS_MAX 64u                /* as many as the command line takes */
#define CONFIG_MAX_TARGETS_MAX 4096u            /* as --max-targets */
#define CONFIG_MAX_SECONDS_MAX 86400u           /* a day: max-seconds */
#define CONFIG_MAX_REQUESTS_MAX 4096u           /* max-requests, max-profiles */
#define CONFIG_MAX_CONNECTIONS_MAX 65536u       /* max-connections */
#define CONFIG_HEADER_TIMEOUT_MAX_SEC 3600u     /* header-timeout */

/* What the file set. Every scalar comes with the line that set it: 0 means the file did
 * not set it (its value is then 0/NULL, not a default), so merging is
 *
 *     if (cfg.interval_line && !interval_from_command_line)
 *             schedule.interval_ns = cfg.interval_ns;
 *
 * and the line is there for the caller's own error messages ("cprofd.conf:3: cannot bind
 * …"). A zeroed Config is an empty one. */
typedef struct Config {
        /* Parsed and resolved by selector_parse(), in file order, kinds mixed. The Config
         * owns them; to move one out, copy the struct and zero the original (a zeroed
         * selector is accepted by selector_done(), and so by config_free()). */
        TargetSelector *selectors;
        size_t n_selectors;

        char *listen;                   /* "HOST:PORT" or "unix:/PATH" */
        unsigned listen_line;
        uint64_t interval_ns;           /* 0 or ≥ INTERVAL_MIN_NS */
        unsigned interval_line;
        unsigned history_snapshots;     /* 1 … HISTORY_SNAPSHOTS_MAX */
        unsigned history_snapshots_line;
        uint64_t history_bytes;         /* > 0 */
        unsigned history_bytes_line;
        size_t max_targets;
        unsigned max_targets_line;
        size_t stack_max;
        unsigned stack_max_line;
        int log_level;                  /* LOG_LEVEL_* (0 … 7) */
        unsigned log_level_line;
        char *token_file;               /* absolute path */
        unsigned token_file_line;
        mode_t listen_mode;             /* ≤ 0777 */
        unsigned listen_mode_line;
        bool allow_remote;
        unsigned allow_remote_line;
        unsigned max_seconds;
        unsigned max_seconds_line;
        unsigned max_requests;
        unsigned max_requests_line;
        unsigned max_profiles;
        unsigned max_profiles_line;
        unsigned max_connections;
        unsigned max_connections_line;
        unsigned header_timeout_sec;    /* whole seconds, 1 … CONFIG_HEADER_TIMEOUT_MAX_SEC */
        unsigned header_timeout_line;
} Config;

/* Reads and validates the file PATH into *RET (release with config_free()).
 *
 * On failure, returns negative errno, leaves *RET untouched and writes one line, without
 * a trailing newline, into ERR (ERRLEN bytes, truncated, always NUL-terminated; ERR may be
 * NULL when ERRLEN is 0). Errors about a line are "PATH:LINE: message", errors about the
 * whole file "PATH: message":
 *
 *   -ENOENT, -EACCES, …    PATH: cannot open: <strerror>   (the errno of open(); a caller
 *                          may treat -ENOENT of the default path as "no config file")
 *   -EISDIR                PATH: is a directory
 *   -EINVAL                PATH: not a regular file        (a FIFO, a device: never read)
 *   -EFBIG                 PATH: file too big (more than 1048576 bytes)
 *   -EIO, …                PATH: cannot read: <strerror>
 *   -ENOBUFS               PATH:LINE: line too long (more than 4096 bytes)
 *   -EILSEQ                PATH:LINE: NUL byte
 *   -EILSEQ                PATH:LINE: invalid UTF-8
 *   -EINVAL                PATH:LINE: missing '=' (expected "key = value")
 *   -EINVAL                PATH:LINE: missing key before '='
 *   -EINVAL                PATH:LINE: unknown key "KEY"
 *   -EINVAL                PATH:LINE: missing value for "KEY"
 *   -EINVAL                PATH:LINE: duplicate "KEY" (first set on line N)
 *   -EINVAL                PATH:LINE: duplicate "history" snapshot count (first set on line N)
 *   -EINVAL                PATH:LINE: duplicate "history" memory budget (first set on line N)
 *   -E2BIG                 PATH:LINE: too many targets (at most 64)
 *   -EINVAL, -ENOTUNIQ,    PATH:LINE: invalid KEY "VALUE": <what was expected>
 *   -ENAMETOOLONG
 *   -ENOMEM                PATH:LINE: out of memory
 *
 * KEY and VALUE are quoted as given, with control characters, '"' and '\' escaped as
 * \xNN and anything past 64 bytes cut to "…". The message for the first error found
 * is the one reported. */
int config_load(const char *path, Config *ret, char *err, size_t errlen);

/* Reads the bearer token from the file PATH: its first line, without the line end and
 * trailing blanks. The file must be a regular file that neither group nor others may
 * read or write (it is a password), at most CONFIG_TOKEN_FILE_MAX bytes; the token must
 * not be empty and holds printable ASCII only, no blank. 0 and *RET (caller frees), or
 * negative errno and one line in ERR, as config_load(): "PATH: message". */
#define CONFIG_TOKEN_FILE_MAX 4096u
int token_file_read(const char *path, char **ret, char *err, size_t errlen);

/* Frees what *C owns and zeroes it. Accepts NULL and a zeroed Config. */
void config_free(Config *c);

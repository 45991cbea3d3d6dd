/* smtpd_sandbox: Landlock rooms and a seccomp allowlist for smtpd (see the header). */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <ucontext.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/runtime.h"
#include "maps/map.h"
#include "smtpd/smtpd_sandbox.h"
#include "spool/spool.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/mem.h"

#ifdef TERN_TEST_BUILD
#include <sanitizer/common_interface_defs.h>
#endif

/* Debian 12's kernel headers know Landlock ABI 2; newer kernels handle more
 * rights, and a right a ruleset does not handle stays allowed. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
/* incoming/: queue files are created, written, and removed when a message fails. */
#define FS_SPOOL (FS_READ | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG | \
                  LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE)
/* maillog_file is opened O_APPEND without O_CREAT (the master creates it);
 * Landlock has no append-only right, so writing is the least it grants. */
#define FS_LOG LANDLOCK_ACCESS_FS_WRITE_FILE
/* Rights a rule on a file (not a directory) may carry. */
#define FS_FILE_RIGHTS (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
                        LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | \
                        LANDLOCK_ACCESS_FS_IOCTL_DEV)

struct room {
    char *path;
    uint64_t access;
};

struct rooms {
    struct room *v;
    size_t n, cap;
};

static void room_add(struct rooms *r, const char *path, uint64_t access)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].path, path) == 0) {
            r->v[i].access |= access;
            return;
        }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = xrealloc(r->v, r->cap * sizeof *r->v);
    }
    r->v[r->n].path = xstrdup(path);
    r->v[r->n].access = access;
    r->n++;
}

/* Files that are replaced by rename (tables, password files, the log after
 * rotation) get a new inode, which a rule on the old file would not cover:
 * the room is the directory that holds them. */
static void room_add_dir_of(struct rooms *r, const char *file, uint64_t access)
{
    const char *slash = strrchr(file, '/');
    if (!slash)
        return; /* relative names do not occur: every path here is absolute */
    char *dir = slash == file ? xstrdup("/") : xstrndup(file, (size_t)(slash - file));
    room_add(r, dir, access);
    free(dir);
}

static void rooms_free(struct rooms *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].path);
    free(r->v);
}

static void add_table_room(void *arg, const char *path)
{
    room_add_dir_of(arg, path, FS_READ);
}

static void rooms_build(struct rooms *r, const struct runtime *rt, const char *const *extra_read_files,
                        size_t nextra)
{
    char *incoming = xasprintf("%s/%s", rt->queue_dir, QDIR_INCOMING);
    room_add(r, incoming, FS_SPOOL);
    free(incoming);
    room_add(r, rt->config_dir, FS_READ);
    /* passwd, group and nsswitch.conf for local recipients (NSS), resolv.conf
     * and hosts for libunbound and getaddrinfo, localtime for log stamps,
     * OpenSSL's certificates: all replaced by rename, none secret by mode. */
    room_add(r, "/etc", FS_READ);
    map_foreach_open_file(add_table_room, r);
    for (size_t i = 0; i < nextra; i++)
        room_add_dir_of(r, extra_read_files[i], FS_READ);
    /* The log's directory, not the file: after a rotation the master makes
     * a new file (a new inode) and smtpd must reopen it. Only files
     * mail_owner may write by their modes are writable there, none may be
     * created, removed or truncated; keep maillog_file out of the
     * configuration directory all the same. */
    const char *maillog = conf_str(rt->conf, "maillog_file");
    if (maillog[0] == '/')
        room_add_dir_of(r, maillog, FS_LOG);
#ifdef TERN_TEST_BUILD
    /* ASan and LSan read /proc/self/maps and list /proc/self/task for a report. */
    room_add(r, "/proc/self", FS_READ);
#endif
}

/* ---------- Landlock ---------- */

static uint64_t landlock_handled(int abi)
{
    uint64_t handled = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                       LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
                       LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                       LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
                       LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
                       LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
                       LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2)
        handled |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        handled |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return handled;
}

/* 1: restricted, 0: the kernel has no Landlock (logged). Fatal when a rule
 * cannot be added, so smtpd never runs with fewer rooms than it was told
 * and more access than it should have. */
static int landlock_enter(const struct rooms *r)
{
    int abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0) {
        log_warn("sandbox: no Landlock in this kernel (%s): smtpd's file access is not restricted",
                 strerror(errno));
        return 0;
    }
    uint64_t handled = landlock_handled(abi);
    struct landlock_ruleset_attr attr = {.handled_access_fs = handled};
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (ruleset < 0)
        log_fatal("sandbox: landlock_create_ruleset: %s", strerror(errno));
    for (size_t i = 0; i < r->n; i++) {
        int fd = open(r->v[i].path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            /* A table's directory that does not exist yet stays closed: the
             * table is logged as unreadable, as without a sandbox. */
            log_warn("sandbox: %s: %s; it stays out of smtpd's reach", r->v[i].path, strerror(errno));
            continue;
        }
        struct stat st;
        uint64_t access = r->v[i].access & handled;
        if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
            access &= FS_FILE_RIGHTS;
        struct landlock_path_beneath_attr beneath = {.allowed_access = access, .parent_fd = fd};
        if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0) != 0)
            log_fatal("sandbox: landlock_add_rule %s: %s", r->v[i].path, strerror(errno));
        close(fd);
    }
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
        log_fatal("sandbox: landlock_restrict_self: %s", strerror(errno));
    close(ruleset);
    return abi;
}

/* ---------- seccomp ---------- */

/* What smtpd, glibc, libevent, OpenSSL, libunbound and the auth threads call
 * while serving (found with strace -f on smtpd during the integration tests;
 * the test build aborts on anything else, so the suites keep it complete). */
static const char *const allowed_calls[] = {
    /* descriptors and files (Landlock decides which files) */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "close", "lseek", "fstat",
    "newfstatat", "stat", "lstat", "statx", "fstatfs", "statfs", "open", "openat", "access",
    "faccessat", "faccessat2", "flock", "readlink", "readlinkat", "getdents64", "fcntl", "dup", "dup2",
    "dup3", "pipe", "pipe2", "eventfd2", "ftruncate", "fsync", "fdatasync", "unlink",
    "unlinkat", "chdir", "fchdir", "getcwd", "umask",
    /* a message's queue file in memory, handed to the queue (SMTPD_CONTENT_MEMORY);
     * executing it, the danger of a file without a path, needs execveat: refused */
    "memfd_create",
    /* memory */
    "mmap", "munmap", "mprotect", "mremap", "madvise", "brk", "mincore",
    /* signals (sigaltstack: the sanitizers' handlers) */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sigaltstack",
    "restart_syscall",
    /* the event loop */
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "poll", "ppoll", "select", "pselect6", "timerfd_create", "timerfd_settime",
    "timerfd_gettime",
    /* sockets: clients, DNS, the queue, Dovecot, policy servers, syslog */
    "socket", "connect", "accept", "accept4", "bind", "getsockname", "getpeername",
    "getsockopt", "setsockopt", "sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg",
    "recvmmsg", "shutdown", "socketpair",
    /* time, randomness, identity */
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "getrandom", "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "getgroups", "getresuid", "getresgid", "uname", "sysinfo", "getrlimit",
    "getrusage", "sched_yield", "sched_getaffinity",
    /* threads (libunbound's, the password file's workers) and exit */
    "futex", "set_robust_list", "get_robust_list", "rseq", "membarrier", "prctl", "exit",
    "exit_group",
};

/* Refused with EPERM, logged once, in every build: what turns a bug into
 * control of the machine or of other processes. Calls outside both lists are
 * refused too; this list only says which refusals are expected. */
static const char *const denied_calls[] = {
    "execve", "execveat", "fork", "vfork", "clone", "ptrace", "process_vm_readv",
    "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "personality",
    "keyctl", "add_key", "request_key", "init_module", "finit_module", "delete_module",
    "kexec_load", "kexec_file_load", "setuid", "setgid", "setreuid", "setregid", "setresuid",
    "setresgid", "setgroups", "setfsuid", "setfsgid", "symlink", "symlinkat", "link",
    "linkat", "mknod", "mknodat", "open_by_handle_at", "name_to_handle_at",
    /* another process than smtpd itself (allowed on itself below) */
    "tgkill", "tkill", "kill", "prlimit64", "setpriority", "sched_setaffinity", "pidfd_send_signal",
};

#ifdef TERN_TEST_BUILD
/* LeakSanitizer stops the process's threads at exit from a tracer it clones
 * (not a thread) and that ptraces them: the test build lets that through.
 * The tracer lists /proc/PID/task with the old getdents (glibc uses
 * getdents64), and it runs with every signal blocked, so a call the filter
 * traps kills it outright (SIGSYS) and leaves smtpd waiting for it forever. */
static const char *const test_build_calls[] = {"clone", "ptrace", "wait4", "getdents"};
#endif

#define MAX_SYSCALL_NR 1024
static uint64_t denied_set[MAX_SYSCALL_NR / 64];
static uint64_t refused_set[MAX_SYSCALL_NR / 64]; /* set by the SIGSYS handler */
static uint64_t logged_set[MAX_SYSCALL_NR / 64];
static int notify_pipe[2] = {-1, -1};
static struct event *notify_event;

static int in_set(const uint64_t *set, int nr)
{
    return nr >= 0 && nr < MAX_SYSCALL_NR && (set[nr / 64] >> (nr % 64) & 1);
}

static void set_return_value(void *uctx, long value)
{
    ucontext_t *uc = uctx;
#if defined(__x86_64__)
    uc->uc_mcontext.gregs[REG_RAX] = value;
#elif defined(__aarch64__)
    uc->uc_mcontext.regs[0] = (unsigned long long)value;
#else
#error "smtpd_sandbox: set the system call's return register for this architecture"
#endif
}

#ifdef TERN_TEST_BUILD
static void write_number(int fd, long n)
{
    char buf[24];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0 && i > 0);
    (void)!write(fd, buf + i, sizeof buf - i);
}
#endif

/* SECCOMP_RET_TRAP lands here in the thread that made the call, before the
 * call ran. The call returns -EPERM; the number is noted for the event loop,
 * which logs it (nothing here may allocate or take a lock). */
static void on_sigsys(int sig, siginfo_t *info, void *uctx)
{
    (void)sig;
    int saved_errno = errno;
    int nr = info->si_syscall;
    set_return_value(uctx, -EPERM);
#ifdef TERN_TEST_BUILD
    if (!in_set(denied_set, nr)) {
        static const char msg[] = "tern: smtpd sandbox: system call number ";
        static const char end[] = " is not in smtpd's seccomp allowlist (src/smtpd/smtpd_sandbox.c)\n";
        (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
        write_number(STDERR_FILENO, nr);
        (void)!write(STDERR_FILENO, end, sizeof end - 1);
        abort();
    }
#endif
    if (nr >= 0 && nr < MAX_SYSCALL_NR)
        __atomic_fetch_or(&refused_set[nr / 64], 1ULL << (nr % 64), __ATOMIC_RELAXED);
    (void)!write(notify_pipe[1], "", 1);
    errno = saved_errno;
}

static void on_refused(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    char drain[64];
    while (read(fd, drain, sizeof drain) > 0)
        ;
    for (int nr = 0; nr < MAX_SYSCALL_NR; nr++) {
        if (!in_set(refused_set, nr) || in_set(logged_set, nr))
            continue;
        logged_set[nr / 64] |= 1ULL << (nr % 64);
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        log_warn("sandbox: refused system call %s (%d) with EPERM%s; logged once", name ? name : "?",
                 nr, in_set(denied_set, nr) ? "" : ": not in smtpd's allowlist");
        free(name);
    }
}

static int rule_add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned nargs,
                    const struct scmp_arg_cmp *args)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0; /* not a call of this architecture (e.g. open on aarch64) */
    int rc = seccomp_rule_add_array(ctx, action, nr, nargs, args);
    if (rc < 0) {
        log_error("sandbox: seccomp rule for %s: %s", name, strerror(-rc));
        return -1;
    }
    return 0;
}

static int seccomp_rules(scmp_filter_ctx ctx)
{
    int failed = 0;
    for (size_t i = 0; i < sizeof allowed_calls / sizeof allowed_calls[0]; i++)
        failed |= rule_add(ctx, SCMP_ACT_ALLOW, allowed_calls[i], 0, NULL);
    /* ioctl: libevent's FIONREAD, FIONBIO, and isatty's TCGETS; nothing else. */
    const unsigned long ioctls[] = {FIONREAD, FIONBIO, TCGETS};
    for (size_t i = 0; i < sizeof ioctls / sizeof ioctls[0]; i++) {
        struct scmp_arg_cmp request = {.arg = 1, .op = SCMP_CMP_EQ, .datum_a = ioctls[i], .datum_b = 0};
        failed |= rule_add(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &request);
    }
    /* Signals and resource limits of this process only: the key process
     * and the queue share smtpd's uid, and a compromised smtpd must not
     * stop them or take their descriptors away (raise and abort use
     * tgkill on smtpd itself; getrlimit is prlimit64 on pid 0). */
    struct scmp_arg_cmp self_tgid = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = (scmp_datum_t)getpid(), .datum_b = 0};
    failed |= rule_add(ctx, SCMP_ACT_ALLOW, "tgkill", 1, &self_tgid);
    struct scmp_arg_cmp no_pid = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = 0, .datum_b = 0};
    failed |= rule_add(ctx, SCMP_ACT_ALLOW, "prlimit64", 1, &no_pid);
    failed |= rule_add(ctx, SCMP_ACT_ALLOW, "prlimit64", 1, &self_tgid);
    /* clone3 passes its flags in memory a filter cannot read: ENOSYS makes
     * glibc fall back to clone, whose flags it can, and only threads pass. */
    failed |= rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
#ifdef TERN_TEST_BUILD
    for (size_t i = 0; i < sizeof test_build_calls / sizeof test_build_calls[0]; i++)
        failed |= rule_add(ctx, SCMP_ACT_ALLOW, test_build_calls[i], 0, NULL);
#else
    struct scmp_arg_cmp thread = {.arg = 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = CLONE_THREAD, .datum_b = CLONE_THREAD};
    failed |= rule_add(ctx, SCMP_ACT_ALLOW, "clone", 1, &thread);
#endif
    return failed ? -1 : 0;
}

/* 1: filter loaded, 0: the kernel or libseccomp refused it (logged). */
static int seccomp_enter(struct event_base *base)
{
    for (size_t i = 0; i < sizeof denied_calls / sizeof denied_calls[0]; i++) {
        int nr = seccomp_syscall_resolve_name(denied_calls[i]);
        if (nr >= 0 && nr < MAX_SYSCALL_NR)
            denied_set[nr / 64] |= 1ULL << (nr % 64);
    }
    if (pipe2(notify_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        log_fatal("sandbox: pipe: %s", strerror(errno));
    notify_event = event_new(base, notify_pipe[0], EV_READ | EV_PERSIST, on_refused, NULL);
    event_add(notify_event, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) != 0)
        log_fatal("sandbox: sigaction SIGSYS: %s", strerror(errno));

    /* Default TRAP, not KILL: a rare path the list misses (an NSS module, a
     * library update) must cost one failed call and a log line, never a
     * silently dead smtpd; the test build aborts instead (on_sigsys). */
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx) {
        log_warn("sandbox: seccomp_init failed: system calls are not restricted");
        return 0;
    }
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc == 0 && seccomp_rules(ctx) != 0)
        rc = -EINVAL;
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0) {
        log_warn("sandbox: no seccomp filter (%s): system calls are not restricted", strerror(-rc));
        return 0;
    }
    return 1;
}

/* Landlock binds the calling thread only: a thread started before it would
 * keep the whole file system. smtpd has none yet; say so if that changes. */
static void check_single_thread(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    if (n > 1)
        log_error("sandbox: %d threads already run; only this one is kept to smtpd's rooms", n);
}

#ifdef TERN_TEST_BUILD
/* The integration test's probe (tests/integration/test_sandbox.py):
 * TERN_TEST_SANDBOX_PROBE="outside-file:config-file[:pid]" makes smtpd try what a
 * hijacked smtpd would, once sandboxed, and log each result. */
static void probe_result(const char *what, int rc)
{
    if (rc < 0)
        log_info("sandbox probe: %s: %s", what, strerrorname_np(errno));
    else
        log_info("sandbox probe: %s: allowed", what);
}

static void *volatile probe_leak;

static void sandbox_probe(const struct runtime *rt)
{
    if (getenv("TERN_TEST_SANDBOX_ASAN_REPORT")) {
        /* The test reads the report: it must still be written once sandboxed. */
        char *volatile heap = xmalloc(8);
        log_info("sandbox probe: reading past a heap block: %d", heap[8]);
        free(heap);
    }
    if (getenv("TERN_TEST_SANDBOX_LEAK")) {
        /* The test reads LeakSanitizer's report at stop: its tracer must
         * still work under the filter. */
        probe_leak = xmalloc(48);
        probe_leak = NULL;
    }
    const char *spec = getenv("TERN_TEST_SANDBOX_PROBE");
    if (!spec || !strchr(spec, ':'))
        return;
    char *outside = xstrndup(spec, (size_t)(strchr(spec, ':') - spec));
    const char *rest = strchr(spec, ':') + 1, *pid_field = strchr(rest, ':');
    char *config_file = pid_field ? xstrndup(rest, (size_t)(pid_field - rest)) : xstrdup(rest);
    char *const argv[] = {(char *)"true", NULL};
    char *const envp[] = {NULL};
    probe_result("execve /bin/true", execve("/bin/true", argv, envp));
    int fd = open(outside, O_RDONLY | O_CLOEXEC);
    probe_result("read outside the rooms", fd);
    if (fd >= 0)
        close(fd);
    fd = open(config_file, O_WRONLY | O_APPEND | O_CLOEXEC);
    probe_result("write into the configuration directory", fd);
    if (fd >= 0)
        close(fd);
    fd = open("/etc/shadow", O_RDONLY | O_CLOEXEC);
    probe_result("read /etc/shadow", fd);
    if (fd >= 0)
        close(fd);
    /* Connecting to a unix socket is no Landlock file access (ABI <= 6). */
    char *queue_socket = xasprintf("%s/%s", rt->queue_dir, QSOCK_QUEUE);
    fd = ipc_connect(queue_socket);
    probe_result("connect private/queue", fd);
    if (fd >= 0)
        close(fd);
    free(queue_socket);
    /* A third field: a process of the mail owner's (the key process and
     * the queue share smtpd's uid), which smtpd must not signal or limit. */
    if (pid_field) {
        pid_t other = (pid_t)atol(pid_field + 1);
        probe_result("signal a process of the mail owner", (int)syscall(SYS_tgkill, other, other, 0));
        struct rlimit keep;
        probe_result("read the limits of a process of the mail owner", prlimit(other, RLIMIT_NOFILE, NULL, &keep));
        probe_result("signal smtpd itself", (int)syscall(SYS_tgkill, getpid(), getpid(), 0));
    }
    free(config_file);
    free(outside);
}
#endif

int smtpd_sandbox_enter(struct event_base *base, const struct runtime *rt,
                        const char *const *extra_read_files, size_t nextra)
{
    if (!conf_bool(rt->conf, "smtpd_sandbox")) {
        log_info("sandbox: off (smtpd_sandbox = no)");
        return -1;
    }
    /* NSS loads its modules (libnss_systemd) on first use: load them now,
     * while the library directories are still readable. */
    (void)getpwnam("root");
    (void)getgrnam("root");
#ifdef TERN_TEST_BUILD
    /* A sanitizer report is symbolized by llvm-symbolizer, a process the
     * runtime starts at its first use and keeps: start it now, while exec is
     * possible, so reports from the sandboxed smtpd still name their lines. */
    char where[256];
    __sanitizer_symbolize_pc(__builtin_return_address(0), "%p %F %L", where, sizeof where);
#endif
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        log_fatal("sandbox: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    check_single_thread();
    struct rooms rooms = {0};
    rooms_build(&rooms, rt, extra_read_files, nextra);
    int abi = landlock_enter(&rooms);
    int filtered = seccomp_enter(base);
    if (abi > 0 && filtered)
        log_info("sandbox: on (Landlock ABI %d, %zu rooms; seccomp allowlist)", abi, rooms.n);
    else if (abi > 0 || filtered)
        log_info("sandbox: partly on (%s)", abi > 0 ? "Landlock only" : "seccomp only");
    rooms_free(&rooms);
#ifdef TERN_TEST_BUILD
    sandbox_probe(rt);
#endif
    return 0;
}

void smtpd_sandbox_shutdown(void)
{
    if (notify_event)
        event_free(notify_event);
    notify_event = NULL;
}

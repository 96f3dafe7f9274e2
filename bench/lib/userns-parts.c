/* The parts of entering a rootless build's user namespace, each timed alone (issue 19's fixed
 * cost). Run as the ordinary user with a subordinate range; bench/lib/userns-parts.py compiles
 * and runs it. Every part is repeated N times, interleaved, and printed as raw microseconds
 * (one line per part per repetition) for the script's medians.
 *
 *   fork           fork + _exit + waitpid of a small process
 *   unshare        unshare(CLONE_NEWUSER | CLONE_NEWNS), in a fresh child
 *   newuidmap      the setuid helper mapping the child's uids (spawn + wait)
 *   newgidmap      the same for gids
 *   both-seq       newuidmap then newgidmap, one after the other (trowel before)
 *   both-conc      both spawned, then both waited for (trowel after)
 *   single-self    the child writing its own single-id maps (uid_map, setgroups, gid_map)
 *   private        mount("/", MS_REC | MS_PRIVATE) once mapped
 *   exec-true      spawn + wait of /bin/true (a small exec, for scale)
 *   exec-trowel    spawn + wait of `TROWEL --version` (what the re-execution starts)
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

extern char **environ;

static long long now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static pid_t spawn(char *const argv[]) {
    pid_t pid;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0) {
        perror(argv[0]);
        exit(1);
    }
    return pid;
}

static void reap(pid_t pid, const char *what) {
    int st;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "%s failed (status %d)\n", what, st);
        exit(1);
    }
}

static void write_file(pid_t pid, const char *name, const char *text) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, name);
    int fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        perror(path);
        exit(1);
    }
    close(fd);
}

/* A child that unshares, reports how long that took, waits for its maps, times making its
 * mounts private (or writes its own single-id maps first), reports, and exits. */
static pid_t child(int *from, int *to, int self_map, unsigned uid, unsigned gid) {
    int up[2], down[2];
    if (pipe(up) || pipe(down)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        long long t0 = now_us();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS)) { perror("unshare"); _exit(1); }
        long long d = now_us() - t0;
        long long single = 0;
        if (self_map) {
            char m[64];
            t0 = now_us();
            snprintf(m, sizeof m, "0 %u 1\n", uid);
            write_file(getpid(), "uid_map", m);
            write_file(getpid(), "setgroups", "deny\n");
            snprintf(m, sizeof m, "0 %u 1\n", gid);
            write_file(getpid(), "gid_map", m);
            single = now_us() - t0;
        }
        if (write(up[1], &d, sizeof d) != sizeof d) _exit(1);
        char c;
        if (read(down[0], &c, 1) != 1) _exit(1);
        t0 = now_us();
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) { perror("mount"); _exit(1); }
        long long p[2] = { now_us() - t0, single };
        if (write(up[1], p, sizeof p) != sizeof p) _exit(1);
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    *from = up[0];
    *to = down[1];
    return pid;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s N TROWEL [uid-ranges gid-ranges as newuidmap args after the pid]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]);
    const char *trowel = argv[2];
    unsigned uid = getuid(), gid = getgid();
    char own_u[16], own_g[16];
    snprintf(own_u, sizeof own_u, "%u", uid);
    snprintf(own_g, sizeof own_g, "%u", gid);
    char *ranges_u = getenv("UID_RANGE"), *ranges_g = getenv("GID_RANGE"); /* "100000 65536" */
    char ru[2][32], rg[2][32];
    sscanf(ranges_u, "%31s %31s", ru[0], ru[1]);
    sscanf(ranges_g, "%31s %31s", rg[0], rg[1]);
    for (int i = 0; i < n; i++) {
        long long t0, d;
        /* fork */
        t0 = now_us();
        pid_t p = fork();
        if (p == 0) _exit(0);
        reap(p, "fork");
        printf("fork %lld\n", now_us() - t0);

        /* three children, one per way of mapping */
        for (int way = 0; way < 3; way++) {
            int from, to;
            pid_t c = child(&from, &to, way == 2, uid, gid);
            if (read(from, &d, sizeof d) != sizeof d) return 1;
            printf("unshare %lld\n", d);
            char pid_s[16];
            snprintf(pid_s, sizeof pid_s, "%d", c);
            char *nu[] = { "/usr/bin/newuidmap", pid_s, "0", own_u, "1", "1", ru[0], ru[1], NULL };
            char *ng[] = { "/usr/bin/newgidmap", pid_s, "0", own_g, "1", "1", rg[0], rg[1], NULL };
            if (way == 0) {
                t0 = now_us();
                pid_t a = spawn(nu);
                reap(a, "newuidmap");
                long long t1 = now_us();
                pid_t b = spawn(ng);
                reap(b, "newgidmap");
                long long t2 = now_us();
                printf("newuidmap %lld\nnewgidmap %lld\nboth-seq %lld\n", t1 - t0, t2 - t1, t2 - t0);
            } else if (way == 1) {
                t0 = now_us();
                pid_t a = spawn(nu), b = spawn(ng);
                reap(a, "newuidmap");
                reap(b, "newgidmap");
                printf("both-conc %lld\n", now_us() - t0);
            }
            if (write(to, "", 1) != 1) return 1;
            long long r[2];
            if (read(from, r, sizeof r) != sizeof r) return 1;
            printf("private %lld\n", r[0]);
            if (way == 2) printf("single-self %lld\n", r[1]);
            reap(c, "child");
            close(from);
            close(to);
        }

        char *tr[] = { "/bin/true", NULL };
        t0 = now_us();
        reap(spawn(tr), "true");
        printf("exec-true %lld\n", now_us() - t0);
        char *tv[] = { (char *)trowel, "--version", NULL };
        int devnull = open("/dev/null", O_WRONLY);
        int saved = dup(1);
        fflush(stdout);
        dup2(devnull, 1);
        t0 = now_us();
        pid_t v = spawn(tv);
        reap(v, "trowel --version");
        d = now_us() - t0;
        dup2(saved, 1);
        close(saved);
        close(devnull);
        printf("exec-trowel %lld\n", d);
        fflush(stdout);
    }
    return 0;
}

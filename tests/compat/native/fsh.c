/* The native twin of examples/fsh (the file shell) for the Docker oracle:
 * the same command language (`fsh write /a hi ';' cat /a ';' ls /`), the
 * same output, a failed command printed as `CMD: error ENAME` with the
 * errno's name (Linux's errno here, WASI's in the wasm build: the names
 * are what the two sides compare), the same exit codes. A command whose
 * argument is missing or unknown prints `CMD: error InvalidInput`, as the
 * Rust program prints std's ErrorKind. See examples/fsh/src/main.rs. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Set by a command that fails without an errno of its own. */
static int invalid;

static int fail_invalid(void) {
    invalid = 1;
    return -1;
}

static const char *errno_name(int e) {
    switch (e) {
    case EACCES: return "EACCES";
    case EBADF: return "EBADF";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case EIO: return "EIO";
    case EISDIR: return "EISDIR";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOENT: return "ENOENT";
    case ENOSPC: return "ENOSPC";
    case EDQUOT: return "EDQUOT";
    case ENOTDIR: return "ENOTDIR";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ENOTSUP: return "ENOTSUP";
    case EPERM: return "EPERM";
    case EROFS: return "EROFS";
    case EXDEV: return "EXDEV";
    case EFBIG: return "EFBIG";
    default: return NULL;
    }
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Opens, writes `text`, closes; keeps the first errno. */
static int put(const char *path, const char *text, int flags) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0666);
    if (fd < 0) return -1;
    int r = write_all(fd, text, strlen(text));
    int e = errno;
    if (close(fd) != 0 && r == 0) return -1;
    errno = e;
    return r;
}

static int cat(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        errno = EISDIR;
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            if (buf == NULL) abort();
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    fwrite(buf, 1, len, stdout);
    putchar('\n');
    free(buf);
    return 0;
}

static int parse_u64(const char *s, unsigned long long *out) {
    if (s == NULL || *s < '0' || *s > '9') return fail_invalid();
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0) return fail_invalid();
    return 0;
}

static int fill(const char *path, const char *count) {
    unsigned long long left;
    if (parse_u64(count, &left) != 0) return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return -1;
    static char chunk[64 * 1024];
    while (left > 0) {
        size_t n = left < sizeof chunk ? (size_t)left : sizeof chunk;
        if (write_all(fd, chunk, n) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        left -= n;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct names {
    char **v;
    size_t n, cap;
};

static void push(struct names *s, char *name) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (s->v == NULL) abort();
    }
    s->v[s->n++] = name;
}

static void print_free(struct names *s) {
    qsort(s->v, s->n, sizeof *s->v, by_name);
    for (size_t i = 0; i < s->n; i++) {
        puts(s->v[i]);
        free(s->v[i]);
    }
    free(s->v);
}

/* `dir` joined with `name` as Rust's Path::join does it. */
static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir);
    char *p;
    int r = (n > 0 && dir[n - 1] == '/') ? asprintf(&p, "%s%s", dir, name) : asprintf(&p, "%s/%s", dir, name);
    if (r < 0) abort();
    return p;
}

static int ls(const char *path) {
    DIR *d = opendir(path);
    if (d == NULL) return -1;
    struct names s = {0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *full = join(path, e->d_name);
        struct stat st;
        const char *mark = "";
        if (lstat(full, &st) == 0) mark = S_ISDIR(st.st_mode) ? "/" : S_ISLNK(st.st_mode) ? "@" : "";
        free(full);
        char *n;
        if (asprintf(&n, "%s%s", e->d_name, mark) < 0) abort();
        push(&s, n);
    }
    closedir(d);
    print_free(&s);
    return 0;
}

static int walk(const char *dir, struct names *out) {
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *full = join(dir, e->d_name);
        push(out, full);
        struct stat st;
        if (lstat(full, &st) == 0 && S_ISDIR(st.st_mode) && walk(full, out) != 0) {
            int err = errno;
            closedir(d);
            errno = err;
            return -1;
        }
    }
    closedir(d);
    return 0;
}

static int tree(const char *path) {
    struct names s = {0};
    if (walk(path, &s) != 0) {
        int e = errno;
        for (size_t i = 0; i < s.n; i++) free(s.v[i]);
        free(s.v);
        errno = e;
        return -1;
    }
    print_free(&s);
    return 0;
}

static int stat_cmd(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return -1;
    if (S_ISLNK(st.st_mode)) puts("symlink");
    else if (S_ISDIR(st.st_mode)) puts("dir");
    else printf("file %lld\n", (long long)st.st_size);
    return 0;
}

static int mkdir_p(const char *path) {
    char *p = strdup(path);
    if (p == NULL) abort();
    for (char *c = p + 1; *c; c++) {
        if (*c != '/') continue;
        *c = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *c = '/';
    }
    int r = mkdir(p, 0777);
    struct stat st;
    if (r != 0 && errno == EEXIST && stat(p, &st) == 0 && S_ISDIR(st.st_mode)) r = 0;
    free(p);
    return r;
}

static int rm_r(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (d == NULL) return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *full = join(path, e->d_name);
        int r = rm_r(full);
        free(full);
        if (r != 0) {
            int err = errno;
            closedir(d);
            errno = err;
            return -1;
        }
    }
    closedir(d);
    return rmdir(path);
}

static int copy(const char *from, const char *to) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    struct stat st;
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(in);
        errno = EINVAL;
        return fail_invalid();
    }
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
    if (out < 0) {
        int e = errno;
        close(in);
        errno = e;
        return -1;
    }
    char buf[64 * 1024];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write_all(out, buf, (size_t)n) != 0) break;
    }
    int e = errno;
    int bad = n != 0;
    close(in);
    if (close(out) != 0 && !bad) return -1;
    errno = e;
    return bad ? -1 : 0;
}

static int readlink_cmd(const char *path) {
    char buf[4096];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) return -1;
    buf[n] = '\0';
    puts(buf);
    return 0;
}

static int truncate_cmd(const char *path, const char *size) {
    unsigned long long n;
    if (parse_u64(size, &n) != 0) return -1;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = ftruncate(fd, (off_t)n);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

static int sleep_ms(const char *ms) {
    unsigned long long n;
    if (parse_u64(ms, &n) != 0) return -1;
    struct timespec t = {(time_t)(n / 1000), (long)(n % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
    return 0;
}

/* Runs one command; -1 with errno (or `invalid`) set when it fails. */
static int run(const char *name, int argc, char **argv) {
#define ARG(i) argv[i]
#define NEED(k) \
    if (argc < (k)) return fail_invalid()
    if (strcmp(name, "write") == 0) {
        NEED(2);
        return put(ARG(0), ARG(1), O_TRUNC);
    }
    if (strcmp(name, "append") == 0) {
        NEED(2);
        return put(ARG(0), ARG(1), O_APPEND);
    }
    if (strcmp(name, "cat") == 0) { NEED(1); return cat(ARG(0)); }
    if (strcmp(name, "fill") == 0) { NEED(2); return fill(ARG(0), ARG(1)); }
    if (strcmp(name, "ls") == 0) { NEED(1); return ls(ARG(0)); }
    if (strcmp(name, "tree") == 0) { NEED(1); return tree(ARG(0)); }
    if (strcmp(name, "stat") == 0) { NEED(1); return stat_cmd(ARG(0)); }
    if (strcmp(name, "mkdir") == 0) { NEED(1); return mkdir(ARG(0), 0777); }
    if (strcmp(name, "mkdir-p") == 0) { NEED(1); return mkdir_p(ARG(0)); }
    if (strcmp(name, "rm") == 0) { NEED(1); return unlink(ARG(0)); }
    if (strcmp(name, "rmdir") == 0) { NEED(1); return rmdir(ARG(0)); }
    if (strcmp(name, "rm-r") == 0) { NEED(1); return rm_r(ARG(0)); }
    if (strcmp(name, "mv") == 0) { NEED(2); return rename(ARG(0), ARG(1)); }
    if (strcmp(name, "cp") == 0) { NEED(2); return copy(ARG(0), ARG(1)); }
    if (strcmp(name, "ln") == 0) { NEED(2); return link(ARG(0), ARG(1)); }
    if (strcmp(name, "ln-s") == 0) { NEED(2); return symlink(ARG(0), ARG(1)); }
    if (strcmp(name, "readlink") == 0) { NEED(1); return readlink_cmd(ARG(0)); }
    if (strcmp(name, "truncate") == 0) { NEED(2); return truncate_cmd(ARG(0), ARG(1)); }
    if (strcmp(name, "sleep") == 0) { NEED(1); return sleep_ms(ARG(0)); }
    if (strcmp(name, "echo") == 0) {
        for (int i = 0; i < argc; i++) printf(i ? " %s" : "%s", argv[i]);
        putchar('\n');
        return 0;
    }
    return fail_invalid();
#undef ARG
#undef NEED
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int failed = 0;
    int i = 1;
    while (i <= argc) {
        int end = i;
        while (end < argc && strcmp(argv[end], ";") != 0) end++;
        if (end > i) {
            const char *name = argv[i];
            if (strcmp(name, "exit") == 0) {
                unsigned long long code = 0;
                if (end > i + 1 && parse_u64(argv[i + 1], &code) == 0 && code <= 255) return (int)code;
                return 0;
            }
            invalid = 0;
            errno = 0;
            if (run(name, end - i - 1, argv + i + 1) != 0) {
                const char *n = errno_name(errno);
                if (invalid) printf("%s: error InvalidInput\n", name);
                else if (n) printf("%s: error %s\n", name, n);
                else printf("%s: error errno%d\n", name, errno);
                failed = 1;
            }
            fflush(stdout);
        }
        i = end + 1;
    }
    return failed ? 1 : 0;
}

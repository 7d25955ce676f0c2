/* The native twin of examples/fs-copy for the Docker oracle: reads a word
 * list and writes a numbered (and, with FS_COPY_UPPERCASE=1, upper-cased)
 * copy; errors read as the Rust example's ("... (os error N)"). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const char *path) {
    int e = errno;
    fprintf(stderr, "fs-copy: cannot %s %s: %s (os error %d)\n", what, path, strerror(e), e);
    return 1;
}

int main(int argc, char **argv) {
    const char *src = argc > 1 ? argv[1] : "/share/words.txt";
    const char *dest = argc > 2 ? argv[2] : "/out/words.txt";
    const char *up = getenv("FS_COPY_UPPERCASE");
    int upper = up != NULL && strcmp(up, "1") == 0;
    FILE *in = fopen(src, "r");
    if (in == NULL) return fail("read", src);
    FILE *out = fopen(dest, "w");
    if (out == NULL) return fail("create", dest);
    char line[4096];
    int lines = 0;
    while (fgets(line, sizeof line, in) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        int blank = 1;
        for (char *c = line; *c; c++) {
            if (!isspace((unsigned char)*c)) blank = 0;
            if (upper) *c = (char)toupper((unsigned char)*c);
        }
        if (blank) continue;
        lines++;
        if (fprintf(out, "%d: %s\n", lines, line) < 0) return fail("write", dest);
    }
    if (fclose(out) != 0) return fail("write", dest);
    printf("copied %d lines from %s to %s\n", lines, src, dest);
    return 0;
}

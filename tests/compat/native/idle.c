/* The native twin of examples/idle for the Docker oracle: prints "ready",
 * sleeps SECONDS (default one day), prints "done". A signal ends it with
 * 128+N as it ends a wasm guest (which has no handlers), even as PID 1,
 * where the kernel would otherwise drop SIGTERM. `spin` is not twinned:
 * the harness does not use it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void die(int sig) { _exit(128 + sig); }

int main(int argc, char **argv) {
    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], die);
    long seconds = 86400;
    if (argc > 1) {
        char *end;
        seconds = strtol(argv[1], &end, 10);
        if (*argv[1] == '\0' || *end != '\0' || seconds < 0) {
            fprintf(stderr, "idle: SECONDS must be a whole number (or spin)\n");
            return 2;
        }
    }
    printf("ready\n");
    fflush(stdout);
    struct timespec left = {seconds, 0};
    while (nanosleep(&left, &left) != 0) {
    }
    printf("done\n");
    return 0;
}

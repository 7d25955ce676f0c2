/* The native twin of examples/hello for the Docker oracle: greets the
 * names given as arguments (or "world") with $GREETING (default "Hello"). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *greeting = getenv("GREETING");
    if (greeting == NULL) greeting = "Hello";
    printf("%s, ", greeting);
    if (argc < 2) {
        printf("world");
    }
    for (int i = 1; i < argc; i++) {
        printf("%s%s", i > 1 ? " and " : "", argv[i]);
    }
    printf("!\n");
    return 0;
}

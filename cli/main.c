/* cli/main.c -- the `kontena` command-line client. */
#include "cli/cli.h"
#include "common/banned.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}

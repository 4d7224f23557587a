/*
 * cli - the mxjail subcommands. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns the process exit status.
 */
#ifndef MXJAIL_CLI_CLI_H
#define MXJAIL_CLI_CLI_H

int cmd_check(int argc, char **argv);
int cmd_test(int argc, char **argv);
int cmd_dumpconf(int argc, char **argv);

#endif

/*
 * cli - the mxjail subcommands. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns the process exit status.
 */
#ifndef MXJAIL_CLI_CLI_H
#define MXJAIL_CLI_CLI_H

int cmd_check(int argc, char **argv);
int cmd_test(int argc, char **argv);
int cmd_dumpconf(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_banned(int argc, char **argv);
int cmd_ban(int argc, char **argv);
int cmd_unban(int argc, char **argv);
int cmd_why(int argc, char **argv);
int cmd_reload(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_ping(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_greylist(int argc, char **argv);
int cmd_ratelimit(int argc, char **argv);
int cmd_probe(int argc, char **argv);

#endif

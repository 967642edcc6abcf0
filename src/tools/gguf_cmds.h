/*
 * gguf_cmds.h - rbee-gguf subcommands that run or write models, and chat-render (the rest are
 * in rbee-gguf.c).
 * Each takes the subcommand's argv (argv[0] is its name) and returns the exit code:
 * 0 success, 1 failure, 2 usage error.
 */
#ifndef RB_GGUF_CMDS_H
#define RB_GGUF_CMDS_H

int gguf_cmd_generate(int argc, char **argv);
int gguf_cmd_quantize(int argc, char **argv);
int gguf_cmd_random(int argc, char **argv);
/* chat-render: the prompt chat_apply (rb_chat) makes of the messages on standard input. */
int gguf_cmd_chat_render(int argc, char **argv);

#endif

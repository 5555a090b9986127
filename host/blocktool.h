/*
** The block tool: `luashm --blocks`, an ipcs/ipcrm for luashm's blocks in /dev/shm.
*/
#ifndef LUASHM_BLOCKTOOL_H
#define LUASHM_BLOCKTOOL_H

/* Runs the tool on argv[1..argc-1] (argv[0] is "--blocks"): lists, or removes named or stale
   blocks. Returns the process exit status. */
int luashm_blocktool(int argc, char **argv);

#endif

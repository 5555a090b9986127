/*
** Links: the socketpair between a parent and each of its forked workers, and the frames they
** exchange on it. A frame is a 4-byte little-endian length (the tag byte plus the payload), a
** tag byte, then the payload, which is a value codec message (codec.h) or an error's text.
** Tags: 'R' final results and 'E' a final error (a spawned function or script); 'J' a job to a
** serving (pool) worker, which answers 'M' results or 'F' a failed item.
**
** The parent keeps its end non-blocking and reads while it waits (so results larger than the
** socket buffer flow); a forked child keeps only its own link and reads its jobs blocking.
** Plain C, no Lua.
*/
#ifndef LUASHM_LINK_H
#define LUASHM_LINK_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#define LUASHM_FRAME_HEAD 5

/* The largest payload a frame carries: its length field is 32 bits and counts the tag. */
#define LUASHM_FRAME_MAX ((size_t)UINT32_MAX - 1)

/* The most items a pool job carries: its items, and its results, travel as values on a Lua
   stack (no table is built on either side). */
#define LUASHM_CHUNK_MAX 131072

/* One end of a link and the bytes read from it and not yet consumed. */
typedef struct luashm_link {
  int fd; /* -1 once closed */
  unsigned char *buf;
  size_t len, cap;
} luashm_link;

/* ---------------------------------------------------------------------------------------
** The links this process holds open. Process-level state on purpose: it describes file
** descriptors, which fork copies; a forked child closes every link but its own (its parent's
** other workers are none of its business, and a sibling holding a link open hides its EOF).
** ------------------------------------------------------------------------------------- */

/* Records fd as a held link: 0, or -1 when out of memory. */
int luashm_link_hold(int fd);

/* Closes fd and forgets it. */
void luashm_link_release(int fd);

/* In a forked child: closes every held link but fd (0, or -1 when out of memory). */
int luashm_link_keep_only(int fd);

/* Closes k's end (idempotent); what was read stays in its buffer. */
void luashm_link_close(luashm_link *k);

/* Closes k's end and frees its buffer. */
void luashm_link_free(luashm_link *k);

/* ---------------------------------------------------------------------------------------
** Frames
** ------------------------------------------------------------------------------------- */

/* The payload limit of this process's frames: LUASHM_FRAME_MAX, lowered by tests (so that the
   refusal of a frame too big to frame is tested without 4 GiB of memory). Inherited by fork. */
size_t luashm_frame_limit(void);
void luashm_frame_set_limit(size_t limit);

/* Writes one whole frame, waiting for room. 0, or -1 with errno: E2BIG (the payload is over
   the frame limit: nothing was sent), EPIPE (the peer is gone), EINTR (only when interruptible:
   an interrupt is pending, and the frame may be half sent, so the link is unusable). */
int luashm_frame_send(int fd, char tag, const void *p, size_t len, int interruptible);

/* The tag of the complete frame at the start of k's buffer, or 0 when none is complete. */
int luashm_frame_ready(const luashm_link *k);

/* The payload of the complete frame at the start of k's buffer, and its length. */
const unsigned char *luashm_frame_payload(const luashm_link *k, size_t *len);

/* Drops the complete frame at the start of k's buffer. */
void luashm_frame_consume(luashm_link *k);

/* The child's side: reads one whole frame from fd, blocking. Returns its payload (malloc'd,
   the caller frees) with *tag and *len, or NULL at a clean EOF (*len = 0) or on an error
   (*len = 1). */
unsigned char *luashm_frame_read(int fd, int *tag, size_t *len);

/* ---------------------------------------------------------------------------------------
** The parent's side: reading and waiting
** ------------------------------------------------------------------------------------- */

/* Reads what k's socket holds, without blocking. Returns 0, 1 at the end of the link (the
   child exited or is exiting: the link is closed), or -1 when out of memory. */
int luashm_link_pump(luashm_link *k);

/* Sleeps until one of the n links has bytes (or its end), ms pass (-1: no limit), or a signal
   arrives; pfd is scratch room for n entries. Returns 0, or EINTR when an interrupt is
   pending (luashm_interrupt, sync.h): the caller reports it. */
int luashm_link_poll(luashm_link *const *ks, int n, struct pollfd *pfd, int ms);

#endif

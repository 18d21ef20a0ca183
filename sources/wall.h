/* sources/wall.h -- wall-clock profiles: every thread of a target, running or blocked,
 * sampled at a fixed rate through the snapshot path, so a profile shows where threads
 * spend their time on and off the CPU (py-spy --idle, async-profiler's wall mode). */
#pragma once

#include "server.h"

struct Service;

/* [loop] Starts answering REQ with a wall-clock profile of P. */
void wall_profile_start(struct Service *s, Request *req, const WindowProfileRequest *p);
/* [loop] After the worker stopped: answers every wall profile still running with 503. */
void wall_profiles_shutdown(struct Service *s);

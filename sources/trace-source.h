/* sources/trace-source.h -- trace?seconds=N: a scheduling timeline of every thread of a
 * target over the window, in the Trace Event Format (profile/trace.h), from the events of
 * the scheduler source's trackers (sched-source.h): shared with block, mutex and
 * threadcreate when those are tracked, opened for the window alone when not. */
#pragma once

#include "source.h"

extern const ProfileSource trace_source;

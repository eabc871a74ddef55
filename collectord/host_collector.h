/*  host_collector: `collectord host`, the host_t class (host.c: /proc into
    `metric` records) as a collectord mode. One run samples every --interval
    (default 10s) until --samples were taken or the process is stopped; each
    sample is sent and acknowledged at once.                                */
#ifndef OMNI_COLLECTORD_HOST_COLLECTOR_H
#define OMNI_COLLECTORD_HOST_COLLECTOR_H

#include "collectord/collector.h"

extern const collector_t host_collector;

void host_collector_test (bool verbose);

#endif

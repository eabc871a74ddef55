/*  progress: a progress bar or periodic log lines on stderr.                */
#include "collectord/progress.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define S_BAR_REDRAW_MS 100

struct _progress_t {
    bool bar; //  else log lines
    bool off;
    int64_t interval_ms;
    char what[64];
    uint64_t total, done;
    int64_t started_ms, shown_ms;
    bool active;
    char line[256];
};

int
progress_parse_mode (const char *text, progress_mode_t *mode)
{
    static const char *names[] = {"auto", "bar", "log", "off"};
    for (int i = 0; i < 4; i++)
        if (text && strcmp (text, names[i]) == 0) {
            *mode = (progress_mode_t) i;
            return 0;
        }
    return -1;
}

progress_t *
progress_new (progress_mode_t mode, int64_t interval_ms)
{
    progress_t *self = calloc (1, sizeof *self);
    assert (self);
    if (mode == PROGRESS_AUTO)
        mode = isatty (STDERR_FILENO) ? PROGRESS_BAR : PROGRESS_LOG;
    self->bar = mode == PROGRESS_BAR;
    self->off = mode == PROGRESS_OFF;
    self->interval_ms = interval_ms > 0 ? interval_ms : 5000;
    return self;
}

void
progress_destroy (progress_t **self_p)
{
    progress_t *self = *self_p;
    if (!self)
        return;
    if (self->active)
        progress_finish (self);
    free (self);
    *self_p = NULL;
}

void
progress_start (progress_t *self, const char *what, uint64_t total)
{
    snprintf (self->what, sizeof self->what, "%s", what);
    self->total = total;
    self->done = 0;
    self->started_ms = self->shown_ms = omni_util_mono_ms ();
    self->active = true;
    self->line[0] = 0;
}

static void
s_format_duration (char *out, size_t size, double seconds)
{
    uint64_t s = seconds < 0 ? 0 : (uint64_t) (seconds + 0.5);
    if (s >= 3600)
        snprintf (out, size, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600, s / 60 % 60, s % 60);
    else
        snprintf (out, size, "%" PRIu64 ":%02" PRIu64, s / 60, s % 60);
}

//  Renders the bar line (without the leading carriage return) for `width`
//  terminal columns.
static void
s_render (progress_t *self, int64_t now, int width)
{
    double elapsed = (double) (now - self->started_ms) / 1000.0;
    double rate = elapsed > 0 ? (double) self->done / elapsed : 0;
    char tail[128], eta[32] = "?";
    if (self->total && rate > 0)
        s_format_duration (eta, sizeof eta, (double) (self->total - self->done) / rate);
    if (self->total)
        snprintf (tail, sizeof tail, " %5.1f%% %" PRIu64 "/%" PRIu64 " %.0f/s ETA %s",
                  100.0 * (double) self->done / (double) self->total, self->done, self->total, rate,
                  self->done >= self->total ? "0:00" : eta);
    else
        snprintf (tail, sizeof tail, " %" PRIu64 " %.0f/s", self->done, rate);
    int head = snprintf (self->line, sizeof self->line, "%s ", self->what);
    int room = width - 1 - head - (int) strlen (tail) - 2;
    if (self->total && room >= 10) {
        if (room > 40)
            room = 40;
        int filled = (int) ((double) room * (double) self->done / (double) self->total);
        if (filled > room)
            filled = room;
        char bar[48];
        memset (bar, '#', (size_t) filled);
        memset (bar + filled, '-', (size_t) (room - filled));
        bar[room] = 0;
        snprintf (self->line + head, sizeof self->line - (size_t) head, "[%s]%s", bar, tail);
    } else
        snprintf (self->line + head, sizeof self->line - (size_t) head, "%s", tail + 1);
}

static int
s_columns (void)
{
    struct winsize ws;
    if (ioctl (STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

static void
s_show (progress_t *self, int64_t now, bool final)
{
    self->shown_ms = now;
    if (self->bar) {
        s_render (self, now, s_columns ());
        fprintf (stderr, "\r%s\033[K%s", self->line, final ? "\n" : "");
        fflush (stderr);
    } else {
        s_render (self, now, 0);
        double elapsed = (double) (now - self->started_ms) / 1000.0;
        double rate = elapsed > 0 ? (double) self->done / elapsed : 0;
        double eta = self->total && rate > 0 ? (double) (self->total - self->done) / rate : -1;
        log_info (final ? "progress.done" : "progress",
                  "what=\"%s\" done=%" PRIu64 " total=%" PRIu64
                  " rate=%.0f elapsed_s=%.1f eta_s=%.0f",
                  self->what, self->done, self->total, rate, elapsed, eta);
    }
}

void
progress_update (progress_t *self, uint64_t done)
{
    self->done = done;
    if (self->off || !self->active)
        return;
    int64_t now = omni_util_mono_ms ();
    if (now - self->shown_ms >= (self->bar ? S_BAR_REDRAW_MS : self->interval_ms))
        s_show (self, now, false);
}

void
progress_finish (progress_t *self)
{
    if (!self->active)
        return;
    self->active = false;
    int64_t now = omni_util_mono_ms ();
    if (self->off)
        return;
    //  A short phase needs no closing log line; a bar always closes
    if (self->bar || now - self->started_ms >= self->interval_ms)
        s_show (self, now, true);
}

const char *
progress_line (progress_t *self)
{
    s_render (self, omni_util_mono_ms (), 80);
    return self->line;
}

void
progress_test (bool verbose)
{
    (void) verbose;
    progress_mode_t mode;
    assert (progress_parse_mode ("log", &mode) == 0 && mode == PROGRESS_LOG);
    assert (progress_parse_mode ("bars", &mode) == -1);
    progress_t *progress = progress_new (PROGRESS_OFF, 0);
    progress_start (progress, "git commits", 200);
    progress_update (progress, 50);
    const char *line = progress_line (progress);
    assert (strstr (line, "git commits ["));
    assert (strstr (line, " 25.0% 50/200 "));
    assert (strstr (line, "ETA"));
    assert (strlen (line) < 80);
    progress_finish (progress);
    //  Unknown total: count and rate only
    progress_start (progress, "things", 0);
    progress_update (progress, 7);
    line = progress_line (progress);
    assert (strncmp (line, "things 7 ", 9) == 0 && !strchr (line, '['));
    progress_destroy (&progress);
    assert (progress == NULL);

    char out[32];
    s_format_duration (out, sizeof out, 3725);
    assert (strcmp (out, "1:02:05") == 0);
    s_format_duration (out, sizeof out, 65);
    assert (strcmp (out, "1:05") == 0);
}

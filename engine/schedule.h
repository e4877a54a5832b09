// Layer schedules: the ordered list of layers one forward pass visits.
#ifndef REPRISE_SCHEDULE_H
#define REPRISE_SCHEDULE_H

#include "loader/error.h"

typedef struct {
    int n_visits;
    int *layer;   // (n_visits) layer run at each visit; visit v owns KV slot v
} schedule;

// Parses `text` for a model of n_layers layers. Syntax: `base`; comma-separated inclusive ranges and single
// layers (`0-51,45-79`, `0-9,5,10-31`); `rys:I,J` = 0..J-1 then I..N-1; `rys:I,J,K` = block I..J-1 run K times
// in all; blocks joined by '+' (`rys:3,5+7,9,3`), ascending and apart, each repeated so. As other tools write
// them: ExLlamaV3's layer_map, inclusive ranges with `..` and open ends (`..51,45..`); PEFT's layer_replication,
// [start, end) pairs (`[[0,52],[45,80]]`). Errors name the offending token.
int schedule_parse(schedule *s, const char *text, int n_layers, rp_err *err);
// A fresh copy of text without the blanks people type around list separators (',', ';', '+', ':', brackets: "0-2,
// 1-4", "base; rys:1,3", "rys: 1, 3") or at its ends; any other blank stays, and is an error to parse ("0 - 3",
// "1 2"). schedule_parse reads text this way.
char *schedule_tidy(const char *text);
void schedule_base(schedule *s, int n_layers);
void schedule_free(schedule *s);
int schedule_copy(schedule *dst, const schedule *src);
int schedule_unique_layers(const schedule *s, int n_layers);
// Writes the schedule in range syntax ("0-3,2-5"); returns the length snprintf would.
int schedule_format(const schedule *s, char *buf, int cap);
// The same as a fresh string, whole whatever its length.
char *schedule_text(const schedule *s);

#endif

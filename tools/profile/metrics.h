// What a layer does to the hidden state, from the states at every visit boundary, accumulated token by token.
#ifndef REPRISE_PROFILE_METRICS_H
#define REPRISE_PROFILE_METRICS_H

// Running sums over tokens. State a (0 <= a < n_states) is the hidden state entering visit a; the last is the
// last visit's output (before the final norm). A config never needs all tokens' states at once: memory is
// O(n_states^2 + n_states x dim), whatever the prompt lengths.
typedef struct {
    int n_states, dim;
    long tokens;
    double *gram;       // (n_states, n_states) sum of <h_a, h_b>
    double *cos_sum;    // (n_states, n_states) sum of cos(h_a, h_b)
    double *ang_sum;    // (n_states, n_states) sum of arccos(cos(h_a, h_b)) / pi
    double *sum;        // (n_states, dim) sum of h_a
    double *upd_norm;   // (n_states - 1) sum of |h_{a+1} - h_a|
    double *upd_rel;    // (n_states - 1) sum of |h_{a+1} - h_a| / |h_a|
    double *upd_corr;   // (n_states - 2) sum of cos(h_{a+1} - h_a, h_{a+2} - h_{a+1})
} profile_acc;

void profile_acc_init(profile_acc *p, int n_states, int dim);
// One token: state[a] points at its dim floats of state a.
void profile_acc_add(profile_acc *p, const float *const *state);
void profile_acc_free(profile_acc *p);

// The metrics, means over the tokens. Matrices are (n_states, n_states), entry (a, b) for the block of visits a..b-1.
typedef struct {
    int n_states;
    double *angular;     // Gromov et al.: mean arccos(cos(h_a, h_b)) / pi, in [0, 1]
    double *influence;   // ShortGPT's block influence: 1 - mean cos(h_a, h_b)
    double *centred;     // RYS II: cosine of the states with each state's mean over tokens removed, pooled over
                         // tokens: sum_t <h_a - m_a, h_b - m_b> / sqrt(sum_t |h_a - m_a|^2 sum_t |h_b - m_b|^2)
    double *update_norm, *update_rel;   // (n_states - 1) mean |h_{a+1} - h_a|, and relative to |h_a|
    double *update_corr;                // (n_states - 2) mean cos of neighbouring updates
    int zone_start, zone_end;           // the middle ("reasoning") zone: states [zone_start, zone_end)
} profile_metrics;

// Means and the zones: the centred matrix split into three runs of states (encode, reason, decode) that maximise
// the sum over same-run pairs of (similarity - the mean off-diagonal similarity). n_states < 4: no middle zone
// (start = end = 0).
void profile_finish(const profile_acc *p, profile_metrics *m);
void profile_metrics_free(profile_metrics *m);

#endif

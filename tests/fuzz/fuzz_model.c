/*
 * fuzz_model - libFuzzer target: a whole model load from arbitrary bytes, then, for a file it
 * accepts, one prefill and a few greedy steps. The bytes are opened where they are
 * (eng_model_open_mem), so nothing touches the disk. Inputs that would allocate more than a
 * small context are still loaded (that is the part under test); the session is capped at 64
 * positions and the steps run on one thread.
 */
#include <stddef.h>
#include <stdint.h>

#include "eng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eng_model_params mp = eng_model_params_default();
    eng_session_params sp = eng_session_params_default();
    eng_sampler_params smp = eng_sampler_params_default();
    eng_model *m = NULL;
    eng_session *s = NULL;
    char err[512];
    int32_t prompt[4] = {1, 2, 3, 4};

    mp.prefault = 0;
    if (eng_model_open_mem(data, size, "fuzz", &mp, &m, err, sizeof err) != RB_OK)
        goto out;
    sp.n_threads = 1;
    sp.n_ctx = 64;
    smp.temperature = 0;
    if (eng_session_open(m, &sp, &s, err, sizeof err) != RB_OK ||
        eng_session_reset(s, &smp, NULL, 0) != RB_OK)
        goto out;
    for (int i = 0; i < 4; i++)
        prompt[i] %= (int32_t)(size % 7 + 1);
    if (eng_session_prefill(s, prompt, 4, err, sizeof err) != RB_OK)
        goto out;
    for (int i = 0; i < 4; i++) {
        eng_step st;
        if (eng_session_step(s, &st) != RB_OK || st.done)
            break;
    }
out:
    eng_session_free(s);
    eng_model_free(m);
    return 0;
}

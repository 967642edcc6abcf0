/*
 * args.c - the --file hint of model references (see kpr_args.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kpr_args.h"
#include "rb_util.h"

rb_err kpr_ref_with_file(const char *cmd, const char *ref, const char *file, char *out,
                         size_t outlen, char *err, size_t errlen)
{
    const char *repo = strncmp(ref, "hf:", 3) == 0 ? strchr(ref + 3, '/') : NULL;
    size_t n = strlen(file ? file : "");

    if (!file)
        return snprintf(out, outlen, "%s", ref) < (int)outlen
                   ? RB_OK
                   : rb_errf(err, errlen, RB_EINVAL, "rbee %s: the model reference is too long",
                             cmd);
    if (!repo || repo == ref + 3 || !repo[1] || strchr(repo + 1, '/'))
        return rb_errf(err, errlen, RB_EINVAL,
                       "rbee %s: --file applies to a reference hf:<org>/<repo> without a file "
                       "name, not '%s'",
                       cmd, ref);
    if (n <= 5 || strcasecmp(file + n - 5, ".gguf") != 0 || strchr(file, '/'))
        return rb_errf(err, errlen, RB_EINVAL,
                       "rbee %s: --file must name a .gguf file of the repository, not '%s'", cmd,
                       file);
    if (snprintf(out, outlen, "%s/%s", ref, file) >= (int)outlen)
        return rb_errf(err, errlen, RB_EINVAL, "rbee %s: the model reference is too long", cmd);
    return RB_OK;
}

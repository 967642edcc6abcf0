/*
 * args.c - model references as typed: the --file hint and a bare path (see kpr_args.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kpr_args.h"
#include "rb_util.h"

int kpr_ref_is_path(const char *ref)
{
    size_t n = strlen(ref);

    return ref[0] == '/' || strncmp(ref, "./", 2) == 0 || strncmp(ref, "../", 3) == 0 ||
           (n > 5 && strcasecmp(ref + n - 5, ".gguf") == 0 && !strchr(ref, ':'));
}

rb_err kpr_ref_from_path(const char *cmd, const char *path, char *out, size_t outlen, char *err,
                         size_t errlen)
{
    char cwd[4096];
    int n;

    if (path[0] == '/') {
        n = snprintf(out, outlen, "file:%s", path);
    } else if (!getcwd(cwd, sizeof cwd)) {
        return rb_errf(err, errlen, RB_EIO, "rbee %s: cannot resolve '%s': %s", cmd, path,
                       strerror(errno));
    } else {
        while (strncmp(path, "./", 2) == 0)
            path += 2;
        n = snprintf(out, outlen, "file:%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", path);
    }
    if (n < 0 || (size_t)n >= outlen)
        return rb_errf(err, errlen, RB_EINVAL, "rbee %s: the model path is too long", cmd);
    return RB_OK;
}

rb_err kpr_ref_with_file(const char *cmd, const char *ref, const char *file, char *out,
                         size_t outlen, char *err, size_t errlen)
{
    const char *repo = strncmp(ref, "hf:", 3) == 0 ? strchr(ref + 3, '/') : NULL;
    size_t n = strlen(file ? file : "");

    if (!file && kpr_ref_is_path(ref))
        return kpr_ref_from_path(cmd, ref, out, outlen, err, errlen);
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

/*
 * modelref.c - parsing model references, choosing a repo's file, finding the bundled model.
 *
 * DESIGN
 * A model reference arrives from the network and later becomes a path under $RBEE_HOME/models
 * and part of a download URL, so the parser is strict: a closed character set, no empty, "." or
 * ".." segments, bounded lengths. Everything here is pure (no network, no catalog) so it is
 * unit-tested directly. The bundled model is found on disk by a fixed search order, so a build
 * tree and an installed tree both work without configuration.
 */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hive.h"
#include "hive_modelref.h"

#define GGUF_MAGIC "GGUF"
#define SHOWN_REF_MAX 100 /* characters of a bad reference echoed in a message */

static const char ref_help[] =
    "use hf:<org>/<repo>[/<file>.gguf], file:/absolute/path or '" HIVE_BUNDLED_NAME "'";

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '+';
}

/* 1 if s[0..n) is a valid path segment. */
static int valid_segment(const char *s, size_t n)
{
    int ok = n > 0 && !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
    for (size_t i = 0; i < n && ok; i++)
        ok = name_char(s[i]);
    return ok;
}

static int ends_with_gguf(const char *s)
{
    size_t n = strlen(s);
    return n > 5 && strcasecmp(s + n - 5, ".gguf") == 0;
}

int hive_modelref_valid_file(const char *name)
{
    const char *p = name;
    int ok = name && *name && strlen(name) < HIVE_REF_MAX && ends_with_gguf(name);

    while (ok && p) {
        const char *slash = strchr(p, '/');
        ok = valid_segment(p, slash ? (size_t)(slash - p) : strlen(p));
        p = slash ? slash + 1 : NULL;
    }
    return ok;
}

/* Copies segment s[0..n) into out (outlen bytes) when it is a valid segment. */
static int take_segment(const char *s, size_t n, char *out, size_t outlen)
{
    int ok = valid_segment(s, n) && n < outlen;
    if (ok) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return ok;
}

static rb_err parse_hf(const char *ref, const char *rest, hive_modelref *out, char *err,
                       size_t errlen)
{
    const char *s1 = strchr(rest, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    size_t repo_len = s1 ? (s2 ? (size_t)(s2 - s1 - 1) : strlen(s1 + 1)) : 0;
    rb_err rc = RB_OK;

    if (!s1 || !take_segment(rest, (size_t)(s1 - rest), out->org, sizeof out->org))
        rc = rb_errf(err, errlen, RB_EINVAL, "model reference '%.*s' has no valid <org>/<repo>: %s",
                     SHOWN_REF_MAX, ref, ref_help);
    else if (!take_segment(s1 + 1, repo_len, out->repo, sizeof out->repo))
        rc = rb_errf(err, errlen, RB_EINVAL, "model reference '%.*s' has no valid repo: %s",
                     SHOWN_REF_MAX, ref, ref_help);
    else if (s2 && !hive_modelref_valid_file(s2 + 1))
        rc = rb_errf(err, errlen, RB_EINVAL, "model reference '%.*s' names no valid .gguf file: %s",
                     SHOWN_REF_MAX, ref, ref_help);
    if (!rc && s2)
        snprintf(out->file, sizeof out->file, "%s", s2 + 1);
    out->kind = HIVE_REF_HF;
    return rc;
}

static rb_err parse_file(const char *ref, const char *rest, hive_modelref *out, char *err,
                         size_t errlen)
{
    rb_err rc = RB_OK;

    if (strncmp(rest, "///", 3) == 0)
        rest += 2; /* file:///abs/path */
    if (rest[0] != '/' || strlen(rest) >= sizeof out->path)
        rc =
            rb_errf(err, errlen, RB_EINVAL, "model reference '%.*s' must name an absolute path: %s",
                    SHOWN_REF_MAX, ref, ref_help);
    else
        snprintf(out->path, sizeof out->path, "%s", rest);
    out->kind = HIVE_REF_FILE;
    return rc;
}

rb_err hive_modelref_parse(const char *ref, hive_modelref *out, char *err, size_t errlen)
{
    rb_err rc;

    memset(out, 0, sizeof(*out));
    if (!ref || !*ref || strlen(ref) >= HIVE_REF_MAX) {
        rc = rb_errf(err, errlen, RB_EINVAL, "model reference is empty or too long: %s", ref_help);
        goto out;
    }
    if (strncmp(ref, "hf:", 3) == 0)
        rc = parse_hf(ref, ref + 3, out, err, errlen);
    else if (strncmp(ref, "file:", 5) == 0)
        rc = parse_file(ref, ref + 5, out, err, errlen);
    else if (strcmp(ref, HIVE_BUNDLED_NAME) == 0) {
        out->kind = HIVE_REF_BUNDLED;
        rc = RB_OK;
    } else
        rc = rb_errf(err, errlen, RB_EINVAL, "model reference '%.*s' is not valid: %s",
                     SHOWN_REF_MAX, ref, ref_help);
out:
    return rc;
}

rb_err hive_modelref_format(const hive_modelref *r, char *out, size_t outlen)
{
    int n;

    switch (r->kind) {
    case HIVE_REF_HF:
        n = snprintf(out, outlen, "hf:%s/%s%s%s", r->org, r->repo, r->file[0] ? "/" : "", r->file);
        break;
    case HIVE_REF_FILE:
        n = snprintf(out, outlen, "file:%s", r->path);
        break;
    default:
        n = snprintf(out, outlen, "%s", HIVE_BUNDLED_NAME);
        break;
    }
    return n < 0 || (size_t)n >= outlen ? RB_ETOOBIG : RB_OK;
}

/* 1 for a part of a split model ("...-00001-of-00003.gguf"): the worker loads single files. */
static int is_split_part(const char *name)
{
    const char *of = strstr(name, "-of-");
    int split = of && of - name >= 6 && of[-6] == '-';

    for (int i = 1; i <= 5 && split; i++)
        split = of[-i] >= '0' && of[-i] <= '9';
    return split;
}

static int contains_nocase(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    int found = 0;
    for (; *s && !found; s++)
        found = strncasecmp(s, needle, n) == 0;
    return found;
}

/* 1 when candidate a should be preferred over b (shorter, then byte order). */
static int better(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la != lb ? la < lb : strcmp(a, b) < 0;
}

rb_err hive_pick_gguf(const char *const *names, size_t n, size_t *pick)
{
    size_t ngguf = 0, only = 0, best = n;
    rb_err rc = RB_OK;

    for (size_t i = 0; i < n; i++) {
        if (!names[i] || !ends_with_gguf(names[i]) || is_split_part(names[i]))
            continue;
        ngguf++;
        only = i;
        if (contains_nocase(names[i], "Q4_K_M") && (best == n || better(names[i], names[best])))
            best = i;
    }
    if (best < n)
        *pick = best;
    else if (ngguf == 1)
        *pick = only;
    else
        rc = ngguf == 0 ? RB_ENOTFOUND : RB_EINVAL;
    return rc;
}

int hive_file_is_gguf(const char *path)
{
    FILE *f = fopen(path, "rb");
    char magic[4];
    int ok = f && fread(magic, 1, sizeof magic, f) == sizeof magic &&
             memcmp(magic, GGUF_MAGIC, sizeof magic) == 0;

    if (f)
        fclose(f);
    return ok;
}

/* First match of HIVE_BUNDLED_GLOB in dir (glob sorts by name). */
static rb_err find_in_dir(const char *dir, char *out, size_t outlen)
{
    char pattern[HIVE_PATH_MAX];
    glob_t g;
    rb_err rc = RB_ENOTFOUND;

    if (snprintf(pattern, sizeof pattern, "%s/%s", dir, HIVE_BUNDLED_GLOB) >= (int)sizeof pattern ||
        glob(pattern, 0, NULL, &g) != 0)
        goto out;
    for (size_t i = 0; i < g.gl_pathc && rc; i++) {
        char *real;
        if (!hive_file_is_gguf(g.gl_pathv[i]) || !(real = realpath(g.gl_pathv[i], NULL)))
            continue;
        rc = snprintf(out, outlen, "%s", real) < (int)outlen ? RB_OK : RB_ETOOBIG;
        free(real);
    }
    globfree(&g);
out:
    return rc;
}

rb_err hive_bundled_path(const char *exe_dir, char *out, size_t outlen)
{
    static const char *const subdirs[] = {"models", "../models", "../share/rbee/models"};
    const char *env = getenv("RBEE_BUNDLED_MODEL");
    char dir[HIVE_PATH_MAX];
    rb_err rc = RB_ENOTFOUND;

    if (env && *env) {
        rc = access(env, R_OK) == 0 ? RB_OK : RB_ENOTFOUND;
        if (!rc && snprintf(out, outlen, "%s", env) >= (int)outlen)
            rc = RB_ETOOBIG;
        goto out;
    }
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0] && rc; i++) {
        if (snprintf(dir, sizeof dir, "%s/%s", exe_dir, subdirs[i]) >= (int)sizeof dir)
            continue;
        rc = find_in_dir(dir, out, outlen);
    }
#ifdef RB_SOURCE_MODELS
    /* A build tree anywhere finds the bundled model of the source tree it was built from. */
    if (rc)
        rc = find_in_dir(RB_SOURCE_MODELS, out, outlen);
#endif
out:
    return rc;
}

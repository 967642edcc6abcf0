/*
 * hive_modelref.h - model references (docs/architecture.md §7) and the choice of a file in a repo.
 *
 *     hive_modelref r;
 *     if (hive_modelref_parse("hf:org/repo/model.gguf", &r, err, sizeof err)) -> 400
 *     INVALID_MODEL_REF with err as the message.
 *
 * Accepted forms:
 *     hf:<org>/<repo>            the repo's Q4_K_M file (see hive_pick_gguf)
 *     hf:<org>/<repo>/<file>     a file of the repo (may contain '/'), ending in .gguf
 *     file:/abs/path             a local file (file:///abs/path is accepted too)
 *     HIVE_BUNDLED_NAME          the bundled model
 * Names are ASCII letters, digits and "._+-"; no segment may be empty, "." or "..".
 */
#ifndef HIVE_MODELREF_H
#define HIVE_MODELREF_H

#include <stddef.h>

#include "rb_err.h"

#define HIVE_REF_MAX 512 /* longest model reference accepted */
#define HIVE_PATH_MAX 4096

typedef enum hive_ref_kind { HIVE_REF_HF, HIVE_REF_FILE, HIVE_REF_BUNDLED } hive_ref_kind;

typedef struct hive_modelref {
    hive_ref_kind kind;
    char org[128];            /* hf only */
    char repo[128];           /* hf only */
    char file[HIVE_REF_MAX];  /* hf: path inside the repo; "" when the ref names none */
    char path[HIVE_PATH_MAX]; /* file: the absolute path; "" otherwise */
} hive_modelref;

/* Parses ref. RB_EINVAL with a user-facing message in err when it is not a valid reference. */
rb_err hive_modelref_parse(const char *ref, hive_modelref *out, char *err, size_t errlen);

/* Canonical text of a reference ("hf:org/repo/file", "file:/p", the bundled name). */
rb_err hive_modelref_format(const hive_modelref *r, char *out, size_t outlen);

/* 1 if name is a valid file path inside a repo (the rules above, ending in .gguf). */
int hive_modelref_valid_file(const char *name);

/* Chooses the file to download from a repo's file list:
 *   - only names ending in .gguf count, and not the parts of a split model (-00001-of-00003);
 *   - a name containing "Q4_K_M" (any case) wins; among several, the shortest, then the first
 *     in byte order;
 *   - otherwise a repo with exactly one .gguf file gives that file.
 * Returns RB_OK with *pick set, RB_ENOTFOUND when there is no .gguf file, RB_EINVAL when there
 * are several and none is Q4_K_M (the caller asks for a file name). */
rb_err hive_pick_gguf(const char *const *names, size_t n, size_t *pick);

/* Finds the bundled model's file: $RBEE_BUNDLED_MODEL when set, else the first
 * HIVE_BUNDLED_GLOB (in name order) in <exe_dir>/models, <exe_dir>/../models,
 * <exe_dir>/../share/rbee/models (an installation) and last the models/ folder of the source
 * tree the binary was built from. RB_ENOTFOUND when there is none. */
rb_err hive_bundled_path(const char *exe_dir, char *out, size_t outlen);

/* 1 when the file at path starts with the GGUF magic. */
int hive_file_is_gguf(const char *path);

#endif
